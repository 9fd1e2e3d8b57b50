package blocking

import (
	"context"
	"fmt"
	"slices"

	"parley/internal/jid"
)

// Blocked returns the JIDs owner blocks, sorted: what `parley export`
// writes. A sealed list needs its owner's key (vault.ErrLocked).
func (m *Module) Blocked(ctx context.Context, owner jid.JID) ([]string, error) {
	return m.keys(ctx, owner.Bare())
}

// Restore adds jids to owner's blocklist as a block request would store
// them, for `parley import`; JIDs already blocked are left alone, so
// importing twice changes nothing. It reports how many were added.
func (m *Module) Restore(ctx context.Context, owner jid.JID, jids []jid.JID) (int, error) {
	o := owner.Bare()
	m.writes.Lock()
	defer m.writes.Unlock()
	// By index: the list is sealed and its owner is not logged in.
	current, err := m.indexes(ctx, o)
	if err != nil {
		return 0, err
	}
	var add []string
	for _, j := range jids {
		if k := j.String(); !current.has(k) && !slices.Contains(add, k) {
			add = append(add, k)
		}
	}
	if n := len(current.set) + len(add); n > MaxItems {
		return 0, fmt.Errorf("blocking: %s would block %d JIDs, more than %d", o, n, MaxItems)
	}
	defer m.cache.invalidate(o)
	for _, k := range add {
		if err := m.list.Put(ctx, o.String(), k, nil); err != nil {
			return 0, fmt.Errorf("blocking: blocking %s for %s: %w", k, o, err)
		}
	}
	return len(add), nil
}
