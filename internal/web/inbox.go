package web

import (
	"net"
	"os"
	"sync"
	"time"
)

// inbox is the read side of a transport's net.Conn: what the client
// sent, translated into stream bytes, waiting for c2s to read it. It
// behaves like a socket's: Read blocks until there are bytes, the end,
// or the read deadline (which c2s moves to ping an idle client or to
// wake its reader), and a full inbox makes the sender wait.
type inbox struct {
	mu       sync.Mutex
	buf      []byte
	max      int
	err      error // what Read returns once buf is empty; nil while open
	deadline time.Time
	data     chan struct{} // cap 1: buf, err or deadline changed
	room     chan struct{} // cap 1: buf shrank
}

func newInbox(max int) *inbox {
	return &inbox{max: max, data: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push appends p once there is room for it (an empty inbox takes
// anything), or gives up when cancel closes or the inbox ended.
func (b *inbox) push(p []byte, cancel <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if b.err != nil {
			b.mu.Unlock()
			return false
		}
		if len(b.buf) == 0 || len(b.buf)+len(p) <= b.max {
			b.buf = append(b.buf, p...)
			b.mu.Unlock()
			notify(b.data)
			return true
		}
		b.mu.Unlock()
		select {
		case <-b.room:
		case <-cancel:
			return false
		}
	}
}

// end makes Read return err once what was pushed before is read.
func (b *inbox) end(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	notify(b.data)
	notify(b.room)
}

// closeNow makes Read fail at once, as on a closed socket.
func (b *inbox) closeNow() {
	b.mu.Lock()
	b.buf = nil
	b.err = net.ErrClosed
	b.mu.Unlock()
	notify(b.data)
	notify(b.room)
}

func (b *inbox) setDeadline(t time.Time) {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	notify(b.data)
}

func (b *inbox) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if len(b.buf) > 0 {
			n := copy(p, b.buf)
			b.buf = b.buf[n:]
			if len(b.buf) == 0 {
				b.buf = nil // let a big frame's memory go
			}
			b.mu.Unlock()
			notify(b.room)
			return n, nil
		}
		if b.err != nil {
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		dl := b.deadline
		b.mu.Unlock()
		var expired <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, timeoutError{}
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		select {
		case <-b.data:
		case <-expired:
		}
	}
}

// timeoutError is what a read or write past its deadline returns, like
// a socket's.
type timeoutError struct{}

func (timeoutError) Error() string        { return "web: i/o timeout" }
func (timeoutError) Timeout() bool        { return true }
func (timeoutError) Temporary() bool      { return true }
func (timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }
