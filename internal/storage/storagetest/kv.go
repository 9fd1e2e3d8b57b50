package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/storage"
)

func mustKVPut(t *testing.T, kv storage.KV, owner, ns, key string, value []byte) {
	t.Helper()
	if err := kv.Put(t.Context(), owner, ns, key, value); err != nil {
		t.Fatalf("Put(%s, %s, %q): %v", owner, ns, key, err)
	}
}

func kvGet(t *testing.T, kv storage.KV, owner, ns, key string) []byte {
	t.Helper()
	v, err := kv.Get(t.Context(), owner, ns, key)
	if err != nil {
		t.Fatalf("Get(%s, %s, %q): %v", owner, ns, key, err)
	}
	return v
}

func keys(es []storage.KVEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}

func runKV(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("PutGetRoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		tests := []struct {
			name, ns, key string
			value         []byte
		}{
			{"simple", "vcard-temp", "vcard", []byte("<vCard xmlns='vcard-temp'/>")},
			{"empty key", "jabber:iq:last", "", []byte("1700000000")},
			{"empty value", "ns", "empty", []byte{}},
			{"nil value", "ns", "nil", nil},
			{"binary value", "ns", "bin", []byte{0, 0xff, 0, 1}},
			{"largest value", "ns", "big", bytes.Repeat([]byte("v"), storage.MaxValueBytes)},
			{"longest key and namespace", strings.Repeat("n", storage.MaxKeyBytes), strings.Repeat("k", storage.MaxKeyBytes), []byte("x")},
			{"unicode", "名前空間", "キー", []byte("値")},
			{"key with separators", "ns", "a/b\tc'd\"e%f_g", []byte("sep")},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				mustKVPut(t, kv, "alice@example.com", tc.ns, tc.key, tc.value)
				if got := kvGet(t, kv, "alice@example.com", tc.ns, tc.key); !bytes.Equal(got, tc.value) {
					t.Errorf("Get = %.20q (%d bytes), want %.20q (%d bytes)", got, len(got), tc.value, len(tc.value))
				}
			})
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		for _, v := range []string{"one", "", "three, longer than before", "4"} {
			mustKVPut(t, kv, "alice@example.com", "ns", "k", []byte(v))
			if got := kvGet(t, kv, "alice@example.com", "ns", "k"); string(got) != v {
				t.Errorf("Get after Put(%q) = %q", v, got)
			}
		}
		if es, err := kv.List(t.Context(), "alice@example.com", "ns"); err != nil || len(es) != 1 {
			t.Errorf("List after overwrites = %+v, %v; want one entry", es, err)
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		// Same key in different namespaces and owners; namespaces that are
		// prefixes of each other must not match.
		entries := []struct{ owner, ns string }{
			{"alice@example.com", "a"}, {"alice@example.com", "ab"}, {"alice@example.com", "A"},
			{"bob@example.com", "a"},
		}
		for _, e := range entries {
			mustKVPut(t, kv, e.owner, e.ns, "k", []byte(e.owner+"|"+e.ns))
		}
		for _, e := range entries {
			if got := kvGet(t, kv, e.owner, e.ns, "k"); string(got) != e.owner+"|"+e.ns {
				t.Errorf("Get(%s, %s) = %q", e.owner, e.ns, got)
			}
		}
		_, err := kv.Get(t.Context(), "bob@example.com", "ab", "k")
		wantErr(t, "Get in another owner's namespace", err, storage.ErrNotFound)
		_, err = kv.Get(t.Context(), "alice@example.com", "a", "K")
		wantErr(t, "Get with differently cased key", err, storage.ErrNotFound)
	})

	t.Run("ListSortedByteOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		ks := []string{"zed", "Bob", "ärger", "a.b", "aa", "a", "", "B", "10", "9"}
		for i, k := range ks {
			mustKVPut(t, kv, "alice@example.com", "list", k, []byte{byte(i)})
		}
		mustKVPut(t, kv, "alice@example.com", "other", "a", []byte("other"))
		es, err := kv.List(t.Context(), "alice@example.com", "list")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		want := slices.Clone(ks)
		sort.Strings(want)
		if got := keys(es); !slices.Equal(got, want) {
			t.Fatalf("List keys = %q, want %q", got, want)
		}
		for _, e := range es {
			i := slices.Index(ks, e.Key)
			if !bytes.Equal(e.Value, []byte{byte(i)}) {
				t.Errorf("List value of %q = %v, want %v", e.Key, e.Value, []byte{byte(i)})
			}
		}
		if es, err := kv.List(t.Context(), "alice@example.com", "unused"); err != nil || len(es) != 0 {
			t.Errorf("List of an empty namespace = %+v, %v", es, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		mustKVPut(t, kv, "alice@example.com", "ns", "a", []byte("1"))
		mustKVPut(t, kv, "alice@example.com", "ns", "b", []byte("2"))
		mustKVPut(t, kv, "bob@example.com", "ns", "a", []byte("3"))
		if err := kv.Delete(ctx, "alice@example.com", "ns", "a"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := kv.Get(ctx, "alice@example.com", "ns", "a")
		wantErr(t, "Get after Delete", err, storage.ErrNotFound)
		wantErr(t, "second Delete", kv.Delete(ctx, "alice@example.com", "ns", "a"), storage.ErrNotFound)
		wantErr(t, "Delete of a never-set key", kv.Delete(ctx, "alice@example.com", "ns", "zzz"), storage.ErrNotFound)
		wantErr(t, "Delete in another namespace", kv.Delete(ctx, "alice@example.com", "other", "b"), storage.ErrNotFound)
		if got := kvGet(t, kv, "alice@example.com", "ns", "b"); string(got) != "2" {
			t.Errorf("Delete touched another key: %q", got)
		}
		if got := kvGet(t, kv, "bob@example.com", "ns", "a"); string(got) != "3" {
			t.Errorf("Delete touched another owner: %q", got)
		}
	})

	t.Run("DeleteAll", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		for _, k := range []string{"a", "b", "c"} {
			mustKVPut(t, kv, "alice@example.com", "blocklist", k, nil)
			mustKVPut(t, kv, "bob@example.com", "blocklist", k, nil)
		}
		mustKVPut(t, kv, "alice@example.com", "blocklist2", "a", []byte("kept"))
		if err := kv.DeleteAll(ctx, "alice@example.com", "blocklist"); err != nil {
			t.Fatalf("DeleteAll: %v", err)
		}
		if es, err := kv.List(ctx, "alice@example.com", "blocklist"); err != nil || len(es) != 0 {
			t.Errorf("List after DeleteAll = %+v, %v", es, err)
		}
		if err := kv.DeleteAll(ctx, "alice@example.com", "blocklist"); err != nil {
			t.Errorf("DeleteAll of an empty namespace: %v", err)
		}
		if got := kvGet(t, kv, "alice@example.com", "blocklist2", "a"); string(got) != "kept" {
			t.Errorf("DeleteAll touched another namespace: %q", got)
		}
		if es, err := kv.List(ctx, "bob@example.com", "blocklist"); err != nil || len(es) != 3 {
			t.Errorf("DeleteAll touched another owner: %+v, %v", es, err)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		long := strings.Repeat("x", storage.MaxKeyBytes+1)
		args := []struct{ name, ns, key string }{
			{"empty namespace", "", "k"},
			{"namespace too long", long, "k"},
			{"key too long", "ns", long},
			{"NUL in key", "ns", "a\x00b"},
			{"NUL in namespace", "n\x00s", "k"},
			{"key not UTF-8", "ns", "\xc3"},
			{"namespace not UTF-8", "\xfe", "k"},
		}
		for _, a := range args {
			wantErr(t, "Put with "+a.name, kv.Put(ctx, "alice@example.com", a.ns, a.key, []byte("v")), storage.ErrInvalid)
			_, err := kv.Get(ctx, "alice@example.com", a.ns, a.key)
			wantErr(t, "Get with "+a.name, err, storage.ErrInvalid)
			wantErr(t, "Delete with "+a.name, kv.Delete(ctx, "alice@example.com", a.ns, a.key), storage.ErrInvalid)
		}
		for _, ns := range []string{"", long, "\xfe"} {
			_, err := kv.List(ctx, "alice@example.com", ns)
			wantErr(t, fmt.Sprintf("List(%.10q)", ns), err, storage.ErrInvalid)
			wantErr(t, fmt.Sprintf("DeleteAll(%.10q)", ns), kv.DeleteAll(ctx, "alice@example.com", ns), storage.ErrInvalid)
		}
		err := kv.Put(ctx, "alice@example.com", "ns", "big", make([]byte, storage.MaxValueBytes+1))
		wantErr(t, "Put of an oversized value", err, storage.ErrInvalid)
		for _, o := range invalidOwners {
			wantErr(t, "Put for owner "+o.name, kv.Put(ctx, o.jid, "ns", "k", nil), storage.ErrInvalid)
			_, err := kv.List(ctx, o.jid, "ns")
			wantErr(t, "List for owner "+o.name, err, storage.ErrInvalid)
		}
		if _, err := kv.Get(ctx, "alice@example.com", "ns", "big"); err == nil {
			t.Error("oversized value was stored")
		}
	})

	t.Run("MissingOwner", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		ctx := t.Context()
		calls := []struct {
			name string
			call func() error
		}{
			{"Get", func() error { _, err := kv.Get(ctx, missingOwner, "ns", "k"); return err }},
			{"Put", func() error { return kv.Put(ctx, missingOwner, "ns", "k", []byte("v")) }},
			{"Delete", func() error { return kv.Delete(ctx, missingOwner, "ns", "k") }},
			{"List", func() error { _, err := kv.List(ctx, missingOwner, "ns"); return err }},
			{"DeleteAll", func() error { return kv.DeleteAll(ctx, missingOwner, "ns") }},
		}
		for _, c := range calls {
			wantErr(t, c.name, c.call(), storage.ErrNotFound)
		}
	})

	t.Run("DeleteAccountCascades", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		for _, owner := range []string{"alice@example.com", "bob@example.com"} {
			mustKVPut(t, kv, owner, "vcard-temp", "", []byte("card"))
			mustKVPut(t, kv, owner, "blocklist", "x@example.com", nil)
		}
		if err := s.Users().Delete(ctx, "alice@example.com"); err != nil {
			t.Fatalf("Users.Delete: %v", err)
		}
		_, err := kv.List(ctx, "alice@example.com", "vcard-temp")
		wantErr(t, "List of deleted account", err, storage.ErrNotFound)
		mustCreate(t, s.Users(), "alice@example.com", nil)
		for _, ns := range []string{"vcard-temp", "blocklist"} {
			if es, err := kv.List(ctx, "alice@example.com", ns); err != nil || len(es) != 0 {
				t.Errorf("re-created account inherited %s: %+v, %v", ns, es, err)
			}
		}
		if got := kvGet(t, kv, "bob@example.com", "vcard-temp", ""); string(got) != "card" {
			t.Errorf("deleting alice changed bob's value: %q", got)
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		kv := s.KV()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		const workers, perWorker = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*perWorker*2)
		for w := range workers {
			wg.Go(func() {
				ctx := context.Background()
				for i := range perWorker {
					// One key everyone overwrites (first insert races on
					// the primary key) and one key of its own.
					if err := kv.Put(ctx, "alice@example.com", "ns", "shared", fmt.Appendf(nil, "%d-%d", w, i)); err != nil {
						errs <- err
					}
					if err := kv.Put(ctx, "alice@example.com", "ns", fmt.Sprintf("own-%d-%d", w, i), nil); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Put: %v", err)
		}
		es, err := kv.List(t.Context(), "alice@example.com", "ns")
		if err != nil || len(es) != workers*perWorker+1 {
			t.Fatalf("List = %d entries, %v; want %d", len(es), err, workers*perWorker+1)
		}
		var w, i int
		if v := kvGet(t, kv, "alice@example.com", "ns", "shared"); func() bool {
			_, err := fmt.Sscanf(string(v), "%d-%d", &w, &i)
			return err != nil || w >= workers || i >= perWorker
		}() {
			t.Errorf("shared value %q is not one any worker wrote", v)
		}
	})
}

// runRepositoriesCanceled checks that a canceled context stops every new
// operation before it changes anything.
func runRepositoriesCanceled(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Parallel()
	s := open(t)
	const owner = "alice@example.com"
	mustCreate(t, s.Users(), owner, nil)
	mustPut(t, s.Roster(), owner, item("bob@example.com", storage.SubBoth))
	mustPush(t, s.Offline(), owner, []byte("m"))
	mustKVPut(t, s.KV(), owner, "ns", "k", []byte("v"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r, o, kv := s.Roster(), s.Offline(), s.KV()
	calls := []struct {
		name string
		call func() error
	}{
		{"Roster.Items", func() error { _, _, err := r.Items(ctx, owner); return err }},
		{"Roster.Item", func() error { _, err := r.Item(ctx, owner, "bob@example.com"); return err }},
		{"Roster.Put", func() error { _, err := r.Put(ctx, owner, item("carol@example.com", storage.SubNone), 0); return err }},
		{"Roster.Delete", func() error { _, err := r.Delete(ctx, owner, "bob@example.com"); return err }},
		{"Roster.Count", func() error { _, err := r.Count(ctx, owner); return err }},
		{"Roster.AddPendingIn", func() error { return r.AddPendingIn(ctx, owner, storage.Pending{Contact: "carol@example.com"}) }},
		{"Roster.PendingIn", func() error { _, err := r.PendingIn(ctx, owner); return err }},
		{"Roster.DeletePendingIn", func() error { return r.DeletePendingIn(ctx, owner, "carol@example.com") }},
		{"Offline.Push", func() error { _, err := o.Push(ctx, owner, []byte("x"), 0); return err }},
		{"Offline.Push with limit", func() error { _, err := o.Push(ctx, owner, []byte("x"), 10); return err }},
		{"Offline.List", func() error { _, err := o.List(ctx, owner); return err }},
		{"Offline.Delete", func() error { return o.Delete(ctx, owner, []int64{1}) }},
		{"Offline.Count", func() error { _, err := o.Count(ctx, owner); return err }},
		{"Offline.DeleteBefore", func() error { _, err := o.DeleteBefore(ctx, time.Now().Add(time.Hour)); return err }},
		{"KV.Get", func() error { _, err := kv.Get(ctx, owner, "ns", "k"); return err }},
		{"KV.Put", func() error { return kv.Put(ctx, owner, "ns", "k", []byte("new")) }},
		{"KV.Delete", func() error { return kv.Delete(ctx, owner, "ns", "k") }},
		{"KV.List", func() error { _, err := kv.List(ctx, owner, "ns"); return err }},
		{"KV.DeleteAll", func() error { return kv.DeleteAll(ctx, owner, "ns") }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: err = %v, want context.Canceled", c.name, err)
		}
	}
	items, v := mustItems(t, r, owner)
	if len(items) != 1 || v != 1 {
		t.Errorf("canceled calls changed the roster: %+v, version %d", items, v)
	}
	if n, err := o.Count(t.Context(), owner); err != nil || n != 1 {
		t.Errorf("canceled calls changed offline messages: Count = %d, %v", n, err)
	}
	if got := kvGet(t, kv, owner, "ns", "k"); string(got) != "v" {
		t.Errorf("canceled calls changed the KV value to %q", got)
	}
}
