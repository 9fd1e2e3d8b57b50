package mam

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/storage"
)

// Archiving is asynchronous and batched: a message hook only queues the
// sealed entry, and one writer commits whatever has queued up in one
// transaction. Under load that turns hundreds of commits a second into a
// few (the profile showed the per-message commit as the largest cost of
// the message path); a query first waits for what was queued before it,
// so a client always finds the messages it has just seen.
const (
	// Under load a commit takes longer and the next batch is bigger, so
	// each index page a batch touches is written once for more rows
	// (issue 4: at 20,000 messages/s batches of 512 delivered 60% fewer
	// messages than batches of up to 8,192). The queue bounds the memory
	// an overloaded archive can hold (tens of MiB).
	queueSize = 32768
	maxBatch  = 8192
	// gather is how long the writer waits after the first entry for more
	// to come; it delays only the archive, never delivery.
	gather = 100 * time.Millisecond
)

// retryPauses: a failed batch is tried again after each pause, the last
// one repeating for as long as the database refuses: an acknowledged
// entry is never given up (issue 10), the queue fills meanwhile and then
// slows the senders down.
var retryPauses = []time.Duration{100 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}

// pendingEntry is an archive entry and the release of the durability
// hold its sender waits on (see package durable).
type pendingEntry struct {
	storage.ArchiveEntry
	release func()
}

type writer struct {
	store storage.Archive
	logf  func(msg string, args ...any)

	// retry holds the pauses before each new attempt at a failed batch.
	retry []time.Duration

	queue   chan pendingEntry
	syncs   chan chan struct{}
	stop    chan struct{}
	abort   chan struct{} // closed when close gives up waiting
	done    chan struct{}
	once    sync.Once
	aborted sync.Once

	// behind: the last commit took longer than a gather period.
	behind atomic.Bool

	// failing is closed while the database refuses batches, so queries
	// stop waiting for the writer and answer from what is committed.
	mu      sync.Mutex
	failing chan struct{}
	broken  bool
}

func newWriter(store storage.Archive, logf func(string, ...any)) *writer {
	w := &writer{store: store, logf: logf, retry: retryPauses,
		queue: make(chan pendingEntry, queueSize),
		syncs: make(chan chan struct{}),
		stop:  make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{}),
		failing: make(chan struct{})}
	go w.run()
	return w
}

// add queues an entry; release runs once it is committed. When the queue
// is full the sender waits, which slows a flood (or a sender while the
// database is away) instead of dropping archive entries.
func (w *writer) add(e storage.ArchiveEntry, release func()) {
	select {
	case w.queue <- pendingEntry{e, release}:
	case <-w.done:
		// Stopped: write it directly rather than lose it.
		w.write([]pendingEntry{{e, release}})
	}
}

// sync returns once everything queued before the call is committed, or
// at once while the database refuses writes: a query then answers from
// what is committed rather than hang behind the writer's retries.
func (w *writer) sync(ctx context.Context) {
	w.mu.Lock()
	failing := w.failing
	w.mu.Unlock()
	reply := make(chan struct{})
	select {
	case w.syncs <- reply:
		select {
		case <-reply:
		case <-failing:
		case <-ctx.Done():
		}
	case <-failing:
	case <-w.done:
	case <-ctx.Done():
	}
}

// setFailing records whether the database refuses batches.
func (w *writer) setFailing(failing bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if failing == w.broken {
		return
	}
	w.broken = failing
	if failing {
		close(w.failing)
	} else {
		w.failing = make(chan struct{})
	}
}

func (w *writer) run() {
	defer close(w.done)
	for {
		select {
		case e := <-w.queue:
			w.write(w.gather(e))
		case reply := <-w.syncs:
			w.flushAll()
			close(reply)
		case <-w.stop:
			w.flushAll()
			return
		}
	}
}

// gather collects entries for a short while after the first one, so that
// a busy server commits a batch rather than one transaction per message.
func (w *writer) gather(first pendingEntry) []pendingEntry {
	batch := []pendingEntry{first}
	if w.behind.Load() {
		// The last commit took longer than a gather period, so what
		// queued up meanwhile is a batch already: waiting longer would
		// only delay the acknowledgements that wait for it (group
		// commit). Under a light load commits are quick and the wait
		// below still makes batches.
		return w.drain(batch)
	}
	timer := time.NewTimer(gather)
	defer timer.Stop()
	for len(batch) < maxBatch {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
		case <-timer.C:
			return batch
		case reply := <-w.syncs:
			// A query waits: write now, including what is queued.
			batch = w.drain(batch)
			w.write(batch)
			w.flushAll()
			close(reply)
			return nil
		case <-w.stop:
			// stop is closed, so run sees it too once this batch is out.
			return w.drain(batch)
		}
	}
	return batch
}

// drain adds what else is queued, up to a batch.
func (w *writer) drain(batch []pendingEntry) []pendingEntry {
	for len(batch) < maxBatch {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

func (w *writer) flushAll() {
	for {
		batch := w.drain(nil)
		if len(batch) == 0 {
			return
		}
		w.write(batch)
	}
}

// write commits a batch, then releases the senders waiting on it.
func (w *writer) write(batch []pendingEntry) {
	if len(batch) == 0 {
		return
	}
	entries := make([]storage.ArchiveEntry, len(batch))
	for i, e := range batch {
		entries[i] = e.ArchiveEntry
	}
	defer func() {
		for _, e := range batch {
			e.release()
		}
	}()
	// A database that is unavailable (locked, restarting, a connection
	// dropped, a full disk) must not cost archive entries: retry for as
	// long as it takes, while the queue holds what arrives meanwhile and,
	// once full, slows senders down.
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := w.store.AppendBatch(ctx, entries)
		w.behind.Store(time.Since(start) >= gather)
		cancel()
		switch {
		case err == nil:
			if attempt > 0 {
				w.setFailing(false)
				w.logf("mam: archiving works again", "messages", len(batch), "attempts", attempt+1)
			}
			return
		case errors.Is(err, storage.ErrInvalid):
			// Only counts: no owner, peer or content in the log.
			w.logf("mam: a batch the database calls invalid was not archived", "messages", len(batch), "err", err)
			return
		case attempt == 0:
			w.setFailing(true)
			w.logf("mam: archiving a batch failed; retrying until it works", "messages", len(batch), "err", err)
		}
		t := time.NewTimer(w.retry[min(attempt, len(w.retry)-1)])
		select {
		case <-t.C:
		case <-w.abort:
			t.Stop()
			w.logf("mam: stopped while the database refused writes; entries not archived", "messages", len(batch), "err", err)
			return
		}
	}
}

// close writes what is queued and stops the writer; if ctx ends first,
// the writer stops retrying and what it still holds is lost (logged).
func (w *writer) close(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.aborted.Do(func() { close(w.abort) })
		return ctx.Err()
	}
}
