// Package backend opens the storage driver named in the configuration. It is
// the only package that imports every driver, so the rest of parley depends
// on the storage interfaces alone.
package backend

import (
	"context"
	"fmt"

	"parley/internal/storage"
	"parley/internal/storage/postgres"
	"parley/internal/storage/sqlite"
)

// Driver names accepted by Open.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Open opens and migrates the store for driver: for "sqlite" dsn is the
// database file path, for "postgres" a PostgreSQL URL or key=value DSN.
func Open(ctx context.Context, driver, dsn string) (storage.Store, error) {
	switch driver {
	case SQLite:
		s, err := sqlite.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return s, nil
	case Postgres:
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("storage: unknown driver %q (want %q or %q)", driver, SQLite, Postgres)
	}
}
