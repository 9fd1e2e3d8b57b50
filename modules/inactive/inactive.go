// Package inactive deletes accounts nobody logged in to for a long time
// ([registration] expire_inactive), after a warning message from the
// server some time before ([registration] warn_inactive): abandoned
// accounts are spam targets and hold data nobody needs.
package inactive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"parley/internal/admin"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/recent"
	"parley/internal/session"
	"parley/internal/storage"
)

// Options configure the module.
type Options struct {
	Expire time.Duration // no login for this long deletes the account; 0 = never
	Warn   time.Duration // the warning goes out this long before
	// Live, when set, gives Expire and Warn in force at each sweep (a
	// reload may change them); the sweep then runs even while Expire
	// is 0, at the interval of the Expire given at start, else hourly.
	Live func() (expire, warn time.Duration)
	Now  func() time.Time
	// Every is how often accounts are checked; 0 = hourly at most.
	Every time.Duration
}

// The last login and the warning live in the account's key-value space:
// they go with the account, and need no table.
const (
	ns         = "urn:parley:account"
	keyLogin   = "last-login"
	keyWarned  = "inactive-warned"
	timeLayout = time.RFC3339
)

type Module struct {
	opts     Options
	host     module.Host
	recorded *recent.Set // logins recorded lately, by bare JID
}

func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Every <= 0 {
		opts.Every = time.Hour
		if opts.Expire > 0 {
			opts.Every = module.RetentionInterval(opts.Expire)
		}
	}
	return &Module{opts: opts, recorded: recent.New(maxRecorded)}
}

func (*Module) Name() string { return "inactive" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	h.OnSessionBound(m.bound)
	if m.opts.Expire > 0 || m.opts.Live != nil {
		h.Every(m.opts.Every, func(ctx context.Context) {
			if err := m.Sweep(ctx); err != nil {
				h.Logger().Error("inactive: checking accounts failed", "err", err)
			}
		})
	}
	return nil
}

// precision is how stale the recorded login may be: a hundredth of the
// expiry (a day at most, a second at least; a day when nothing expires),
// so that a login costs a database write only once in a while, not every
// time (it was a third of a login burst's database work).
func (m *Module) precision() time.Duration {
	expire := m.opts.Expire
	if m.opts.Live != nil {
		expire, _ = m.opts.Live()
	}
	if expire <= 0 {
		return 24 * time.Hour
	}
	return min(max(expire/100, time.Second), 24*time.Hour)
}

// maxRecorded bounds the logins remembered in memory (see recent.Set).
const maxRecorded = 100_000

// bound records a login, unless one was recorded within the precision.
// A warning the login answers needs no clearing: Sweep counts a warning
// only when it is newer than the last login.
func (m *Module) bound(ctx context.Context, s session.Session) {
	owner := s.JID().Bare().String()
	now, prec := m.opts.Now(), m.precision()
	if m.recorded.Within(owner, now, prec) {
		return
	}
	kv := m.host.Store().KV()
	if v, err := kv.Get(ctx, owner, ns, keyLogin); err == nil {
		if t, err := time.Parse(timeLayout, string(v)); err == nil && now.Sub(t) < prec && !t.After(now) {
			m.recorded.Add(owner, t)
			return
		}
	}
	if err := kv.Put(ctx, owner, ns, keyLogin, []byte(now.UTC().Format(timeLayout))); err != nil {
		// Anonymous accounts may be gone already; the rest is worth a line.
		m.host.Logger().Debug("inactive: recording a login failed", "err", err)
		return
	}
	m.recorded.Add(owner, now)
}

// lastSeen is an account's last login, or its creation when it never
// logged in since this was recorded.
func (m *Module) lastSeen(ctx context.Context, owner string) (time.Time, error) {
	v, err := m.host.Store().KV().Get(ctx, owner, ns, keyLogin)
	if err == nil {
		if t, perr := time.Parse(timeLayout, string(v)); perr == nil {
			return t, nil
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return time.Time{}, err
	}
	a, err := m.host.Store().Users().Get(ctx, owner)
	if err != nil {
		return time.Time{}, err
	}
	return a.Created, nil
}

// Sweep warns and deletes the accounts that are due. Online accounts
// are never touched.
func (m *Module) Sweep(ctx context.Context) error {
	expire, warn := m.opts.Expire, m.opts.Warn
	if m.opts.Live != nil {
		expire, warn = m.opts.Live()
	}
	if expire <= 0 {
		return nil
	}
	users, err := m.host.Store().Users().List(ctx, "")
	if err != nil {
		return err
	}
	now := m.opts.Now()
	kv := m.host.Store().KV()
	for _, u := range users {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		bare, err := jid.Parse(u)
		if err != nil || len(m.host.Sessions(bare)) > 0 {
			continue
		}
		seen, err := m.lastSeen(ctx, u)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		idle := now.Sub(seen)
		switch {
		case idle >= expire:
			admin.Kick(m.host.AllSessions(), bare, "this account was deleted")
			if err := m.host.Accounts().Delete(ctx, bare); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("deleting %s: %w", u, err)
			}
			m.host.Logger().Info("inactive: account deleted", "idle", idle.Round(time.Hour).String())
		case warn > 0 && idle >= expire-warn:
			if v, err := kv.Get(ctx, u, ns, keyWarned); err == nil {
				// Warned since the last login: once is enough.
				if t, err := time.Parse(timeLayout, string(v)); err == nil && t.After(seen) {
					continue
				}
			}
			deadline := seen.Add(expire)
			text := fmt.Sprintf("Nobody has logged in to %s since %s. It will be deleted with all its data on %s unless you log in before.",
				u, seen.UTC().Format("2 January 2006"), deadline.UTC().Format("2 January 2006 15:04 MST"))
			// To the bare JID: nobody is online, so it waits in offline
			// storage for the next login, which also cancels the deletion.
			m.host.Route(ctx, admin.Notice(bare.Domain(), u, "normal", text, ""))
			if err := kv.Put(ctx, u, ns, keyWarned, []byte(now.UTC().Format(timeLayout))); err != nil {
				return err
			}
		}
	}
	return nil
}
