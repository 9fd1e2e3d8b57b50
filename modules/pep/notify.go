package pep

import (
	"context"
	"errors"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

// sessionCaps is the key of a session's own feature set, kept when its
// disco#info answer did not match its caps hash: such an answer may be
// used for the client that gave it but never cached for others.
type sessionCaps struct{}

type ownFeatures struct {
	ref      capsRef
	features map[string]bool
}

// interest is what the module knows of a session's wish for a node's
// notifications.
type interest int

const (
	unwanted interest = iota
	wanted
	// asking: the session's caps are unknown and being asked for.
	asking
)

// interest tells whether a session wants notifications for node: its
// caps include "<node>+notify" (XEP-0163 §4.3). An unknown caps ver is
// queried, and the session gets the last items once the answer is in.
func (m *Module) interest(ctx context.Context, s session.Session, node string) (interest, capsRef) {
	ref, ok := capsOf(s.State().Presence())
	if !ok {
		return unwanted, ref
	}
	if f, ok := m.caps.lookup(ref); ok {
		return wantedIf(f[node+"+notify"]), ref
	}
	if own, ok := s.State().Value(sessionCaps{}).(ownFeatures); ok && own.ref == ref {
		return wantedIf(own.features[node+"+notify"]), ref
	}
	m.query(ctx, s, ref)
	return asking, ref
}

func wantedIf(b bool) interest {
	if b {
		return wanted
	}
	return unwanted
}

// notify sends msg, a notification of node, to the available session s
// if it wants it. While its caps are being asked for, the notification
// waits for the answer: the session announced them before the publish,
// and missing the round trip is the server's doing, not the client's.
// It reports whether the session got the notification or will get it.
func (m *Module) notify(ctx context.Context, s session.Session, node string, msg *xmlstream.Element) bool {
	if avail, _ := s.State().Available(); !avail {
		return false
	}
	// A query that ends between interest and hold has made the caps
	// known, or needs asking again: looking again settles it, unless no
	// query can be sent (the pending table is full).
	for range 3 {
		in, ref := m.interest(ctx, s, node)
		switch in {
		case wanted:
			m.host.Deliver(ctx, msg)
			return true
		case unwanted:
			return false
		}
		if m.caps.hold(ref, s.JID(), node, msg) {
			return true
		}
	}
	m.host.Logger().Debug("pep: notification dropped while asking for caps", "to", s.JID().String(), "node", node)
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
func (m *Module) query(ctx context.Context, s session.Session, ref capsRef) {
	id := "pep-caps-" + randomID()
	full := s.JID()
	known := func() bool {
		own, ok := s.State().Value(sessionCaps{}).(ownFeatures)
		return ok && own.ref == ref
	}
	if !m.caps.want(ref, full, full, id, m.now(), known) {
		return
	}
	iq := xmlstream.New("jabber:client", "iq", "type", "get", "id", id, "from", full.Domain(), "to", full.String())
	iq.AddChild(xmlstream.New(nsDiscoInfo, "query", "node", ref.node+"#"+ref.ver))
	m.host.Deliver(ctx, iq)
}

// iqResult takes the answers to the caps queries.
func (m *Module) iqResult(ctx context.Context, from, _ jid.JID, el *xmlstream.Element) bool {
	id := el.Attr("id")
	ref, ok := m.caps.claim(id, from)
	if !ok {
		return false
	}
	// features stays nil when the client would not say: it gets no
	// notifications.
	var features map[string]bool
	verified := false
	if q := el.Child(nsDiscoInfo, "query"); el.Attr("type") == "result" && q != nil {
		features = map[string]bool{}
		for f := range q.Elements() {
			if f.Name.Space == nsDiscoInfo && f.Name.Local == "feature" {
				features[f.Attr("var")] = true
			}
		}
		verified = verString(ref.hash, q) == ref.ver
	}
	// decides reports whether the answer tells what the session 'to'
	// wants: a verified answer does for every client announcing the ver,
	// another only for the client that gave it.
	decides := func(to jid.JID) bool { return verified || to.Equal(from) }
	var cache map[string]bool
	var done func()
	if verified {
		cache = features
	} else if s := m.session(from); s != nil && features != nil {
		// Such an answer may be used for the client that gave it but
		// never cached for others; it is set when the query ends (see
		// next), as the cache would be.
		done = func() { s.State().SetValue(sessionCaps{}, ownFeatures{ref: ref, features: features}) }
	}
	sent := map[string]map[string]bool{} // waiter → "owner\x00node" of the items it got
	var again []heldEvent                // for sessions the answer says nothing about
	for {
		held, waiters, finished := m.caps.next(id, cache, done)
		for _, h := range held {
			s := m.session(h.to)
			if s == nil {
				continue
			}
			if cur, ok := capsOf(s.State().Presence()); !ok || cur != ref || !decides(h.to) {
				again = append(again, h)
				continue
			}
			if avail, _ := s.State().Available(); !avail || !features[h.node+"+notify"] {
				continue
			}
			m.host.Deliver(ctx, h.msg)
			if carriesItem(h.msg) {
				w := h.to.String()
				if sent[w] == nil {
					sent[w] = map[string]bool{}
				}
				sent[w][h.msg.Attr("from")+"\x00"+h.node] = true
			}
		}
		if finished {
			for _, w := range waiters {
				if s := m.session(w); s != nil && features != nil && decides(w) {
					m.sendLastItems(ctx, s, sent[w.String()])
				}
			}
			break
		}
	}
	// These wait for the session's own answer, or are decided on its new
	// caps if its presence changed meanwhile.
	for _, h := range again {
		if s := m.session(h.to); s != nil {
			m.notify(ctx, s, h.node, h.msg)
		}
	}
	return true
}

// carriesItem reports whether an event message publishes an item.
func carriesItem(msg *xmlstream.Element) bool {
	ev := msg.Child(NSEvent, "event")
	if ev == nil {
		return false
	}
	items := ev.Child(NSEvent, "items")
	return items != nil && items.Child(NSEvent, "item") != nil
}

// session returns the session bound to full, nil when there is none.
func (m *Module) session(full jid.JID) session.Session {
	for _, s := range m.host.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

// event wraps an event payload in a headline message: headlines are not
// stored offline nor archived, which suits notifications.
func event(from jid.JID, to jid.JID, payload *xmlstream.Element) *xmlstream.Element {
	msg := xmlstream.New("jabber:client", "message", "from", from.String(), "to", to.String(), "type", "headline")
	msg.AddChild(xmlstream.New(NSEvent, "event").AddChild(payload))
	return msg
}

// broadcast sends an event of owner's node to the owner's interested
// resources, to those of every local contact with a presence
// subscription whom the access model lets see the node, and to the
// node's explicit subscribers, once to each session.
func (m *Module) broadcast(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, payload *xmlstream.Element) {
	done := map[string]bool{}
	send := func(s session.Session) {
		if m.notify(ctx, s, node, event(owner, s.JID(), payload.Copy())) {
			done[s.JID().String()] = true
		}
	}
	defer func() { m.notifySubscribers(ctx, owner, node, cfg, payload, done) }()
	for _, s := range m.host.Sessions(owner) {
		send(s)
	}
	if cfg.AccessModel == AccessWhitelist {
		return
	}
	contacts, err := m.host.Roster().Contacts(ctx, owner)
	if err != nil {
		m.host.Logger().Warn("pep: reading the roster for notifications failed", "err", err)
		return
	}
	for _, contact := range contacts {
		c := contact.JID
		if !pubsub.Allows(cfg.Config, contact) || !m.host.IsLocal(c.Domain()) {
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
	m.sendLastItems(ctx, s, nil)
}

// sendLastItems sends s the last items it may see and wants, except
// those of the nodes in skip ("owner\x00node"): s got a live
// notification of an item there since its presence, which is the last
// one or newer.
func (m *Module) sendLastItems(ctx context.Context, s session.Session, skip map[string]bool) {
	ref, ok := capsOf(s.State().Presence())
	if !ok {
		return
	}
	if !m.knows(s, ref) {
		// Ask now, not at the first publish, so that live notifications
		// find the answer there; the answer brings the last items.
		m.query(ctx, s, ref)
		return
	}
	user := s.JID().Bare()
	m.lastItemsOf(ctx, user, s, true, skip)
	contacts, err := m.host.Roster().Contacts(ctx, user)
	if err != nil {
		m.host.Logger().Warn("pep: reading the roster for last items failed", "err", err)
		return
	}
	for _, contact := range contacts {
		c := contact.JID
		if !contact.SendsPresence || !c.IsBare() || c.Local() == "" || !m.host.IsLocal(c.Domain()) {
			continue
		}
		m.lastItemsOf(ctx, c, s, false, skip)
	}
}

// lastItemsOf sends s the last item of each of owner's nodes that s may
// see and wants.
func (m *Module) lastItemsOf(ctx context.Context, owner jid.JID, s session.Session, own bool, skip map[string]bool) {
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
		if !ok || cfg.SendLast == SendLastNever || m.views[l.Node] != nil || skip[owner.String()+"\x00"+l.Node] {
			continue
		}
		if !own {
			// The owner's roster decides, not the session's: they can
			// disagree while a subscription change is on its way.
			if se, err := m.mayAccess(ctx, owner, s.JID().Bare(), cfg); err != nil || se != nil {
				continue
			}
		}
		if in, _ := m.interest(ctx, s, l.Node); in != wanted {
			continue
		}
		p, err := xmlstream.ParseElement(l.Item.Payload, "")
		if err != nil {
			m.host.Logger().Warn("pep: damaged stored item skipped", "err", err)
			continue
		}
		items := eventItems(l.Node).AddChild(itemElement(l.Item.ID, p))
		msg := event(owner, s.JID(), items)
		msg.AddChild(stanza.Delay(owner.String(), l.Item.Published))
		m.host.Deliver(ctx, msg)
	}
}
