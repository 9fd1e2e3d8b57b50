package stream

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrSlowConsumer is returned once a peer has let more unsent output pile
// up than the queue allows; the connection is then closed rather than
// letting one stalled client grow the server's memory.
var ErrSlowConsumer = errors.New("stream: peer does not read its data (output queue full)")

// OutQueue coalesces the writes of many goroutines into few syscalls. A
// writer goroutine exists only while there is data to send, so an idle
// connection costs no goroutine and no buffer on the output side.
type OutQueue struct {
	max          int
	writeTimeout time.Duration

	mu      sync.Mutex
	cond    *sync.Cond
	conn    net.Conn
	pending []byte
	writing bool
	err     error
	closed  bool
}

// NewOutQueue writes to conn, allowing at most max unsent bytes.
func NewOutQueue(conn net.Conn, max int, writeTimeout time.Duration) *OutQueue {
	q := &OutQueue{conn: conn, max: max, writeTimeout: writeTimeout}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Write queues b (copied) and returns at once. It reports an error when
// the queue is closed or failed, or ErrSlowConsumer when b would pass
// the bound; in that case nothing is queued.
func (q *OutQueue) Write(b []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	if q.closed {
		return net.ErrClosed
	}
	if len(q.pending)+len(b) > q.max {
		q.err = ErrSlowConsumer
		return q.err
	}
	q.pending = append(q.pending, b...)
	if !q.writing {
		q.writing = true
		go q.flush()
	}
	return nil
}

func (q *OutQueue) flush() {
	var spare []byte
	q.mu.Lock()
	for len(q.pending) > 0 && q.err == nil {
		data := q.pending
		q.pending = spare[:0]
		conn := q.conn
		q.mu.Unlock()
		if q.writeTimeout > 0 {
			conn.SetWriteDeadline(time.Now().Add(q.writeTimeout))
		}
		_, err := conn.Write(data)
		q.mu.Lock()
		if err != nil && q.err == nil {
			q.err = err
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
	q.writing = false
	q.cond.Broadcast()
	q.mu.Unlock()
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

// Close refuses further writes; it does not wait (use Flush first).
func (q *OutQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
}

// Err is the error that stopped the queue, nil while it works.
func (q *OutQueue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}
