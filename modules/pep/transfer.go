package pep

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/storage"
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
