package private

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Namespaces lists the namespaces owner keeps data under, sorted: what
// `parley export` walks with Stored. Sealed data needs the owner's key
// (vault.ErrLocked).
func (m *Module) Namespaces(ctx context.Context, owner jid.JID) ([]string, error) {
	o := owner.Bare().String()
	entries, err := m.kv.List(ctx, o)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("private: listing the data of %s: %w", o, err)
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Key
	}
	return out, nil
}

// Restore stores q (a query holding the elements of namespace ns) as a
// client's set would: a namespace another module took over (bookmarks)
// goes through that module first. For `parley import`.
func (m *Module) Restore(ctx context.Context, owner jid.JID, ns string, q *xmlstream.Element) error {
	if data := q.Append(nil, ""); len(data) > MaxBytes {
		return notAcceptable(fmt.Sprintf("the data for %s is %d bytes; at most %d are kept", ns, len(data), MaxBytes))
	}
	if slot := m.slots[ns]; slot != nil {
		keep, err := slot.Set(ctx, owner.Bare(), q)
		if err != nil {
			return err
		}
		q = keep
	}
	return m.Keep(ctx, owner, ns, q)
}
