// Package postgres is parley's PostgreSQL storage driver.
//
// It uses pgx through its database/sql adapter (github.com/jackc/pgx/v5/stdlib)
// rather than pgxpool: pgxpool needs github.com/jackc/puddle/v2, which is not
// among the module's dependencies, and going through database/sql lets this
// driver share storage.Migrator and the transaction idioms with the SQLite
// driver. pgx still does the wire protocol, DSN parsing and type encoding.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"parley/internal/storage"
)

// Store is a PostgreSQL-backed storage.Store. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	users   *users
	roster  *roster
	offline *offline
	kv      *kv
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// "key=value" string, as libpq accepts) and brings its schema up to date.
// Tables live in the first schema of the search_path, which the DSN may set
// (search_path=...), so several parley instances, or tests, can share one
// database.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	// Bounded so a burst of logins cannot exhaust the server's
	// max_connections (100 by default) shared with other clients.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: connect to %s@%s:%d/%s: %w", cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
	}
	if err := migrator.Migrate(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{
		db:      db,
		users:   &users{db: db},
		roster:  &roster{db: db},
		offline: &offline{db: db},
		kv:      &kv{db: db},
	}, nil
}

// Users returns the account repository.
func (s *Store) Users() storage.Users { return s.users }

// Roster returns the roster repository.
func (s *Store) Roster() storage.Roster { return s.roster }

// Offline returns the offline message repository.
func (s *Store) Offline() storage.Offline { return s.offline }

// KV returns the per-user key-value store.
func (s *Store) KV() storage.KV { return s.kv }

// Ping checks that the server is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes all pooled connections.
func (s *Store) Close() error { return s.db.Close() }

// DB returns the underlying handle, for tools and tests that need raw SQL
// (the conformance suite uses it to fake a newer schema).
func (s *Store) DB() *sql.DB { return s.db }

// Migrate applies pending migrations; Open already does this. It fails with
// storage.ErrSchemaTooNew if a newer parley migrated the schema.
func (s *Store) Migrate(ctx context.Context) error {
	if err := migrator.Migrate(ctx, s.db); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// SchemaVersion reports the schema version recorded in the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	v, err := storage.SchemaVersion(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	return v, nil
}
