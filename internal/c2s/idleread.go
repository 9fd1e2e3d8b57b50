package c2s

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"
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
// error), or until the read deadline, whose error it returns. It is
// called right after a read found nothing, so it goes straight to the
// poller, which remembers readiness that came in between.
func (r *recordConn) waitReadable() error {
	r.waited = false
	return r.raw.Read(r.waitFn)
}

func (r *recordConn) waitOnce(uintptr) bool {
	if r.waited {
		return true
	}
	r.waited = true
	return false
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
}

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
		if err := r.rc.waitReadable(); err != nil {
			return 0, err
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
