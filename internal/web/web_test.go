package web

import (
	"errors"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestInboxDeadlines: a read deadline running out is a timeout the
// connection survives (c2s pings idle clients that way), and moving it
// wakes a blocked Read (c2s ends a session that way).
func TestInboxDeadlines(t *testing.T) {
	in := newInbox(8)
	buf := make([]byte, 4)
	in.setDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := in.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	in.setDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := in.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	in.setDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("woken read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not wake the reader")
	}
	in.setDeadline(time.Time{})
	if !in.push([]byte("abcdef"), nil) {
		t.Fatal("push refused")
	}
	// Full: the next push waits until c2s reads.
	pushed := make(chan bool, 1)
	go func() { pushed <- in.push([]byte("ghijk"), nil) }()
	select {
	case <-pushed:
		t.Fatal("push into a full inbox did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	got := make([]byte, 0, 16)
	for len(got) < 11 {
		n, err := in.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "abcdefghijk" || !<-pushed {
		t.Fatalf("read %q", got)
	}
	in.end(io.ErrUnexpectedEOF)
	if _, err := in.Read(buf); err != io.ErrUnexpectedEOF {
		t.Fatalf("after end: %v", err)
	}
}

// TestClientAddress: X-Forwarded-For counts only from a trusted proxy,
// and then its rightmost untrusted hop is the client.
func TestClientAddress(t *testing.T) {
	cfg := &Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}
	https, plain := NewHandlers(cfg, nil)
	defer https.Stop()
	for _, tc := range []struct {
		h          *Handler
		peer, xff  string
		want       string // "" = refused
		wantSecure bool
	}{
		{https, "192.0.2.9:1234", "198.51.100.1", "192.0.2.9", true},    // not a proxy: header ignored
		{https, "127.0.0.1:1234", "198.51.100.1", "198.51.100.1", true}, // trusted
		{plain, "127.0.0.1:1234", "6.6.6.6, 198.51.100.1, 10.1.1.1", "198.51.100.1", true},
		{plain, "127.0.0.1:1234", "", "127.0.0.1", true},
		{plain, "127.0.0.1:1234", "garbage, 198.51.100.1", "198.51.100.1", true},
		{plain, "192.0.2.9:1234", "198.51.100.1", "", false}, // plain HTTP from anyone else
	} {
		r := httptest.NewRequest("GET", "/xmpp-websocket", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		addr, secure, ok := tc.h.client(r)
		if tc.want == "" {
			if ok {
				t.Errorf("%s via %s: allowed, want refused", tc.xff, tc.peer)
			}
			continue
		}
		ap, _ := netip.ParseAddrPort(addr.String())
		if !ok || ap.Addr().String() != tc.want || secure != tc.wantSecure {
			t.Errorf("%q via %s: %v %v %v, want %s", tc.xff, tc.peer, addr, secure, ok, tc.want)
		}
	}
}
