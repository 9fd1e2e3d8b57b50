package recent

import (
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	s := New(2)
	t0 := time.Unix(1e9, 0)
	if s.Within("a", t0, 0) {
		t.Fatal("an unknown key is known")
	}
	s.Add("a", t0)
	if !s.Within("a", t0.Add(time.Hour), 0) || !s.Within("a", t0.Add(59*time.Minute), time.Hour) {
		t.Fatal("a key added is not found")
	}
	if s.Within("a", t0.Add(time.Hour), time.Hour) {
		t.Fatal("a key older than d counts as recent")
	}
	s.Add("a", t0.Add(time.Hour)) // renewing does not count as a new key
	s.Add("b", t0)
	if s.Len() != 2 || !s.Within("a", t0.Add(time.Hour), time.Minute) {
		t.Fatalf("after renewing a and adding b: %d keys", s.Len())
	}
	s.Add("c", t0) // past the bound: everything else is forgotten
	if s.Len() != 1 || s.Within("a", t0, 0) || !s.Within("c", t0, 0) {
		t.Fatalf("past the bound: %d keys, a known %v", s.Len(), s.Within("a", t0, 0))
	}
}
