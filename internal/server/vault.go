package server

import (
	"context"
	"log/slog"
	"time"

	"parley/internal/session"
	"parley/internal/vault"
)

// keyGrace is how long a user's key stays held after their last session
// ended. A session waiting for stream-management resumption is still
// bound (it ends when resume_timeout passes), so this only covers a
// client that reconnects without resuming, and a login that never binds.
const keyGrace = 30 * time.Second

// newVault makes the server's vault: blind indexes under a server key,
// and each user's key held while they have a bound session, plus keyGrace.
func newVault(h *host, log *slog.Logger) *vault.Vault {
	v := vault.New(h.store.Keys(), h.Key("blind index"), vault.Options{Grace: keyGrace, Logger: log})
	h.OnSessionBound(func(_ context.Context, s session.Session) { v.Acquire(s.JID().Bare().String()) })
	h.OnSessionEnded(func(_ context.Context, s session.Session) { v.Release(s.JID().Bare().String()) })
	return v
}
