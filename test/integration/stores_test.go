package integration

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

type storeDriver struct {
	name string
	toml string // the [storage] section, "" for the default SQLite
}

const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// storeDrivers lists the stores to run a test against: SQLite always, and
// PostgreSQL in a fresh schema of its own (dropped afterwards).
func storeDrivers(t *testing.T) []storeDriver {
	t.Helper()
	drivers := []storeDriver{{name: "sqlite"}}
	dsn := os.Getenv("PARLEY_TEST_POSTGRES_DSN")
	if dsn == "" {
		dsn = defaultPostgresDSN
	}
	db, err := sql.Open("pgx", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is not reachable (%v)", dsn, err)
		if os.Getenv("PARLEY_TEST_POSTGRES_DSN") != "" || os.Getenv("CI") == "true" || os.Getenv("PARLEY_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Log(msg + "; running on SQLite only")
		return drivers
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "parley_it_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP SCHEMA " + schema + " CASCADE")
		db.Close()
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	drivers = append(drivers, storeDriver{
		name: "postgres",
		toml: fmt.Sprintf("[storage]\ndriver = \"postgres\"\ndsn = %q\n", dsn+sep+"search_path="+schema),
	})
	return drivers
}
