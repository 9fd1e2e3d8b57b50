// Package postgres is parley's PostgreSQL storage driver. It opens the
// connection pool and keeps the schema migrations; the repositories are the
// shared SQL of package sqlstore, with this package's dialect.
//
// It uses pgx through its database/sql adapter (github.com/jackc/pgx/v5/stdlib)
// rather than pgxpool: pgxpool needs github.com/jackc/puddle/v2, which is not
// among the module's dependencies, and going through database/sql lets this
// driver share storage.Migrator and every repository with the SQLite
// driver. pgx still does the wire protocol, DSN parsing and type encoding.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"parley/internal/storage"
	"parley/internal/storage/sqlstore"
)

// Store is a PostgreSQL-backed storage.Store. It is safe for concurrent use.
type Store struct {
	*sqlstore.Store
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
	// One pool serves reads and writes: PostgreSQL needs no single writer.
	s, err := sqlstore.New(ctx, dialect, db, db)
	if err != nil {
		return nil, err
	}
	return &Store{Store: s}, nil
}
