package c2s

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"parley/internal/durable"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// TestAckWaitsForCommit: h counts a stanza only once the writes it
// started are committed, in order, and an <r/> that arrives meanwhile is
// answered when they are (group commit, issue 10).
func TestAckWaitsForCommit(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	c := &conn{out: stream.NewOutQueue(server, 1<<20, 5*time.Second)}
	c.ctx = context.Background()
	c.sendCtx = c.ctx
	c.sm.enabled = true
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()

	// Three stanzas; the first two start a write each, the third none.
	var releases []func()
	for range 2 {
		ctx, g := c.track()
		releases = append(releases, durable.Hold(ctx))
		g.Release()
	}
	_, g := c.track()
	g.Release() // nothing to wait for, but it is behind the other two

	if err := c.handleSM(xmlstream.New(NSSM, "r")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		t.Fatalf("answered %q before anything was committed", s)
	case <-time.After(100 * time.Millisecond):
	}
	releases[1]() // the second commits first: still nothing counted
	c.mu.Lock()
	h := c.sm.inH
	c.mu.Unlock()
	if h != 0 {
		t.Fatalf("h = %d after the second stanza's commit, want 0", h)
	}
	releases[0]()
	select {
	case s := <-got:
		if !strings.Contains(s, `h="3"`) {
			t.Fatalf("answered %q, want h=3", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no <a/> once everything was committed")
	}
	// Released twice: counted once.
	releases[0]()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sm.inH != 3 || len(c.sm.pending) != 0 {
		t.Fatalf("h = %d, %d pending", c.sm.inH, len(c.sm.pending))
	}
}

// TestAckUnderSteadyLoad: requests that keep coming while stanzas are
// pending are answered as the earliest of them is reached, not postponed
// until the load stops.
func TestAckUnderSteadyLoad(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	c := &conn{out: stream.NewOutQueue(server, 1<<20, 5*time.Second)}
	c.ctx = context.Background()
	c.sendCtx = c.ctx
	c.sm.enabled = true
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	var releases []func()
	send := func() {
		ctx, g := c.track()
		releases = append(releases, durable.Hold(ctx))
		g.Release()
	}
	send()
	c.handleSM(xmlstream.New(NSSM, "r")) // wants h=1
	send()
	c.handleSM(xmlstream.New(NSSM, "r")) // wants h=2
	releases[0]()
	select {
	case s := <-got:
		if !strings.Contains(s, `h="1"`) {
			t.Fatalf("answered %q, want h=1", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first request was never answered while the next was pending")
	}
	releases[1]()
	select {
	case s := <-got:
		if !strings.Contains(s, `h="2"`) {
			t.Fatalf("answered %q, want h=2", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second request was never answered")
	}
}
