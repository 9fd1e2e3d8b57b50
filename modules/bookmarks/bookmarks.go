// Package bookmarks keeps chat room bookmarks the same whichever way a
// client stores them: as XEP-0402 items of the PEP node
// 'urn:xmpp:bookmarks:1', or as a XEP-0048 list in private XML storage
// (XEP-0049), as XEP-0402 §5.3 ("compat") describes.
//
// The PEP node is the one source of truth. A legacy client's list is
// turned into items (published, changed or retracted one by one, so that
// XEP-0402 clients get notified), and its reading is made from the
// items; private storage only keeps the parts of a list that XEP-0402
// has no place for, such as <url/> bookmarks. The legacy PEP node
// 'storage:bookmarks' (XEP-0048 over PEP, XEP-0411) is a third view of
// the same list: PEP serves it through this package (legacy.go).
package bookmarks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/recent"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/pep"
	"parley/modules/private"
)

// Features advertised on accounts: XEP-0402 §5.3 compatibility with
// private storage (#compat) and with the legacy PEP node (#compat-pep),
// and XEP-0411's conversion between those two, which follows from both.
const (
	FeatureCompat     = NS + "#compat"
	FeatureCompatPEP  = NS + "#compat-pep"
	FeatureConversion = "urn:xmpp:bookmarks-conversion:0"
)

// Module is the compatibility layer.
type Module struct {
	host    module.Host
	pep     *pep.Module
	private *private.Module
	// checked are the accounts migrate looked at since start: legacy
	// lists arrive afterwards only through this layer, which converts
	// them, so one look per account and process is enough (it cost up to
	// three reads at every login).
	checked *recent.Set
}

// maxChecked bounds the accounts remembered as checked (recent.Set).
const maxChecked = 100_000

// New returns the layer working on the pep and private modules found in
// mods; Start fails when either is missing.
func New(mods []module.Module) *Module {
	m := &Module{checked: recent.New(maxChecked)}
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
	m.pep.HandleView(NSLegacy, legacyNode{m})
	m.pep.OnChange(NS, func(ctx context.Context, c pep.Change) {
		m.notifyLegacy(ctx, c.Owner, func(ctx context.Context) (*xmlstream.Element, error) {
			return m.private.Stored(ctx, c.Owner, NSLegacy)
		})
	})
	h.OnSessionBound(m.migrate)
	for _, f := range []string{FeatureCompat, FeatureCompatPEP, FeatureConversion} {
		h.AddFeature(module.Account, f)
	}
	return nil
}

// migrate turns a legacy list stored before this layer existed, in
// private storage or in the legacy PEP node, into XEP-0402 items when
// the account logs in, so that XEP-0402 clients see it from the start
// (XEP-0411 §4 asks for the copy before the login). Accounts that have
// the node already cost one read.
func (m *Module) migrate(ctx context.Context, s session.Session) {
	owner := s.JID().Bare()
	if m.checked.Within(owner.String(), time.Time{}, 0) {
		return
	}
	if _, exists, err := m.pep.ItemsOf(ctx, owner, NS); err != nil || exists {
		if err != nil {
			m.host.Logger().Warn("bookmarks: reading the bookmarks node failed", "user", owner.String(), "err", err)
		} else {
			m.checked.Add(owner.String(), time.Time{})
		}
		return
	}
	stored, err := m.private.Stored(ctx, owner, NSLegacy)
	if err != nil {
		m.host.Logger().Warn("bookmarks: reading legacy bookmarks failed", "user", owner.String(), "err", err)
		return
	}
	// What PEP itself kept under the legacy node's name, now hidden by
	// the view: its rooms join the private list's (winning for a room
	// in both, as the later copy would).
	old, _, err := m.pep.ItemsOf(ctx, owner, NSLegacy)
	if err != nil {
		m.host.Logger().Warn("bookmarks: reading the legacy PEP node failed", "user", owner.String(), "err", err)
		return
	}
	if len(old) > 0 {
		if st := old[len(old)-1].Payload; st.Name.Space == NSLegacy && st.Name.Local == "storage" {
			stored = merged(stored, st)
		}
	}
	if stored == nil || !hasConference(stored) {
		m.checked.Add(owner.String(), time.Time{})
		return
	}
	keep, err := m.Set(ctx, owner, stored)
	if err == nil {
		err = m.private.Keep(ctx, owner, NSLegacy, keep)
	}
	// The old PEP copy goes, or it would come back once the XEP-0402
	// node were deleted.
	for _, it := range old {
		if err == nil {
			err = m.pep.RetractItem(ctx, owner, NSLegacy, it.ID)
		}
	}
	if err != nil {
		m.host.Logger().Warn("bookmarks: migrating legacy bookmarks failed; they stay where they are", "user", owner.String(), "err", err)
		return
	}
	m.checked.Add(owner.String(), time.Time{})
}

// merged adds the conferences of a legacy PEP <storage/> to a private
// query (nil for none) holding one.
func merged(q, pepList *xmlstream.Element) *xmlstream.Element {
	out := xmlstream.New(NSLegacy, "storage")
	if q != nil {
		if st := q.Child(NSLegacy, "storage"); st != nil {
			out.Children = append(out.Children, st.Children...)
		}
	}
	for c := range pepList.Elements() {
		if c.Name.Space == NSLegacy && c.Name.Local == "conference" {
			out.AddChild(c)
		}
	}
	return xmlstream.New(private.NS, "query").AddChild(out)
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

// Set takes a legacy client's whole list from private storage: every
// conference is checked before anything changes, then the XEP-0402 items
// are brought in line with it. What remains of the list (URLs and the
// like) is kept.
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
	if storage == nil {
		return nil, stanza.BadRequest("no bookmark <storage/>")
	}
	l, err := parseList(storage)
	if err != nil {
		return nil, err
	}
	changed, had, err := m.apply(ctx, owner, l)
	if err != nil {
		return nil, err
	}
	keep := l.keep(had)
	if changed {
		// XEP-0411 §3: the legacy PEP node's subscribers hear of it. The
		// kept rest is not stored yet: the list is made from it directly.
		m.notifyLegacy(ctx, owner, func(context.Context) (*xmlstream.Element, error) { return keep, nil })
	}
	return keep, nil
}

// list is a legacy list checked and turned into XEP-0402 items.
type list struct {
	want  []legacyConference // one per room, in the list's order
	rooms map[string]bool
	rest  *xmlstream.Element // the <storage/> without its conferences
}

// parseList checks every conference of a legacy <storage/>.
func parseList(storage *xmlstream.Element) (list, error) {
	l := list{rooms: map[string]bool{}}
	index := map[string]int{}
	for c := range storage.Elements() {
		if c.Name.Space != NSLegacy || c.Name.Local != "conference" {
			continue
		}
		lc, err := fromLegacy(c)
		if err != nil {
			return list{}, err
		}
		if i, dup := index[lc.id]; dup {
			l.want[i] = lc // the last one of a room wins, as it would in a client
			continue
		}
		index[lc.id] = len(l.want)
		l.want = append(l.want, lc)
		l.rooms[lc.id] = true
	}
	if len(l.want) > MaxBookmarks {
		return list{}, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable",
			Text: fmt.Sprintf("at most %d bookmarks are kept", MaxBookmarks)}
	}
	l.rest = withoutConferences(storage)
	return l, nil
}

// keep is what private storage keeps of the list: its rest, or nothing
// when the rest is empty, except that an empty list on an account that
// had no bookmarks is kept as the client left it.
func (l list) keep(had int) *xmlstream.Element {
	if l.rest.FirstElement() == nil && (len(l.want) > 0 || had > 0) {
		return nil
	}
	return xmlstream.New(private.NS, "query").AddChild(l.rest)
}

// apply brings the XEP-0402 items in line with l: changed rooms are
// published, gone ones retracted, unchanged ones left alone (no needless
// notification). had is how many items there were.
func (m *Module) apply(ctx context.Context, owner jid.JID, l list) (changed bool, had int, err error) {
	have, _, err := m.pep.ItemsOf(ctx, owner, NS)
	if err != nil {
		return false, 0, err
	}
	current := make(map[string]string, len(have))
	for _, it := range have {
		current[it.ID] = it.Payload.String()
	}
	for _, lc := range l.want {
		if s, ok := current[lc.id]; ok && s == lc.payload.String() {
			continue
		}
		if err := m.pep.PublishItem(ctx, owner, NS, lc.id, lc.payload); err != nil {
			return changed, len(have), err
		}
		changed = true
	}
	for _, it := range have {
		if !l.rooms[it.ID] {
			if err := m.pep.RetractItem(ctx, owner, NS, it.ID); err != nil {
				return changed, len(have), err
			}
			changed = true
		}
	}
	return changed, len(have), nil
}
