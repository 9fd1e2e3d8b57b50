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

// A login is written once per precision (a hundredth of the expiry), not
// at every login, also across a restart; a warning answered by a login
// does not silence the warning of a later idle period.
func TestLoginRecordedOncePerPrecision(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{Expire: 100 * 24 * time.Hour, Warn: 10 * 24 * time.Hour, Now: func() time.Time { return now }}
	m := New(opts)
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	if err := h.Store().Users().Create(ctx, storage.Account{JID: "u@example.org", Created: now}); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		v, err := h.Store().KV().Get(ctx, "u@example.org", ns, keyLogin)
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	login := func() {
		h.Disconnect(ctx, h.Connect(ctx, "u@example.org/r"))
	}
	login()
	first := stored()
	now = now.Add(23 * time.Hour) // within the precision of one day
	login()
	if got := stored(); got != first {
		t.Fatalf("a login within the precision was written: %s, then %s", first, got)
	}
	// A new process (empty memory) reads instead of writing.
	m2 := New(opts)
	r := h.Restart()
	if err := m2.Start(r); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Minute)
	r.Disconnect(ctx, r.Connect(ctx, "u@example.org/s"))
	if got := stored(); got != first {
		t.Fatalf("after a restart a login within the precision was written: %s", got)
	}
	now = now.Add(2 * time.Hour) // past a day since the recorded one
	login()
	if got := stored(); got == first {
		t.Fatal("a login past the precision was not written")
	}

	// Idle 91 days: warned once; a login; idle 91 days again: warned again.
	notices := func() int {
		n := 0
		for _, el := range h.TakeRouted() {
			if strings.Contains(el.Child("jabber:client", "body").Text(), "will be deleted") {
				n++
			}
		}
		return n
	}
	now = now.Add(91 * 24 * time.Hour)
	for range 2 {
		if err := m.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := notices(); n != 1 {
		t.Fatalf("%d warnings after 91 idle days, want 1", n)
	}
	now = now.Add(time.Hour)
	login()
	now = now.Add(91 * 24 * time.Hour)
	if err := m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := notices(); n != 1 {
		t.Fatalf("%d warnings after a login and 91 more idle days, want 1", n)
	}
}
