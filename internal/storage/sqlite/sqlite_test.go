package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"parley/internal/storage"
	"parley/internal/storage/storagetest"
)

func newPath(t *testing.T) string { return filepath.Join(t.TempDir(), "parley.db") }

func openStore(ctx context.Context, path string) (storage.Store, error) { return Open(ctx, path) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Opener(newPath, openStore))
}

// The in-memory store that module tests use is the same store: it passes
// the repositories' conformance suite. A second opening with the same t
// is the same database, as the suite expects, seen through a second
// handle whose Close leaves the database open.
func TestMemoryConformance(t *testing.T) {
	var (
		mu     sync.Mutex
		stores = map[*testing.T]*Store{}
	)
	open := func(t *testing.T) storage.Store {
		mu.Lock()
		defer mu.Unlock()
		if s, ok := stores[t]; ok {
			return secondHandle{s}
		}
		s, err := OpenMemory(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		stores[t] = s
		t.Cleanup(func() { s.Close() })
		return s
	}
	storagetest.RunRepositories(t, open)
}

type secondHandle struct{ *Store }

func (secondHandle) Close() error { return nil }

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "parley.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	// Write something so the WAL file exists.
	if err := s.Users().Create(t.Context(), storage.Account{JID: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		path string
		want os.FileMode
	}{
		{filepath.Dir(dir), 0o700 | os.ModeDir},
		{dir, 0o700 | os.ModeDir},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
	}
	for _, c := range checks {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if fi.Mode() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
}

func TestOpenUsesWAL(t *testing.T) {
	path := newPath(t)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pragmas := []struct{ name, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", strconv.Itoa(busyTimeoutMS)},
		{"synchronous", "1"}, // NORMAL
		{"temp_store", "2"},  // MEMORY
		{"cache_size", strconv.Itoa(-writerCacheKiB)},
	}
	for _, p := range pragmas {
		var got string
		if err := s.DB().QueryRowContext(t.Context(), "PRAGMA "+p.name).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", p.name, err)
		}
		if got != p.want {
			t.Errorf("PRAGMA %s = %q, want %q", p.name, got, p.want)
		}
	}
	// The reader pool must refuse writes: it has no IMMEDIATE transactions,
	// so a write there could hit SQLITE_BUSY without waiting.
	r, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ExecContext(t.Context(), `DELETE FROM accounts`); err == nil {
		t.Error("write through the reader pool succeeded")
	}
}

func TestOpenInvalidPath(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro", "x#y.db", filepath.Join(blocker, "sub", "parley.db")} {
		if s, err := Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	storagetest.OpenRefusesNewerSchema(t, newPath(t), storagetest.Driver(Open))
}

// Several processes starting at once on a new file must agree on one schema.
func TestConcurrentOpenOfNewFile(t *testing.T) {
	storagetest.ConcurrentOpen(t, newPath(t), migrator.Latest(), storagetest.Driver(Open))
}

// The `parley user add` command writes while the server runs: a real second
// process, whose file locks SQLite cannot share in memory with this one.
// The helper process is this test binary re-executed.
const helperEnv = "PARLEY_SQLITE_HELPER_DB"

func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := newPath(t)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	out := make(chan error, 1)
	go func() {
		b, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, b)
		}
		out <- err
	}()
	for i := range helperWrites {
		jid := fmt.Sprintf("parent%d@example.com", i)
		if err := s.Users().Create(t.Context(), storage.Account{JID: jid}); err != nil {
			t.Errorf("Create(%s): %v", jid, err)
		}
		if err := s.Users().SetCredentials(t.Context(), jid, []storage.Credential{{Hash: "SHA-256", Iterations: i}}); err != nil {
			t.Errorf("SetCredentials(%s): %v", jid, err)
		}
	}
	if err := <-out; err != nil {
		t.Fatalf("helper process: %v", err)
	}
	if n, err := s.Users().Count(t.Context(), "example.com"); err != nil || n != 2*helperWrites {
		t.Errorf("Count = %d, %v; want %d", n, err, 2*helperWrites)
	}
}

const helperWrites = 100

func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("only runs as TestTwoProcesses' child")
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range helperWrites {
		jid := fmt.Sprintf("child%d@example.com", i)
		if err := s.Users().Create(t.Context(), storage.Account{JID: jid, Credentials: []storage.Credential{{Hash: "SHA-1"}}}); err != nil {
			t.Fatalf("Create(%s): %v", jid, err)
		}
		if err := s.Users().SetCredentials(t.Context(), jid, []storage.Credential{{Hash: "SHA-512", Iterations: i}}); err != nil {
			t.Fatalf("SetCredentials(%s): %v", jid, err)
		}
		if _, err := s.Users().Get(t.Context(), fmt.Sprintf("parent%d@example.com", i)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
	}
}

// A database written by a build that only knew version 1 must upgrade in
// place on Open, keeping its accounts.
func TestUpgradeFromVersion1(t *testing.T) {
	path := newPath(t)
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	v1 := storage.Migrator{Migrations: migrator.Migrations[:1]}
	if err := v1.Migrate(t.Context(), db); err != nil {
		t.Fatalf("migrate to v1: %v", err)
	}
	storagetest.SeedV1(t, db, "alice@example.com", time.Now().UnixMicro())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storagetest.CheckUpgradedFromV1(t, path, storagetest.Driver(Open), "alice@example.com")
}

func BenchmarkStore(b *testing.B) {
	storagetest.Benchmarks(b, func(b testing.TB) string { return filepath.Join(b.TempDir(), "bench.db") }, openStore)
}
