package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrSchemaTooNew is returned when opening a database that a newer parley
// has already migrated. Running older code against it could silently ignore
// or corrupt data the newer schema relies on, so the store refuses to open.
var ErrSchemaTooNew = errors.New("storage: database schema is newer than this version of parley supports")

// Migration is one step of a driver's schema history. Versions start at 1
// and are consecutive; once released a migration is never edited, only
// followed by a new one.
type Migration struct {
	Version    int
	Name       string
	Statements []string // executed in order, inside the migration's transaction
}

// Migrator applies a driver's migrations to a database/sql handle. Both
// drivers use database/sql, so the bookkeeping lives here once.
type Migrator struct {
	Migrations []Migration
	// Lock, when set, is executed first in every migration transaction and
	// must block until no other process is migrating the same schema.
	// PostgreSQL needs an advisory lock for this; SQLite needs nothing because
	// its driver begins every transaction IMMEDIATE, which already excludes
	// other writers.
	Lock string
}

// The table definition is valid in both SQLite and PostgreSQL; applied_at is
// RFC 3339 text so no dialect-specific timestamp type is needed.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

// Latest is the schema version this build knows.
func (m Migrator) Latest() int { return len(m.Migrations) }

// Migrate applies every pending migration, each in its own transaction
// together with its schema_migrations row, so a crash leaves the database at
// a well-defined version. It fails with ErrSchemaTooNew if the database is
// ahead of this build. Concurrent callers (another process opening the same
// database) are serialised and each migration is applied exactly once.
func (m Migrator) Migrate(ctx context.Context, db *sql.DB) error {
	if err := m.check(); err != nil {
		return err
	}
	for {
		done, err := m.step(ctx, db)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// check guards against a mistake in a driver's migration list, which would
// otherwise be recorded in users' databases forever.
func (m Migrator) check() error {
	for i, mig := range m.Migrations {
		if mig.Version != i+1 {
			return fmt.Errorf("storage: migration %d (%q) has version %d, want %d", i, mig.Name, mig.Version, i+1)
		}
		if mig.Name == "" || len(mig.Statements) == 0 {
			return fmt.Errorf("storage: migration %d needs a name and at least one statement", mig.Version)
		}
	}
	return nil
}

// step applies at most one migration and reports whether the schema is now
// current.
func (m Migrator) step(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("storage: begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the original error is the one worth reporting
		}
	}()
	if m.Lock != "" {
		if _, err := tx.ExecContext(ctx, m.Lock); err != nil {
			return false, fmt.Errorf("storage: lock schema for migration: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return false, fmt.Errorf("storage: create schema_migrations: %w", err)
	}
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	switch {
	case cur > m.Latest():
		return false, fmt.Errorf("%w: database is at version %d, this build knows up to %d", ErrSchemaTooNew, cur, m.Latest())
	case cur == m.Latest():
		// Commit rather than roll back: on a brand-new database with no
		// migrations the bookkeeping table itself is the only change.
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("storage: commit schema check: %w", err)
		}
		return true, nil
	}
	mig := m.Migrations[cur]
	for i, stmt := range mig.Statements {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("storage: migration %d (%s) statement %d: %w", mig.Version, mig.Name, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		mig.Version, mig.Name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return false, fmt.Errorf("storage: record migration %d: %w", mig.Version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("storage: commit migration %d (%s): %w", mig.Version, mig.Name, err)
	}
	return false, nil
}

// SchemaVersion reports the highest migration recorded in db. It is meant
// for stores that Migrate has already run on; a database that was never
// migrated has no schema_migrations table and yields an error.
func SchemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	return schemaVersion(ctx, db)
}

type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q rowQueryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage: read schema version: %w", err)
	}
	return v, nil
}
