// Package storagetest is the conformance suite every storage driver runs, so
// all drivers provably behave the same behind the storage interfaces. New
// repositories add their subtests here.
package storagetest

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"parley/internal/storage"
)

// Migratable is what the migration subtests need beyond storage.Store; every
// driver's concrete store implements it.
type Migratable interface {
	storage.Store
	// DB is the raw handle, used to fake a database migrated by a newer build.
	DB() *sql.DB
	// Migrate runs the same migration step as the driver's Open.
	Migrate(ctx context.Context) error
	SchemaVersion(ctx context.Context) (int, error)
}

// Run runs the conformance suite against the stores open returns.
//
// open must return a new Store each time it is called. The first call with a
// given t opens a fresh, empty database; later calls with the same t open the
// same database again, as a second process would (the suite uses that for
// the migration and two-instance tests). open fails t (t.Fatal) on error,
// closes the store in t.Cleanup, and must be safe to call from parallel
// subtests. Opener builds such a function from a driver's Open.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	RunRepositories(t, open)
	t.Run("Migrations", func(t *testing.T) { runMigrations(t, open) })
	t.Run("Store", func(t *testing.T) { runStore(t, open) })
}

// RunRepositories is the part of Run that needs no second opening of the
// same database, so that a store living in memory (what module tests use)
// is held to the same contract as the drivers.
func RunRepositories(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("Users", func(t *testing.T) { runUsers(t, open) })
	t.Run("Roster", func(t *testing.T) { runRoster(t, open) })
	t.Run("SealedRoster", func(t *testing.T) { runSealedRoster(t, open) })
	t.Run("Offline", func(t *testing.T) { runOffline(t, open) })
	t.Run("KV", func(t *testing.T) { runKV(t, open) })
	t.Run("Archive", func(t *testing.T) { runArchive(t, open) })
	t.Run("PubSub", func(t *testing.T) { runPubSub(t, open) })
	t.Run("MUC", func(t *testing.T) { runMUC(t, open) })
	t.Run("Keys", func(t *testing.T) { runKeys(t, open) })
	t.Run("ArchiveSealed", func(t *testing.T) { runArchiveSealed(t, open) })
	t.Run("OfflineReplace", func(t *testing.T) { runOfflineReplace(t, open) })
	t.Run("RepositoriesCanceled", func(t *testing.T) { runRepositoriesCanceled(t, open) })
}

// Opener adapts a driver's Open for Run. newDB returns the location (path or
// DSN) of a fresh database for t; it is called once per t and should clean
// the database up with t.Cleanup.
func Opener(newDB func(t *testing.T) string, open func(ctx context.Context, location string) (storage.Store, error)) func(t *testing.T) storage.Store {
	var mu sync.Mutex
	locations := make(map[*testing.T]string)
	return func(t *testing.T) storage.Store {
		t.Helper()
		mu.Lock()
		loc, ok := locations[t]
		if !ok {
			loc = newDB(t)
			locations[t] = loc
			t.Cleanup(func() {
				mu.Lock()
				delete(locations, t)
				mu.Unlock()
			})
		}
		mu.Unlock()
		s, err := open(t.Context(), loc)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
		return s
	}
}
