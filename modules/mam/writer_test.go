package mam

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"parley/internal/storage"
)

// flakyArchive fails its first AppendBatch calls.
type flakyArchive struct {
	storage.Archive
	mu      sync.Mutex
	fails   int
	calls   int
	written []storage.ArchiveEntry
}

func (f *flakyArchive) AppendBatch(_ context.Context, entries []storage.ArchiveEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return errors.New("database is locked")
	}
	f.written = append(f.written, entries...)
	return nil
}

// TestWriterNeverGivesUp: a batch the database refuses many times over
// is kept and retried until it is written, and only then are the senders
// waiting on it released (their stream management acks go out).
func TestWriterNeverGivesUp(t *testing.T) {
	store := &flakyArchive{fails: 25}
	var logged []string
	var mu sync.Mutex
	w := newWriter(store, func(msg string, _ ...any) {
		mu.Lock()
		logged = append(logged, msg)
		mu.Unlock()
	})
	w.retry = []time.Duration{time.Millisecond}
	released := make(chan struct{})
	w.add(storage.ArchiveEntry{Owner: "alice@example.com", Message: storage.ArchiveMessage{ID: "1"}}, func() { close(released) })
	select {
	case <-released:
	case <-time.After(30 * time.Second):
		t.Fatal("the entry was never released")
	}
	store.mu.Lock()
	if store.calls != 26 || len(store.written) != 1 {
		t.Errorf("AppendBatch called %d times, %d entries written; want 26 and 1", store.calls, len(store.written))
	}
	store.mu.Unlock()
	if err := w.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 2 {
		t.Errorf("logged %q, want one failure and one recovery", logged)
	}
}

// TestWriterSyncWhileFailing: a query does not wait behind a writer whose
// database refuses writes; it answers from what is committed.
func TestWriterSyncWhileFailing(t *testing.T) {
	store := &flakyArchive{fails: 1 << 30}
	w := newWriter(store, func(string, ...any) {})
	w.retry = []time.Duration{10 * time.Millisecond}
	held := make(chan struct{})
	w.add(storage.ArchiveEntry{Owner: "alice@example.com", Message: storage.ArchiveMessage{ID: "1"}}, func() { close(held) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	w.sync(ctx)
	if ctx.Err() != nil {
		t.Fatalf("sync waited %v, until its deadline", time.Since(start))
	}
	select {
	case <-held:
		t.Fatal("the sender was released although nothing was written")
	default:
	}
	store.mu.Lock()
	store.fails = 0
	store.mu.Unlock()
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the entry was not written once the database came back")
	}
	if err := w.close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
