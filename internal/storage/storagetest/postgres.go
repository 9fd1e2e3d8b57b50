package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresDSNEnv names the environment variable holding the DSN of the
// PostgreSQL server the tests use.
const PostgresDSNEnv = "PARLEY_TEST_POSTGRES_DSN"

// DefaultPostgresDSN is tried when PostgresDSNEnv is unset.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresDSN returns a DSN whose search_path is a fresh schema of its own,
// dropped (with everything in it) when tb finishes, so tests can run in
// parallel on one server without seeing each other's tables.
//
// If PostgresDSNEnv is unset and the default server cannot be reached, tb is
// skipped; if the variable is set, an unreachable server fails tb, so CI that
// asked for PostgreSQL cannot silently skip it.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn, fromEnv := os.LookupEnv(PostgresDSNEnv)
	if !fromEnv || dsn == "" {
		dsn, fromEnv = DefaultPostgresDSN, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if !fromEnv {
			tb.Skipf("PostgreSQL not reachable at the default %s (%v); set %s to run these tests", DefaultPostgresDSN, err, PostgresDSNEnv)
		}
		tb.Fatalf("connect to %s: %v", PostgresDSNEnv, err)
	}
	defer conn.Close(context.Background())

	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand panics instead)
	schema := "parley_test_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(dsn, schema)
}

// withSearchPath sets the search_path run-time parameter in either DSN form
// libpq (and so pgx) accepts.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	// In key=value form a later key overrides an earlier one.
	return dsn + " search_path=" + schema
}
