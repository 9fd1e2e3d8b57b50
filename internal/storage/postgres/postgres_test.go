package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"parley/internal/storage"
	"parley/internal/storage/storagetest"
)

func newDSN(t *testing.T) string { return storagetest.PostgresDSN(t) }

func openStore(ctx context.Context, dsn string) (storage.Store, error) { return Open(ctx, dsn) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Opener(newDSN, openStore))
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	storagetest.OpenRefusesNewerSchema(t, newDSN(t), storagetest.Driver(Open))
}

// Several server processes starting at once on an empty schema must apply
// each migration once; the advisory lock serialises them.
func TestConcurrentOpenOfNewSchema(t *testing.T) {
	storagetest.ConcurrentOpen(t, newDSN(t), migrator.Latest(), storagetest.Driver(Open))
}

// Tables must land in the schema the DSN names, not in public: that is what
// lets several instances share a database.
func TestOpenHonoursSearchPath(t *testing.T) {
	dsn := newDSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var schema string
	if err := s.DB().QueryRowContext(t.Context(),
		`SELECT table_schema FROM information_schema.tables WHERE table_name = 'accounts' AND table_schema = current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("accounts table not in current schema: %v", err)
	}
	if !strings.HasPrefix(schema, "parley_test_") {
		t.Errorf("accounts created in schema %q", schema)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, dsn string
	}{
		{"unparsable", "postgres://%zz"},
		{"unreachable", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"},
		{"missing schema", ""}, // filled in below
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := tc.dsn
			if dsn == "" {
				// search_path naming a schema that does not exist leaves
				// nowhere to create tables: Open must fail, not succeed
				// with an unusable store.
				dsn = strings.Replace(newDSN(t), "search_path=parley_test_", "search_path=parley_absent_", 1)
			}
			s, err := Open(t.Context(), dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", dsn)
			}
			t.Log(err)
		})
	}
}

// List's order must not depend on the server's locale; the test server may
// well use C.UTF-8, where the conformance suite alone could not tell.
func TestJIDColumnsUseByteOrderCollation(t *testing.T) {
	s, err := Open(t.Context(), newDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cols := []struct{ table, column string }{
		{"accounts", "jid"}, {"accounts", "domain"}, {"credentials", "jid"}, {"credentials", "hash"},
		{"roster_items", "owner"}, {"roster_items", "contact"}, {"roster_versions", "owner"},
		{"pending_in", "owner"}, {"pending_in", "contact"}, {"offline_messages", "owner"},
		{"kv", "owner"}, {"kv", "ns"}, {"kv", "key"},
	}
	for _, c := range cols {
		var coll string
		if err := s.DB().QueryRowContext(t.Context(),
			`SELECT COALESCE(collation_name, '') FROM information_schema.columns
			 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`, c.table, c.column).Scan(&coll); err != nil {
			t.Fatalf("%s.%s: %v", c.table, c.column, err)
		}
		if coll != "C" {
			t.Errorf("%s.%s collation = %q, want C", c.table, c.column, coll)
		}
	}
}

// A schema written by a build that only knew version 1 must upgrade in
// place on Open, keeping its accounts.
func TestUpgradeFromVersion1(t *testing.T) {
	dsn := newDSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	v1 := storage.Migrator{Lock: migrator.Lock, Migrations: migrator.Migrations[:1]}
	if err := v1.Migrate(t.Context(), db); err != nil {
		t.Fatalf("migrate to v1: %v", err)
	}
	storagetest.SeedV1(t, db, "alice@example.com", time.Now())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storagetest.CheckUpgradedFromV1(t, dsn, storagetest.Driver(Open), "alice@example.com")
}

func BenchmarkStore(b *testing.B) {
	storagetest.Benchmarks(b, storagetest.PostgresDSN, openStore)
}
