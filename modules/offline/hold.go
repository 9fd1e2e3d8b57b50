package offline

import (
	"context"
	"errors"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Bounds of the messages held in memory while the database fails: a
// PostgreSQL restart or a full disk for a minute at a busy server's rate,
// and no more memory than a few busy sessions' output queues.
const (
	holdMessages = 10000
	holdBytes    = 64 << 20
)

// Pauses between attempts to store held messages.
const (
	holdRetryFirst = 100 * time.Millisecond
	holdRetryMax   = 2 * time.Second
)

// pendingPush is a sealed message waiting to be stored.
type pendingPush struct {
	owner   jid.JID
	stored  time.Time // sealed into the record
	sealed  []byte
	orig    *xmlstream.Element // for an error to the sender if it can never be stored
	release func()             // the sender's durability hold
}

// holdQueue keeps, in order, the messages for offline users that the
// database refused for a while, and one goroutine stores them when it is
// back.
type holdQueue struct {
	m *Module

	mu     sync.Mutex
	items  []pendingPush
	bytes  int
	closed bool

	wake    chan struct{}
	stop    chan struct{}
	abort   chan struct{}
	aborted sync.Once
	done    chan struct{}
}

func newHoldQueue(m *Module) *holdQueue {
	q := &holdQueue{m: m, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		abort: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

// busy reports whether messages are waiting.
func (q *holdQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) > 0
}

// add queues p and reports whether there was room.
func (q *holdQueue) add(p pendingPush) bool {
	q.mu.Lock()
	if q.closed || len(q.items) >= holdMessages || q.bytes+len(p.sealed) > holdBytes {
		q.mu.Unlock()
		return false
	}
	p.orig = p.orig.Copy()
	q.items = append(q.items, p)
	q.bytes += len(p.sealed)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

func (q *holdQueue) head() (pendingPush, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return pendingPush{}, false
	}
	return q.items[0], true
}

func (q *holdQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= len(q.items[0].sealed)
	q.items[0] = pendingPush{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
}

// run stores held messages, oldest first, retrying while the database
// fails; after stop it returns once nothing is held.
func (q *holdQueue) run() {
	defer close(q.done)
	pause := holdRetryFirst
	for {
		p, ok := q.head()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := q.m.store.PushAt(ctx, p.owner.String(), p.stored, p.sealed, q.m.maxNow())
		cancel()
		if err != nil && storage.IsTemporary(err) {
			q.m.fails.Report("storing held offline messages", err, "held", q.len())
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-q.abort:
				t.Stop()
				q.m.host.Logger().Error("offline: stopped while the database refused writes; held messages lost", "count", q.len(), "err", err)
				q.drop()
				return
			}
			pause = min(2*pause, holdRetryMax)
			continue
		}
		pause = holdRetryFirst
		q.pop()
		if err != nil {
			q.refuse(p, err)
		}
		p.release()
	}
}

// refuse tells the sender of a held message that it can never be stored.
func (q *holdQueue) refuse(p pendingPush, err error) {
	var se *stanza.Error
	switch {
	case errors.Is(err, storage.ErrLimit):
		se = limitError(p.owner, q.m.maxNow()).(*stanza.Error)
	case errors.Is(err, storage.ErrNotFound):
		se = stanza.ServiceUnavailable()
	default:
		q.m.host.Logger().Error("offline: a held message could not be stored", "err", err)
		se = stanza.AsError(err)
	}
	if reply := stanza.ErrorReply(p.orig, se); reply != nil {
		if reply.Attr("from") == "" {
			reply.SetAttr("from", p.owner.String())
		}
		q.m.host.Route(context.Background(), reply)
	}
}

func (q *holdQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// drop releases every held message without storing it (shutdown gave up).
func (q *holdQueue) drop() {
	q.mu.Lock()
	items := q.items
	q.items, q.bytes = nil, 0
	q.mu.Unlock()
	for _, p := range items {
		p.release()
	}
}

// close stores what is held and stops; if ctx ends first, what is still
// held is lost (and logged).
func (q *holdQueue) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.stop)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		q.aborted.Do(func() { close(q.abort) })
		return ctx.Err()
	}
}
