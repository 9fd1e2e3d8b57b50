package c2s

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"parley/internal/tlsconf"
)

// batchConn holds a client's writes until flush, so that several TLS
// records reach the server in one segment.
type batchConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.Conn.Write(b.buf.Bytes())
	b.buf.Reset()
	return err
}

// tlsPair returns a server-side idleReader and a client whose writes are
// batched, over loopback TCP (the idle wait needs a real socket).
func tlsPair(t *testing.T) (*idleReader, *tls.Conn, *batchConn) {
	t.Helper()
	cert, err := tlsconf.Load("", "", t.TempDir(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	bc := &batchConn{Conn: raw}
	client := tls.Client(bc, &tls.Config{InsecureSkipVerify: true})
	tc, ir := tlsServer(sc, tlsconf.ServerConfig(cert))
	t.Cleanup(func() { client.Close(); tc.Close() })
	done := make(chan error, 1)
	go func() { done <- tc.Handshake() }()
	// The client's flights are batched: flush them as the handshake goes.
	hs := make(chan error, 1)
	go func() { hs <- client.Handshake() }()
	deadline := time.After(10 * time.Second)
	for {
		bc.flush()
		select {
		case err := <-hs:
			bc.flush()
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return ir, client, bc
		case <-deadline:
			t.Fatal("handshake did not finish")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func readIdle(t *testing.T, ir *idleReader, want string) {
	t.Helper()
	ir.rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 0, len(want))
	for len(got) < len(want) {
		p := make([]byte, len(want)-len(got))
		n, err := ir.ReadIdle(p)
		if err != nil {
			t.Fatalf("ReadIdle after %q: %v", got, err)
		}
		got = append(got, p[:n]...)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// Records that arrive together are all read: none is left hidden in
// crypto/tls while the session waits on the socket.
func TestIdleReadCoalescedRecords(t *testing.T) {
	ir, client, bc := tlsPair(t)
	for _, s := range []string{"<a/>", "<b/>", "<c/>"} {
		client.Write([]byte(s))
	}
	bc.flush()
	readIdle(t, ir, "<a/>")
	readIdle(t, ir, "<b/>")
	readIdle(t, ir, "<c/>")

	// Then nothing is waiting, and the wait ends when data comes.
	go func() {
		time.Sleep(50 * time.Millisecond)
		client.Write([]byte("<d/>"))
		bc.flush()
	}()
	readIdle(t, ir, "<d/>")
}

// A record split across segments is read to its end inside TLS, not
// mistaken for idleness.
func TestIdleReadSplitRecord(t *testing.T) {
	ir, client, bc := tlsPair(t)
	client.Write([]byte("<split/>"))
	bc.mu.Lock()
	rec := append([]byte(nil), bc.buf.Bytes()...)
	bc.buf.Reset()
	bc.mu.Unlock()
	go func() {
		bc.Conn.Write(rec[:3]) // part of the header
		time.Sleep(30 * time.Millisecond)
		bc.Conn.Write(rec[3:10])
		time.Sleep(30 * time.Millisecond)
		bc.Conn.Write(rec[10:])
	}()
	readIdle(t, ir, "<split/>")
}

// The read deadline (idle pings, end()) still ends the wait, and the
// connection stays usable afterwards.
func TestIdleReadDeadline(t *testing.T) {
	ir, client, bc := tlsPair(t)
	ir.rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := ir.ReadIdle(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("ReadIdle past the deadline: %v, want a timeout", err)
	}
	client.Write([]byte("<after/>"))
	bc.flush()
	readIdle(t, ir, "<after/>")

	client.Close()
	bc.flush()
	ir.rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ir.ReadIdle(make([]byte, 1)); err != io.EOF {
		t.Fatalf("ReadIdle after close_notify: %v, want EOF", err)
	}
}

func TestRecordFraming(t *testing.T) {
	var r recordConn
	// Two records of 3 and 0 bytes, then half a header.
	r.track([]byte{23, 3, 3, 0, 3, 'a', 'b'})
	if r.body != 1 || r.hdrN != 0 {
		t.Fatalf("mid-body: body %d hdrN %d", r.body, r.hdrN)
	}
	r.track([]byte{'c', 23, 3, 3, 0, 0, 23, 3})
	if r.body != 0 || r.hdrN != 2 {
		t.Fatalf("mid-header: body %d hdrN %d", r.body, r.hdrN)
	}
	r.track([]byte{3, 1, 0})
	if r.body != 256 || r.hdrN != 0 {
		t.Fatalf("long record: body %d hdrN %d", r.body, r.hdrN)
	}
}

// TestIdleReadNoLostWakeup: data that arrives between a read that found
// nothing and the wait that follows must end the wait.
func TestIdleReadNoLostWakeup(t *testing.T) {
	ir, client, bc := tlsPair(t)
	ir.beforeWait = func() {
		ir.beforeWait = nil
		client.Write([]byte("<late/>"))
		bc.flush()
		time.Sleep(50 * time.Millisecond) // let it reach the socket
	}
	ir.rc.SetReadDeadline(time.Now().Add(3 * time.Second))
	p := make([]byte, 16)
	n, err := ir.ReadIdle(p)
	if err != nil {
		t.Fatalf("ReadIdle: %v (the wake-up was lost)", err)
	}
	if string(p[:n]) != "<late/>" {
		t.Fatalf("read %q", p[:n])
	}
}
