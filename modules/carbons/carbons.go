// Package carbons implements Message Carbons (XEP-0280): each resource of
// an account that enabled carbons gets a copy of the chat messages its
// other resources send and receive, so a conversation reads the same on
// every device. The private and no-copy hints (XEP-0280 §7, XEP-0334)
// keep a message out.
package carbons

import (
	"context"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"time"
)

const (
	NS = "urn:xmpp:carbons:2"
)

// enabledKey marks a session that enabled carbons.
type enabledKey struct{}

type Module struct {
	host module.Host
}

func New() *Module { return &Module{} }

func (*Module) Name() string { return "carbons" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "enable"}, m.toggle(true))
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "disable"}, m.toggle(false))
	h.AddFeature(module.Server, NS)
	h.AddFeature(module.Account, NS)
	h.OnMessage(m.copy)
	return nil
}

func (m *Module) toggle(on bool) module.IQHandler {
	return func(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
		if !iq.From.Bare().Equal(iq.To) {
			return nil, stanza.Forbidden("carbons are enabled for one's own sessions only")
		}
		for _, s := range m.host.Sessions(iq.To) {
			if s.JID().Equal(iq.From) {
				s.State().SetValue(enabledKey{}, on)
			}
		}
		return nil, nil
	}
}

func enabled(s session.Session) bool {
	on, _ := s.State().Value(enabledKey{}).(bool)
	return on
}

// eligible applies XEP-0280 §6: chat messages, and normal ones with a
// body, unless a hint or an earlier carbon says otherwise.
func eligible(el *xmlstream.Element) bool {
	switch el.Attr("type") {
	case "chat":
	case "", "normal":
		if el.Child(el.Name.Space, "body") == nil {
			return false
		}
	default:
		return false
	}
	if stanza.HasHint(el, stanza.HintNoCopy) {
		return false
	}
	for c := range el.Elements() {
		if c.Name.Space == NS { // private, or already a carbon
			return false
		}
	}
	return true
}

func (m *Module) copy(_ context.Context, ev module.MessageEvent) {
	if !eligible(ev.Stanza) {
		return
	}
	var owner, except jid.JID
	kind := "received"
	if ev.Outbound {
		owner, except, kind = ev.From.Bare(), ev.From, "sent"
	} else {
		owner, except = ev.To.Bare(), ev.To
		if ev.To.Resource() == "" {
			// To the bare JID, the router hands it to every available
			// resource with non-negative priority already; only the others
			// that asked for carbons need a copy.
			for _, s := range m.host.Sessions(owner) {
				if avail, prio := s.State().Available(); enabled(s) && (!avail || prio < 0) {
					s.Deliver(wrap(owner, s.JID(), kind, ev.Stanza))
				}
			}
			return
		}
	}
	for _, s := range m.host.Sessions(owner) {
		if s.JID().Equal(except) || !enabled(s) {
			continue
		}
		s.Deliver(wrap(owner, s.JID(), kind, ev.Stanza))
	}
}

// wrap builds the carbon: from the account's bare JID, the original
// message forwarded inside <sent/> or <received/> (XEP-0280 §6.1).
func wrap(owner, to jid.JID, kind string, orig *xmlstream.Element) *xmlstream.Element {
	c := xmlstream.New(stanza.NSClient, "message", "from", owner.String(), "to", to.String(), "type", orig.Attr("type"))
	fwd := stanza.Forwarded(orig.Copy(), time.Time{})
	c.AddChild(xmlstream.New(NS, kind).AddChild(fwd))
	return c
}
