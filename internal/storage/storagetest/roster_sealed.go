package storagetest

import (
	"bytes"
	"errors"
	"testing"

	"parley/internal/storage"
)

func sealed(blind, data string, sub string) storage.SealedItem {
	return storage.SealedItem{Blind: []byte(blind), Sealed: []byte(data), Subscription: sub}
}

func sealedEqual(a, b storage.SealedItem) bool {
	return bytes.Equal(a.Blind, b.Blind) && bytes.Equal(a.Sealed, b.Sealed) &&
		a.Subscription == b.Subscription && a.Ask == b.Ask && a.Approved == b.Approved
}

func mustPutSealed(t *testing.T, r storage.Roster, owner string, it storage.SealedItem, replaces string) int64 {
	t.Helper()
	v, err := r.PutSealed(t.Context(), owner, it, replaces, 0)
	if err != nil {
		t.Fatalf("PutSealed(%s, %q): %v", owner, it.Blind, err)
	}
	return v
}

func mustSealedItems(t *testing.T, r storage.Roster, owner string) ([]storage.SealedItem, int64) {
	t.Helper()
	items, v, err := r.SealedItems(t.Context(), owner)
	if err != nil {
		t.Fatalf("SealedItems(%s): %v", owner, err)
	}
	return items, v
}

func pendingBlinds(ps []storage.SealedPending) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Blind) + "=" + string(p.Sealed)
	}
	return out
}

// runSealedRoster tests the sealed rows of issue 16 and how they share
// the version, the count and the limit with the clear ones.
func runSealedRoster(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice = "alice@example.com"
	t.Run("RoundTripAndOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		if items, v := mustSealedItems(t, r, alice); len(items) != 0 || v != 0 {
			t.Fatalf("new roster: %d sealed items, version %d", len(items), v)
		}
		b := sealed("\x02bb", "sealed-b", storage.SubBoth)
		b.Ask, b.Approved = true, true
		v1 := mustPutSealed(t, r, alice, b, "")
		v2 := mustPutSealed(t, r, alice, sealed("\x01aa", "sealed-a", storage.SubNone), "")
		v3 := mustPut(t, r, alice, item("carol@example.com", storage.SubTo))
		if !(v1 < v2 && v2 < v3) {
			t.Errorf("versions %d, %d, %d: want increasing across sealed and clear writes", v1, v2, v3)
		}
		items, v := mustSealedItems(t, r, alice)
		if v != v3 || len(items) != 2 || string(items[0].Blind) != "\x01aa" || !sealedEqual(items[1], b) {
			t.Fatalf("SealedItems = %+v, version %d; want a then b at version %d", items, v, v3)
		}
		got, err := r.SealedItem(t.Context(), alice, b.Blind)
		if err != nil || !sealedEqual(got, b) {
			t.Errorf("SealedItem = %+v, %v; want %+v", got, err, b)
		}
		if _, err := r.SealedItem(t.Context(), alice, []byte("nope")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SealedItem of a missing blind: %v, want ErrNotFound", err)
		}
		if n, err := r.Count(t.Context(), alice); err != nil || n != 3 {
			t.Errorf("Count = %d, %v; want 3 (two sealed, one clear)", n, err)
		}
		if clear, _ := mustItems(t, r, alice); len(clear) != 1 {
			t.Errorf("clear items = %v, want only carol", contacts(clear))
		}
	})
	t.Run("ReplacesClearItem", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		mustPut(t, r, alice, item("bob@example.com", storage.SubFrom, "friends"))
		mustPutSealed(t, r, alice, sealed("bob-blind", "bob-sealed", storage.SubFrom), "bob@example.com")
		if clear, _ := mustItems(t, r, alice); len(clear) != 0 {
			t.Errorf("the clear item stayed: %v", contacts(clear))
		}
		if n, _ := r.Count(t.Context(), alice); n != 1 {
			t.Errorf("Count = %d, want 1", n)
		}
	})
	t.Run("StateLeavesSealedAlone", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		v1 := mustPutSealed(t, r, alice, sealed("bob", "name and groups", storage.SubNone), "")
		v2, err := r.SetSealedState(t.Context(), alice, []byte("bob"), storage.SubFrom, true, false)
		if err != nil || v2 <= v1 {
			t.Fatalf("SetSealedState = %d, %v; want a version above %d", v2, err, v1)
		}
		want := sealed("bob", "name and groups", storage.SubFrom)
		want.Ask = true
		if got, err := r.SealedItem(t.Context(), alice, []byte("bob")); err != nil || !sealedEqual(got, want) {
			t.Errorf("after SetSealedState: %+v, %v; want %+v", got, err, want)
		}
		if _, err := r.SetSealedState(t.Context(), alice, []byte("nobody"), storage.SubTo, false, false); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetSealedState of a missing item: %v, want ErrNotFound", err)
		}
		if _, err := r.SetSealedState(t.Context(), alice, []byte("bob"), "sideways", false, false); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("SetSealedState with a bad subscription: %v, want ErrInvalid", err)
		}
		if _, v := mustSealedItems(t, r, alice); v != v2 {
			t.Errorf("failed state changes moved the version to %d, want %d", v, v2)
		}
		// Resealing keeps the version: the content did not change.
		if err := r.Reseal(t.Context(), alice, []byte("bob"), []byte("under the data key")); err != nil {
			t.Fatalf("Reseal: %v", err)
		}
		got, _ := r.SealedItem(t.Context(), alice, []byte("bob"))
		if _, v := mustSealedItems(t, r, alice); v != v2 || string(got.Sealed) != "under the data key" || got.Subscription != storage.SubFrom {
			t.Errorf("after Reseal: %+v at version %d, want the new blob, state kept, version %d", got, v, v2)
		}
		if err := r.Reseal(t.Context(), alice, []byte("nobody"), []byte("x")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Reseal of a missing item: %v, want ErrNotFound", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		v1 := mustPutSealed(t, r, alice, sealed("bob", "x", storage.SubNone), "")
		v2, err := r.DeleteSealed(t.Context(), alice, []byte("bob"))
		if err != nil || v2 <= v1 {
			t.Fatalf("DeleteSealed = %d, %v", v2, err)
		}
		if _, err := r.DeleteSealed(t.Context(), alice, []byte("bob")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second DeleteSealed: %v, want ErrNotFound", err)
		}
		if items, v := mustSealedItems(t, r, alice); len(items) != 0 || v != v2 {
			t.Errorf("after delete: %d items, version %d; want none at %d", len(items), v, v2)
		}
	})
	t.Run("LimitCountsBoth", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		mustPut(t, r, alice, item("bob@example.com", storage.SubNone))
		mustPutSealed(t, r, alice, sealed("carol", "x", storage.SubNone), "")
		if _, err := r.PutSealed(t.Context(), alice, sealed("dave", "x", storage.SubNone), "", 2); !errors.Is(err, storage.ErrLimit) {
			t.Errorf("a third item with max 2: %v, want ErrLimit", err)
		}
		if _, err := r.Put(t.Context(), alice, item("erin@example.com", storage.SubNone), 2); !errors.Is(err, storage.ErrLimit) {
			t.Errorf("a third clear item with max 2: %v, want ErrLimit", err)
		}
		// Replacing is always allowed, by blind or by the clear item it seals.
		if _, err := r.PutSealed(t.Context(), alice, sealed("carol", "y", storage.SubTo), "", 2); err != nil {
			t.Errorf("replacing a sealed item at the limit: %v", err)
		}
		if _, err := r.PutSealed(t.Context(), alice, sealed("bob", "y", storage.SubTo), "bob@example.com", 2); err != nil {
			t.Errorf("sealing a clear item at the limit: %v", err)
		}
		if n, _ := r.Count(t.Context(), alice); n != 2 {
			t.Errorf("Count = %d, want 2", n)
		}
	})
	t.Run("Pending", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		ctx := t.Context()
		if err := r.AddPendingIn(ctx, alice, storage.Pending{Contact: "bob@example.com", Stanza: []byte("<presence/>")}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []storage.SealedPending{{Blind: []byte("bob"), Sealed: []byte("1")}, {Blind: []byte("carol"), Sealed: []byte("2")}} {
			replaces := ""
			if string(p.Blind) == "bob" {
				replaces = "bob@example.com"
			}
			if err := r.AddPendingSealed(ctx, alice, p, replaces); err != nil {
				t.Fatalf("AddPendingSealed: %v", err)
			}
		}
		if clear, err := r.PendingIn(ctx, alice); err != nil || len(clear) != 0 {
			t.Errorf("clear requests after sealing bob's: %v, %v; want none", clear, err)
		}
		// A renewed request moves to the end; a resealed one stays.
		if err := r.AddPendingSealed(ctx, alice, storage.SealedPending{Blind: []byte("bob"), Sealed: []byte("3")}, ""); err != nil {
			t.Fatal(err)
		}
		if err := r.ResealPending(ctx, alice, []byte("carol"), []byte("4")); err != nil {
			t.Fatal(err)
		}
		ps, err := r.PendingSealed(ctx, alice)
		if got := pendingBlinds(ps); err != nil || len(got) != 2 || got[0] != "carol=4" || got[1] != "bob=3" {
			t.Errorf("PendingSealed = %v, %v; want [carol=4 bob=3]", got, err)
		}
		if err := r.ResealPending(ctx, alice, []byte("dave"), []byte("5")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ResealPending of a missing request: %v, want ErrNotFound", err)
		}
		if err := r.DeletePendingSealed(ctx, alice, []byte("carol")); err != nil {
			t.Fatal(err)
		}
		if err := r.DeletePendingSealed(ctx, alice, []byte("carol")); err != nil {
			t.Errorf("deleting an absent request: %v", err)
		}
		if ps, _ := r.PendingSealed(ctx, alice); len(ps) != 1 {
			t.Errorf("after delete: %v", pendingBlinds(ps))
		}
	})
	t.Run("MissingOwnerAndInvalid", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		ctx := t.Context()
		if _, _, err := r.SealedItems(ctx, missingOwner); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SealedItems: %v", err)
		}
		if _, err := r.PutSealed(ctx, missingOwner, sealed("b", "x", storage.SubNone), "", 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("PutSealed: %v", err)
		}
		if err := r.AddPendingSealed(ctx, missingOwner, storage.SealedPending{Blind: []byte("b"), Sealed: []byte("x")}, ""); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("AddPendingSealed: %v", err)
		}
		if _, err := r.PendingSealed(ctx, missingOwner); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("PendingSealed: %v", err)
		}
		mustCreate(t, s.Users(), alice, nil)
		for name, it := range map[string]storage.SealedItem{
			"empty blind":     sealed("", "x", storage.SubNone),
			"long blind":      sealed(string(make([]byte, storage.MaxBlindBytes+1)), "x", storage.SubNone),
			"bad state":       sealed("b", "x", "maybe"),
			"oversized blob":  {Blind: []byte("b"), Sealed: make([]byte, storage.MaxValueBytes+1), Subscription: storage.SubNone},
			"invalid owner ↓": sealed("b", "x", storage.SubNone),
		} {
			owner := alice
			if name == "invalid owner ↓" {
				owner = "not a jid@"
			}
			if _, err := r.PutSealed(ctx, owner, it, "", 0); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("PutSealed with %s: %v, want ErrInvalid", name, err)
			}
		}
	})
	t.Run("DeleteAccountCascades", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), alice, nil)
		mustPutSealed(t, r, alice, sealed("b", "x", storage.SubNone), "")
		if err := r.AddPendingSealed(t.Context(), alice, storage.SealedPending{Blind: []byte("b"), Sealed: []byte("x")}, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Users().Delete(t.Context(), alice); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s.Users(), alice, nil)
		if items, v := mustSealedItems(t, r, alice); len(items) != 0 || v != 0 {
			t.Errorf("a new account of the same name inherits %d sealed items, version %d", len(items), v)
		}
		if ps, _ := r.PendingSealed(t.Context(), alice); len(ps) != 0 {
			t.Errorf("a new account of the same name inherits %d sealed requests", len(ps))
		}
	})
}
