package server

import (
	"context"
	"log/slog"
	"time"

	"parley/internal/config"
	"parley/internal/session"
	"parley/internal/vault"
)

// minGrace keeps a key held across a quick reconnect even when stream
// resumption is off.
const minGrace = 30 * time.Second

// newVault makes the server's vault: blind indexes under a server key,
// and each user's key held while they have a session plus the
// stream-management resumption window.
func newVault(cfg config.Config, h *host, log *slog.Logger) *vault.Vault {
	v := vault.New(h.store.Keys(), h.Key("blind index"), vault.Options{
		Grace:  max(cfg.Limits.ResumeTimeout.Duration, minGrace),
		Logger: log,
	})
	h.OnSessionBound(func(_ context.Context, s session.Session) { v.Acquire(s.JID().Bare().String()) })
	h.OnSessionEnded(func(_ context.Context, s session.Session) { v.Release(s.JID().Bare().String()) })
	return v
}
