package pep

import (
	"context"
	"errors"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// sessionCaps is the key of a session's own feature set, kept when its
// disco#info answer did not match its caps hash: such an answer may be
// used for the client that gave it but never cached for others.
type sessionCaps struct{}

type ownFeatures struct {
	ref      capsRef
	features map[string]bool
}

// interested reports whether a session wants notifications for node:
// it is available and its caps include "<node>+notify" (XEP-0163 §4.3).
// An unknown caps ver is queried, and the session gets the last items
// once the answer is in.
func (m *Module) interested(ctx context.Context, s session.Session, node string) bool {
	ref, ok := capsOf(s.State().Presence())
	if !ok {
		return false
	}
	if f, ok := m.caps.lookup(ref); ok {
		return f[node+"+notify"]
	}
	if own, ok := s.State().Value(sessionCaps{}).(ownFeatures); ok && own.ref == ref {
		return own.features[node+"+notify"]
	}
	m.query(ctx, s.JID(), ref)
	return false
}

// knows reports whether the features behind ref are known for s.
func (m *Module) knows(s session.Session, ref capsRef) bool {
	if _, ok := m.caps.lookup(ref); ok {
		return true
	}
	own, ok := s.State().Value(sessionCaps{}).(ownFeatures)
	return ok && own.ref == ref
}

// query asks a client for the features behind a caps ver (XEP-0115 §6.3)
// unless that ver is already being asked for.
func (m *Module) query(ctx context.Context, full jid.JID, ref capsRef) {
	id := "pep-caps-" + randomID()
	if !m.caps.want(ref, full, full, id, m.now()) {
		return
	}
	iq := xmlstream.New("jabber:client", "iq", "type", "get", "id", id, "from", full.Domain(), "to", full.String())
	iq.AddChild(xmlstream.New(nsDiscoInfo, "query", "node", ref.node+"#"+ref.ver))
	m.host.Deliver(ctx, iq)
}

// iqResult takes the answers to the caps queries.
func (m *Module) iqResult(ctx context.Context, from, _ jid.JID, el *xmlstream.Element) bool {
	p, ok := m.caps.take(el.Attr("id"), from)
	if !ok {
		return false
	}
	q := el.Child(nsDiscoInfo, "query")
	if el.Attr("type") != "result" || q == nil {
		return true // the client would not say: it gets no notifications
	}
	features := map[string]bool{}
	for f := range q.Elements() {
		if f.Name.Space == nsDiscoInfo && f.Name.Local == "feature" {
			features[f.Attr("var")] = true
		}
	}
	verified := verString(p.ref.hash, q) == p.ref.ver
	if verified {
		m.caps.store(p.ref, features)
	}
	for _, w := range p.waiters {
		for _, s := range m.host.Sessions(w.Bare()) {
			if !s.JID().Equal(w) {
				continue
			}
			if !verified {
				if w.Equal(from) {
					s.State().SetValue(sessionCaps{}, ownFeatures{ref: p.ref, features: features})
				} else {
					continue // another client's unverified answer says nothing about this one
				}
			}
			m.sendLastItems(ctx, s)
		}
	}
	return true
}

// event wraps an event payload in a headline message: headlines are not
// stored offline nor archived, which suits notifications.
func event(from jid.JID, to jid.JID, payload *xmlstream.Element) *xmlstream.Element {
	msg := xmlstream.New("jabber:client", "message", "from", from.String(), "to", to.String(), "type", "headline")
	msg.AddChild(xmlstream.New(NSEvent, "event").AddChild(payload))
	return msg
}

// broadcast sends an event of owner's node to the owner's interested
// resources and to those of every local contact with a presence
// subscription whom the access model lets see the node.
func (m *Module) broadcast(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, payload *xmlstream.Element) {
	send := func(s session.Session) {
		if avail, _ := s.State().Available(); avail && m.interested(ctx, s, node) {
			m.host.Deliver(ctx, event(owner, s.JID(), payload.Copy()))
		}
	}
	for _, s := range m.host.Sessions(owner) {
		send(s)
	}
	if cfg.AccessModel == AccessWhitelist {
		return
	}
	items, _, err := m.host.Store().Roster().Items(ctx, owner.String())
	if err != nil {
		m.host.Logger().Warn("pep: reading the roster for notifications failed", "err", err)
		return
	}
	for _, it := range items {
		if it.Subscription != storage.SubFrom && it.Subscription != storage.SubBoth {
			continue
		}
		c, err := jid.Parse(it.Contact)
		if err != nil || !m.host.IsLocal(c.Domain()) {
			// Federation is not there yet; remote contacts get nothing.
			continue
		}
		for _, s := range m.host.Sessions(c) {
			send(s)
		}
	}
}

// available delivers, to a session that just became available, the last
// item of each node it is interested in: its own account's and those of
// the contacts it is subscribed to (XEP-0163 §6.1).
func (m *Module) available(ctx context.Context, s session.Session) {
	m.sendLastItems(ctx, s)
}

func (m *Module) sendLastItems(ctx context.Context, s session.Session) {
	ref, ok := capsOf(s.State().Presence())
	if !ok {
		return
	}
	if !m.knows(s, ref) {
		// Ask now, not at the first publish, so that live notifications
		// find the answer there; the answer brings the last items.
		m.query(ctx, s.JID(), ref)
		return
	}
	user := s.JID().Bare()
	m.lastItemsOf(ctx, user, s, true)
	items, _, err := m.host.Store().Roster().Items(ctx, user.String())
	if err != nil {
		m.host.Logger().Warn("pep: reading the roster for last items failed", "err", err)
		return
	}
	for _, it := range items {
		if it.Subscription != storage.SubTo && it.Subscription != storage.SubBoth {
			continue
		}
		c, err := jid.Parse(it.Contact)
		if err != nil || !c.IsBare() || c.Local() == "" || !m.host.IsLocal(c.Domain()) {
			continue
		}
		m.lastItemsOf(ctx, c, s, false)
	}
}

// lastItemsOf sends s the last item of each of owner's nodes that s may
// see and wants.
func (m *Module) lastItemsOf(ctx context.Context, owner jid.JID, s session.Session, own bool) {
	last, err := m.ps.LastItems(ctx, owner.String())
	if err != nil {
		m.host.Logger().Warn("pep: reading last items failed", "err", err)
		return
	}
	if len(last) == 0 {
		return
	}
	nodes, err := m.ps.Nodes(ctx, owner.String())
	if errors.Is(err, storage.ErrNotFound) {
		return
	}
	if err != nil {
		m.host.Logger().Warn("pep: reading nodes failed", "err", err)
		return
	}
	configs := make(map[string]nodeConfig, len(nodes))
	for _, n := range nodes {
		if c, err := decodeConfig(n.Config); err == nil {
			configs[n.Name] = c
		}
	}
	for _, l := range last {
		cfg, ok := configs[l.Node]
		if !ok || cfg.SendLast == SendLastNever || m.views[l.Node] != nil {
			continue
		}
		if !own {
			// The owner's roster decides, not the session's: they can
			// disagree while a subscription change is on its way.
			if se, err := m.mayAccess(ctx, owner, s.JID().Bare(), cfg); err != nil || se != nil {
				continue
			}
		}
		if !m.interested(ctx, s, l.Node) {
			continue
		}
		p, err := xmlstream.ParseElement(l.Item.Payload, "")
		if err != nil {
			m.host.Logger().Warn("pep: damaged stored item skipped", "err", err)
			continue
		}
		items := eventItems(l.Node).AddChild(itemElement(l.Item.ID, p))
		msg := event(owner, s.JID(), items)
		msg.AddChild(xmlstream.New(nsDelay, "delay", "from", owner.String(), "stamp", l.Item.Published.UTC().Format("2006-01-02T15:04:05.000000Z")))
		m.host.Deliver(ctx, msg)
	}
}
