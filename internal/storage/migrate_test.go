package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"parley/internal/storage"
)

// The migrator is exercised here on SQLite only; the PostgreSQL driver's
// conformance run covers the advisory-lock path.

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newDB(t *testing.T) *sql.DB { return openDB(t, filepath.Join(t.TempDir(), "m.db")) }

var (
	m1 = storage.Migration{Version: 1, Name: "one", Statements: []string{`CREATE TABLE t1 (x INTEGER)`}}
	m2 = storage.Migration{Version: 2, Name: "two", Statements: []string{
		`CREATE TABLE t2 (y TEXT)`, `INSERT INTO t1 (x) VALUES (42)`,
	}}
	bad = storage.Migration{Version: 2, Name: "bad", Statements: []string{
		`CREATE TABLE t3 (z INTEGER)`, `INSERT INTO missing_table VALUES (1)`,
	}}
)

func version(t *testing.T, db *sql.DB) int {
	t.Helper()
	v, err := storage.SchemaVersion(t.Context(), db)
	if err != nil {
		t.Fatalf("SchemaVersion: %v", err)
	}
	return v
}

func tableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestMigrateFromScratchAndIdempotent(t *testing.T) {
	db := newDB(t)
	m := storage.Migrator{Migrations: []storage.Migration{m1, m2}}
	for run := range 3 {
		if err := m.Migrate(t.Context(), db); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if v := version(t, db); v != 2 {
			t.Fatalf("run %d: version %d, want 2", run, v)
		}
	}
	// m2's INSERT ran exactly once.
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM t1`).Scan(&n); err != nil || n != 1 {
		t.Errorf("t1 has %d rows (%v), want 1", n, err)
	}
	var name, applied string
	if err := db.QueryRowContext(t.Context(), `SELECT name, applied_at FROM schema_migrations WHERE version = 2`).Scan(&name, &applied); err != nil {
		t.Fatal(err)
	}
	if name != "two" || applied == "" {
		t.Errorf("recorded migration 2 as %q at %q", name, applied)
	}
}

func TestMigrateIncrementally(t *testing.T) {
	db := newDB(t)
	if err := (storage.Migrator{Migrations: []storage.Migration{m1}}).Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if v := version(t, db); v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
	// m1's CREATE TABLE would fail if it ran again.
	if err := (storage.Migrator{Migrations: []storage.Migration{m1, m2}}).Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if v := version(t, db); v != 2 || !tableExists(t, db, "t2") {
		t.Fatalf("version %d, t2 exists %v; want 2, true", v, tableExists(t, db, "t2"))
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	db := newDB(t)
	if err := (storage.Migrator{Migrations: []storage.Migration{m1, m2}}).Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	err := (storage.Migrator{Migrations: []storage.Migration{m1}}).Migrate(t.Context(), db)
	if !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Fatalf("err = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "up to 1") {
		t.Errorf("error %q does not give both versions", err)
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	db := newDB(t)
	err := (storage.Migrator{Migrations: []storage.Migration{m1, bad}}).Migrate(t.Context(), db)
	if err == nil || !strings.Contains(err.Error(), "migration 2 (bad) statement 2") {
		t.Fatalf("err = %v, want failure in migration 2 statement 2", err)
	}
	if v := version(t, db); v != 1 {
		t.Errorf("version %d after failed migration, want 1", v)
	}
	if tableExists(t, db, "t3") {
		t.Error("failed migration's first statement was not rolled back")
	}
	// Fixing the migration lets the next start proceed.
	if err := (storage.Migrator{Migrations: []storage.Migration{m1, m2}}).Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if v := version(t, db); v != 2 {
		t.Errorf("version %d, want 2", v)
	}
}

func TestMigrateRejectsBadList(t *testing.T) {
	tests := []struct {
		name string
		ms   []storage.Migration
	}{
		{"starts at 0", []storage.Migration{{Version: 0, Name: "zero", Statements: []string{"SELECT 1"}}}},
		{"gap", []storage.Migration{m1, {Version: 3, Name: "three", Statements: []string{"SELECT 1"}}}},
		{"duplicate", []storage.Migration{m1, m1}},
		{"no name", []storage.Migration{{Version: 1, Statements: []string{"SELECT 1"}}}},
		{"no statements", []storage.Migration{{Version: 1, Name: "empty"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			if err := (storage.Migrator{Migrations: tc.ms}).Migrate(t.Context(), db); err == nil {
				t.Fatal("Migrate accepted a malformed list")
			}
			if tableExists(t, db, "schema_migrations") {
				t.Error("malformed list touched the database")
			}
		})
	}
}

func TestMigrateLockAndContext(t *testing.T) {
	tests := []struct {
		name     string
		lock     string
		canceled bool
		wantErr  string
	}{
		{"lock statement runs", "SELECT 1", false, ""},
		{"failing lock aborts", "SELECT no_such_function()", false, "lock schema"},
		{"canceled context", "", true, "context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			ctx, cancel := context.WithCancel(t.Context())
			if tc.canceled {
				cancel()
			}
			defer cancel()
			err := (storage.Migrator{Migrations: []storage.Migration{m1}, Lock: tc.lock}).Migrate(ctx, db)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Migrate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if want := tc.wantErr == ""; tableExists(t, db, "t1") != want {
				t.Errorf("t1 exists = %v, want %v", !want, want)
			}
		})
	}
}

func TestSchemaVersionOfUnmigratedDatabase(t *testing.T) {
	if _, err := storage.SchemaVersion(t.Context(), newDB(t)); err == nil {
		t.Error("SchemaVersion of an empty database succeeded")
	}
}

func TestMigrateConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	m := storage.Migrator{Migrations: []storage.Migration{m1, m2}}
	const n = 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		db := openDB(t, path) // separate handles, as separate processes would have
		// Connect first: switching a new file to WAL can fail with
		// SQLITE_BUSY without waiting, a race of SQLite's, not of the
		// migrator's, which this test is about.
		if err := db.PingContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = m.Migrate(context.Background(), db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	db := openDB(t, path)
	var rows int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM t1`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("migration 2 applied %d times (%v), want once", rows, err)
	}
}
