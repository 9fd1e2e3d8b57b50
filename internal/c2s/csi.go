package c2s

import (
	"parley/internal/xmlstream"
)

// NSCSI is Client State Indication (XEP-0352).
const NSCSI = "urn:xmpp:csi:0"

// maxHeld bounds what an inactive client's queue keeps; past it the
// queue is flushed, so a huge roster cannot grow server memory.
const maxHeld = 500

// csiQueue holds what an inactive client does not need at once: presence
// updates and chat states. Only the latest per sender is kept, which is
// where the saving is: a phone in a pocket gets one presence per contact
// when it wakes up instead of every change, and no radio wake-ups before.
type csiQueue struct {
	inactive bool
	order    []string
	held     map[string]*xmlstream.Element
	spared   int // stanzas never sent because a later one replaced them
}

// holdable says whether el can wait while the client is inactive.
func holdable(el *xmlstream.Element) bool {
	switch el.Name.Local {
	case "presence":
		switch el.Attr("type") {
		case "", "unavailable":
			return true
		}
		return false // subscription requests and errors matter now
	case "message":
		if el.Attr("type") == "error" {
			return false
		}
		for c := range el.Elements() {
			if c.Name.Space != "http://jabber.org/protocol/chatstates" {
				return false
			}
		}
		return el.FirstElement() != nil
	}
	return false
}

// hold keeps el if it may wait and reports whether it did.
func (q *csiQueue) hold(el *xmlstream.Element) bool {
	if !q.inactive || !holdable(el) || len(q.held) >= maxHeld {
		return false
	}
	key := el.Name.Local + "\x00" + el.Attr("from")
	if q.held == nil {
		q.held = make(map[string]*xmlstream.Element)
	}
	if _, ok := q.held[key]; ok {
		q.spared++
	} else {
		q.order = append(q.order, key)
	}
	q.held[key] = el
	return true
}

// take empties the queue, oldest first.
func (q *csiQueue) take() []*xmlstream.Element {
	if len(q.order) == 0 {
		return nil
	}
	out := make([]*xmlstream.Element, 0, len(q.order))
	for _, k := range q.order {
		out = append(out, q.held[k])
	}
	q.order, q.held = nil, nil
	return out
}
