package storage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// IsTemporary reports whether err is the store failing (unreachable,
// restarting, locked, out of disk, timed out) rather than an answer about
// the data (not found, exists, a limit, invalid input). Callers must not
// turn a temporary failure into a permanent answer such as "no such
// account": they keep the work for later or answer with a 'wait' error.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	for _, answer := range []error{ErrNotFound, ErrExists, ErrLimit, ErrInvalid, context.Canceled} {
		if errors.Is(err, answer) {
			return false
		}
	}
	return true
}

// FailureLog logs storage failures at the default level, each kind once
// with its cause and then at most once per interval with how many more
// happened, so an outage is visible without flooding the log.
type FailureLog struct {
	log   *slog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*failureKind
}

type failureKind struct {
	last       time.Time
	suppressed int
}

// NewFailureLog returns a FailureLog writing to log.
func NewFailureLog(log *slog.Logger) *FailureLog {
	return &FailureLog{log: log, every: time.Minute, kinds: make(map[string]*failureKind)}
}

// Report logs a failure of kind what (a fixed text, e.g. "storing an
// offline message"), rate-limited per kind. args add context; never put
// message content in them.
func (f *FailureLog) Report(what string, err error, args ...any) {
	now := time.Now()
	f.mu.Lock()
	k := f.kinds[what]
	if k == nil {
		if len(f.kinds) > 100 { // kinds are fixed texts; this is a guard
			clear(f.kinds)
		}
		k = &failureKind{}
		f.kinds[what] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < f.every {
		k.suppressed++
		f.mu.Unlock()
		return
	}
	more := k.suppressed
	k.last, k.suppressed = now, 0
	f.mu.Unlock()
	args = append(args, "err", err)
	if more > 0 {
		args = append(args, "more_failures_since_last_report", more)
	}
	f.log.Error("storage failure: "+what, args...)
}
