// Package sqlite is parley's embedded storage driver, built on the pure-Go
// modernc.org/sqlite so the server needs no cgo and no external database.
// It opens and tunes the database and keeps its schema migrations; the
// repositories are the shared SQL of package sqlstore, with this package's
// dialect.
//
// Concurrency design. SQLite allows one writer per database file at a time,
// across all processes. The store therefore keeps two database/sql pools on
// the same file:
//
//   - a writer pool capped at ONE connection: writers inside this process
//     queue in Go (cheap, FIFO-ish) instead of spinning in SQLite's busy
//     handler, which sleeps with growing back-off and would add latency;
//   - a small reader pool (query_only): in WAL mode readers never block the
//     writer nor each other, so logins (Users.Get) proceed while a write is
//     in progress.
//
// Another process (the `parley user add` command while the server runs) is
// a second writer that Go cannot queue; for that every connection sets
// busy_timeout so a locked database is waited for instead of failing at
// once, and every explicit transaction starts with BEGIN IMMEDIATE
// (_txlock=immediate). Without IMMEDIATE a transaction would start as a
// reader and upgrade to writer on its first write; if another process
// committed in between, SQLite returns SQLITE_BUSY immediately (the busy
// handler is not consulted, since waiting cannot help a stale snapshot), so
// concurrent writers from two processes would fail spuriously.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"parley/internal/storage"
	"parley/internal/storage/sqlstore"
)

// busyTimeoutMS bounds how long a statement waits for another process's
// write lock. Writes are short (a few rows), so 5 s only runs out if
// something is badly wrong, and then an error is better than hanging.
const busyTimeoutMS = 5000

// Store is a SQLite-backed storage.Store. It is safe for concurrent use.
type Store struct {
	// The shared repositories over two pools: the writer, exactly one
	// connection that every write goes to, and the read-only pool.
	*sqlstore.Store
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and brings its
// schema up to date. Parent directories are created with mode 0700 and a new
// file with mode 0600, since it holds credential verifiers; SQLite gives the
// -wal and -shm files the same mode as the database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		// '?' would be taken for the start of DSN parameters, "file:" would
		// switch to URI parsing; neither is a plain path.
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
	}
	// Create the file ourselves: SQLite would create it with 0644 (minus
	// umask), and tightening it afterwards would leave a window.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}

	w, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)

	// Connect the writer before opening readers: its first connection is
	// what switches a new file to WAL, which readers rely on.
	if err := pingNew(ctx, w); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	n := min(max(runtime.GOMAXPROCS(0), 2), 8)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	s, err := sqlstore.New(ctx, dialect, w, r)
	if err != nil {
		return nil, fmt.Errorf("%w (database %s)", err, path)
	}
	return &Store{Store: s}, nil
}

// OpenMemory opens a new, empty database that lives in memory until the
// store is closed: the real store for tests that want no file. An
// in-memory database belongs to the connection that made it, so a single
// connection serves reads and writes, which also serialises them.
func OpenMemory(ctx context.Context) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", ":memory:?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open in memory: %w", err)
	}
	// Never close the one connection: the database would go with it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s, err := sqlstore.New(ctx, dialect, db, db)
	if err != nil {
		return nil, fmt.Errorf("%w (database in memory)", err)
	}
	return &Store{Store: s}, nil
}

// dsn builds the modernc.org/sqlite DSN. The pragmas are per connection, so
// putting them in the DSN (rather than executing them once) guarantees every
// pooled connection has them, including ones opened after a reconnect.
// writerCacheKiB is the writer connection's page cache; SQLite only
// takes it as pages are used.
const writerCacheKiB = 16 << 10

func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		// NORMAL is durable against application crashes in WAL mode and
		// only risks the last transactions on power loss, for far fewer
		// fsyncs than FULL.
		q.Add("_pragma", "synchronous(NORMAL)")
		// The writer's page cache holds the index pages that archive
		// batches touch (three per-owner indexes, so a page per active
		// account each); at SQLite's default 2 MiB a busy server spills
		// and re-reads them on every commit (issue 4's profile).
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -writerCacheKiB))
		// Statement journals (the undo log of one statement inside a
		// transaction, written for every page an archive INSERT with a
		// UNIQUE constraint touches) go to a temporary file by default:
		// a write system call per page, a third of the server's CPU at
		// 20,000 messages/s in issue 4's profile. Keep them in memory.
		q.Add("_pragma", "temp_store(MEMORY)")
		// Deleted and overwritten rows are zeroed, not left in free
		// space: a row sealed at a login (issue 16) replaces a clear one,
		// which must not stay readable on the disk.
		q.Add("_pragma", "secure_delete(1)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return path + "?" + q.Encode()
}

// pingNew connects the writer. Switching a new file to WAL takes an
// exclusive lock for which SQLite does not wait (its busy handler is not
// called), so processes starting together on a new file can get
// SQLITE_BUSY here: they try again, for a bounded while.
func pingNew(ctx context.Context, w *sql.DB) error {
	var err error
	for range 100 {
		if err = w.PingContext(ctx); err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	return err
}
