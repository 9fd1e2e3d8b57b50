// Package sealstore seals a user's contact data at rest under that user's
// own key (issue 16): roster items and pending subscription requests
// (Roster), and small per-user maps such as the block list and private
// XML (KV). It sits in front of storage; the modules keep their protocol
// logic and call it instead of the repositories.
//
// Every row is found by a blind index, an HMAC under a server key of the
// owner and the contact (or map key), so the server can answer "is this
// JID in her roster, in her block list?" while the user is away without
// storing who is. Contact JIDs, names, groups, blocked JIDs and values
// are sealed by the vault: under the user's data key while it is held
// (the user is logged in), to the user's mail-drop public key otherwise,
// which the server can write but not read back. Reseal, run when a login
// unlocks the key, moves mail-drop blobs under the data key and seals
// rows stored in clear before sealing began.
//
// What needs the key fails with vault.ErrLocked while the user is away:
// reading the whole roster, names and groups, the block list as a list,
// private XML. What only needs the blind index works always: a contact's
// subscription state, whether a JID is blocked.
package sealstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
)

// Vault is what the layer needs of the key vault (internal/vault).
type Vault interface {
	Seal(ctx context.Context, owner string, plain, ad []byte) ([]byte, error)
	Open(ctx context.Context, owner string, blob, ad []byte) ([]byte, error)
	Blind(purpose, value string) []byte
}

var _ Vault = (*vault.Vault)(nil)

// Locked reports whether err says the data is sealed and the owner's key
// is not held: the caller tells the client or the admin so.
func Locked(err error) bool { return errors.Is(err, vault.ErrLocked) }

// ForClient turns Locked into the error a client gets for its own sealed
// data, which happens when the login could not unlock the key (a SCRAM
// hash the key has no wrap for yet); any other error is returned as is.
func ForClient(err error) error {
	if !Locked(err) {
		return err
	}
	return &stanza.Error{Type: stanza.Wait, Condition: "internal-server-error",
		Text: "your data is sealed under your key, which this login did not unlock; log in once with your password (PLAIN) to unlock it"}
}

// owners serialises the writes of one owner, so that a reseal and a
// change coming in for the same row do not undo each other. A fixed set
// of shards: no state grows with the number of users.
type owners struct {
	seed   maphash.Seed
	shards [64]sync.Mutex
}

func newOwners() *owners { return &owners{seed: maphash.MakeSeed()} }

func (o *owners) lock(owner string) func() {
	m := &o.shards[maphash.String(o.seed, owner)%uint64(len(o.shards))]
	m.Lock()
	return m.Unlock
}

// blindKey joins owner and value so the same contact in two rosters gets
// two unrelated indexes: the table does not show who shares contacts.
func blindKey(owner, value string) string { return owner + "\x00" + value }

type keepClearKey struct{}

// KeepClear marks ctx so that what the layer writes with it is kept as
// before sealing, in clear, and sealed at the owner's next login, like
// rows of an older parley: `parley import` writes a user's data as the
// server they come from kept it, so that a second import compares it
// and an export before the user's first login gives it back. A sealed
// copy of the same row is replaced.
func KeepClear(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepClearKey{}, true)
}

// sealFor seals plain for owner, or says vault.ErrNoKey (keep it in
// clear) when ctx asks for that.
func sealFor(ctx context.Context, v Vault, owner string, plain, ad []byte) ([]byte, error) {
	if keep, _ := ctx.Value(keepClearKey{}).(bool); keep {
		return nil, vault.ErrNoKey
	}
	return v.Seal(ctx, owner, plain, ad)
}

// lost reports whether err says a row was sealed under a key the account
// no longer has (an admin reset its password): it can never be opened.
func lost(err error) bool { return errors.Is(err, seal.ErrWrongKey) }

// reseal opens one sealed blob now that the owner's key is held: a
// mail-drop blob is sealed again under the data key and handed to store,
// a blob under a lost key is deleted with drop, a data-key blob stays.
func reseal(ctx context.Context, v Vault, owner string, blob, ad []byte, store func([]byte) error, drop func() error) error {
	plain, err := v.Open(ctx, owner, blob, ad)
	if lost(err) {
		if err := drop(); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("sealstore: resealing for %s: %w", owner, err)
	}
	defer clear(plain)
	if !vault.IsMailDrop(blob) {
		return nil
	}
	again, err := v.Seal(ctx, owner, plain, ad)
	if err != nil {
		return fmt.Errorf("sealstore: resealing for %s: %w", owner, err)
	}
	if err := store(again); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}
