package offline

import (
	"context"
	"errors"
	"time"

	"parley/internal/jid"
	"parley/internal/vault"
)

// resealBatch bounds what one login reseals; more than a user's limit of
// waiting messages is never there, but the limit may be off (0 = none
// stored) or lowered after they were stored.
const resealBatch = 1000

// reseal runs after owner's key became held: messages that wait sealed to
// the mail-drop or under the server's key are sealed again under the data
// key, so the mail-drop private key is the only way back to none of them,
// and the server's key none at all. Most are delivered at once anyway;
// this covers those that wait on (a client that sends no presence, XEP-0013
// retrieval, an archive-only client).
func (m *Module) reseal(ctx context.Context, owner string) {
	o, err := jid.Parse(owner)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msgs, err := m.store.List(ctx, owner)
	if err != nil {
		m.host.Logger().Warn("offline: listing messages to reseal", "err", err)
		return
	}
	done := 0
	for _, msg := range msgs {
		if done >= resealBatch {
			return
		}
		if vault.IsVault(msg.Data) && !vault.IsMailDrop(msg.Data) {
			continue // under the data key already
		}
		plain, err := m.open(ctx, o, msg)
		if err != nil {
			continue // withheld at delivery, and reported there
		}
		blob, err := m.vault.Seal(ctx, owner, plain, additionalData(o, msg.Stored))
		clear(plain)
		if err != nil || vault.IsMailDrop(blob) {
			return // locked again meanwhile: the next login goes on
		}
		if err := m.store.Replace(ctx, owner, msg.ID, blob); err != nil {
			if !errors.Is(err, context.Canceled) {
				m.host.Logger().Warn("offline: resealing a message", "err", err)
			}
			return
		}
		done++
	}
}
