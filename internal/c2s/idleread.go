package c2s

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// An idle session spends its life waiting for the client's next byte. If
// that wait happens inside crypto/tls, the goroutine's stack holds TLS's
// read path and stays at 8 KiB; waiting on the socket itself, from a
// shallow frame, lets the runtime shrink the stack to 4 KiB at the next
// collection. That is most of what an idle connection costs (issue 4:
// memory per idle connection).
//
// recordConn sits under crypto/tls and follows the TLS record framing of
// the bytes it passes up. When TLS asks it for bytes at a record boundary,
// TLS has consumed every record and holds no plaintext (it only reads when
// its plaintext is exhausted), so nothing is hidden in TLS's buffers: the
// socket alone says whether more is coming. Only then, and only while the
// decoder above has nothing buffered either (idleReader.ReadIdle), does
// recordConn refuse to block and return errIdle, which crypto/tls treats
// as temporary (like a deadline) without breaking the connection.
type recordConn struct {
	net.Conn
	raw syscall.RawConn // nil when the socket does not offer one

	hdr  [recordHeaderLen]byte
	hdrN int // bytes of the current record header seen
	body int // bytes of the current record body still to come

	// nonBlocking is set by idleReader around one TLS read, on the
	// connection's own goroutine (TLS reads only from Read).
	nonBlocking bool

	// The callbacks given to raw and what they report, kept here so that
	// a read does not allocate a closure.
	readFn, waitFn func(fd uintptr) bool
	p              []byte
	n              int
	errno          error
	waited         bool
	peek           [1]byte

	// The read deadline callers set, remembered because a session about
	// to park puts a shorter one on the socket for a while.
	dlMu     sync.Mutex
	deadline time.Time
}

// SetDeadline and SetReadDeadline record the read deadline (crypto/tls
// passes them through).
func (r *recordConn) SetDeadline(t time.Time) error {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	r.deadline = t
	return r.Conn.SetDeadline(t)
}

func (r *recordConn) SetReadDeadline(t time.Time) error {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	r.deadline = t
	return r.Conn.SetReadDeadline(t)
}

func (r *recordConn) readDeadline() time.Time {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	return r.deadline
}

// waitOrPark waits until the socket is readable, for at most d: parked
// reports that d went by first, while the session's own read deadline
// has not come.
func (r *recordConn) waitOrPark(d time.Duration) (parked bool, err error) {
	r.dlMu.Lock()
	parkAt := time.Now().Add(d)
	if !r.deadline.IsZero() && !parkAt.Before(r.deadline) {
		r.dlMu.Unlock()
		return false, r.waitReadable() // the deadline comes first
	}
	r.Conn.SetReadDeadline(parkAt)
	r.dlMu.Unlock()
	err = r.waitReadable()
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	r.Conn.SetReadDeadline(r.deadline)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		// Ours, unless a deadline set meanwhile (end()) has passed.
		if r.deadline.IsZero() || time.Now().Before(r.deadline) {
			return true, nil
		}
	}
	return false, err
}

const recordHeaderLen = 5

func newRecordConn(nc net.Conn) *recordConn {
	r := &recordConn{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			r.readFn = r.readOnce
			r.waitFn = r.waitOnce
		}
	}
	return r
}

type idleError struct{}

func (idleError) Error() string   { return "c2s: no data waiting on the socket" }
func (idleError) Timeout() bool   { return false }
func (idleError) Temporary() bool { return true }

var errIdle net.Error = idleError{}

func (r *recordConn) Read(p []byte) (int, error) {
	if r.nonBlocking && r.hdrN == 0 && r.body == 0 && r.raw != nil && len(p) > 0 {
		return r.readNonBlocking(p)
	}
	n, err := r.Conn.Read(p)
	r.track(p[:n])
	return n, err
}

// readNonBlocking reads what the socket has, or returns errIdle: one
// system call, as many as a blocking read that finds data.
func (r *recordConn) readNonBlocking(p []byte) (int, error) {
	r.p = p
	err := r.raw.Read(r.readFn)
	n, errno := r.n, r.errno
	r.p, r.errno = nil, nil
	switch {
	case err != nil:
		return 0, err // deadline passed, or closed
	case errno == syscall.EAGAIN:
		return 0, errIdle
	case errno != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	r.track(p[:n])
	return n, nil
}

func (r *recordConn) readOnce(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.p)
		if err == syscall.EINTR {
			continue
		}
		r.n, r.errno = max(n, 0), err
		return true
	}
}

// waitReadable blocks until the socket is readable (or at EOF, or in
// error), or until the read deadline, whose error it returns. The
// runtime forgets readiness that came in since the last read when a new
// wait begins, so the first look is a peek; after the poller wakes us,
// the caller's next read finds out.
func (r *recordConn) waitReadable() error {
	r.waited = false
	return r.raw.Read(r.waitFn)
}

func (r *recordConn) waitOnce(fd uintptr) bool {
	if r.waited {
		return true
	}
	r.waited = true
	for {
		_, _, err := syscall.Recvfrom(int(fd), r.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN
	}
}

// track advances the record framing over b.
func (r *recordConn) track(b []byte) {
	for len(b) > 0 {
		if r.body > 0 {
			k := min(r.body, len(b))
			r.body -= k
			b = b[k:]
			continue
		}
		k := copy(r.hdr[r.hdrN:], b)
		r.hdrN += k
		b = b[k:]
		if r.hdrN == recordHeaderLen {
			r.hdrN = 0
			r.body = int(r.hdr[3])<<8 | int(r.hdr[4])
		}
	}
}

// idleReader is what the decoder reads a TLS stream from.
type idleReader struct {
	tls *tls.Conn
	rc  *recordConn
	// parkAfter > 0: after that long with nothing to read, ReadIdle
	// returns errPark so the session can give its goroutine up.
	parkAfter time.Duration
	// beforeWait, for tests, runs between a read that found nothing and
	// the wait that follows.
	beforeWait func()
}

// errPark: the session has been idle for parkAfter and may park.
var errPark = errors.New("c2s: idle session may park")

func (r *idleReader) Read(p []byte) (int, error) { return r.tls.Read(p) }

// ReadIdle is called by the decoder when it has nothing buffered: it
// waits for the socket from this shallow frame rather than inside TLS.
func (r *idleReader) ReadIdle(p []byte) (int, error) {
	for {
		r.rc.nonBlocking = true
		n, err := r.tls.Read(p)
		r.rc.nonBlocking = false
		if err != errIdle {
			return n, err
		}
		if r.beforeWait != nil {
			r.beforeWait()
		}
		if r.parkAfter <= 0 {
			if err := r.rc.waitReadable(); err != nil {
				return 0, err
			}
			continue
		}
		parked, err := r.rc.waitOrPark(r.parkAfter)
		if err != nil {
			return 0, err
		}
		if parked {
			return 0, errPark
		}
	}
}

// tlsServer starts server-side TLS on nc with the idle wait described
// above, returning the TLS connection and the reader for the decoder.
func tlsServer(nc net.Conn, cfg *tls.Config) (*tls.Conn, *idleReader) {
	rc := newRecordConn(nc)
	tc := tls.Server(rc, cfg)
	return tc, &idleReader{tls: tc, rc: rc}
}
