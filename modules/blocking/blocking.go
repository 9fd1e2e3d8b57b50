// Package blocking implements Blocking Command (XEP-0191): a user keeps a
// list of blocked JIDs, and the server stops every stanza between the user
// and them in both directions, across sessions, until unblocked.
//
// Enforcement is a router filter, so it covers whatever the router
// carries. Blocklists are cached in memory, bounded, so that the filter
// does not read the database for each stanza.
package blocking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// MaxItems bounds a blocklist; it keeps the filter's cache and the
// blocklist result to a sensible size.
const MaxItems = 1000

// kvNS holds one key per blocked JID (its canonical string) with an empty
// value.
const kvNS = "urn:xmpp:blocking"

// requested marks, in a session's state, a session that retrieved the
// blocklist and so gets block and unblock pushes (XEP-0191 §3.3).
type requested struct{}

type Module struct {
	host   module.Host
	kv     storage.KV
	cache  *cache
	pushes atomic.Uint64
	// writes serialises changes to blocklists, so two resources of one
	// user cannot together pass MaxItems.
	writes sync.Mutex
	// reportTo are the admins spam reports (XEP-0377) go to.
	reportTo func() []string
}

func New() *Module { return &Module{cache: newCache(cacheWeight)} }

func (*Module) Name() string { return "blocking" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.kv = h.Store().KV()
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NS, Local: "blocklist"}, m.get)
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "block"}, m.block)
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "unblock"}, m.unblock)
	h.AddFilter(m.filter)
	// XEP-0191 §3.1: clients discover support on the user's server.
	h.AddFeature(module.Server, NS)
	h.AddFeature(module.Account, NS)
	if m.reportTo != nil && len(m.reportTo()) > 0 {
		h.AddFeature(module.Server, NSReporting)
	}
	return nil
}

// load returns owner's blocklist, from the cache when possible.
func (m *Module) load(ctx context.Context, owner jid.JID) (*blocklist, error) {
	if bl, ok := m.cache.get(owner); ok {
		return bl, nil
	}
	gen := m.cache.generation()
	keys, err := m.keys(ctx, owner)
	if err != nil {
		return nil, err
	}
	bl := newBlocklist(keys)
	m.cache.add(owner, bl, gen)
	return bl, nil
}

// keys reads owner's blocked JIDs from storage, sorted.
func (m *Module) keys(ctx context.Context, owner jid.JID) ([]string, error) {
	entries, err := m.kv.List(ctx, owner.String(), kvNS)
	if errors.Is(err, storage.ErrNotFound) {
		// No such account (yet): it blocks no one. The filter asks for
		// any local address, existing or not.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blocking: reading the blocklist of %s: %w", owner, err)
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys, nil
}

// blockedError is what a user gets for a stanza to someone they blocked
// (XEP-0191 §3.3, with the type of the XEP's example).
func blockedError() *stanza.Error {
	return &stanza.Error{Type: stanza.Cancel, Condition: "not-acceptable",
		Text: "you have blocked this address", Extra: xmlstream.New(NSErrors, "blocked")}
}

// filter enforces blocklists on everything the router carries. Outbound,
// the sender's list is checked against the recipient; inbound, the
// recipient's list against the sender.
func (m *Module) filter(ctx context.Context, from, to jid.JID, el *xmlstream.Element, outbound bool) (bool, *stanza.Error) {
	owner, other := to.Bare(), from
	if outbound {
		owner, other = from.Bare(), to
	}
	bl, err := m.load(ctx, owner)
	if err != nil {
		// Failing closed: a user who blocked someone must not hear from
		// them because the database hiccupped.
		m.host.Logger().Error("blocking: cannot check a stanza", "jid", owner.String(), "err", err)
		if el.Name.Local == "presence" {
			return true, nil
		}
		return true, stanza.InternalServerError()
	}
	if !bl.blocks(other) {
		return false, nil
	}
	switch el.Name.Local {
	case "presence":
		// Inbound, §3.3 forbids any answer; outbound, an error for each
		// broadcast would only flood the user's own client.
		return true, nil
	case "iq":
		if t := el.Attr("type"); t != "get" && t != "set" {
			return true, nil // §3.3: results and errors are dropped
		}
	}
	if outbound {
		return true, blockedError()
	}
	// §3.3: the blocked contact sees the user as if offline.
	return true, stanza.ServiceUnavailable()
}

func own(iq module.IQ) error {
	if !iq.From.Bare().Equal(iq.To) {
		return stanza.Forbidden("only the owner may use a blocklist")
	}
	return nil
}

func (m *Module) get(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	keys, err := m.keys(ctx, iq.To)
	if err != nil {
		return nil, err
	}
	for _, s := range m.host.Sessions(iq.To) {
		if s.JID().Equal(iq.From) {
			s.State().SetValue(requested{}, true)
		}
	}
	bl := xmlstream.New(NS, "blocklist")
	for _, k := range keys {
		bl.AddChild(xmlstream.New(NS, "item", "jid", k))
	}
	return bl, nil
}

// items parses the <item/> children of a block or unblock command into
// canonical JIDs, without duplicates, in request order.
func items(payload *xmlstream.Element) ([]jid.JID, error) {
	var out []jid.JID
	for c := range payload.Elements() {
		if c.Name.Space != NS || c.Name.Local != "item" {
			continue
		}
		raw, ok := c.AttrNS("", "jid")
		if !ok {
			return nil, stanza.BadRequest("an item needs a jid attribute")
		}
		j, err := jid.Parse(raw)
		if err != nil {
			return nil, stanza.JIDMalformed(fmt.Sprintf("%q is not a valid JID", raw))
		}
		if len(j.String()) > storage.MaxKeyBytes {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "the JID is too long to block"}
		}
		if !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (m *Module) block(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	jids, err := items(iq.Payload)
	if err != nil {
		return nil, err
	}
	if len(jids) == 0 {
		return nil, stanza.BadRequest("block at least one JID")
	}
	owner := iq.To
	m.writes.Lock()
	defer m.writes.Unlock()
	keys, err := m.keys(ctx, owner)
	if err != nil {
		return nil, err
	}
	current := newBlocklist(keys)
	n := len(keys)
	for _, j := range jids {
		if !current.has(j.String()) {
			n++
		}
	}
	if n > MaxItems {
		return nil, stanza.NotAllowed(fmt.Sprintf("the blocklist is full (%d JIDs at most)", MaxItems))
	}
	// §3.3: contacts who see the user's presence get unavailable
	// presence. It goes out before the block is stored: afterwards the
	// filter would stop it.
	if err := m.sendPresence(ctx, owner, jids, false); err != nil {
		return nil, err
	}
	for _, j := range jids {
		if err := m.kv.Put(ctx, owner.String(), kvNS, j.String(), []byte{}); err != nil {
			m.cache.invalidate(owner)
			return nil, fmt.Errorf("blocking: blocking %s for %s: %w", j, owner, err)
		}
	}
	m.cache.invalidate(owner)
	m.push(owner, command("block", jids))
	m.report(ctx, owner, iq.Payload)
	return nil, nil
}

func (m *Module) unblock(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	jids, err := items(iq.Payload)
	if err != nil {
		return nil, err
	}
	owner := iq.To
	m.writes.Lock()
	defer m.writes.Unlock()
	all := len(jids) == 0
	if all {
		// §3.5: an empty unblock unblocks everyone.
		keys, err := m.keys(ctx, owner)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if j, err := jid.Parse(k); err == nil {
				jids = append(jids, j)
			}
		}
		err = m.kv.DeleteAll(ctx, owner.String(), kvNS)
		m.cache.invalidate(owner)
		if err != nil {
			return nil, fmt.Errorf("blocking: unblocking all for %s: %w", owner, err)
		}
	} else {
		for _, j := range jids {
			err := m.kv.Delete(ctx, owner.String(), kvNS, j.String())
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				m.cache.invalidate(owner)
				return nil, fmt.Errorf("blocking: unblocking %s for %s: %w", j, owner, err)
			}
		}
		m.cache.invalidate(owner)
	}
	// §3.4: contacts who may see the user's presence get it again.
	if err := m.sendPresence(ctx, owner, jids, true); err != nil {
		m.host.Logger().Error("blocking: sending presence after an unblock failed", "jid", owner.String(), "err", err)
	}
	if all {
		m.push(owner, xmlstream.New(NS, "unblock"))
	} else {
		m.push(owner, command("unblock", jids))
	}
	return nil, nil
}

func command(name string, jids []jid.JID) *xmlstream.Element {
	el := xmlstream.New(NS, name)
	for _, j := range jids {
		el.AddChild(xmlstream.New(NS, "item", "jid", j.String()))
	}
	return el
}

// push sends a block or unblock to every session of owner that retrieved
// the blocklist (§3.3, §3.4, §3.5).
func (m *Module) push(owner jid.JID, payload *xmlstream.Element) {
	for _, s := range m.host.Sessions(owner) {
		if v, _ := s.State().Value(requested{}).(bool); !v {
			continue
		}
		id := "block-push-" + strconv.FormatUint(m.pushes.Add(1), 10)
		iq := xmlstream.New(stanza.NSClient, "iq", "type", "set", "id", id,
			"from", owner.String(), "to", s.JID().String())
		iq.AddChild(payload.Copy())
		s.Deliver(iq)
	}
}

// sendPresence sends, from each available session of owner, unavailable
// presence (available false) or the session's current presence to the
// addresses among jids that may see owner's presence: contacts with a
// subscription from owner, as RFC 6121 defines it.
func (m *Module) sendPresence(ctx context.Context, owner jid.JID, jids []jid.JID, available bool) error {
	var sessions []session.Session
	for _, s := range m.host.Sessions(owner) {
		if avail, _ := s.State().Available(); avail {
			sessions = append(sessions, s)
		}
	}
	if len(sessions) == 0 || len(jids) == 0 {
		return nil
	}
	targets, err := m.presenceTargets(ctx, owner, jids)
	if err != nil {
		return err
	}
	for _, s := range sessions {
		var p *xmlstream.Element
		if available {
			if p = s.State().Presence(); p == nil {
				continue
			}
		} else {
			p = xmlstream.New(stanza.NSClient, "presence", "type", "unavailable")
		}
		for _, t := range targets {
			el := p.Copy()
			el.SetAttr("from", s.JID().String())
			el.SetAttr("to", t.String())
			m.deliverPresence(ctx, s.JID(), t, el)
		}
	}
	return nil
}

// presenceTargets lists, for each JID in jids, the addresses that get
// owner's presence and that the JID covers: the JID itself for an
// account's bare or full JID, the contacts at a blocked domain.
func (m *Module) presenceTargets(ctx context.Context, owner jid.JID, jids []jid.JID) ([]jid.JID, error) {
	roster, err := m.host.Roster().Contacts(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("blocking: %w", err)
	}
	var out []jid.JID
	add := func(j jid.JID) {
		if !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	for _, contact := range roster {
		if !contact.ReceivesPresence {
			continue
		}
		c := contact.JID
		for _, j := range jids {
			switch {
			case j.Resource() != "" || j.Local() != "":
				if j.Bare().Equal(c) {
					add(j)
				}
			case newBlocklist([]string{j.String()}).blocks(c):
				add(c)
			}
		}
	}
	return out, nil
}

// deliverPresence hands presence to a local account's sessions directly
// (the router carries no presence to a bare JID outside the presence
// module) unless a blocklist stands in the way, and anything else to the
// router, whose filter checks the blocklists.
func (m *Module) deliverPresence(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if to.Local() == "" || !m.host.IsLocal(to.Domain()) {
		m.host.Deliver(ctx, el)
		return
	}
	// Both lists, as the filter would: after unblocking a domain the
	// user may still block one of its JIDs.
	for _, c := range []struct{ owner, other jid.JID }{{from.Bare(), to}, {to.Bare(), from}} {
		bl, err := m.load(ctx, c.owner)
		if err != nil {
			m.host.Logger().Error("blocking: cannot check a presence", "jid", c.owner.String(), "err", err)
			return
		}
		if bl.blocks(c.other) {
			return
		}
	}
	for _, s := range m.host.Sessions(to.Bare()) {
		if to.Resource() != "" {
			if s.JID().Equal(to) {
				s.Deliver(el)
			}
			continue
		}
		if avail, _ := s.State().Available(); avail {
			s.Deliver(el)
		}
	}
}
