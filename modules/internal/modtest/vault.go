package modtest

import (
	"context"
	"time"

	"parley/internal/jid"
	"parley/internal/sasl"
	"parley/internal/storage"
	"parley/internal/vault"
)

// Password is the password Unlock logs accounts in with.
const Password = "modtest password"

// newVault makes the host's vault over its store. The grace is long: a
// test locks an account explicitly (Lock) rather than waiting for it.
func (h *Host) newVault() *vault.Vault {
	return vault.New(h.store.Keys(), h.Key("blind index"), vault.Options{Grace: time.Hour, Logger: h.log})
}

// Unlock logs owner (a bare JID) in as far as the vault is concerned: the
// account gets credentials for Password if it has none and keys if it has
// none, and its keys are held, as after a PLAIN login. It waits for the
// vault's unlock jobs (resealing) to finish. It panics when that fails, a
// mistake in the test itself (an account with another password: use
// Vault().UnlockPassword).
func (h *Host) Unlock(owner string) {
	ctx := context.Background()
	bare := jid.MustParse(owner).Bare().String()
	a, err := h.store.Users().Get(ctx, bare)
	if err != nil {
		panic(err)
	}
	if len(a.Credentials) == 0 {
		for _, hash := range sasl.Hashes {
			c, err := sasl.NewCredentials(hash, Password, 4096)
			if err != nil {
				panic(err)
			}
			a.Credentials = append(a.Credentials, storage.Credential{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
		}
		if err := h.store.Users().SetCredentials(ctx, bare, a.Credentials); err != nil {
			panic(err)
		}
	}
	if err := h.vault.UnlockPassword(ctx, bare, Password, a.Credentials); err != nil {
		panic(err)
	}
	h.vault.Settle()
}

// Lock wipes owner's keys from memory, as when their last session ended
// and the grace passed. An account Unlock gave keys to keeps them in the
// store: what is sealed for it goes to its mail-drop.
func (h *Host) Lock(owner string) {
	h.vault.Lock(jid.MustParse(owner).Bare().String())
}
