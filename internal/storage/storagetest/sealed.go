package storagetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"parley/internal/storage"
)

// runKeys is the Keys part of Run: per-user key material, replaced
// whole, a wrap added at a time, gone with the account.
func runKeys(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Parallel()
	s := open(t)
	ctx := t.Context()
	k := s.Keys()
	const owner = "alice@example.com"
	if _, err := k.Get(ctx, owner); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get without keys = %v, want ErrNotFound", err)
	}
	if err := k.Put(ctx, owner, storage.UserKeys{Public: []byte("pub")}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Put for a missing account = %v, want ErrNotFound", err)
	}
	mustCreate(t, s.Users(), owner, nil)
	if err := k.PutWrap(ctx, owner, "SHA-1", []byte("w")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("PutWrap without keys = %v, want ErrNotFound", err)
	}
	first := storage.UserKeys{Public: []byte("pub1"), Private: []byte("priv1"), Wraps: map[string][]byte{"SHA-1": []byte("w1"), "SHA-256": []byte("w256")}}
	if err := k.Put(ctx, owner, first); err != nil {
		t.Fatal(err)
	}
	got, err := k.Get(ctx, owner)
	if err != nil || !keysEqual(got, first) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, first)
	}
	if err := k.PutWrap(ctx, owner, "SHA-512", []byte("w512")); err != nil {
		t.Fatal(err)
	}
	if err := k.PutWrap(ctx, owner, "SHA-1", []byte("w1 again")); err != nil {
		t.Fatal(err)
	}
	first.Wraps["SHA-512"], first.Wraps["SHA-1"] = []byte("w512"), []byte("w1 again")
	if got, err := k.Get(ctx, owner); err != nil || !keysEqual(got, first) {
		t.Fatalf("Get after PutWrap = %+v, %v; want %+v", got, err, first)
	}
	// Put replaces everything, the wraps it does not name included.
	second := storage.UserKeys{Public: []byte("pub2"), Private: []byte("priv2"), Wraps: map[string][]byte{"SHA-256": []byte("x")}}
	if err := k.Put(ctx, owner, second); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Get(ctx, owner); err != nil || !keysEqual(got, second) {
		t.Fatalf("Get after a second Put = %+v, %v; want %+v", got, err, second)
	}
	if err := s.Users().Delete(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get(ctx, owner); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after the account was deleted = %v, want ErrNotFound", err)
	}
}

func keysEqual(a, b storage.UserKeys) bool {
	return bytes.Equal(a.Public, b.Public) && bytes.Equal(a.Private, b.Private) &&
		len(a.Wraps) == len(b.Wraps) && func() bool {
		for h, w := range a.Wraps {
			if !bytes.Equal(w, b.Wraps[h]) {
				return false
			}
		}
		return true
	}()
}

// runArchiveSealed checks rows whose peer is only in blind indexes:
// filters by the bare or the full index, alone or with the plain JID of
// older rows, and the resealing of marked rows.
func runArchiveSealed(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Parallel()
	s := open(t)
	ctx := t.Context()
	a := s.Archive()
	const owner = "alice@example.com"
	mustCreate(t, s.Users(), owner, nil)
	idx := func(v string) []byte { return []byte("idx:" + v) }
	sealed := func(id, full string, reseal bool) storage.ArchiveMessage {
		return storage.ArchiveMessage{ID: id, WithIndex: idx(full), WithBareIndex: idx(storage.BareOf(full)),
			Stamp: archiveT0, Data: []byte("sealed " + id), Reseal: reseal}
	}
	// legacy: a row from before sealing, its peer in clear.
	mustAppend(t, a, owner, storage.ArchiveMessage{ID: "legacy", With: "bob@example.com/phone", Stamp: archiveT0, Data: []byte("old"), Reseal: true})
	mustAppend(t, a, owner, sealed("s1", "bob@example.com/phone", false))
	if err := a.AppendBatch(ctx, []storage.ArchiveEntry{
		{Owner: owner, Message: sealed("s2", "bob@example.com/laptop", true)},
		{Owner: owner, Message: sealed("s3", "carol@example.com/x", false)},
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    storage.ArchiveQuery
		want []string
	}{
		{storage.ArchiveQuery{With: "bob@example.com", WithIndex: idx("bob@example.com")}, []string{"legacy", "s1", "s2"}},
		{storage.ArchiveQuery{With: "bob@example.com/phone", WithIndex: idx("bob@example.com/phone")}, []string{"legacy", "s1"}},
		{storage.ArchiveQuery{With: "bob@example.com/phone", WithIndex: idx("bob@example.com/phone"), WithBareIndex: idx("bob@example.com")}, []string{"legacy", "s1"}},
		{storage.ArchiveQuery{WithIndex: idx("bob@example.com/laptop"), WithFull: true}, []string{"s2"}},
		{storage.ArchiveQuery{WithIndex: idx("bob@example.com/laptop"), WithFull: true, WithBareIndex: idx("bob@example.com")}, []string{"s2"}},
		{storage.ArchiveQuery{WithIndex: idx("bob@example.com/laptop"), WithFull: true, WithBareIndex: idx("carol@example.com")}, nil},
		{storage.ArchiveQuery{WithIndex: idx("carol@example.com")}, []string{"s3"}},
		{storage.ArchiveQuery{WithIndex: idx("nobody@example.com")}, nil},
	} {
		c.q.Max = 10
		if got := archiveIDs(mustQuery(t, a, owner, c.q).Messages); !slices.Equal(got, c.want) {
			t.Errorf("Query(%+v) = %v, want %v", c.q, got, c.want)
		}
	}
	page := mustQuery(t, a, owner, storage.ArchiveQuery{IDs: []string{"s2"}, Max: 1})
	if m := page.Messages[0]; m.With != "" || !bytes.Equal(m.WithIndex, idx("bob@example.com/laptop")) || !bytes.Equal(m.WithBareIndex, idx("bob@example.com")) || !m.Reseal {
		t.Fatalf("sealed row read back as %+v", m)
	}

	pending, err := a.PendingReseal(ctx, owner, 10)
	if err != nil || !slices.Equal(archiveIDs(pending), []string{"legacy", "s2"}) {
		t.Fatalf("PendingReseal = %v, %v; want [legacy s2]", archiveIDs(pending), err)
	}
	if p, _ := a.PendingReseal(ctx, owner, 1); !slices.Equal(archiveIDs(p), []string{"legacy"}) {
		t.Fatalf("PendingReseal(max 1) = %v", archiveIDs(p))
	}
	redone := []storage.ArchiveMessage{sealed("legacy", "bob@example.com/phone", false), sealed("s2", "bob@example.com/laptop", false), sealed("gone", "x@example.com/y", false)}
	if err := a.Reseal(ctx, owner, redone); err != nil {
		t.Fatal(err)
	}
	if p, err := a.PendingReseal(ctx, owner, 10); err != nil || len(p) != 0 {
		t.Fatalf("PendingReseal after Reseal = %v, %v", archiveIDs(p), err)
	}
	page = mustQuery(t, a, owner, storage.ArchiveQuery{WithIndex: idx("bob@example.com/phone"), WithFull: true, Max: 10})
	if got := archiveIDs(page.Messages); !slices.Equal(got, []string{"legacy", "s1"}) || page.Messages[0].With != "" || string(page.Messages[0].Data) != "sealed legacy" {
		t.Fatalf("resealed legacy row: %v %+v", got, page.Messages)
	}
	// Its stamp, direction and place in the archive did not move.
	if !page.Messages[0].Stamp.Equal(archiveT0) {
		t.Fatalf("stamp changed to %v", page.Messages[0].Stamp)
	}
	if _, err := a.Append(ctx, owner, storage.ArchiveMessage{ID: "bad", WithIndex: idx("x")}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("Append with one index and no With = %v, want ErrInvalid", err)
	}
}

// runOfflineReplace checks that a waiting message can be sealed again in
// place.
func runOfflineReplace(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Parallel()
	s := open(t)
	ctx := t.Context()
	o := s.Offline()
	mustCreate(t, s.Users(), "alice@example.com", nil)
	mustCreate(t, s.Users(), "bob@example.com", nil)
	m := mustPush(t, o, "alice@example.com", []byte("mail-drop"))
	if err := o.Replace(ctx, "alice@example.com", m.ID, []byte("data key")); err != nil {
		t.Fatal(err)
	}
	// Another owner's id does nothing; a gone one is no error.
	if err := o.Replace(ctx, "bob@example.com", m.ID, []byte("stolen")); err != nil {
		t.Fatal(err)
	}
	if err := o.Replace(ctx, "alice@example.com", m.ID+1000, []byte("x")); err != nil {
		t.Fatal(err)
	}
	got := mustList(t, o, "alice@example.com")
	if len(got) != 1 || string(got[0].Data) != "data key" || got[0].ID != m.ID || !got[0].Stored.Equal(m.Stored) {
		t.Fatalf("after Replace: %+v", got)
	}
}
