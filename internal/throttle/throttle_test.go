package throttle

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(3, time.Minute)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if !l.Spend("a") {
			t.Fatalf("spend %d refused within burst", i)
		}
	}
	if l.Spend("a") || l.Allowed("a") {
		t.Fatal("fourth event in a minute allowed")
	}
	if !l.Spend("b") {
		t.Fatal("another key was throttled")
	}
	now = now.Add(20 * time.Second) // one token back
	if !l.Allowed("a") || !l.Spend("a") {
		t.Fatal("token not regained after a third of the period")
	}
	if l.Spend("a") {
		t.Fatal("only one token should have come back")
	}
	now = now.Add(2 * time.Minute)
	l.Spend("c") // triggers a sweep: a and b are full again
	if got := l.Len(); got != 1 {
		t.Fatalf("after sweep %d keys tracked, want 1", got)
	}
}

func TestDisabled(t *testing.T) {
	l := New(0, time.Minute)
	for range 100 {
		if !l.Spend("x") {
			t.Fatal("a disabled limiter refused")
		}
	}
}

func TestRefund(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(2, time.Minute)
	l.now = func() time.Time { return now }
	l.Spend("a")
	l.Spend("a")
	l.Refund("a")
	if !l.Spend("a") {
		t.Fatal("a refunded token could not be spent")
	}
	if l.Spend("a") {
		t.Fatal("refund gave back more than one token")
	}
	now = now.Add(time.Minute) // full again
	l.Refund("a")
	l.Spend("a")
	l.Spend("a")
	if l.Spend("a") {
		t.Fatal("a refund to a full bucket raised it above the burst")
	}
}
