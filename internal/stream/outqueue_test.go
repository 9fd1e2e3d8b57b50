package stream

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestOutQueueCoalescesAndFlushes(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	q := NewOutQueue(a, 1<<20, time.Second)
	got := make(chan string)
	go func() {
		buf, _ := io.ReadAll(io.LimitReader(b, 9))
		got <- string(buf)
	}()
	for _, s := range []string{"abc", "def", "ghi"} {
		if err := q.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "abcdefghi" {
		t.Fatalf("peer read %q", s)
	}
}

func TestOutQueueSlowConsumer(t *testing.T) {
	a, b := net.Pipe() // nobody reads b: every write blocks
	defer a.Close()
	defer b.Close()
	q := NewOutQueue(a, 100, 200*time.Millisecond)
	if err := q.Write(make([]byte, 60)); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 10 {
		if err = q.Write(make([]byte, 60)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("got %v, want ErrSlowConsumer once the bound is passed", err)
	}
	// The write to the stalled peer times out and Flush returns.
	done := make(chan struct{})
	go func() { q.Flush(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Flush hangs on a peer that never reads")
	}
}
