package storagetest

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
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

// CheckUpgradedFromV1 is for drivers' upgrade tests: loc is a database
// that a version-1 build had migrated and that holds the account jid. Open
// must upgrade it in place: the account must have survived and the later
// repositories must work for it, cascade included.
func CheckUpgradedFromV1(t *testing.T, loc string, open func(ctx context.Context, loc string) (Migratable, error), jid string) {
	t.Helper()
	ctx := t.Context()
	s, err := open(ctx, loc)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v < 2 {
		t.Fatalf("SchemaVersion after upgrade = %d, %v; want >= 2", v, err)
	}
	if got := mustGet(t, s.Users(), jid); !credsEqual(got.Credentials, credSet(1)) {
		t.Errorf("credentials changed by the upgrade: %+v", got.Credentials)
	}
	if v := mustPut(t, s.Roster(), jid, item("bob@example.com", storage.SubBoth)); v != 1 {
		t.Errorf("first roster version after upgrade = %d, want 1", v)
	}
	mustPush(t, s.Offline(), jid, []byte("m"))
	mustKVPut(t, s.KV(), jid, "ns", "k", []byte("v"))
	if err := s.Users().Delete(ctx, jid); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, table := range []string{"roster_items", "roster_versions", "offline_messages", "kv"} {
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows after the account was deleted", table, n)
		}
	}
}

// SeedV1 creates an account with credSet(1) through the version-1 schema,
// i.e. with SQL, since the store cannot be opened at that version. created
// is in the driver's column representation.
func SeedV1(t *testing.T, db *sql.DB, jid string, created any) {
	t.Helper()
	domain, err := storage.DomainOf(jid)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `INSERT INTO accounts (jid, domain, created) VALUES ($1, $2, $3)`, jid, domain, created); err != nil {
		t.Fatalf("seed account: %v", err)
	}
	for _, c := range credSet(1) {
		if _, err := db.ExecContext(ctx,
			`INSERT INTO credentials (jid, hash, salt, iterations, stored_key, server_key) VALUES ($1, $2, $3, $4, $5, $6)`,
			jid, c.Hash, c.Salt, c.Iterations, c.StoredKey, c.ServerKey); err != nil {
			t.Fatalf("seed credential: %v", err)
		}
	}
}

// OpenRefusesNewerSchema checks a driver's Open on a database that a newer
// parley migrated: it must fail with ErrSchemaTooNew rather than run on a
// schema it does not know. loc is a fresh database for open.
func OpenRefusesNewerSchema(t *testing.T, loc string, open func(ctx context.Context, loc string) (Migratable, error)) {
	t.Helper()
	s, err := open(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'x')`, v+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = open(t.Context(), loc)
	if !errors.Is(err, storage.ErrSchemaTooNew) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open: err = %v, want ErrSchemaTooNew", err)
	}
	t.Log(err)
}

// ConcurrentOpen checks that several processes opening a new database at
// once agree on one schema, at version latest.
func ConcurrentOpen(t *testing.T, loc string, latest int, open func(ctx context.Context, loc string) (Migratable, error)) {
	t.Helper()
	const n = 6
	var wg sync.WaitGroup
	stores := make([]Migratable, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = open(context.Background(), loc) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	v, err := stores[0].SchemaVersion(t.Context())
	if err != nil || v != latest {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, latest)
	}
}
