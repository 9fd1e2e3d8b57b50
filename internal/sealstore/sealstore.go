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
	"hash/maphash"
	"sync"

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
