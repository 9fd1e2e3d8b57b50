package invites

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUseOnceUnderRace(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	now := time.Now()
	token, inv, err := s.Create("example.org", 1, time.Hour, "", now)
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
