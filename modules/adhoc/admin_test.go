package adhoc

import (
	"context"
	"strings"
	"testing"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/modules/internal/modtest"
)

// TestChangePasswordRewrapsHeldKey: XEP-0133 change-user-password runs
// inside the server, so for a user whose key is held it wraps that key
// under the new password and says nothing is lost; for one whose key is
// not held it says what the reset costs, and no key stays held.
func TestChangePasswordRewrapsHeldKey(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	m := New(Options{Admins: []string{"admin@example.org"}})
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	v := h.Vault()
	change := func(account, password string) string {
		t.Helper()
		f := dataform.New(dataform.TypeSubmit, NSAdmin)
		f.Add("accountjid", "", account)
		f.Add("password", "", password)
		r, err := m.changePassword(ctx, jid.MustParse("admin@example.org/console"), f)
		if err != nil {
			t.Fatalf("change-user-password %s: %v", account, err)
		}
		return r.Note
	}

	h.AddUser("dave@example.org")
	h.Unlock("dave@example.org")
	blob, err := v.Seal(ctx, "dave@example.org", []byte("kept"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if note := change("dave@example.org", "pw2"); strings.Contains(note, SealedLostNote) {
		t.Fatalf("a change while dave's key is held: %q", note)
	}
	h.Lock("dave@example.org")
	a, err := h.Store().Users().Get(ctx, "dave@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.UnlockPassword(ctx, "dave@example.org", "pw2", a.Credentials); err != nil {
		t.Fatalf("the new password does not unwrap dave's key: %v", err)
	}
	if got, err := v.Open(ctx, "dave@example.org", blob, nil); err != nil || string(got) != "kept" {
		t.Fatalf("dave's data after the change = %q, %v", got, err)
	}

	h.AddUser("erin@example.org")
	h.Unlock("erin@example.org")
	h.Lock("erin@example.org")
	if note := change("erin@example.org", "pw2"); !strings.Contains(note, SealedLostNote) {
		t.Fatalf("a reset while erin is away: %q", note)
	}
	if v.Held("erin@example.org") {
		t.Fatal("a key is held for erin after her reset")
	}
}
