package modtest

import (
	"context"
	"errors"
	"testing"

	"parley/internal/vault"
)

func TestVaultUnlockLock(t *testing.T) {
	ctx := context.Background()
	h := NewHost("example.org")
	h.AddUser("juliet@example.org")
	v := h.Vault()
	if _, err := v.Seal(ctx, "juliet@example.org", []byte("x"), nil); !errors.Is(err, vault.ErrNoKey) {
		t.Fatalf("Seal before Unlock = %v, want ErrNoKey", err)
	}
	h.Unlock("juliet@example.org")
	if !v.Held("juliet@example.org") {
		t.Fatal("not held after Unlock")
	}
	h.Lock("juliet@example.org")
	blob, err := v.Seal(ctx, "juliet@example.org", []byte("away"), nil)
	if err != nil || !vault.IsMailDrop(blob) {
		t.Fatalf("Seal after Lock = %x, %v; want mail-drop", blob, err)
	}
	if _, err := v.Open(ctx, "juliet@example.org", blob, nil); !errors.Is(err, vault.ErrLocked) {
		t.Fatalf("Open while locked = %v", err)
	}
	h.Unlock("juliet@example.org")
	if got, err := v.Open(ctx, "juliet@example.org", blob, nil); err != nil || string(got) != "away" {
		t.Fatalf("Open after Unlock = %q, %v", got, err)
	}
	if h.Restart().Vault().Held("juliet@example.org") {
		t.Fatal("a key survived a restart")
	}
}
