package offline

import (
	"errors"
	"strconv"

	"parley/internal/vault"
	"parley/modules/internal/unverified"

	"context"
	"sync"
	"time"

	"parley/internal/session"
)

// A stored message is deleted only once it was delivered: acknowledged
// by the client under stream management (XEP-0198), or written to the
// socket of a client without it. Until then it stays stored, so a client
// that goes away in the middle of a large delivery gets the rest at its
// next login. Delivery is paced by what the client reads (a few hundred
// kilobytes queued at a time), never queued all at once.

// deleter collects the ids of delivered messages from the sessions'
// callbacks, which must not block, and deletes them from its own
// goroutine, in batches.
type deleter struct {
	mu       sync.Mutex
	done     map[string][]int64 // owner -> delivered, still stored
	inFlight map[int64]bool     // handed to a session, not deleted yet
	kick     chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (m *Module) startDeleter() {
	d := &m.del
	d.done = make(map[string][]int64)
	d.inFlight = make(map[int64]bool)
	d.kick = make(chan struct{}, 1)
	d.stop = make(chan struct{})
	d.wg.Add(1)
	go m.deleteLoop(d.stop)
}

func (m *Module) stopDeleter() {
	if m.del.stop == nil {
		return
	}
	// Stop may follow a test's own stopDeleter: stop once.
	close(m.del.stop)
	m.del.stop = nil
	m.del.wg.Wait()
}

func (m *Module) deleteLoop(stop <-chan struct{}) {
	defer m.del.wg.Done()
	for {
		select {
		case <-m.del.kick:
			m.deleteDelivered()
		case <-stop:
			m.deleteDelivered()
			return
		}
	}
}

// deleteDelivered deletes what was delivered so far. When deleting
// fails, the messages are delivered again at the next login: a duplicate
// is better than a loss.
func (m *Module) deleteDelivered() {
	m.del.mu.Lock()
	batch := m.del.done
	m.del.done = make(map[string][]int64)
	m.del.mu.Unlock()
	for owner, ids := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := m.store.Delete(ctx, owner, ids); err != nil {
			m.host.Logger().Error("offline: deleting delivered messages failed", "err", err)
		}
		cancel()
		// Deleted (or, after a failure, to be delivered again).
		m.del.mu.Lock()
		for _, id := range ids {
			delete(m.del.inFlight, id)
		}
		m.del.mu.Unlock()
	}
}

// claim marks id as being delivered; false when another session of the
// owner is delivering it already, or delivered it and it is about to be
// deleted.
func (d *deleter) claim(id int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[id] {
		return false
	}
	d.inFlight[id] = true
	return true
}

// settle is the delivery callback of one message.
func (d *deleter) settle(owner string, id int64, delivered bool) {
	d.mu.Lock()
	if delivered {
		d.done[owner] = append(d.done[owner], id) // in flight until deleted
	} else {
		delete(d.inFlight, id)
	}
	d.mu.Unlock()
	if delivered {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// flush hands a user's waiting messages to the session that just became
// available, oldest first, each once the client has read enough of the
// previous ones; each is deleted once delivered.
func (m *Module) flush(ctx context.Context, s session.Session) {
	owner := s.JID().Bare()
	msgs, err := m.store.List(ctx, owner.String())
	if err != nil {
		m.host.Logger().Error("offline: reading messages failed", "err", err)
		return
	}
	var tally unverified.Tally
	for _, msg := range msgs {
		el, err := m.verified(ctx, owner, msg)
		if errors.Is(err, vault.ErrLocked) {
			// The user logged in without unlocking their key (a
			// mechanism their key has no wrap for yet): it waits.
			continue
		}
		if err != nil {
			tally.Withhold(strconv.FormatInt(msg.ID, 10), msg.Data, err)
			continue
		}
		if !m.del.claim(msg.ID) {
			continue
		}
		el.SetAttr("to", s.JID().String())
		id := msg.ID
		err = session.DeliverPaced(ctx, s, el, func(ok bool) { m.del.settle(owner.String(), id, ok) })
		if err != nil {
			// The session is gone: the rest waits for the next login.
			break
		}
	}
	// The withheld rows stay for inspection until retention removes them.
	m.report.Report(owner, s, tally)
}
