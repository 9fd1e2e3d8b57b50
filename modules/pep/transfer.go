package pep

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// NodeNames lists the nodes owner has stored, sorted: what `parley
// export` walks with ItemsOf. Views (nodes another module serves from
// its own data) are not among them.
func (m *Module) NodeNames(ctx context.Context, owner jid.JID) ([]string, error) {
	o := owner.Bare().String()
	nodes, err := m.ps.Nodes(ctx, o)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pep: listing the nodes of %s: %w", o, err)
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if m.views[n.Name] == nil {
			out = append(out, n.Name)
		}
	}
	return out, nil
}

// IsView says whether node is served by another module from its own
// data (the legacy bookmarks node is private XML storage): PublishItem
// refuses it, and an import gives its data to that module instead.
func (m *Module) IsView(node string) bool { return m.views[node] != nil }

// ConfigFormOf returns the configuration of owner's node as a submitted
// node configuration form, as XEP-0227 files carry it; nil when there is
// no such node. For `parley export`.
func (m *Module) ConfigFormOf(ctx context.Context, owner jid.JID, node string) (*xmlstream.Element, error) {
	cfg, exists, err := m.nodeConfigOf(ctx, owner.Bare().String(), node)
	if err != nil || !exists {
		return nil, err
	}
	x := cfg.Form(nil, models)
	x.SetAttr("type", dataform.TypeSubmit)
	return x, nil
}

// CheckNodeConfig says whether a node configuration form (nil for the
// defaults) would be accepted for node, without writing anything.
func CheckNodeConfig(node string, x *xmlstream.Element) error {
	if _, err := configFor(node, x); err != nil {
		return fmt.Errorf("pep: configuration of %q: %w", node, err)
	}
	return nil
}

// RestoreNode gives owner's node the options of the configuration form x
// (nil keeps the defaults of its name), creating the node when needed;
// options the module does not keep are ignored. It reports whether
// anything changed, so importing twice changes nothing. For `parley
// import`, before the node's items, so they are never more visible than
// on the old server.
func (m *Module) RestoreNode(ctx context.Context, owner jid.JID, node string, x *xmlstream.Element) (bool, error) {
	if m.views[node] != nil {
		return false, nil
	}
	o := owner.Bare().String()
	cfg, exists, err := m.nodeConfigOf(ctx, o, node)
	if err != nil {
		return false, err
	}
	if !exists {
		if _, err := m.newNode(ctx, o, node, x); err != nil {
			return false, err
		}
		return true, nil
	}
	if x == nil {
		return false, nil
	}
	f, err := dataform.Parse(x)
	if err != nil {
		return false, err
	}
	next := cfg
	if se := next.Apply(f, MaxItems, models); se != nil {
		return false, se
	}
	if reflect.DeepEqual(next, cfg) {
		return false, nil
	}
	if err := m.ps.Configure(ctx, o, node, next.Encode(), next.Limit(MaxItems)); err != nil {
		return false, fmt.Errorf("pep: configuring %q of %s: %w", node, o, err)
	}
	return true, nil
}
