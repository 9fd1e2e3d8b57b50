package stream

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrSlowConsumer is returned once a peer has let more unsent output pile
// up than the queue allows; the connection is then closed rather than
// letting one stalled client grow the server's memory.
var ErrSlowConsumer = errors.New("stream: peer does not read its data (output queue full)")

// ErrNoRoom is WaitRoom's answer when its deadline passed before the peer
// read enough of what was queued for it.
var ErrNoRoom = errors.New("stream: peer did not read its data in time (output queue busy)")

// OutQueue coalesces the writes of many goroutines into few syscalls. A
// writer goroutine exists only while there is data to send, so an idle
// connection costs no goroutine and no buffer on the output side.
//
// Two kinds of output share it. What others send the peer, unasked, goes
// through Write and is bounded: a peer that lets more than max bytes of
// it pile up is a slow consumer and loses its connection. What the
// server itself chose to send (offline messages, archive pages) is paced
// instead: its producer waits in WaitRoom until the peer has read enough,
// then queues with WriteChosen, which never fails for size. Paced output
// keeps at most a quarter of max queued, so it never crowds out the
// bounded kind.
type OutQueue struct {
	max          int
	pace         int
	writeTimeout time.Duration

	mu       sync.Mutex
	cond     *sync.Cond
	conn     net.Conn
	pending  []byte
	loose    int // bytes of pending that came through Write
	inflight int // bytes the writer goroutine is writing now
	written  uint64
	queued   uint64
	notes    []note        // WriteChosen's callbacks, in queue order
	progress chan struct{} // closed when the writer moves on; nil when nobody waits
	writing  bool
	err      error
	closed   bool
}

// note is a callback waiting for the queue to have written up to end.
type note struct {
	end  uint64
	done func(written bool)
}

// NewOutQueue writes to conn, allowing at most max unsent bytes.
func NewOutQueue(conn net.Conn, max int, writeTimeout time.Duration) *OutQueue {
	q := &OutQueue{conn: conn, max: max, pace: max / 4, writeTimeout: writeTimeout}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Write queues b (copied) and returns at once. It reports an error when
// the queue is closed or failed, or ErrSlowConsumer when b would pass
// the bound; in that case nothing is queued.
func (q *OutQueue) Write(b []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.usableLocked(); err != nil {
		return err
	}
	if q.loose+len(b) > q.max {
		q.err = ErrSlowConsumer
		q.wakeLocked()
		return q.err
	}
	q.loose += len(b)
	q.appendLocked(b)
	return nil
}

// WriteChosen queues b (copied) without the slow-consumer bound: it is
// for output the server chose to send, after WaitRoom. done, when not
// nil, is called once: with true when all of b has been written to the
// connection, with false when that can no longer happen. It runs on the
// writer's goroutine (or the caller's, on an error) and must not block.
func (q *OutQueue) WriteChosen(b []byte, done func(written bool)) error {
	q.mu.Lock()
	if err := q.usableLocked(); err != nil {
		q.mu.Unlock()
		if done != nil {
			done(false)
		}
		return err
	}
	q.appendLocked(b)
	if done != nil {
		q.notes = append(q.notes, note{end: q.queued, done: done})
	}
	q.mu.Unlock()
	return nil
}

func (q *OutQueue) usableLocked() error {
	if q.err != nil {
		return q.err
	}
	if q.closed {
		return net.ErrClosed
	}
	return nil
}

func (q *OutQueue) appendLocked(b []byte) {
	q.pending = append(q.pending, b...)
	q.queued += uint64(len(b))
	if !q.writing {
		q.writing = true
		go q.flush()
	}
}

// WaitRoom waits until the queue holds little enough that n more bytes
// of paced output may join it (an empty queue always has room). It
// returns early with ctx's error, with ErrNoRoom once deadline (if not
// zero) has passed, or with the queue's error when it fails or closes.
func (q *OutQueue) WaitRoom(ctx context.Context, n int, deadline time.Time) error {
	var timeout <-chan time.Time
	for {
		q.mu.Lock()
		if err := q.usableLocked(); err != nil {
			q.mu.Unlock()
			return err
		}
		used := len(q.pending) + q.inflight
		if used == 0 || used+n <= q.pace {
			q.mu.Unlock()
			return nil
		}
		if q.progress == nil {
			q.progress = make(chan struct{})
		}
		progress := q.progress
		q.mu.Unlock()
		if timeout == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return ErrNoRoom
		}
	}
}

// wakeLocked lets WaitRoom's callers look again.
func (q *OutQueue) wakeLocked() {
	if q.progress != nil {
		close(q.progress)
		q.progress = nil
	}
}

func (q *OutQueue) flush() {
	var spare []byte
	var ready []note
	q.mu.Lock()
	for len(q.pending) > 0 && q.err == nil {
		data := q.pending
		q.pending = spare[:0]
		q.loose = 0
		q.inflight = len(data)
		conn := q.conn
		q.mu.Unlock()
		if q.writeTimeout > 0 {
			conn.SetWriteDeadline(time.Now().Add(q.writeTimeout))
		}
		_, err := conn.Write(data)
		q.mu.Lock()
		q.inflight = 0
		if err != nil && q.err == nil {
			q.err = err
		}
		if err == nil {
			q.written += uint64(len(data))
			ready = q.takeNotesLocked(ready[:0], q.written)
		}
		q.wakeLocked()
		if len(ready) > 0 {
			q.mu.Unlock()
			for _, n := range ready {
				n.done(true)
			}
			clear(ready)
			q.mu.Lock()
		}
		// Keep a small buffer for the next burst; a big one is let go so
		// an idle connection does not hold on to it.
		if cap(data) <= 4096 {
			spare = data
		} else {
			spare = nil
		}
	}
	if len(q.pending) == 0 {
		q.pending = nil
	}
	var failed []note
	if q.err != nil {
		failed, q.notes = q.notes, nil
	}
	q.writing = false
	q.wakeLocked()
	q.cond.Broadcast()
	q.mu.Unlock()
	for _, n := range failed {
		n.done(false)
	}
}

// takeNotesLocked moves the callbacks whose bytes are all written to out.
func (q *OutQueue) takeNotesLocked(out []note, written uint64) []note {
	i := 0
	for i < len(q.notes) && q.notes[i].end <= written {
		i++
	}
	out = append(out, q.notes[:i]...)
	q.notes = q.notes[i:]
	if len(q.notes) == 0 {
		q.notes = nil
	}
	return out
}

// Flush waits until everything queued has been written (or writing
// failed) and returns the error, if any.
func (q *OutQueue) Flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.writing {
		q.cond.Wait()
	}
	return q.err
}

// SetConn switches the queue to a new connection (after STARTTLS). The
// caller has flushed; anything queued later goes to conn.
func (q *OutQueue) SetConn(conn net.Conn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.conn = conn
}

// Close refuses further writes; it does not wait (use Flush first). What
// is queued is still written, unless the connection is closed too.
func (q *OutQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.wakeLocked()
}

// Err is the error that stopped the queue, nil while it works.
func (q *OutQueue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}
