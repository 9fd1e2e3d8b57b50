package inactive

import (
	"context"
	"strings"
	"testing"
	"time"

	"parley/internal/storage"
	"parley/modules/internal/modtest"
)

// TestSweep walks an account through a year with a fake clock: warned
// 30 days before, deleted at 365 days; a login in between resets it.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := New(Options{Expire: 365 * 24 * time.Hour, Warn: 30 * 24 * time.Hour, Now: func() time.Time { return now }})
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	users := h.Store().Users()
	for _, u := range []string{"old@example.org", "active@example.org"} {
		if err := users.Create(ctx, storage.Account{JID: u, Created: now}); err != nil {
			t.Fatal(err)
		}
	}
	notices := func() (out []string) {
		for _, el := range h.TakeRouted() {
			out = append(out, el.Attr("to")+": "+el.Child("jabber:client", "body").Text())
		}
		return out
	}

	now = now.Add(300 * 24 * time.Hour)
	s := h.Connect(ctx, "active@example.org/phone") // a login resets the clock
	h.Disconnect(ctx, s)
	if err := m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := notices(); len(n) != 0 {
		t.Fatalf("warnings at 300 days: %v", n)
	}

	now = now.Add(40 * 24 * time.Hour) // 340 days idle: warn once
	for range 2 {
		if err := m.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n := notices()
	if len(n) != 1 || !strings.HasPrefix(n[0], "old@example.org: ") || !strings.Contains(n[0], "will be deleted") {
		t.Fatalf("at 340 days want one warning to old@, got %v", n)
	}

	now = now.Add(26 * 24 * time.Hour) // 366 days: deleted; active is at 66
	if err := m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Get(ctx, "old@example.org"); err == nil {
		t.Fatal("old@example.org survived 366 days without a login")
	}
	if _, err := users.Get(ctx, "active@example.org"); err != nil {
		t.Fatalf("active@example.org was deleted: %v", err)
	}
}
