// Package sqlstore is parley's one SQL implementation of every storage
// repository, shared by the SQLite and PostgreSQL drivers. Both speak the
// same SQL through database/sql with $n placeholders; what really differs
// between them is a Dialect value, which the driver packages build next to
// what stays theirs: opening and tuning the connection pools, and the schema
// migrations.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"parley/internal/storage"
)

// Store implements storage.Store over one database. It is safe for
// concurrent use.
type Store struct {
	d Dialect
	// w takes every write; r every read that needs no write lock. They
	// are two pools for SQLite (one writer connection, many readers) and
	// one and the same for PostgreSQL.
	w, r *sql.DB
	// Queries run on every login and on every request that reads a
	// feature's value, prepared once: compiling them each time costs
	// SQLite several times more than running them. archiveChunk is the
	// archive writer's full-chunk INSERT, whose 448 parameters make
	// compiling (SQLite) or parsing and planning it (PostgreSQL, which
	// settles on a generic plan for a statement prepared once) the larger
	// part of a batch's cost.
	userGet, kvGet, archiveChunk *sql.Stmt
}

var _ storage.Store = (*Store)(nil)

// New brings the schema of the database behind w and r (the same pool
// twice where one pool serves both) up to date and makes a store of it.
// The store owns the pools from then on: Close closes them, and so does
// New when it fails.
func New(ctx context.Context, d Dialect, w, r *sql.DB) (_ *Store, err error) {
	s := &Store{d: d, w: w, r: r}
	defer func() {
		if err != nil {
			_ = s.closePools()
			err = fmt.Errorf("%s: %w", d.Name, err)
		}
	}()
	if err := d.Schema.Migrate(ctx, w); err != nil {
		return nil, err
	}
	if s.userGet, err = r.PrepareContext(ctx, userGetQuery); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if s.kvGet, err = r.PrepareContext(ctx, kvGetQuery); err != nil {
		_ = s.userGet.Close()
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if s.archiveChunk, err = w.PrepareContext(ctx, archive{s}.appendSQL(appendChunk)); err != nil {
		_ = errors.Join(s.userGet.Close(), s.kvGet.Close())
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return s, nil
}

// errorf reports err, or the condition format describes, prefixed with the
// driver's name so a log says which database answered.
func (s *Store) errorf(format string, args ...any) error {
	return fmt.Errorf(s.d.Name+": "+format, args...)
}

// Users returns the account repository.
func (s *Store) Users() storage.Users { return users{s} }

// Roster returns the roster repository.
func (s *Store) Roster() storage.Roster { return roster{s} }

// Offline returns the offline message repository.
func (s *Store) Offline() storage.Offline { return offline{s} }

// KV returns the per-user key-value store.
func (s *Store) KV() storage.KV { return kv{s} }

// Archive returns the message archive repository.
func (s *Store) Archive() storage.Archive { return archive{s} }

// PubSub returns the personal pubsub repository.
func (s *Store) PubSub() storage.PubSub { return pubsub{Store: s, personal: true} }

// PubSubService returns the repository of the pubsub service domains.
func (s *Store) PubSubService() storage.PubSub { return pubsub{Store: s} }

// MUC returns the multi-user chat repository.
func (s *Store) MUC() storage.MUC { return muc{s} }

// Ping checks that the database answers on both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return s.errorf("ping: %w", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return s.errorf("ping readers: %w", err)
		}
	}
	return nil
}

// Close closes the prepared statements and the pools. For SQLite the last
// connection to close checkpoints the WAL.
func (s *Store) Close() error {
	return errors.Join(s.userGet.Close(), s.kvGet.Close(), s.archiveChunk.Close(), s.closePools())
}

func (s *Store) closePools() error {
	if s.r != s.w {
		return errors.Join(s.r.Close(), s.w.Close())
	}
	return s.w.Close()
}

// DB returns the writer handle, for tools and tests that need raw SQL (the
// conformance suite uses it to fake a newer schema). Keep its use rare: on
// SQLite all writes through it are serialised with the store's own.
func (s *Store) DB() *sql.DB { return s.w }

// Migrate applies pending migrations; the drivers' Open already does. It
// fails with storage.ErrSchemaTooNew if a newer parley migrated the
// database.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.d.Schema.Migrate(ctx, s.w); err != nil {
		return s.errorf("%w", err)
	}
	return nil
}

// SchemaVersion reports the schema version recorded in the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	v, err := storage.SchemaVersion(ctx, s.r)
	if err != nil {
		return 0, s.errorf("%w", err)
	}
	return v, nil
}
