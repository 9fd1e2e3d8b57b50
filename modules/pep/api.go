package pep

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// This file is what other modules see of PEP: conversions between PEP
// and older storage (XEP-0398 avatars, XEP-0402 bookmarks compatibility)
// read and write an account's nodes through it, and learn of what the
// account's clients change.

// Change is a change an account's client made to one of its nodes.
type Change struct {
	Owner  jid.JID
	Node   string
	ItemID string
	// Payload is the published payload; nil for a retraction or a node
	// deletion.
	Payload     *xmlstream.Element
	Retracted   bool
	NodeDeleted bool
}

// ChangeHook runs after a change is stored and notified.
type ChangeHook func(ctx context.Context, c Change)

// OnChange runs h after each change a client makes to a node of that
// name. Call it while the server starts (from a module's Start), not
// later. Changes made through PublishItem and RetractItem do not run
// hooks: a conversion must never trigger the conversion back.
func (m *Module) OnChange(node string, h ChangeHook) {
	m.hooks[node] = append(m.hooks[node], h)
}

func (m *Module) changed(ctx context.Context, c Change) {
	for _, h := range m.hooks[c.Node] {
		h(ctx, c)
	}
}

// Item is a stored item.
type Item struct {
	ID      string
	Payload *xmlstream.Element
}

// ItemsOf returns the items of owner's node, oldest first, or only those
// with the given ids; exists is false when there is no such node.
func (m *Module) ItemsOf(ctx context.Context, owner jid.JID, node string, ids ...string) (items []Item, exists bool, err error) {
	stored, err := m.ps.Items(ctx, owner.String(), node, storage.PubSubQuery{IDs: ids})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pep: reading items of %q of %s: %w", node, owner, err)
	}
	items = make([]Item, 0, len(stored))
	for _, it := range stored {
		p, err := xmlstream.ParseElement(it.Payload, "")
		if err != nil {
			return nil, true, fmt.Errorf("pep: damaged item %q in %q of %s: %w", it.ID, node, owner, err)
		}
		items = append(items, Item{ID: it.ID, Payload: p})
	}
	return items, true, nil
}

// PublishItem publishes payload as item id of owner's node on the
// owner's behalf, creating the node with the defaults of its name when
// needed, and notifies as a client's publish would. The error is a
// *stanza.Error when the item cannot be kept (too large, too many nodes).
func (m *Module) PublishItem(ctx context.Context, owner jid.JID, node, id string, payload *xmlstream.Element) error {
	if m.views[node] != nil {
		return fmt.Errorf("pep: %q is a view; its module keeps the data", node)
	}
	_, err := m.store(ctx, owner.Bare(), owner.Bare(), node, id, payload, nil)
	return err
}

// RetractItem removes item id from owner's node and notifies if the node
// says so. A missing node or item is not an error.
func (m *Module) RetractItem(ctx context.Context, owner jid.JID, node, id string) error {
	o := owner.Bare().String()
	if m.views[node] != nil {
		// What PEP kept under a view's name before the view existed:
		// no client sees it, so its removal is not notified.
		if err := m.ps.Retract(ctx, o, node, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("pep: retracting from %q of %s: %w", node, o, err)
		}
		return nil
	}
	cfg, exists, err := m.nodeConfigOf(ctx, o, node)
	if err != nil || !exists {
		return err
	}
	if err := m.ps.Retract(ctx, o, node, id); errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("pep: retracting from %q of %s: %w", node, o, err)
	}
	if cfg.NotifyRetract {
		ev := eventItems(node)
		ev.AddChild(xmlstream.New(NSEvent, "retract", "id", id))
		m.broadcast(ctx, owner.Bare(), node, cfg, ev)
	}
	return nil
}
