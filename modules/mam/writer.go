package mam

import (
	"context"
	"errors"
	"sync"
	"time"

	"parley/internal/module"
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

// retryPauses: a failed batch is tried again after each pause, for about
// a minute in all, before it is given up.
var retryPauses = []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second, 15 * time.Second, 40 * time.Second}

type writer struct {
	store storage.Archive
	logf  func(msg string, args ...any)
	timer *module.Timer // times each batch written

	// retry holds the pauses before each new attempt at a failed batch.
	retry []time.Duration

	queue chan storage.ArchiveEntry
	syncs chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newWriter(store storage.Archive, logf func(string, ...any), timer *module.Timer) *writer {
	w := &writer{store: store, logf: logf, timer: timer, retry: retryPauses,
		queue: make(chan storage.ArchiveEntry, queueSize),
		syncs: make(chan chan struct{}),
		stop:  make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// add queues an entry; when the queue is full the sender waits, which
// slows a flood instead of dropping archive entries.
func (w *writer) add(e storage.ArchiveEntry) {
	select {
	case w.queue <- e:
	case <-w.done:
		// Stopped: write it directly rather than lose it.
		w.write([]storage.ArchiveEntry{e})
	}
}

// sync returns once everything queued before the call is committed.
func (w *writer) sync(ctx context.Context) {
	reply := make(chan struct{})
	select {
	case w.syncs <- reply:
		select {
		case <-reply:
		case <-ctx.Done():
		}
	case <-w.done:
	case <-ctx.Done():
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
func (w *writer) gather(first storage.ArchiveEntry) []storage.ArchiveEntry {
	batch := []storage.ArchiveEntry{first}
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
func (w *writer) drain(batch []storage.ArchiveEntry) []storage.ArchiveEntry {
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

func (w *writer) write(batch []storage.ArchiveEntry) {
	if len(batch) == 0 {
		return
	}
	// A database that is briefly unavailable (locked, restarting, a
	// connection dropped) must not cost archive entries: retry, while the
	// queue holds what arrives meanwhile and, once full, slows senders.
	var err error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err = w.store.AppendBatch(ctx, batch)
		w.timer.Time(start)
		cancel()
		if err == nil || errors.Is(err, storage.ErrInvalid) || attempt == len(w.retry) {
			break
		}
		time.Sleep(w.retry[attempt])
	}
	if err != nil {
		// Only counts: no owner, peer or content in the log.
		w.logf("mam: archiving a batch failed; its entries are lost", "messages", len(batch), "err", err)
	}
}

// close writes what is queued and stops the writer.
func (w *writer) close(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
