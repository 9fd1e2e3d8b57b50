package bookmarks

import (
	"context"
	"fmt"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/pep"
	"parley/modules/private"
)

// legacyID is the one item of the legacy PEP node (XEP-0048 §3.3 via
// XEP-0223): the whole list.
const legacyID = "current"

// legacyNode serves the PEP node 'storage:bookmarks' as a view of the
// XEP-0402 items and of what private storage keeps of the list, so that
// a client using it, one using private storage and one using XEP-0402
// all see and change the same bookmarks.
type legacyNode struct{ m *Module }

// Items makes the node's item: the list a private storage client reads.
func (v legacyNode) Items(ctx context.Context, owner jid.JID) ([]pep.Item, bool, error) {
	stored, err := v.m.private.Stored(ctx, owner, NSLegacy)
	if err != nil {
		return nil, false, err
	}
	st, err := v.m.legacyList(ctx, owner, stored)
	if err != nil || st == nil {
		return nil, false, err
	}
	return []pep.Item{{ID: legacyID, Payload: st}}, true, nil
}

// Publish takes a whole list, as a private storage set would: the
// XEP-0402 items follow it room by room, and private storage keeps the
// rest (URLs). Everything is checked before anything changes.
func (v legacyNode) Publish(ctx context.Context, owner jid.JID, _ string, payload *xmlstream.Element) error {
	if payload.Name.Space != NSLegacy || payload.Name.Local != "storage" {
		return stanza.BadRequest(fmt.Sprintf("the %s node holds a <storage xmlns='%s'/>, not <%s xmlns='%s'/>",
			NSLegacy, NSLegacy, payload.Name.Local, payload.Name.Space))
	}
	l, err := parseList(payload)
	if err != nil {
		return err
	}
	// Private storage's bound, checked now rather than after the items
	// changed.
	if n := len(xmlstream.New(private.NS, "query").AddChild(l.rest).Append(nil, "")); n > private.MaxBytes {
		return &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable",
			Text: fmt.Sprintf("the list without its rooms is %d bytes; at most %d are kept", n, private.MaxBytes)}
	}
	_, had, err := v.m.apply(ctx, owner, l)
	if err != nil {
		return err
	}
	return v.m.private.Keep(ctx, owner, NSLegacy, l.keep(had))
}

// legacyList builds the legacy <storage/> from the XEP-0402 items and
// what private storage keeps (stored, a private query or nil); nil when
// the account has neither.
func (m *Module) legacyList(ctx context.Context, owner jid.JID, stored *xmlstream.Element) (*xmlstream.Element, error) {
	q, err := m.Get(ctx, owner, stored)
	if err != nil || q == nil {
		return nil, err
	}
	return q.Child(NSLegacy, "storage"), nil
}

// notifyLegacy tells the owner's resources that want the legacy PEP node
// about the list after a change made another way (XEP-0411 §3); stored
// gives what private storage keeps, read only if a resource wants it.
func (m *Module) notifyLegacy(ctx context.Context, owner jid.JID, stored func(context.Context) (*xmlstream.Element, error)) {
	m.pep.NotifyView(ctx, owner, NSLegacy, func(ctx context.Context) ([]pep.Item, error) {
		s, err := stored(ctx)
		if err != nil {
			return nil, err
		}
		st, err := m.legacyList(ctx, owner, s)
		if err != nil {
			return nil, err
		}
		if st == nil {
			st = xmlstream.New(NSLegacy, "storage")
		}
		return []pep.Item{{ID: legacyID, Payload: st}}, nil
	})
}
