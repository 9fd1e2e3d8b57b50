package offline

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// Waiting returns owner's stored messages, opened, oldest first: what
// `parley export` writes. A message that fails to open is an error, not
// left out: an export must not lose data silently. Messages sealed for
// the owner open only while their key is held (never in `parley export`,
// which runs apart from the server): they are left out, with a warning
// that counts them.
func (m *Module) Waiting(ctx context.Context, owner jid.JID) ([]*xmlstream.Element, error) {
	o := owner.Bare()
	stored, err := m.store.List(ctx, o.String())
	if err != nil {
		return nil, fmt.Errorf("offline: listing messages of %s: %w", o, err)
	}
	out := make([]*xmlstream.Element, 0, len(stored))
	locked := 0
	defer func() {
		if locked > 0 {
			m.host.Logger().Warn("offline: sealed messages left out: they open only while the user is logged in", "account", o.String(), "count", locked)
		}
	}()
	for _, msg := range stored {
		el, err := m.verified(ctx, o, msg)
		if errors.Is(err, vault.ErrLocked) {
			locked++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("offline: message %d of %s: %w", msg.ID, o, err)
		}
		out = append(out, el)
	}
	return out, nil
}

// Keep stores a message for owner as the module stores one that arrives
// while the owner is away (sealed), for `parley import`; the message keeps
// the delay it carries, none is added. The per-user limit does not apply:
// the messages were accepted by the old server already.
func (m *Module) Keep(ctx context.Context, owner jid.JID, msg *xmlstream.Element) error {
	o := owner.Bare()
	stored := storage.CreatedTime(m.now())
	// Under the server's key, as for an account from before sealing:
	// a second import must see what the first stored to add nothing
	// twice, and `parley import` holds nobody's key. The owner's next
	// login seals them under their own key.
	sealed := m.sealer.Seal(msg.Append(nil, stanza.NSClient), additionalData(o, stored))
	if err := storage.ValidateBlob("offline message", sealed); err != nil {
		return err
	}
	if _, err := m.store.PushAt(ctx, o.String(), stored, sealed, 0); err != nil {
		return fmt.Errorf("offline: storing a message for %s: %w", o, err)
	}
	return nil
}
