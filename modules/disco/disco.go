// Package disco answers Service Discovery (XEP-0030) for the server:
// disco#info lists exactly the features the loaded modules registered,
// so the server never advertises what it does not do.
package disco

import (
	"context"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

type Module struct {
	host module.Host
}

func New() *Module { return &Module{} }

func (*Module) Name() string { return "disco" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	h.AddIdentity(module.Identity{Category: "server", Type: "im", Name: "parley"})
	h.AddFeature(module.Server, NSInfo)
	h.AddFeature(module.Server, NSItems)
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NSInfo, Local: "query"}, m.info)
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NSItems, Local: "query"}, m.items)
	return nil
}

func (m *Module) info(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if iq.Payload.Attr("node") != "" {
		return nil, stanza.ItemNotFound("no such node")
	}
	q := xmlstream.New(NSInfo, "query")
	for _, id := range m.host.Identities() {
		el := xmlstream.New(NSInfo, "identity", "category", id.Category, "type", id.Type)
		if id.Name != "" {
			el.SetAttr("name", id.Name)
		}
		q.AddChild(el)
	}
	for _, f := range m.host.Features(module.Server) {
		q.AddChild(xmlstream.New(NSInfo, "feature", "var", f))
	}
	return q, nil
}

func (m *Module) items(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if iq.Payload.Attr("node") != "" {
		return nil, stanza.ItemNotFound("no such node")
	}
	// Services (MUC, upload) will list themselves here once they exist.
	return xmlstream.New(NSItems, "query"), nil
}
