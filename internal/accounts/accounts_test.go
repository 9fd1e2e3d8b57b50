package accounts

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"parley/internal/jid"
	"parley/internal/seal"
	"parley/internal/storage"
	"parley/internal/storage/sqlite"
	"parley/internal/vault"
)

// newService is an account service over an in-memory store with a vault,
// as the server has it.
func newService(t *testing.T) (*Service, *vault.Vault) {
	t.Helper()
	st, err := sqlite.OpenMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v := vault.New(st.Keys(), bytes.Repeat([]byte{7}, 32), vault.Options{})
	t.Cleanup(v.Stop)
	s := New(st, v)
	s.iterations = 4096 // the default's cost buys nothing here
	return s, v
}

// login unlocks the account's key from its password as a login that
// knows it does, and counts a session.
func login(t *testing.T, s *Service, v *vault.Vault, bare jid.JID, password string) {
	t.Helper()
	if err := unlock(s, v, bare, password); err != nil {
		t.Fatal(err)
	}
	if !v.Held(bare.String()) {
		t.Fatalf("%s's key is not held after a login", bare)
	}
	v.Acquire(bare.String())
}

func unlock(s *Service, v *vault.Vault, bare jid.JID, password string) error {
	a, err := s.store.Users().Get(context.Background(), bare.String())
	if err != nil {
		return err
	}
	return v.UnlockPassword(context.Background(), bare.String(), password, a.Credentials)
}

// loggedIn creates local@example.org with password "pw" and logs it in.
func loggedIn(t *testing.T, s *Service, v *vault.Vault, local string) jid.JID {
	t.Helper()
	bare := jid.MustParse(local + "@example.org")
	if err := s.Create(context.Background(), bare, "pw"); err != nil {
		t.Fatal(err)
	}
	login(t, s, v, bare, "pw")
	return bare
}

// TestChangePasswordKeepsHeldKey: the server holds the key of a user who
// is logged in, so a password change (the control command, XEP-0133 or
// XEP-0077, all through ChangePassword) wraps that same key again.
func TestChangePasswordKeepsHeldKey(t *testing.T) {
	ctx := context.Background()
	s, v := newService(t)
	alice := loggedIn(t, s, v, "alice")
	old, err := v.Seal(ctx, alice.String(), []byte("archived before"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lost, err := s.ChangePassword(ctx, alice, "pw2")
	if err != nil || lost {
		t.Fatalf("ChangePassword while logged in = %v, %v; want kept", lost, err)
	}
	if !v.Held(alice.String()) {
		t.Fatal("the key was dropped by a change that kept it")
	}
	later, err := v.Seal(ctx, alice.String(), []byte("sealed after"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The grace ends; the new password opens both.
	v.Release(alice.String())
	v.Lock(alice.String())
	if err := unlock(s, v, alice, "pw"); err == nil || v.Held(alice.String()) {
		t.Fatal("the old password still unlocks the key")
	}
	login(t, s, v, alice, "pw2")
	for want, blob := range map[string][]byte{"archived before": old, "sealed after": later} {
		if got, err := v.Open(ctx, alice.String(), blob, nil); err != nil || string(got) != want {
			t.Fatalf("Open after the change = %q, %v; want %q", got, err, want)
		}
	}
}

// TestChangePasswordResetForgets: with the key not held the account
// starts over with new keys (lost), and what the server seals for the
// user afterwards, also while they are away, opens with the new password:
// nothing is sealed to the old mail-drop key it had cached.
func TestChangePasswordResetForgets(t *testing.T) {
	ctx := context.Background()
	s, v := newService(t)
	bob := loggedIn(t, s, v, "bob")
	old, _ := v.Seal(ctx, bob.String(), []byte("under the old key"), nil)
	v.Release(bob.String())
	v.Lock(bob.String())
	// Sealing while he is away caches his old public key.
	if _, err := v.Seal(ctx, bob.String(), []byte("to the old mail-drop"), nil); err != nil {
		t.Fatal(err)
	}
	lost, err := s.ChangePassword(ctx, bob, "reset")
	if err != nil || !lost {
		t.Fatalf("ChangePassword while away = %v, %v; want lost", lost, err)
	}
	if v.Held(bob.String()) {
		t.Fatal("a key is held after a reset")
	}
	away, err := v.Seal(ctx, bob.String(), []byte("after the reset"), nil)
	if err != nil || !vault.IsMailDrop(away) {
		t.Fatalf("sealing for bob after the reset: %v (mail-drop %v)", err, vault.IsMailDrop(away))
	}
	login(t, s, v, bob, "reset")
	if got, err := v.Open(ctx, bob.String(), away, nil); err != nil || string(got) != "after the reset" {
		t.Fatalf("what arrived after the reset = %q, %v", got, err)
	}
	if _, err := v.Open(ctx, bob.String(), old, nil); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("data under the old key = %v, want seal.ErrWrongKey", err)
	}
}

// TestDisableAndDeleteForgetKey: disabling or deleting an account wipes
// its key at once, while its sessions are still being ended, not after
// the grace.
func TestDisableAndDeleteForgetKey(t *testing.T) {
	ctx := context.Background()
	s, v := newService(t)
	carol, dave := loggedIn(t, s, v, "carol"), loggedIn(t, s, v, "dave")
	if err := s.SetDisabled(ctx, carol, true); err != nil {
		t.Fatal(err)
	}
	if v.Held(carol.String()) {
		t.Fatal("a disabled account's key is still held")
	}
	if err := s.SetDisabled(ctx, carol, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, dave); err != nil {
		t.Fatal(err)
	}
	if v.Held(dave.String()) {
		t.Fatal("a deleted account's key is still held")
	}
	if err := s.SetDisabled(ctx, dave, true); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("disabling a deleted account = %v, want ErrNotFound", err)
	}
}
