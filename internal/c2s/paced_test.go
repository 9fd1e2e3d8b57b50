package c2s

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// Under stream management a paced stanza counts as delivered once the
// client acknowledges it; one never acknowledged is reported undelivered
// when the session ends and is left to its producer (not rerouted: the
// producer still has it, so rerouting would deliver it twice).
func TestDeliverPacedUnderStreamManagement(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	cfg := &Config{MaxOutput: 1 << 20, Log: slog.New(slog.DiscardHandler)}
	c := newConn(cfg, a, false, func() {})
	c.out = stream.NewOutQueue(a, cfg.MaxOutput, time.Second)
	c.full = jid.MustParse("a@localhost/r")
	c.sm.enabled = true
	results := make([]int, 3) // 0 unknown, 1 delivered, 2 not
	for i := range results {
		el := xmlstream.New(stanza.NSClient, "message", "type", "chat")
		if err := c.DeliverPaced(context.Background(), el, func(ok bool) {
			results[i] = map[bool]int{true: 1, false: 2}[ok]
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.out.Flush(); err != nil {
		t.Fatal(err)
	}
	if results[0] != 0 || results[2] != 0 {
		t.Fatalf("written, not acknowledged, yet reported: %v", results)
	}
	c.mu.Lock()
	c.ackLocked(2)
	c.mu.Unlock()
	if results[0] != 1 || results[1] != 1 || results[2] != 0 {
		t.Fatalf("after an ack of 2: %v", results)
	}
	c.rerouteUnacked(context.Background()) // cfg.Router is nil: rerouting would panic
	if results[2] != 2 {
		t.Fatalf("the unacknowledged stanza at the end: %v", results)
	}
}

// Without stream management a paced stanza is delivered once written to
// the socket.
func TestDeliverPacedWithoutStreamManagement(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cfg := &Config{MaxOutput: 1 << 20, Log: slog.New(slog.DiscardHandler)}
	c := newConn(cfg, a, false, func() {})
	c.out = stream.NewOutQueue(a, cfg.MaxOutput, time.Second)
	c.full = jid.MustParse("a@localhost/r")
	done := make(chan bool, 1)
	if err := c.DeliverPaced(context.Background(), xmlstream.New(stanza.NSClient, "message"), func(ok bool) { done <- ok }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("reported delivered before the peer read anything")
	case <-time.After(50 * time.Millisecond):
	}
	go io.Copy(io.Discard, b)
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("reported undelivered although written")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never reported")
	}
}
