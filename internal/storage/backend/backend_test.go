package backend

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"parley/internal/storage"
	"parley/internal/storage/storagetest"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		driver   string
		dsn      func(t *testing.T) string
		wantType string
	}{
		{SQLite, func(t *testing.T) string { return filepath.Join(t.TempDir(), "parley.db") }, "*sqlite.Store"},
		{Postgres, func(t *testing.T) string { return storagetest.PostgresDSN(t) }, "*postgres.Store"},
	}
	for _, tc := range tests {
		t.Run(tc.driver, func(t *testing.T) {
			s, err := Open(t.Context(), tc.driver, tc.dsn(t))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if got := fmt.Sprintf("%T", s); got != tc.wantType {
				t.Errorf("Open(%q) returned %s, want %s", tc.driver, got, tc.wantType)
			}
			// The store is migrated and usable straight away.
			u := s.Users()
			if err := u.Create(t.Context(), storage.Account{JID: "alice@example.com"}); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := u.Get(t.Context(), "alice@example.com"); err != nil {
				t.Fatalf("Get: %v", err)
			}
			// So are the repositories of later migrations.
			if _, err := s.Roster().Put(t.Context(), "alice@example.com", storage.RosterItem{Contact: "bob@example.com", Subscription: storage.SubNone}, 0); err != nil {
				t.Errorf("Roster.Put: %v", err)
			}
			if _, err := s.Offline().Push(t.Context(), "alice@example.com", []byte("m"), 1); err != nil {
				t.Errorf("Offline.Push: %v", err)
			}
			if err := s.KV().Put(t.Context(), "alice@example.com", "ns", "k", []byte("v")); err != nil {
				t.Errorf("KV.Put: %v", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, driver, dsn, wantErr string
	}{
		{"unknown driver", "mysql", "x", `unknown driver "mysql"`},
		{"driver names are exact", "SQLite", "x", "unknown driver"},
		{"empty driver", "", "x", "unknown driver"},
		{"bad sqlite path", SQLite, "", "invalid database path"},
		{"bad postgres dsn", Postgres, "postgres://%zz", "parse DSN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.driver, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExists) {
				t.Errorf("err = %v wraps a repository sentinel", err)
			}
		})
	}
}
