// Package sqlite is parley's embedded storage driver, built on the pure-Go
// modernc.org/sqlite so the server needs no cgo and no external database.
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
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"parley/internal/storage"
)

// busyTimeoutMS bounds how long a statement waits for another process's
// write lock. Writes are short (a few rows), so 5 s only runs out if
// something is badly wrong, and then an error is better than hanging.
const busyTimeoutMS = 5000

// Store is a SQLite-backed storage.Store. It is safe for concurrent use.
type Store struct {
	w       *sql.DB // exactly one connection; every write goes here
	r       *sql.DB // read-only pool
	users   *users
	roster  *roster
	offline *offline
	kv      *kv
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

	// Migrate before opening readers: the writer's first connection is what
	// switches a new file to WAL, which readers rely on.
	if err := migrator.Migrate(ctx, w); err != nil {
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

	get, err := r.PrepareContext(ctx, getQuery)
	if err != nil {
		_ = errors.Join(r.Close(), w.Close())
		return nil, fmt.Errorf("sqlite: %s: prepare: %w", path, err)
	}
	kvGet, err := r.PrepareContext(ctx, kvGetQuery)
	if err != nil {
		_ = errors.Join(get.Close(), r.Close(), w.Close())
		return nil, fmt.Errorf("sqlite: %s: prepare: %w", path, err)
	}
	return &Store{
		w: w, r: r,
		users:   &users{w: w, r: r, get: get},
		roster:  &roster{w: w, r: r},
		offline: &offline{w: w, r: r},
		kv:      &kv{w: w, r: r, get: kvGet},
	}, nil
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
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return path + "?" + q.Encode()
}

// Users returns the account repository.
func (s *Store) Users() storage.Users { return s.users }

// Roster returns the roster repository.
func (s *Store) Roster() storage.Roster { return s.roster }

// Offline returns the offline message repository.
func (s *Store) Offline() storage.Offline { return s.offline }

// KV returns the per-user key-value store.
func (s *Store) KV() storage.KV { return s.kv }

// Ping checks that both pools can reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping reader: %w", err)
	}
	return nil
}

// Close closes both pools. The last connection to close checkpoints the WAL.
func (s *Store) Close() error {
	return errors.Join(s.users.get.Close(), s.kv.get.Close(), s.r.Close(), s.w.Close())
}

// DB returns the writer handle, for tools and tests that need raw SQL (the
// conformance suite uses it to fake a newer schema). Keep its use rare: all
// writes through it are serialised with the store's own.
func (s *Store) DB() *sql.DB { return s.w }

// Migrate applies pending migrations; Open already does this. It fails with
// storage.ErrSchemaTooNew if the file was migrated by a newer parley.
func (s *Store) Migrate(ctx context.Context) error {
	if err := migrator.Migrate(ctx, s.w); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// SchemaVersion reports the schema version recorded in the file.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	v, err := storage.SchemaVersion(ctx, s.r)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %w", err)
	}
	return v, nil
}
