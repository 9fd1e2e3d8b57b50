package storagetest

import (
	"errors"
	"strings"
	"testing"

	"parley/internal/storage"
)

func migratable(t *testing.T, s storage.Store) Migratable {
	t.Helper()
	m, ok := s.(Migratable)
	if !ok {
		t.Fatalf("%T does not implement storagetest.Migratable", s)
	}
	return m
}

func runMigrations(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("ReopenIsIdempotent", func(t *testing.T) {
		t.Parallel()
		first := migratable(t, open(t))
		v1, err := first.SchemaVersion(t.Context())
		if err != nil {
			t.Fatalf("SchemaVersion: %v", err)
		}
		if v1 < 1 {
			t.Fatalf("fresh store at schema version %d, want >= 1", v1)
		}
		mustCreate(t, first.Users(), "alice@example.com", credSet(1))
		if err := first.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		second := migratable(t, open(t))
		if err := second.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate on current schema: %v", err)
		}
		v2, err := second.SchemaVersion(t.Context())
		if err != nil {
			t.Fatalf("SchemaVersion: %v", err)
		}
		if v2 != v1 {
			t.Errorf("schema version after reopen = %d, want %d", v2, v1)
		}
		var rows int
		if err := second.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil {
			t.Fatalf("count schema_migrations: %v", err)
		}
		if rows != v1 {
			t.Errorf("schema_migrations has %d rows, want one per version (%d)", rows, v1)
		}
		if got := mustGet(t, second.Users(), "alice@example.com"); !credsEqual(got.Credentials, credSet(1)) {
			t.Errorf("data changed across reopen: %+v", got.Credentials)
		}
	})

	t.Run("RefusesNewerSchema", func(t *testing.T) {
		t.Parallel()
		s := migratable(t, open(t))
		v, err := s.SchemaVersion(t.Context())
		if err != nil {
			t.Fatalf("SchemaVersion: %v", err)
		}
		// Pretend a newer parley migrated this database.
		if _, err := s.DB().ExecContext(t.Context(),
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			v+1, "from the future", "2999-01-01T00:00:00Z"); err != nil {
			t.Fatalf("insert future migration: %v", err)
		}
		err = s.Migrate(t.Context())
		if !errors.Is(err, storage.ErrSchemaTooNew) {
			t.Fatalf("Migrate on newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		// The operator needs both versions to understand what happened.
		for _, want := range []string{"newer", "version"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if got, err := s.SchemaVersion(t.Context()); err != nil || got != v+1 {
			t.Errorf("refused Migrate changed version to %d, %v; want %d", got, err, v+1)
		}
	})
}

func runStore(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("PingAndClose", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Error("Ping after Close succeeded")
		}
		if _, err := s.Users().Get(t.Context(), "alice@example.com"); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get after Close: err = %v, want a closed-store error", err)
		}
	})
}
