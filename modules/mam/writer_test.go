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

func TestWriterRetriesAFailedBatch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fails     int
		wantCalls int
		wantKept  bool
		wantLog   bool
	}{
		{"recovers", 2, 3, true, false},
		{"gives up", 10, 4, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &flakyArchive{fails: tc.fails}
			var logged []string
			var mu sync.Mutex
			w := newWriter(store, func(msg string, _ ...any) {
				mu.Lock()
				logged = append(logged, msg)
				mu.Unlock()
			}, nil)
			w.retry = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
			w.add(storage.ArchiveEntry{Owner: "alice@example.com", Message: storage.ArchiveMessage{ID: "1"}})
			w.sync(context.Background())
			if err := w.close(context.Background()); err != nil {
				t.Fatal(err)
			}
			store.mu.Lock()
			defer store.mu.Unlock()
			if store.calls != tc.wantCalls {
				t.Errorf("AppendBatch called %d times, want %d", store.calls, tc.wantCalls)
			}
			if kept := len(store.written) == 1; kept != tc.wantKept {
				t.Errorf("entry kept: %v, want %v", kept, tc.wantKept)
			}
			mu.Lock()
			defer mu.Unlock()
			if (len(logged) > 0) != tc.wantLog {
				t.Errorf("logged %q", logged)
			}
		})
	}
}
