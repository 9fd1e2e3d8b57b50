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

	"parley/internal/storage"
)

// Shared by the roster, offline and KV subtests.

// invalidOwners are JIDs no account can have; every per-user operation must
// reject them with ErrInvalid before touching the database.
var invalidOwners = []struct{ name, jid string }{
	{"empty", ""},
	{"no localpart", "example.com"},
	{"empty localpart", "@example.com"},
	{"empty domain", "alice@"},
	{"full JID", "alice@example.com/phone"},
	{"NUL byte", "al\x00ice@example.com"},
	{"invalid UTF-8", "al\xffice@example.com"},
	{"overlong localpart", strings.Repeat("a", storage.MaxJIDPartBytes+1) + "@example.com"},
}

// missingOwner is well-formed but has no account in any test.
const missingOwner = "ghost@example.com"

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func item(contact, sub string, groups ...string) storage.RosterItem {
	return storage.RosterItem{Contact: contact, Subscription: sub, Groups: groups}
}

// normalised is what a driver must hand back for it: groups sorted, no
// duplicates, nil when there are none.
func normalised(it storage.RosterItem) storage.RosterItem {
	if len(it.Groups) == 0 {
		it.Groups = nil
		return it
	}
	g := slices.Clone(it.Groups)
	slices.Sort(g)
	it.Groups = slices.Compact(g)
	return it
}

func itemsEqual(a, b storage.RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) &&
		a.Subscription == b.Subscription && a.Ask == b.Ask && a.Approved == b.Approved
}

func mustPut(t *testing.T, r storage.Roster, owner string, it storage.RosterItem) int64 {
	t.Helper()
	v, err := r.Put(t.Context(), owner, it, 0)
	if err != nil {
		t.Fatalf("Put(%s, %s): %v", owner, it.Contact, err)
	}
	return v
}

func mustItems(t *testing.T, r storage.Roster, owner string) ([]storage.RosterItem, int64) {
	t.Helper()
	items, v, err := r.Items(t.Context(), owner)
	if err != nil {
		t.Fatalf("Items(%s): %v", owner, err)
	}
	return items, v
}

func contacts(items []storage.RosterItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Contact
	}
	return out
}

func runRoster(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("PutItemRoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		tests := []struct {
			name string
			it   storage.RosterItem
		}{
			{"minimal", item("bob@example.com", storage.SubNone)},
			{"everything", storage.RosterItem{
				Contact: "carol@example.org", Name: "Carol <C> & \"Co\"", Groups: []string{"Work", "Friends"},
				Subscription: storage.SubBoth, Ask: true, Approved: true,
			}},
			{"groups sorted and deduplicated", item("dave@example.com", storage.SubTo, "b", "a", "b", "B", "a", "ä")},
			{"group names with separators", item("eve@example.com", storage.SubFrom, "a,b", "[\"x\"]", "line\nbreak", " ", "\\")},
			{"server contact", item("example.net", storage.SubFrom)},
			{"unicode", storage.RosterItem{Contact: "ünïcødé@例え.jp", Name: "名前", Groups: []string{"友達"}, Subscription: storage.SubTo}},
			{"ask only", storage.RosterItem{Contact: "frank@example.com", Subscription: storage.SubNone, Ask: true}},
			{"approved only", storage.RosterItem{Contact: "grace@example.com", Subscription: storage.SubNone, Approved: true}},
			{"longest name and group", storage.RosterItem{
				Contact: "heidi@example.com", Subscription: storage.SubNone,
				Name:   strings.Repeat("n", storage.MaxRosterTextBytes),
				Groups: []string{strings.Repeat("g", storage.MaxRosterTextBytes)},
			}},
			{"empty group list", storage.RosterItem{Contact: "ivan@example.com", Subscription: storage.SubNone, Groups: []string{}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				orig := slices.Clone(tc.it.Groups)
				mustPut(t, r, "alice@example.com", tc.it)
				if !slices.Equal(tc.it.Groups, orig) {
					t.Errorf("Put reordered the caller's groups to %q", tc.it.Groups)
				}
				got, err := r.Item(t.Context(), "alice@example.com", tc.it.Contact)
				if err != nil {
					t.Fatalf("Item: %v", err)
				}
				if want := normalised(tc.it); !itemsEqual(got, want) {
					t.Errorf("Item = %+v, want %+v", got, want)
				}
			})
		}
		items, _ := mustItems(t, r, "alice@example.com")
		var want []storage.RosterItem
		for _, tc := range tests {
			want = append(want, normalised(tc.it))
		}
		sort.Slice(want, func(i, j int) bool { return want[i].Contact < want[j].Contact })
		if len(items) != len(want) {
			t.Fatalf("Items returned %d items, want %d", len(items), len(want))
		}
		for i := range want {
			if !itemsEqual(items[i], want[i]) {
				t.Errorf("Items[%d] = %+v, want %+v", i, items[i], want[i])
			}
		}
	})

	t.Run("ItemsSortedByteOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		cs := []string{"zed@example.com", "Bob@example.com", "ärger@example.com", "a.b@example.com", "aa@example.com", "a@example.com", "example.com", "Example.org"}
		for _, c := range cs {
			mustPut(t, r, "alice@example.com", item(c, storage.SubNone))
		}
		items, _ := mustItems(t, r, "alice@example.com")
		want := slices.Clone(cs)
		sort.Strings(want)
		if got := contacts(items); !slices.Equal(got, want) {
			t.Errorf("Items order = %q, want %q", got, want)
		}
	})

	t.Run("ReplaceItem", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		steps := []storage.RosterItem{
			{Contact: "bob@example.com", Name: "Bob", Groups: []string{"a", "b"}, Subscription: storage.SubNone, Ask: true},
			{Contact: "bob@example.com", Name: "Robert", Groups: []string{"c"}, Subscription: storage.SubTo},
			{Contact: "bob@example.com", Subscription: storage.SubBoth, Approved: true},
		}
		for i, st := range steps {
			mustPut(t, r, "alice@example.com", st)
			got, err := r.Item(t.Context(), "alice@example.com", "bob@example.com")
			if err != nil {
				t.Fatalf("step %d: Item: %v", i, err)
			}
			if !itemsEqual(got, normalised(st)) {
				t.Errorf("step %d: Item = %+v, want %+v", i, got, normalised(st))
			}
			if n, err := r.Count(t.Context(), "alice@example.com"); err != nil || n != 1 {
				t.Errorf("step %d: Count = %d, %v; want 1", i, n, err)
			}
		}
	})

	t.Run("Versions", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		items, v := mustItems(t, r, "alice@example.com")
		if len(items) != 0 || v != 0 {
			t.Fatalf("new roster: Items = %+v, version %d; want empty, 0", items, v)
		}
		last := v
		check := func(step string, got int64) {
			t.Helper()
			if got <= last {
				t.Errorf("%s: version %d, want more than %d", step, got, last)
			}
			last = got
			if _, cur := mustItems(t, r, "alice@example.com"); cur != got {
				t.Errorf("%s: Items reports version %d, Put/Delete returned %d", step, cur, got)
			}
		}
		check("first Put", mustPut(t, r, "alice@example.com", item("a@example.com", storage.SubNone)))
		check("second Put", mustPut(t, r, "alice@example.com", item("b@example.com", storage.SubNone)))
		check("replacing Put", mustPut(t, r, "alice@example.com", item("a@example.com", storage.SubTo)))
		check("identical Put", mustPut(t, r, "alice@example.com", item("a@example.com", storage.SubTo)))
		dv, err := r.Delete(t.Context(), "alice@example.com", "b@example.com")
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		check("Delete", dv)

		// Failed writes leave the version alone.
		failures := []struct {
			name string
			call func() error
		}{
			{"Delete of absent item", func() error { _, err := r.Delete(t.Context(), "alice@example.com", "b@example.com"); return err }},
			{"Put over the limit", func() error {
				_, err := r.Put(t.Context(), "alice@example.com", item("c@example.com", storage.SubNone), 1)
				return err
			}},
			{"invalid Put", func() error {
				_, err := r.Put(t.Context(), "alice@example.com", item("c@example.com", "sometimes"), 0)
				return err
			}},
		}
		for _, f := range failures {
			if err := f.call(); err == nil {
				t.Fatalf("%s succeeded", f.name)
			}
			if _, cur := mustItems(t, r, "alice@example.com"); cur != last {
				t.Errorf("%s changed the version from %d to %d", f.name, last, cur)
			}
		}
		// Versions are per owner.
		if _, bv := mustItems(t, r, "bob@example.com"); bv != 0 {
			t.Errorf("bob's version = %d after only alice's roster changed, want 0", bv)
		}
	})

	t.Run("ItemAndDeleteNotFound", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		mustPut(t, r, "bob@example.com", item("carol@example.com", storage.SubBoth))
		// carol is in bob's roster, not alice's.
		for _, c := range []string{"carol@example.com", "Carol@example.com", "nobody@example.com", ""} {
			_, err := r.Item(t.Context(), "alice@example.com", c)
			wantErr(t, fmt.Sprintf("Item(%q)", c), err, storage.ErrNotFound)
			_, err = r.Delete(t.Context(), "alice@example.com", c)
			wantErr(t, fmt.Sprintf("Delete(%q)", c), err, storage.ErrNotFound)
		}
		if _, err := r.Item(t.Context(), "bob@example.com", "carol@example.com"); err != nil {
			t.Errorf("alice's Delete touched bob's item: %v", err)
		}
	})

	t.Run("DeleteItem", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		for _, c := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			mustPut(t, r, "alice@example.com", item(c, storage.SubNone))
		}
		if _, err := r.Delete(t.Context(), "alice@example.com", "b@example.com"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		items, _ := mustItems(t, r, "alice@example.com")
		if got := contacts(items); !slices.Equal(got, []string{"a@example.com", "c@example.com"}) {
			t.Errorf("after Delete, Items = %q", got)
		}
		if n, err := r.Count(t.Context(), "alice@example.com"); err != nil || n != 2 {
			t.Errorf("Count = %d, %v; want 2", n, err)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		const max = 3
		for i := range max {
			if _, err := r.Put(ctx, "alice@example.com", item(fmt.Sprintf("c%d@example.com", i), storage.SubNone), max); err != nil {
				t.Fatalf("Put %d under the limit: %v", i, err)
			}
		}
		_, err := r.Put(ctx, "alice@example.com", item("extra@example.com", storage.SubNone), max)
		wantErr(t, "Put beyond the limit", err, storage.ErrLimit)
		if _, err := r.Item(ctx, "alice@example.com", "extra@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("refused item was stored: Item err = %v", err)
		}
		// Replacing at the limit always works.
		if _, err := r.Put(ctx, "alice@example.com", item("c1@example.com", storage.SubBoth), max); err != nil {
			t.Errorf("replacing Put at the limit: %v", err)
		}
		// A smaller limit than the current size still allows replacing.
		if _, err := r.Put(ctx, "alice@example.com", item("c2@example.com", storage.SubTo), 1); err != nil {
			t.Errorf("replacing Put above a lower limit: %v", err)
		}
		// No limit.
		if _, err := r.Put(ctx, "alice@example.com", item("unlimited@example.com", storage.SubNone), 0); err != nil {
			t.Errorf("Put with max 0: %v", err)
		}
		if n, err := r.Count(ctx, "alice@example.com"); err != nil || n != max+1 {
			t.Fatalf("Count = %d, %v; want %d", n, err, max+1)
		}
		if _, err := r.Delete(ctx, "alice@example.com", "c0@example.com"); err != nil {
			t.Fatal(err)
		}
		_, err = r.Put(ctx, "alice@example.com", item("extra@example.com", storage.SubNone), max+1)
		if err != nil {
			t.Errorf("Put after Delete made room: %v", err)
		}
	})

	t.Run("ConcurrentPutWithLimit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		const racers, max = 24, 10
		var wg sync.WaitGroup
		type result struct {
			v   int64
			err error
		}
		results := make(chan result, racers)
		for i := range racers {
			wg.Go(func() {
				v, err := r.Put(context.Background(), "alice@example.com", item(fmt.Sprintf("c%02d@example.com", i), storage.SubNone), max)
				results <- result{v, err}
			})
		}
		wg.Wait()
		close(results)
		won := 0
		versions := map[int64]bool{}
		for res := range results {
			switch {
			case res.err == nil:
				won++
				if versions[res.v] {
					t.Errorf("two Puts returned version %d", res.v)
				}
				versions[res.v] = true
			case !errors.Is(res.err, storage.ErrLimit):
				t.Errorf("racing Put: %v", res.err)
			}
		}
		if won != max {
			t.Errorf("%d racing Puts succeeded, want exactly %d", won, max)
		}
		if n, err := r.Count(t.Context(), "alice@example.com"); err != nil || n != max {
			t.Errorf("Count = %d, %v; want %d", n, err, max)
		}
		if _, v := mustItems(t, r, "alice@example.com"); !versions[v] {
			t.Errorf("final version %d is not one a successful Put returned", v)
		}
	})

	t.Run("ConcurrentWritesOneRoster", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		const workers, perWorker = 6, 8
		var wg sync.WaitGroup
		errs := make(chan error, workers*perWorker*2)
		for w := range workers {
			wg.Go(func() {
				ctx := context.Background()
				for i := range perWorker {
					// Everyone writes the same contact too, so replace and
					// delete paths race with each other.
					if _, err := r.Put(ctx, "alice@example.com", item(fmt.Sprintf("w%d-%d@example.com", w, i), storage.SubNone), 0); err != nil {
						errs <- err
					}
					if _, err := r.Put(ctx, "alice@example.com", item("shared@example.com", storage.SubTo), 0); err != nil {
						errs <- err
					}
					if _, err := r.Delete(ctx, "alice@example.com", "shared@example.com"); err != nil && !errors.Is(err, storage.ErrNotFound) {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent roster write: %v", err)
		}
		items, v := mustItems(t, r, "alice@example.com")
		n := len(items)
		if slices.Contains(contacts(items), "shared@example.com") {
			n--
		}
		if n != workers*perWorker {
			t.Errorf("%d distinct items survived, want %d", n, workers*perWorker)
		}
		// Every successful write bumped the version at least once.
		if v < int64(2*workers*perWorker) {
			t.Errorf("version %d after at least %d writes", v, 2*workers*perWorker)
		}
	})

	t.Run("InvalidItems", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		long := strings.Repeat("x", storage.MaxRosterTextBytes+1)
		tests := []struct {
			name string
			it   storage.RosterItem
		}{
			{"empty contact", item("", storage.SubNone)},
			{"full JID contact", item("bob@example.com/res", storage.SubNone)},
			{"empty localpart", item("@example.com", storage.SubNone)},
			{"empty domain", item("bob@", storage.SubNone)},
			{"two at signs", item("a@b@example.com", storage.SubNone)},
			{"NUL in contact", item("b\x00b@example.com", storage.SubNone)},
			{"overlong domain", item("bob@"+strings.Repeat("d", storage.MaxJIDPartBytes+1), storage.SubNone)},
			{"empty subscription", item("bob@example.com", "")},
			{"unknown subscription", item("bob@example.com", "remove")},
			{"subscription in upper case", item("bob@example.com", "Both")},
			{"empty group", item("bob@example.com", storage.SubNone, "ok", "")},
			{"group too long", item("bob@example.com", storage.SubNone, long)},
			{"group not UTF-8", item("bob@example.com", storage.SubNone, "\xff")},
			{"name too long", storage.RosterItem{Contact: "bob@example.com", Subscription: storage.SubNone, Name: long}},
			{"NUL in name", storage.RosterItem{Contact: "bob@example.com", Subscription: storage.SubNone, Name: "a\x00b"}},
		}
		for _, tc := range tests {
			_, err := r.Put(t.Context(), "alice@example.com", tc.it, 0)
			wantErr(t, "Put "+tc.name, err, storage.ErrInvalid)
		}
		for _, o := range invalidOwners {
			_, err := r.Put(t.Context(), o.jid, item("bob@example.com", storage.SubNone), 0)
			wantErr(t, "Put for owner "+o.name, err, storage.ErrInvalid)
			_, _, err = r.Items(t.Context(), o.jid)
			wantErr(t, "Items for owner "+o.name, err, storage.ErrInvalid)
			err = r.AddPendingIn(t.Context(), o.jid, storage.Pending{Contact: "bob@example.com"})
			wantErr(t, "AddPendingIn for owner "+o.name, err, storage.ErrInvalid)
		}
		for _, c := range []string{"", "bob@example.com/res", "@x"} {
			err := r.AddPendingIn(t.Context(), "alice@example.com", storage.Pending{Contact: c})
			wantErr(t, fmt.Sprintf("AddPendingIn from %q", c), err, storage.ErrInvalid)
		}
		err := r.AddPendingIn(t.Context(), "alice@example.com", storage.Pending{Contact: "bob@example.com", Stanza: make([]byte, storage.MaxValueBytes+1)})
		wantErr(t, "AddPendingIn with oversized stanza", err, storage.ErrInvalid)

		items, v := mustItems(t, r, "alice@example.com")
		if len(items) != 0 || v != 0 {
			t.Errorf("rejected Puts left items %+v, version %d", items, v)
		}
		if p, err := r.PendingIn(t.Context(), "alice@example.com"); err != nil || len(p) != 0 {
			t.Errorf("rejected AddPendingIn left %+v, %v", p, err)
		}
	})

	t.Run("MissingOwner", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		ctx := t.Context()
		calls := []struct {
			name string
			call func() error
		}{
			{"Items", func() error { _, _, err := r.Items(ctx, missingOwner); return err }},
			{"Item", func() error { _, err := r.Item(ctx, missingOwner, "bob@example.com"); return err }},
			{"Put", func() error {
				_, err := r.Put(ctx, missingOwner, item("bob@example.com", storage.SubNone), 0)
				return err
			}},
			{"Put with limit", func() error {
				_, err := r.Put(ctx, missingOwner, item("bob@example.com", storage.SubNone), 5)
				return err
			}},
			{"Delete", func() error { _, err := r.Delete(ctx, missingOwner, "bob@example.com"); return err }},
			{"Count", func() error { _, err := r.Count(ctx, missingOwner); return err }},
			{"AddPendingIn", func() error {
				return r.AddPendingIn(ctx, missingOwner, storage.Pending{Contact: "bob@example.com", Stanza: []byte("<presence/>")})
			}},
			{"PendingIn", func() error { _, err := r.PendingIn(ctx, missingOwner); return err }},
			{"DeletePendingIn", func() error { return r.DeletePendingIn(ctx, missingOwner, "bob@example.com") }},
		}
		for _, c := range calls {
			wantErr(t, c.name, c.call(), storage.ErrNotFound)
		}
		// None of them created the account or any rows.
		if _, err := s.Users().Get(ctx, missingOwner); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("account appeared: %v", err)
		}
	})

	t.Run("PendingIn", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		stanza := func(from string, n int) []byte {
			return fmt.Appendf(nil, "<presence from='%s' type='subscribe' id='%d'/>\x00\xff", from, n)
		}
		got, err := r.PendingIn(ctx, "alice@example.com")
		if err != nil || len(got) != 0 {
			t.Fatalf("PendingIn on a new account = %+v, %v", got, err)
		}
		// Added in an order that is not the contacts' sort order.
		for i, c := range []string{"zed@example.com", "carol@example.com", "example.net", "mallory@example.org"} {
			if err := r.AddPendingIn(ctx, "alice@example.com", storage.Pending{Contact: c, Stanza: stanza(c, i)}); err != nil {
				t.Fatalf("AddPendingIn(%s): %v", c, err)
			}
		}
		if err := r.AddPendingIn(ctx, "bob@example.com", storage.Pending{Contact: "carol@example.com", Stanza: []byte("bob's")}); err != nil {
			t.Fatal(err)
		}
		// A newer request from carol replaces hers and is now the newest.
		if err := r.AddPendingIn(ctx, "alice@example.com", storage.Pending{Contact: "carol@example.com", Stanza: stanza("carol@example.com", 99)}); err != nil {
			t.Fatal(err)
		}
		// An empty stanza is kept as empty.
		if err := r.AddPendingIn(ctx, "alice@example.com", storage.Pending{Contact: "empty@example.com"}); err != nil {
			t.Fatal(err)
		}
		want := []storage.Pending{
			{Contact: "zed@example.com", Stanza: stanza("zed@example.com", 0)},
			{Contact: "example.net", Stanza: stanza("example.net", 2)},
			{Contact: "mallory@example.org", Stanza: stanza("mallory@example.org", 3)},
			{Contact: "carol@example.com", Stanza: stanza("carol@example.com", 99)},
			{Contact: "empty@example.com", Stanza: []byte{}},
		}
		checkPending := func(step string, want []storage.Pending) {
			t.Helper()
			got, err := r.PendingIn(ctx, "alice@example.com")
			if err != nil {
				t.Fatalf("%s: PendingIn: %v", step, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: PendingIn = %d requests, want %d: %q", step, len(got), len(want), got)
			}
			for i := range want {
				if got[i].Contact != want[i].Contact || !bytes.Equal(got[i].Stanza, want[i].Stanza) {
					t.Errorf("%s: PendingIn[%d] = %s %q, want %s %q", step, i, got[i].Contact, got[i].Stanza, want[i].Contact, want[i].Stanza)
				}
			}
		}
		checkPending("after adds", want)
		if err := r.DeletePendingIn(ctx, "alice@example.com", "example.net"); err != nil {
			t.Fatalf("DeletePendingIn: %v", err)
		}
		if err := r.DeletePendingIn(ctx, "alice@example.com", "example.net"); err != nil {
			t.Errorf("DeletePendingIn of an absent request: %v", err)
		}
		if err := r.DeletePendingIn(ctx, "alice@example.com", "never@example.com"); err != nil {
			t.Errorf("DeletePendingIn of a never-seen contact: %v", err)
		}
		checkPending("after delete", slices.Delete(slices.Clone(want), 1, 2))
		bobs, err := r.PendingIn(ctx, "bob@example.com")
		if err != nil || len(bobs) != 1 || string(bobs[0].Stanza) != "bob's" {
			t.Errorf("bob's requests = %+v, %v; alice's changes leaked", bobs, err)
		}
		// Pending requests are not roster items.
		if n, err := r.Count(ctx, "alice@example.com"); err != nil || n != 0 {
			t.Errorf("Count = %d, %v; pending requests counted as items", n, err)
		}
	})

	t.Run("DeleteAccountCascades", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := s.Roster()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		for _, owner := range []string{"alice@example.com", "bob@example.com"} {
			mustPut(t, r, owner, item("carol@example.com", storage.SubBoth, "g"))
			mustPut(t, r, owner, item("dave@example.com", storage.SubTo))
			if err := r.AddPendingIn(ctx, owner, storage.Pending{Contact: "eve@example.com", Stanza: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		_, bobVersion := mustItems(t, r, "bob@example.com")
		if err := s.Users().Delete(ctx, "alice@example.com"); err != nil {
			t.Fatalf("Users.Delete: %v", err)
		}
		_, _, err := r.Items(ctx, "alice@example.com")
		wantErr(t, "Items of deleted account", err, storage.ErrNotFound)
		// A new account with the same JID starts from nothing.
		mustCreate(t, s.Users(), "alice@example.com", nil)
		if items, v := mustItems(t, r, "alice@example.com"); len(items) != 0 || v != 0 {
			t.Errorf("re-created account inherited items %+v, version %d", items, v)
		}
		if p, err := r.PendingIn(ctx, "alice@example.com"); err != nil || len(p) != 0 {
			t.Errorf("re-created account inherited pending requests %+v, %v", p, err)
		}
		if items, v := mustItems(t, r, "bob@example.com"); len(items) != 2 || v != bobVersion {
			t.Errorf("deleting alice changed bob's roster: %+v, version %d (was %d)", items, v, bobVersion)
		}
		if p, err := r.PendingIn(ctx, "bob@example.com"); err != nil || len(p) != 1 {
			t.Errorf("deleting alice changed bob's pending requests: %+v, %v", p, err)
		}
	})
}
