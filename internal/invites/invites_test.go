package invites

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUseOnceUnderRace(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	now := time.Now()
	token, inv, err := s.Create(Spec{Host: "example.org", Uses: 1, TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dir + "/" + FileName); strings.Contains(string(b), token) {
		t.Fatal("the token is stored in clear")
	}
	if _, err := s.Check(token, "other.org", now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a token for another host: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			// Separate Stores, as the CLI and the server are.
			if _, err := Open(dir).Use(token, "example.org", now); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("a one-use invite was used %d times", ok)
	}
	if err := s.Release(inv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Use(token, "example.org", now); err != nil {
		t.Fatalf("a released use could not be taken again: %v", err)
	}
	if _, err := s.Check(token, "example.org", now.Add(2*time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an expired invite: %v", err)
	}
}

// Lookup tells a usable invite from one that is gone (used, withdrawn,
// expired) for Remember after its expiry, and from an unknown token.
func TestLookupAndRevoke(t *testing.T) {
	s := Open(t.TempDir())
	now := time.Now()
	mk := func(ttl time.Duration) (string, Invite) {
		token, inv, err := s.Create(Spec{Host: "example.org", Uses: 1, TTL: ttl, Contact: "alice@example.org", Admin: true}, now)
		if err != nil {
			t.Fatal(err)
		}
		return token, inv
	}
	used, _ := mk(time.Hour)
	revoked, rinv := mk(time.Hour)
	expiring, _ := mk(time.Minute)
	if inv, err := s.Lookup(used, now); err != nil || inv.Contact != "alice@example.org" || !inv.Admin {
		t.Fatalf("a new invite: %+v, %v", inv, err)
	}
	if _, err := s.Use(used, "example.org", now); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(rinv.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(rinv.ID, now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	later := now.Add(2 * time.Minute)
	for token, why := range map[string]string{used: "it has been used", revoked: "it was withdrawn", expiring: "it has expired"} {
		inv, err := s.Lookup(token, later)
		if !errors.Is(err, ErrGone) || inv.Why(later) != why {
			t.Errorf("Lookup: %v, %q; want ErrGone, %q", err, inv.Why(later), why)
		}
		if _, err := s.Check(token, "example.org", later); !errors.Is(err, ErrInvalid) {
			t.Errorf("Check of an invite that is gone: %v", err)
		}
	}
	if _, err := s.Lookup("no-such-token", later); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an unknown token: %v", err)
	}
	if list, err := s.List(later); err != nil || len(list) != 0 {
		t.Fatalf("List shows invites that are gone: %v, %v", list, err)
	}
	// Forgotten once Remember has passed since they expired.
	if _, err := s.List(now.Add(time.Hour + Remember + time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(used, now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an invite long gone is still remembered: %v", err)
	}
}

func TestAdmins(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	if got := s.AdminJIDs(); len(got) != 0 {
		t.Fatalf("admins without a file: %v", got)
	}
	now := time.Now()
	if err := s.AddAdmin("bob@example.org", "abc", now); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAdmin("bob@example.org", "def", now); err != nil {
		t.Fatal(err)
	}
	if got := s.AdminJIDs(); !slices.Equal(got, []string{"bob@example.org"}) {
		t.Fatalf("AdminJIDs after adding = %v", got)
	}
	// Another process (the CLI) removes it: the server's store notices.
	if err := Open(dir).RemoveAdmin("bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := Open(dir).RemoveAdmin("bob@example.org"); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("removing twice: %v", err)
	}
	s.admins.forget() // instead of waiting adminRecheck
	if got := s.AdminJIDs(); len(got) != 0 {
		t.Fatalf("AdminJIDs after another process removed it = %v", got)
	}
}
