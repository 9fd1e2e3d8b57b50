package pubsub

import (
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// ItemsQuery reads what an <items/> request selects (XEP-0060 §6.5):
// the newest max_items, or the items named.
func ItemsQuery(action *xmlstream.Element) (storage.PubSubQuery, *stanza.Error) {
	var q storage.PubSubQuery
	if v := action.Attr("max_items"); v != "" {
		n, err := ParseMaxItems(v, storage.MaxPubSubItems)
		if err != nil {
			return q, stanza.BadRequest("max_items: " + err.Error())
		}
		q.Last = n
	}
	for it := range action.Elements() {
		if it.Name.Space == NS && it.Name.Local == "item" && it.Attr("id") != "" {
			q.IDs = append(q.IDs, it.Attr("id"))
		}
	}
	return q, nil
}
