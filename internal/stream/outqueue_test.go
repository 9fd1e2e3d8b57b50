package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
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

// A producer that waits for room sends far more than the bound to a peer
// that reads slowly, and the queue never fails; its callbacks say when
// each part reached the connection.
func TestOutQueuePacedOutputIsNotASlowConsumer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	q := NewOutQueue(a, 1000, 5*time.Second)
	const parts, size = 40, 300 // 12 times the bound
	read := make(chan int)
	go func() {
		n := 0
		buf := make([]byte, 50)
		for n < parts*size {
			k, err := b.Read(buf)
			n += k
			if err != nil {
				break
			}
			time.Sleep(time.Millisecond) // a slow reader
		}
		read <- n
	}()
	var mu sync.Mutex
	written := 0
	ctx := context.Background()
	for range parts {
		if err := q.WaitRoom(ctx, size, time.Now().Add(10*time.Second)); err != nil {
			t.Fatalf("WaitRoom: %v", err)
		}
		// Others' traffic still fits beside the paced output.
		if err := q.Write(nil); err != nil {
			t.Fatalf("Write beside paced output: %v", err)
		}
		if err := q.WriteChosen(make([]byte, size), func(ok bool) {
			mu.Lock()
			defer mu.Unlock()
			if ok {
				written++
			}
		}); err != nil {
			t.Fatalf("WriteChosen: %v", err)
		}
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := <-read; n != parts*size {
		t.Fatalf("peer read %d bytes, want %d", n, parts*size)
	}
	mu.Lock()
	defer mu.Unlock()
	if written != parts {
		t.Fatalf("%d parts reported written, want %d", written, parts)
	}
}

func TestOutQueueWaitRoomEnds(t *testing.T) {
	a, b := net.Pipe() // nobody reads b
	defer a.Close()
	defer b.Close()
	q := NewOutQueue(a, 1000, 5*time.Second)
	failed := make(chan bool, 2)
	q.WriteChosen(make([]byte, 600), func(ok bool) { failed <- !ok })
	q.WriteChosen(make([]byte, 600), func(ok bool) { failed <- !ok })
	if err := q.WaitRoom(context.Background(), 10, time.Now().Add(50*time.Millisecond)); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("WaitRoom past its deadline: %v, want ErrNoRoom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := q.WaitRoom(ctx, 10, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitRoom with its context cancelled: %v", err)
	}
	// The connection breaks: the waiter and the callbacks learn it.
	go func() { time.Sleep(20 * time.Millisecond); a.Close() }()
	if err := q.WaitRoom(context.Background(), 10, time.Time{}); err == nil {
		t.Fatal("WaitRoom returned no error on a broken connection")
	}
	for range 2 {
		select {
		case f := <-failed:
			if !f {
				t.Fatal("a part was reported written to a peer that read nothing")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a callback was never called")
		}
	}
}
