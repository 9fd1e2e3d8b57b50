// Package bookmarks keeps chat room bookmarks the same whichever way a
// client stores them: as XEP-0402 items of the PEP node
// 'urn:xmpp:bookmarks:1', or as a XEP-0048 list in private XML storage
// (XEP-0049), as XEP-0402 §5.3 ("compat") describes.
//
// The PEP node is the one source of truth. A legacy client's list is
// turned into items (published, changed or retracted one by one, so that
// XEP-0402 clients get notified), and its reading is made from the
// items; private storage only keeps the parts of a list that XEP-0402
// has no place for, such as <url/> bookmarks.
package bookmarks

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/pep"
	"parley/modules/private"
)

// FeatureCompat is advertised on accounts (XEP-0402 §5.3).
const FeatureCompat = NS + "#compat"

// Module is the compatibility layer.
type Module struct {
	host    module.Host
	pep     *pep.Module
	private *private.Module
}

// New returns the layer working on the pep and private modules found in
// mods; Start fails when either is missing.
func New(mods []module.Module) *Module {
	m := &Module{}
	for _, mod := range mods {
		switch mod := mod.(type) {
		case *pep.Module:
			m.pep = mod
		case *private.Module:
			m.private = mod
		}
	}
	return m
}

func (*Module) Name() string { return "bookmarks" }

func (m *Module) Start(h module.Host) error {
	if m.pep == nil || m.private == nil {
		return errors.New("bookmarks: needs the pep and private modules")
	}
	m.host = h
	m.private.Handle(NSLegacy, m)
	h.OnSessionBound(m.migrate)
	h.AddFeature(module.Account, FeatureCompat)
	return nil
}

// migrate turns a legacy list stored before this layer existed into
// XEP-0402 items when the account logs in, so that XEP-0402 clients see
// it from the start (XEP-0411 §3 asks for the copy before the login).
// Accounts that have the node already cost one read.
func (m *Module) migrate(ctx context.Context, s session.Session) {
	owner := s.JID().Bare()
	if _, exists, err := m.pep.ItemsOf(ctx, owner, NS); err != nil || exists {
		if err != nil {
			m.host.Logger().Warn("bookmarks: reading the bookmarks node failed", "user", owner.String(), "err", err)
		}
		return
	}
	stored, err := m.private.Stored(ctx, owner, NSLegacy)
	if err != nil || stored == nil || !hasConference(stored) {
		if err != nil {
			m.host.Logger().Warn("bookmarks: reading legacy bookmarks failed", "user", owner.String(), "err", err)
		}
		return
	}
	keep, err := m.Set(ctx, owner, stored)
	if err == nil {
		err = m.private.Keep(ctx, owner, NSLegacy, keep)
	}
	if err != nil {
		m.host.Logger().Warn("bookmarks: migrating legacy bookmarks failed; they stay where they are", "user", owner.String(), "err", err)
	}
}

// hasConference reports whether a stored private query holds a legacy
// list with at least one conference.
func hasConference(q *xmlstream.Element) bool {
	for st := range q.Elements() {
		if st.Name.Space == NSLegacy && st.Name.Local == "storage" && st.Child(NSLegacy, "conference") != nil {
			return true
		}
	}
	return false
}

// Get builds what a legacy client reads: the kept parts of its list and
// a conference for each XEP-0402 item. Until the account has a bookmarks
// node, the stored list is all there is and comes back as it was.
func (m *Module) Get(ctx context.Context, owner jid.JID, stored *xmlstream.Element) (*xmlstream.Element, error) {
	items, exists, err := m.pep.ItemsOf(ctx, owner, NS)
	if err != nil {
		return nil, err
	}
	if !exists {
		return stored, nil
	}
	var storage *xmlstream.Element
	if stored != nil {
		if s := stored.Child(NSLegacy, "storage"); s != nil {
			storage = withoutConferences(s)
		}
	}
	if storage == nil {
		storage = xmlstream.New(NSLegacy, "storage")
	}
	for _, it := range items {
		if c, ok := toLegacy(it.ID, it.Payload); ok {
			storage.AddChild(c)
		}
	}
	return xmlstream.New(private.NS, "query").AddChild(storage), nil
}

// withoutConferences copies a legacy <storage/> without its conferences.
func withoutConferences(s *xmlstream.Element) *xmlstream.Element {
	out := &xmlstream.Element{Name: s.Name, Attrs: s.Attrs}
	for _, n := range s.Children {
		if n.Elem != nil && n.Elem.Name.Space == NSLegacy && n.Elem.Name.Local == "conference" {
			continue
		}
		out.Children = append(out.Children, n)
	}
	return out
}

// Set takes a legacy client's whole list: every conference is checked
// before anything changes, then the XEP-0402 items are brought in line
// with it. What remains of the list (URLs and the like) is kept.
func (m *Module) Set(ctx context.Context, owner jid.JID, q *xmlstream.Element) (*xmlstream.Element, error) {
	var storage *xmlstream.Element
	for c := range q.Elements() {
		if c.Name.Local != "storage" {
			return nil, stanza.BadRequest(fmt.Sprintf("<%s xmlns='%s'/> is not a bookmark list", c.Name.Local, NSLegacy))
		}
		if storage != nil {
			return nil, stanza.BadRequest("one bookmark <storage/> at a time")
		}
		storage = c
	}
	var want []legacyConference
	index := map[string]int{}
	for c := range storage.Elements() {
		if c.Name.Space != NSLegacy || c.Name.Local != "conference" {
			continue
		}
		lc, err := fromLegacy(c)
		if err != nil {
			return nil, err
		}
		if i, dup := index[lc.id]; dup {
			want[i] = lc // the last one of a room wins, as it would in a client
			continue
		}
		index[lc.id] = len(want)
		want = append(want, lc)
	}
	if len(want) > MaxBookmarks {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable",
			Text: fmt.Sprintf("at most %d bookmarks are kept", MaxBookmarks)}
	}
	have, _, err := m.pep.ItemsOf(ctx, owner, NS)
	if err != nil {
		return nil, err
	}
	current := make(map[string]string, len(have))
	for _, it := range have {
		current[it.ID] = it.Payload.String()
	}
	for _, lc := range want {
		if s, ok := current[lc.id]; ok && s == lc.payload.String() {
			continue // unchanged: no needless notification
		}
		if err := m.pep.PublishItem(ctx, owner, NS, lc.id, lc.payload); err != nil {
			return nil, err
		}
	}
	for id := range current {
		if _, kept := index[id]; !kept {
			if err := m.pep.RetractItem(ctx, owner, NS, id); err != nil {
				return nil, err
			}
		}
	}
	rest := withoutConferences(storage)
	if rest.FirstElement() == nil {
		if len(want) == 0 && len(have) == 0 {
			// An empty list on an account without bookmarks: keep the
			// legacy answer as the client left it.
			return xmlstream.New(private.NS, "query").AddChild(rest), nil
		}
		return nil, nil
	}
	return xmlstream.New(private.NS, "query").AddChild(rest), nil
}
