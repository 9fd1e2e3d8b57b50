package sealstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"parley/internal/sasl"
	"parley/internal/storage"
	"parley/internal/storage/sqlite"
	"parley/internal/vault"
)

const (
	alice    = "alice@example.org"
	password = "alice's password"
)

type fixture struct {
	t     testing.TB
	st    storage.Store
	v     *vault.Vault
	creds []storage.Credential
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := sqlite.OpenMemory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, creds: credentials(t, password)}
	if err := st.Users().Create(t.Context(), storage.Account{JID: alice, Credentials: f.creds}); err != nil {
		t.Fatal(err)
	}
	f.v = vault.New(st.Keys(), bytes.Repeat([]byte{9}, 32), vault.Options{Grace: time.Hour})
	t.Cleanup(f.v.Stop)
	return f
}

func credentials(t testing.TB, password string) []storage.Credential {
	t.Helper()
	var out []storage.Credential
	for _, h := range sasl.Hashes {
		c, err := sasl.NewCredentials(h, password, 4096)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storage.Credential{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	return out
}

// unlock logs alice in as far as the vault is concerned and waits for
// the unlock jobs (resealing).
func (f *fixture) unlock() {
	f.t.Helper()
	if err := f.v.UnlockPassword(context.Background(), alice, password, f.creds); err != nil {
		f.t.Fatal(err)
	}
	f.v.Settle()
}

// noMarker fails when any of the markers is in a stored blob.
func noMarker(t *testing.T, where string, blobs [][]byte, markers ...string) {
	t.Helper()
	for _, b := range blobs {
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s: %q is stored in clear", where, m)
			}
		}
	}
}

func (f *fixture) sealedBlobs() [][]byte {
	f.t.Helper()
	items, _, err := f.st.Roster().SealedItems(f.t.Context(), alice)
	if err != nil {
		f.t.Fatal(err)
	}
	ps, err := f.st.Roster().PendingSealed(f.t.Context(), alice)
	if err != nil {
		f.t.Fatal(err)
	}
	var out [][]byte
	for _, it := range items {
		out = append(out, it.Sealed, it.Blind)
	}
	for _, p := range ps {
		out = append(out, p.Sealed, p.Blind)
	}
	return out
}

func (f *fixture) mailDrops() int {
	f.t.Helper()
	n := 0
	items, _, _ := f.st.Roster().SealedItems(f.t.Context(), alice)
	for _, it := range items {
		if vault.IsMailDrop(it.Sealed) {
			n++
		}
	}
	ps, _ := f.st.Roster().PendingSealed(f.t.Context(), alice)
	for _, p := range ps {
		if vault.IsMailDrop(p.Sealed) {
			n++
		}
	}
	return n
}

func TestRosterMigratesSealsAndWorksWhileAway(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r := NewRoster(f.st.Roster(), f.v)
	f.v.OnUnlock(func(ctx context.Context, owner string) {
		if err := r.Reseal(ctx, owner); err != nil {
			t.Errorf("Reseal: %v", err)
		}
	})

	// Before alice's first login since sealing: no key, rows stay clear
	// (what an upgraded server has).
	romeo := storage.RosterItem{Contact: "romeo@montague.example", Name: "Romeo Marker", Groups: []string{"Verona Marker"}, Subscription: storage.SubBoth}
	if _, err := r.Put(ctx, alice, romeo, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPending(ctx, alice, storage.Pending{Contact: "tybalt@capulet.example", Stanza: []byte("<presence type='subscribe'/>")}); err != nil {
		t.Fatal(err)
	}
	if clear, _, _ := f.st.Roster().Items(ctx, alice); len(clear) != 1 {
		t.Fatalf("without a key the item should be kept in clear, got %d clear items", len(clear))
	}

	// The login seals them under the data key.
	f.unlock()
	if clear, _, _ := f.st.Roster().Items(ctx, alice); len(clear) != 0 {
		t.Errorf("after the login %d items are still in clear", len(clear))
	}
	if ps, _ := f.st.Roster().PendingIn(ctx, alice); len(ps) != 0 {
		t.Errorf("after the login %d requests are still in clear", len(ps))
	}
	noMarker(t, "after the login", f.sealedBlobs(), "romeo", "Romeo Marker", "Verona Marker", "tybalt")
	items, v1, err := r.Items(ctx, alice)
	if err != nil || len(items) != 1 || items[0].Name != romeo.Name || !slices.Equal(items[0].Groups, romeo.Groups) {
		t.Fatalf("Items after sealing = %+v, %v", items, err)
	}

	// Alice leaves. What needs her key fails clearly; what the server
	// needs while she is away works by blind index.
	f.v.Lock(alice)
	if _, _, err := r.Items(ctx, alice); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("Items while away: %v, want ErrLocked", err)
	}
	if _, err := r.Item(ctx, alice, romeo.Contact); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("Item while away: %v, want ErrLocked", err)
	}
	st, err := r.State(ctx, alice, romeo.Contact)
	if err != nil || st.Subscription != storage.SubBoth || st.Name != "" {
		t.Errorf("State while away = %+v, %v; want both, no name", st, err)
	}
	if _, err := r.State(ctx, alice, "nobody@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("State of a stranger: %v, want ErrNotFound", err)
	}
	// Romeo unsubscribes; juliet subscribes and alice had pre-approved
	// nobody; nurse's request waits.
	v2, err := r.SetState(ctx, alice, romeo.Contact, storage.SubTo, false, false, 0)
	if err != nil || v2 <= v1 {
		t.Fatalf("SetState while away = %d, %v", v2, err)
	}
	if _, err := r.SetState(ctx, alice, "juliet@capulet.example", storage.SubFrom, false, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetState(ctx, alice, "paris@verona.example", storage.SubFrom, false, false, 2); !errors.Is(err, storage.ErrLimit) {
		t.Errorf("a third contact with max 2: %v, want ErrLimit", err)
	}
	if err := r.AddPending(ctx, alice, storage.Pending{Contact: "nurse@capulet.example", Stanza: []byte("<presence from='nurse@capulet.example'/>")}); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.HasPending(ctx, alice, "nurse@capulet.example"); !ok || err != nil {
		t.Errorf("HasPending while away = %v, %v", ok, err)
	}
	if _, err := r.Pending(ctx, alice); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("Pending while away: %v, want ErrLocked", err)
	}
	if n := f.mailDrops(); n != 2 {
		t.Errorf("%d blobs sealed to the mail-drop while away, want 2 (juliet, nurse)", n)
	}
	noMarker(t, "while away", f.sealedBlobs(), "juliet", "nurse", "romeo")

	// Back: the mail-drop is resealed under the data key, and the name
	// and groups romeo had survived the change made while away.
	f.unlock()
	if n := f.mailDrops(); n != 0 {
		t.Errorf("%d mail-drop blobs left after the login", n)
	}
	items, v3, err := r.Items(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.RosterItem{
		{Contact: "juliet@capulet.example", Subscription: storage.SubFrom},
		{Contact: romeo.Contact, Name: romeo.Name, Groups: romeo.Groups, Subscription: storage.SubTo},
	}
	if len(items) != len(want) || v3 < v2 {
		t.Fatalf("Items after the login = %+v at version %d", items, v3)
	}
	for i := range want {
		if items[i].Contact != want[i].Contact || items[i].Name != want[i].Name || !slices.Equal(items[i].Groups, want[i].Groups) || items[i].Subscription != want[i].Subscription {
			t.Errorf("item %d = %+v, want %+v", i, items[i], want[i])
		}
	}
	ps, err := r.Pending(ctx, alice)
	if err != nil || len(ps) != 2 || ps[0].Contact != "tybalt@capulet.example" || ps[1].Contact != "nurse@capulet.example" {
		t.Errorf("Pending after the login = %+v, %v", ps, err)
	}

	// Removing works by index too, and says when there was nothing.
	f.v.Lock(alice)
	if _, err := r.Delete(ctx, alice, "juliet@capulet.example"); err != nil {
		t.Errorf("Delete while away: %v", err)
	}
	if _, err := r.Delete(ctx, alice, "juliet@capulet.example"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if err := r.DeletePending(ctx, alice, "nurse@capulet.example"); err != nil {
		t.Error(err)
	}
	if ok, _ := r.HasPending(ctx, alice, "nurse@capulet.example"); ok {
		t.Error("the request is still there after DeletePending")
	}
}

func TestRosterRowsDoNotMove(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r := NewRoster(f.st.Roster(), f.v)
	f.unlock()
	for _, c := range []string{"a@example.org", "b@example.org"} {
		if _, err := r.Put(ctx, alice, storage.RosterItem{Contact: c, Name: c, Subscription: storage.SubNone}, 0); err != nil {
			t.Fatal(err)
		}
	}
	items, _, _ := f.st.Roster().SealedItems(ctx, alice)
	// b's blob copied into a's row: it must not open as a's item.
	if err := f.st.Roster().Reseal(ctx, alice, items[0].Blind, items[1].Sealed); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Items(ctx, alice); err == nil {
		t.Error("a blob moved to another row opened")
	}
}

func TestKVSealsAndIndexes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const ns = "urn:test:list"
	m := NewKV(f.st.KV(), f.v, ns)
	f.v.OnUnlock(func(ctx context.Context, owner string) {
		if err := m.Reseal(ctx, owner); err != nil {
			t.Errorf("Reseal: %v", err)
		}
	})
	stored := func() [][]byte {
		var out [][]byte
		for _, n := range []string{ns, ns + "#sealed"} {
			es, _ := f.st.KV().List(ctx, alice, n)
			for _, e := range es {
				out = append(out, []byte(e.Key), e.Value)
			}
		}
		return out
	}
	// No key yet: kept in clear, as before sealing.
	if err := m.Put(ctx, alice, "old-marker@example.org", []byte("old value")); err != nil {
		t.Fatal(err)
	}
	if es, _ := f.st.KV().List(ctx, alice, ns); len(es) != 1 {
		t.Fatalf("without a key the entry should be in clear, got %d", len(es))
	}
	idx, err := m.Indexes(ctx, alice)
	if err != nil || !slices.Equal(idx, []string{m.Index(alice, "old-marker@example.org")}) {
		t.Errorf("Indexes of a clear entry = %v, %v", idx, err)
	}
	f.unlock()
	noMarker(t, "after the login", stored(), "old-marker", "old value")
	// Away: a put goes to the mail-drop, indexes and deletes work.
	f.v.Lock(alice)
	if err := m.Put(ctx, alice, "new-marker@example.org", []byte("new value")); err != nil {
		t.Fatal(err)
	}
	noMarker(t, "while away", stored(), "new-marker", "new value")
	idx, err = m.Indexes(ctx, alice)
	if err != nil || len(idx) != 2 || !slices.Contains(idx, m.Index(alice, "new-marker@example.org")) {
		t.Errorf("Indexes while away = %v, %v", idx, err)
	}
	if m.Index(alice, "x") == m.Index("bob@example.org", "x") {
		t.Error("two owners share an index for the same key")
	}
	if _, err := m.Get(ctx, alice, "new-marker@example.org"); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("Get while away: %v, want ErrLocked", err)
	}
	if _, err := m.List(ctx, alice); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("List while away: %v, want ErrLocked", err)
	}
	if err := m.Delete(ctx, alice, "old-marker@example.org"); err != nil {
		t.Errorf("Delete while away: %v", err)
	}
	if err := m.Delete(ctx, alice, "old-marker@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	f.unlock()
	es, _ := f.st.KV().List(ctx, alice, ns+"#sealed")
	for _, e := range es {
		if vault.IsMailDrop(e.Value) {
			t.Error("a mail-drop entry is left after the login")
		}
	}
	list, err := m.List(ctx, alice)
	if err != nil || len(list) != 1 || list[0].Key != "new-marker@example.org" || string(list[0].Value) != "new value" {
		t.Errorf("List after the login = %+v, %v", list, err)
	}
	if v, err := m.Get(ctx, alice, "new-marker@example.org"); err != nil || string(v) != "new value" {
		t.Errorf("Get = %q, %v", v, err)
	}
	if _, err := m.Get(ctx, alice, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of a missing key: %v, want ErrNotFound", err)
	}
}

func TestPubSubSealsPrivateNodes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const node, public = "urn:xmpp:bookmarks:1", "urn:xmpp:avatar:metadata"
	p := NewPubSub(f.st.PubSub(), f.v, func(n string) bool { return n == node })
	for _, n := range []string{node, public} {
		if err := f.st.PubSub().CreateNode(ctx, alice, storage.PubSubNode{Name: n, Config: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	bookmark := func(room, name string) storage.PubSubItem {
		return storage.PubSubItem{ID: room, Publisher: alice + "/phone", Payload: []byte(`<conference xmlns="urn:xmpp:bookmarks:1" name="` + name + `"/>`)}
	}
	// Before the first login: stored in clear, as before sealing.
	if _, err := p.Publish(ctx, alice, node, bookmark("old-room@chat.example", "Old Marker"), 0); err != nil {
		t.Fatal(err)
	}
	f.v.OnUnlock(func(ctx context.Context, owner string) {
		if err := p.Reseal(ctx, owner); err != nil {
			t.Errorf("Reseal: %v", err)
		}
	})
	f.unlock()
	if _, err := p.Publish(ctx, alice, node, bookmark("coven-marker@chat.example", "Coven Marker"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx, alice, public, storage.PubSubItem{ID: "avatar", Publisher: alice, Payload: []byte("<metadata/>")}, 0); err != nil {
		t.Fatal(err)
	}
	raw, err := f.st.PubSub().Items(ctx, alice, node, storage.PubSubQuery{})
	if err != nil || len(raw) != 2 {
		t.Fatalf("stored items: %d, %v", len(raw), err)
	}
	for _, it := range raw {
		noMarker(t, "a bookmark row", [][]byte{[]byte(it.ID), []byte(it.Publisher), it.Payload}, "coven-marker", "Coven Marker", "old-room", "Old Marker", "/phone")
	}
	got, err := p.Items(ctx, alice, node, storage.PubSubQuery{IDs: []string{"coven-marker@chat.example"}})
	if err != nil || len(got) != 1 || got[0].ID != "coven-marker@chat.example" || !bytes.Contains(got[0].Payload, []byte("Coven Marker")) || got[0].Publisher != alice+"/phone" {
		t.Errorf("Items by id = %+v, %v", got, err)
	}
	// Away: a contact's login reads alice's last items; the private node
	// is left out, the public one is there.
	f.v.Lock(alice)
	last, err := p.LastItems(ctx, alice)
	if err != nil || len(last) != 1 || last[0].Node != public {
		t.Errorf("LastItems while away = %+v, %v; want only the public node", last, err)
	}
	if _, err := p.Items(ctx, alice, node, storage.PubSubQuery{}); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("Items of the private node while away: %v, want ErrLocked", err)
	}
	// An import while away goes to the mail-drop, and the login reseals.
	if _, err := p.Publish(ctx, alice, node, bookmark("imported@chat.example", "Imported"), 0); err != nil {
		t.Fatal(err)
	}
	f.unlock()
	raw, _ = f.st.PubSub().Items(ctx, alice, node, storage.PubSubQuery{})
	for _, it := range raw {
		if vault.IsMailDrop(it.Payload) {
			t.Error("a mail-drop item is left after the login")
		}
	}
	if err := p.Retract(ctx, alice, node, "old-room@chat.example"); err != nil {
		t.Errorf("Retract by the real id: %v", err)
	}
	all, err := p.Items(ctx, alice, node, storage.PubSubQuery{})
	if err != nil || len(all) != 2 || all[0].ID != "coven-marker@chat.example" || all[1].ID != "imported@chat.example" {
		t.Errorf("Items after the login = %+v, %v", all, err)
	}
}

// TestLostKeyRowsAreDropped: after an admin reset alice's password while
// she was away, what was sealed under her old key can never open; her
// roster, requests and map still work (without those rows) and her next
// login deletes them.
func TestLostKeyRowsAreDropped(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r := NewRoster(f.st.Roster(), f.v)
	m := NewKV(f.st.KV(), f.v, "urn:test:list")
	f.unlock()
	if _, err := r.Put(ctx, alice, storage.RosterItem{Contact: "old@example.org", Name: "Old", Subscription: storage.SubBoth}, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, alice, "old", []byte("v")); err != nil {
		t.Fatal(err)
	}
	f.v.Lock(alice)
	// Mail-drop rows under the old public key too.
	if err := r.AddPending(ctx, alice, storage.Pending{Contact: "req@example.org", Stanza: []byte("<presence/>")}); err != nil {
		t.Fatal(err)
	}
	creds := credentials(t, "reset by an admin")
	if err := f.st.Users().SetCredentials(ctx, alice, creds); err != nil {
		t.Fatal(err)
	}
	if lostData, err := f.v.SetPassword(ctx, alice, "reset by an admin", creds); err != nil || !lostData {
		t.Fatalf("admin reset: lost %v, %v", lostData, err)
	}
	f.creds = creds
	if err := f.v.UnlockPassword(ctx, alice, "reset by an admin", creds); err != nil {
		t.Fatal(err)
	}
	// Before any reseal the lost rows are left out, not an error.
	if items, _, err := r.Items(ctx, alice); err != nil || len(items) != 0 {
		t.Errorf("Items with lost rows = %+v, %v; want none, no error", items, err)
	}
	if ps, err := r.Pending(ctx, alice); err != nil || len(ps) != 0 {
		t.Errorf("Pending with lost rows = %+v, %v", ps, err)
	}
	if es, err := m.List(ctx, alice); err != nil || len(es) != 0 {
		t.Errorf("List with lost rows = %+v, %v", es, err)
	}
	if err := r.Reseal(ctx, alice); err != nil {
		t.Errorf("Reseal: %v", err)
	}
	if err := m.Reseal(ctx, alice); err != nil {
		t.Errorf("KV Reseal: %v", err)
	}
	if n, _ := r.Count(ctx, alice); n != 0 {
		t.Errorf("%d lost items still count against the limit", n)
	}
	if ps, _ := f.st.Roster().PendingSealed(ctx, alice); len(ps) != 0 {
		t.Errorf("%d lost requests left", len(ps))
	}
	if n, _ := m.Count(ctx, alice); n != 0 {
		t.Errorf("%d lost entries left", n)
	}
}

// BenchmarkRoster: reading a 200-contact sealed roster (the broadcast at
// each login does it), and the reseal at login once everything is under
// the data key (it opens every row, to find those under a lost key).
func BenchmarkRoster(b *testing.B) {
	f := newFixture(b)
	ctx := b.Context()
	r := NewRoster(f.st.Roster(), f.v)
	f.unlock()
	for i := range 200 {
		c := fmt.Sprintf("contact%d@example.org", i)
		if _, err := r.Put(ctx, alice, storage.RosterItem{Contact: c, Name: "Contact " + c, Groups: []string{"Friends"}, Subscription: storage.SubBoth}, 0); err != nil {
			b.Fatal(err)
		}
	}
	// The same roster in clear, as before sealing: the baseline.
	const bob = "bob@example.org"
	if err := f.st.Users().Create(ctx, storage.Account{JID: bob}); err != nil {
		b.Fatal(err)
	}
	for i := range 200 {
		c := fmt.Sprintf("contact%d@example.org", i)
		if _, err := f.st.Roster().Put(ctx, bob, storage.RosterItem{Contact: c, Name: "Contact " + c, Groups: []string{"Friends"}, Subscription: storage.SubBoth}, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("ItemsClear", func(b *testing.B) {
		for b.Loop() {
			if items, _, err := f.st.Roster().Items(ctx, bob); err != nil || len(items) != 200 {
				b.Fatal(len(items), err)
			}
		}
	})
	b.Run("ItemClear", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.st.Roster().Item(ctx, bob, "contact7@example.org"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Items", func(b *testing.B) {
		for b.Loop() {
			if items, _, err := r.Items(ctx, alice); err != nil || len(items) != 200 {
				b.Fatal(len(items), err)
			}
		}
	})
	b.Run("Reseal", func(b *testing.B) {
		for b.Loop() {
			if err := r.Reseal(ctx, alice); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("State", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.State(ctx, alice, "contact7@example.org"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestKeepClear: what an import writes stays in clear, replacing a sealed
// copy, until the owner's next login seals it.
func TestKeepClear(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r := NewRoster(f.st.Roster(), f.v)
	m := NewKV(f.st.KV(), f.v, "urn:test:list")
	f.v.OnUnlock(func(ctx context.Context, owner string) {
		if err := errors.Join(r.Reseal(ctx, owner), m.Reseal(ctx, owner)); err != nil {
			t.Errorf("Reseal: %v", err)
		}
	})
	f.unlock()
	if _, err := r.Put(ctx, alice, storage.RosterItem{Contact: "bob@example.org", Name: "Old", Subscription: storage.SubNone}, 0); err != nil {
		t.Fatal(err)
	}
	f.v.Lock(alice)
	imp := KeepClear(ctx)
	if _, err := r.Put(imp, alice, storage.RosterItem{Contact: "bob@example.org", Name: "Imported", Subscription: storage.SubBoth}, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPending(imp, alice, storage.Pending{Contact: "carol@example.org", Stanza: []byte("<presence/>")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(imp, alice, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	sealed, _, _ := f.st.Roster().SealedItems(ctx, alice)
	clearItems, _, _ := f.st.Roster().Items(ctx, alice)
	if len(sealed) != 0 || len(clearItems) != 1 || clearItems[0].Name != "Imported" {
		t.Fatalf("after an import: %d sealed, clear %+v", len(sealed), clearItems)
	}
	if es, _ := f.st.KV().List(ctx, alice, "urn:test:list"); len(es) != 1 {
		t.Errorf("the imported entry is not in clear: %v", es)
	}
	f.unlock()
	if clearItems, _, _ := f.st.Roster().Items(ctx, alice); len(clearItems) != 0 {
		t.Errorf("%d clear items after the login", len(clearItems))
	}
	if ps, _ := f.st.Roster().PendingIn(ctx, alice); len(ps) != 0 {
		t.Errorf("%d clear requests after the login", len(ps))
	}
	if es, _ := f.st.KV().List(ctx, alice, "urn:test:list"); len(es) != 0 {
		t.Errorf("%d clear entries after the login", len(es))
	}
	items, _, err := r.Items(ctx, alice)
	if err != nil || len(items) != 1 || items[0].Name != "Imported" || items[0].Subscription != storage.SubBoth {
		t.Errorf("Items after the login = %+v, %v", items, err)
	}
}
