package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/storage"
)

func mustNode(t *testing.T, ps storage.PubSub, owner, node string, config []byte) {
	t.Helper()
	if err := ps.CreateNode(t.Context(), owner, storage.PubSubNode{Name: node, Config: config}); err != nil {
		t.Fatalf("CreateNode(%s, %q): %v", owner, node, err)
	}
}

func mustPublish(t *testing.T, ps storage.PubSub, owner, node, id, payload string, max int) storage.PubSubItem {
	t.Helper()
	it, err := ps.Publish(t.Context(), owner, node, storage.PubSubItem{ID: id, Publisher: owner + "/phone", Payload: []byte(payload)}, max)
	if err != nil {
		t.Fatalf("Publish(%s, %q, %q): %v", owner, node, id, err)
	}
	return it
}

func mustItemsQ(t *testing.T, ps storage.PubSub, owner, node string, q storage.PubSubQuery) []storage.PubSubItem {
	t.Helper()
	its, err := ps.Items(t.Context(), owner, node, q)
	if err != nil {
		t.Fatalf("Items(%s, %q, %+v): %v", owner, node, q, err)
	}
	return its
}

// itemIDs renders items as "id=payload" for compact comparisons.
func itemIDs(its []storage.PubSubItem) string {
	s := make([]string, len(its))
	for i, it := range its {
		s[i] = it.ID + "=" + string(it.Payload)
	}
	return strings.Join(s, " ")
}

func runPubSub(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"

	t.Run("Nodes", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		if err := ps.CreateNode(ctx, alice, storage.PubSubNode{Name: "n"}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("CreateNode without an account: %v, want ErrNotFound", err)
		}
		if _, err := ps.Nodes(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Nodes without an account: %v, want ErrNotFound", err)
		}
		mustCreate(t, s.Users(), alice, nil)
		mustCreate(t, s.Users(), bob, nil)
		if l, err := ps.Nodes(ctx, alice); err != nil || len(l) != 0 {
			t.Errorf("Nodes of a new account = %v, %v", l, err)
		}
		before := time.Now().Add(-time.Second)
		for _, n := range []string{"urn:xmpp:avatar:metadata", "eu.siacs.conversations.axolotl.devicelist", "urn:xmpp:avatar:data"} {
			mustNode(t, ps, alice, n, []byte("cfg "+n))
		}
		mustNode(t, ps, bob, "urn:xmpp:avatar:data", nil)
		if err := ps.CreateNode(ctx, alice, storage.PubSubNode{Name: "urn:xmpp:avatar:data", Config: []byte("x")}); !errors.Is(err, storage.ErrExists) {
			t.Errorf("second CreateNode: %v, want ErrExists", err)
		}
		l, err := ps.Nodes(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range l {
			names = append(names, n.Name)
			if string(n.Config) != "cfg "+n.Name {
				t.Errorf("node %q config = %q", n.Name, n.Config)
			}
			if n.Created.Before(before) || n.Created.After(time.Now().Add(time.Second)) || n.Created.Location() != time.UTC {
				t.Errorf("node %q created = %v", n.Name, n.Created)
			}
		}
		if want := []string{"eu.siacs.conversations.axolotl.devicelist", "urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata"}; !slices.Equal(names, want) {
			t.Errorf("Nodes = %q, want %q", names, want)
		}
		n, err := ps.Node(ctx, bob, "urn:xmpp:avatar:data")
		if err != nil || n.Name != "urn:xmpp:avatar:data" || n.Config == nil || len(n.Config) != 0 {
			t.Errorf("Node(bob) = %+v, %v; want an empty, non-nil config", n, err)
		}
		if _, err := ps.Node(ctx, bob, "urn:xmpp:avatar:metadata"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Node of another owner's node name: %v, want ErrNotFound", err)
		}
		if err := ps.Configure(ctx, alice, "urn:xmpp:avatar:data", []byte("new"), 0); err != nil {
			t.Fatal(err)
		}
		if n, _ := ps.Node(ctx, alice, "urn:xmpp:avatar:data"); string(n.Config) != "new" {
			t.Errorf("config after Configure = %q", n.Config)
		}
		if n, _ := ps.Node(ctx, bob, "urn:xmpp:avatar:data"); len(n.Config) != 0 {
			t.Errorf("Configure reached another owner: %q", n.Config)
		}
		if err := ps.Configure(ctx, alice, "missing", nil, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Configure of a missing node: %v, want ErrNotFound", err)
		}
		if err := ps.DeleteNode(ctx, alice, "urn:xmpp:avatar:data"); err != nil {
			t.Fatal(err)
		}
		if err := ps.DeleteNode(ctx, alice, "urn:xmpp:avatar:data"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second DeleteNode: %v, want ErrNotFound", err)
		}
		if _, err := ps.Node(ctx, bob, "urn:xmpp:avatar:data"); err != nil {
			t.Errorf("DeleteNode reached another owner: %v", err)
		}
		if l, _ := ps.Nodes(ctx, alice); len(l) != 2 {
			t.Errorf("Nodes after DeleteNode = %v", l)
		}
	})

	t.Run("PublishOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		mustCreate(t, s.Users(), alice, nil)
		if _, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{ID: "a"}, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Publish to a missing node: %v, want ErrNotFound", err)
		}
		mustNode(t, ps, alice, "n", nil)
		before := time.Now().Add(-time.Second)
		it := mustPublish(t, ps, alice, "n", "a", "<x>1</x>", 0)
		if it.Published.Before(before) || it.Published.Location() != time.UTC || it.Published != it.Published.Truncate(time.Microsecond) {
			t.Errorf("Published = %v", it.Published)
		}
		mustPublish(t, ps, alice, "n", "b", "<x>2</x>", 0)
		mustPublish(t, ps, alice, "n", "c", "<x>3</x>", 0)
		if got := itemIDs(mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})); got != "a=<x>1</x> b=<x>2</x> c=<x>3</x>" {
			t.Errorf("Items = %s", got)
		}
		// Republishing "a" replaces it and makes it the newest.
		mustPublish(t, ps, alice, "n", "a", "<x>4</x>", 0)
		all := mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})
		if got := itemIDs(all); got != "b=<x>2</x> c=<x>3</x> a=<x>4</x>" {
			t.Errorf("Items after republish = %s", got)
		}
		if all[2].Publisher != alice+"/phone" || all[2].Published.IsZero() {
			t.Errorf("item = %+v", all[2])
		}
		tests := []struct {
			name string
			q    storage.PubSubQuery
			want string
		}{
			{"last one", storage.PubSubQuery{Last: 1}, "a=<x>4</x>"},
			{"last two", storage.PubSubQuery{Last: 2}, "c=<x>3</x> a=<x>4</x>"},
			{"last more than there are", storage.PubSubQuery{Last: 10}, "b=<x>2</x> c=<x>3</x> a=<x>4</x>"},
			{"by ids, missing one skipped", storage.PubSubQuery{IDs: []string{"c", "zz", "b"}}, "b=<x>2</x> c=<x>3</x>"},
			{"by ids and last", storage.PubSubQuery{IDs: []string{"a", "b"}, Last: 1}, "a=<x>4</x>"},
			{"only missing ids", storage.PubSubQuery{IDs: []string{"zz"}}, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := itemIDs(mustItemsQ(t, ps, alice, "n", tc.q)); got != tc.want {
					t.Errorf("Items(%+v) = %q, want %q", tc.q, got, tc.want)
				}
			})
		}
		if _, err := ps.Items(ctx, alice, "missing", storage.PubSubQuery{}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Items of a missing node: %v, want ErrNotFound", err)
		}
		mustNode(t, ps, alice, "empty", nil)
		if its, err := ps.Items(ctx, alice, "empty", storage.PubSubQuery{}); err != nil || len(its) != 0 {
			t.Errorf("Items of an empty node = %v, %v", its, err)
		}
	})

	t.Run("MaxItems", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		mustCreate(t, s.Users(), alice, nil)
		mustNode(t, ps, alice, "n", nil)
		mustNode(t, ps, alice, "other", nil)
		mustPublish(t, ps, alice, "other", "keep", "k", 1)
		for i := range 5 {
			mustPublish(t, ps, alice, "n", fmt.Sprint(i), fmt.Sprint(i), 3)
		}
		if got := itemIDs(mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})); got != "2=2 3=3 4=4" {
			t.Errorf("after 5 publishes with max 3: %s", got)
		}
		// A republish of an existing id does not push anything out.
		mustPublish(t, ps, alice, "n", "2", "again", 3)
		if got := itemIDs(mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})); got != "3=3 4=4 2=again" {
			t.Errorf("after a republish: %s", got)
		}
		mustPublish(t, ps, alice, "n", "5", "5", 1)
		if got := itemIDs(mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})); got != "5=5" {
			t.Errorf("after a publish with max 1: %s", got)
		}
		for i := 6; i < 9; i++ {
			mustPublish(t, ps, alice, "n", fmt.Sprint(i), fmt.Sprint(i), 0)
		}
		if err := ps.Configure(ctx, alice, "n", []byte("c"), 2); err != nil {
			t.Fatal(err)
		}
		if got := itemIDs(mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})); got != "7=7 8=8" {
			t.Errorf("after Configure with max 2: %s", got)
		}
		if got := itemIDs(mustItemsQ(t, ps, alice, "other", storage.PubSubQuery{})); got != "keep=k" {
			t.Errorf("trimming reached another node: %s", got)
		}
	})

	t.Run("RetractAndLastItems", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		mustCreate(t, s.Users(), alice, nil)
		mustCreate(t, s.Users(), bob, nil)
		if l, err := ps.LastItems(ctx, alice); err != nil || len(l) != 0 {
			t.Errorf("LastItems without nodes = %v, %v", l, err)
		}
		mustNode(t, ps, alice, "b", nil)
		mustNode(t, ps, alice, "a", nil)
		mustNode(t, ps, alice, "empty", nil)
		mustNode(t, ps, bob, "a", nil)
		mustPublish(t, ps, alice, "a", "1", "a1", 0)
		mustPublish(t, ps, alice, "a", "2", "a2", 0)
		mustPublish(t, ps, alice, "b", "1", "b1", 0)
		mustPublish(t, ps, bob, "a", "9", "bob", 0)
		l, err := ps.LastItems(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range l {
			got = append(got, x.Node+":"+x.Item.ID+"="+string(x.Item.Payload))
		}
		if want := []string{"a:2=a2", "b:1=b1"}; !slices.Equal(got, want) {
			t.Errorf("LastItems = %q, want %q", got, want)
		}
		if err := ps.Retract(ctx, alice, "a", "2"); err != nil {
			t.Fatal(err)
		}
		if err := ps.Retract(ctx, alice, "a", "2"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Retract: %v, want ErrNotFound", err)
		}
		if err := ps.Retract(ctx, alice, "missing", "1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Retract from a missing node: %v, want ErrNotFound", err)
		}
		if got := itemIDs(mustItemsQ(t, ps, alice, "a", storage.PubSubQuery{})); got != "1=a1" {
			t.Errorf("after Retract: %s", got)
		}
		if l, _ := ps.LastItems(ctx, alice); len(l) != 2 || l[0].Item.ID != "1" {
			t.Errorf("LastItems after Retract = %+v", l)
		}
		if got := itemIDs(mustItemsQ(t, ps, bob, "a", storage.PubSubQuery{})); got != "9=bob" {
			t.Errorf("bob's node = %s", got)
		}
	})

	t.Run("PayloadBytes", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		want := func(owner string, n int64) {
			t.Helper()
			if got, err := ps.PayloadBytes(ctx, owner); err != nil || got != n {
				t.Errorf("PayloadBytes(%s) = %d, %v; want %d", owner, got, err, n)
			}
		}
		want(alice, 0) // no account: nothing, no error
		mustCreate(t, s.Users(), alice, nil)
		mustCreate(t, s.Users(), bob, nil)
		want(alice, 0)
		mustNode(t, ps, alice, "a", []byte("a config that is not counted"))
		mustNode(t, ps, alice, "b", nil)
		mustNode(t, ps, bob, "a", nil)
		mustPublish(t, ps, alice, "a", "1", "12345", 0)
		mustPublish(t, ps, alice, "a", "2", "1234567890", 0)
		mustPublish(t, ps, alice, "b", "1", "\x00\xff\x00", 0) // bytes, not characters
		mustPublish(t, ps, bob, "a", "1", "bob's", 0)
		want(alice, 18)
		mustPublish(t, ps, alice, "a", "1", "1", 0) // replaced
		want(alice, 14)
		mustPublish(t, ps, alice, "a", "3", "123", 1) // trims 1 and 2
		want(alice, 6)
		if err := ps.Retract(ctx, alice, "b", "1"); err != nil {
			t.Fatal(err)
		}
		want(alice, 3)
		if err := ps.DeleteNode(ctx, alice, "a"); err != nil {
			t.Fatal(err)
		}
		want(alice, 0)
		want(bob, 5)
		if _, err := ps.PayloadBytes(ctx, "example.com"); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("PayloadBytes with a bad owner: %v, want ErrInvalid", err)
		}
	})

	t.Run("DeletionCascades", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		mustCreate(t, s.Users(), alice, nil)
		mustNode(t, ps, alice, "n", nil)
		mustPublish(t, ps, alice, "n", "1", "x", 0)
		// Deleting a node takes its items: a new node of the same name
		// starts empty.
		if err := ps.DeleteNode(ctx, alice, "n"); err != nil {
			t.Fatal(err)
		}
		mustNode(t, ps, alice, "n", nil)
		if its := mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{}); len(its) != 0 {
			t.Errorf("items survived DeleteNode: %v", its)
		}
		mustPublish(t, ps, alice, "n", "2", "y", 0)
		if err := s.Users().Delete(ctx, alice); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s.Users(), alice, nil)
		if l, err := ps.Nodes(ctx, alice); err != nil || len(l) != 0 {
			t.Errorf("nodes survived the account: %v, %v", l, err)
		}
		if l, err := ps.LastItems(ctx, alice); err != nil || len(l) != 0 {
			t.Errorf("items survived the account: %v, %v", l, err)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		ctx := t.Context()
		mustCreate(t, s.Users(), alice, nil)
		mustNode(t, ps, alice, "n", nil)
		calls := []struct {
			name string
			call func() error
		}{
			{"CreateNode with an empty name", func() error { return ps.CreateNode(ctx, alice, storage.PubSubNode{}) }},
			{"CreateNode with a bad owner", func() error { return ps.CreateNode(ctx, "example.com", storage.PubSubNode{Name: "n"}) }},
			{"CreateNode with a NUL", func() error { return ps.CreateNode(ctx, alice, storage.PubSubNode{Name: "a\x00b"}) }},
			{"CreateNode with a huge config", func() error {
				return ps.CreateNode(ctx, alice, storage.PubSubNode{Name: "m", Config: make([]byte, storage.MaxValueBytes+1)})
			}},
			{"Publish with an empty id", func() error { _, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{}, 0); return err }},
			{"Publish with invalid UTF-8 id", func() error {
				_, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{ID: "\xff"}, 0)
				return err
			}},
			{"Publish with a huge payload", func() error {
				_, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{ID: "x", Payload: make([]byte, storage.MaxValueBytes+1)}, 0)
				return err
			}},
			{"Publish with negative max", func() error {
				_, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{ID: "x"}, -1)
				return err
			}},
			{"Publish with too large max", func() error {
				_, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{ID: "x"}, storage.MaxPubSubItems+1)
				return err
			}},
			{"Configure with negative max", func() error { return ps.Configure(ctx, alice, "n", nil, -1) }},
			{"Items with too many ids", func() error {
				_, err := ps.Items(ctx, alice, "n", storage.PubSubQuery{IDs: make([]string, storage.MaxPubSubItems+1)})
				return err
			}},
			{"Node with an empty name", func() error { _, err := ps.Node(ctx, alice, ""); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", c.name, err)
			}
		}
		if its := mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{}); len(its) != 0 {
			t.Errorf("invalid calls stored %v", its)
		}
	})

	t.Run("BinaryAndLargePayload", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		mustCreate(t, s.Users(), alice, nil)
		mustNode(t, ps, alice, "urn:xmpp:avatar:data", nil)
		big := bytes.Repeat([]byte("A"), storage.MaxValueBytes)
		mustPublish(t, ps, alice, "urn:xmpp:avatar:data", "big", string(big), 1)
		mustPublish(t, ps, alice, "urn:xmpp:avatar:data", "é/'\"%_", "\x00\xff", 0)
		its := mustItemsQ(t, ps, alice, "urn:xmpp:avatar:data", storage.PubSubQuery{IDs: []string{"big", "é/'\"%_"}})
		if len(its) != 2 || !bytes.Equal(its[0].Payload, big) || string(its[1].Payload) != "\x00\xff" {
			t.Errorf("payloads did not round-trip: %d items", len(its))
		}
	})

	t.Run("ConcurrentPublish", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		mustCreate(t, s.Users(), alice, nil)
		mustNode(t, ps, alice, "n", nil)
		const workers, each, max = 4, 10, 5
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					if _, err := ps.Publish(t.Context(), alice, "n", storage.PubSubItem{ID: fmt.Sprintf("%d-%d", w, i)}, max); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Publish: %v", err)
		}
		its := mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})
		if len(its) != max {
			t.Fatalf("%d items kept, want %d", len(its), max)
		}
		// Each worker publishes in order, so a kept item of a worker is
		// never older than another kept item of the same worker with a
		// higher number.
		last := map[string]int{}
		for _, it := range its {
			var w, i int
			fmt.Sscanf(it.ID, "%d-%d", &w, &i)
			if p, ok := last[fmt.Sprint(w)]; ok && p > i {
				t.Errorf("order broken: %s", itemIDs(its))
			}
			last[fmt.Sprint(w)] = i
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps := s.PubSub()
		mustCreate(t, s.Users(), alice, nil)
		mustNode(t, ps, alice, "n", []byte("c"))
		mustPublish(t, ps, alice, "n", "1", "x", 0)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"CreateNode", func() error { return ps.CreateNode(ctx, alice, storage.PubSubNode{Name: "m"}) }},
			{"Node", func() error { _, err := ps.Node(ctx, alice, "n"); return err }},
			{"Nodes", func() error { _, err := ps.Nodes(ctx, alice); return err }},
			{"Configure", func() error { return ps.Configure(ctx, alice, "n", []byte("d"), 1) }},
			{"DeleteNode", func() error { return ps.DeleteNode(ctx, alice, "n") }},
			{"Publish", func() error { _, err := ps.Publish(ctx, alice, "n", storage.PubSubItem{ID: "2"}, 0); return err }},
			{"Retract", func() error { return ps.Retract(ctx, alice, "n", "1") }},
			{"Items", func() error { _, err := ps.Items(ctx, alice, "n", storage.PubSubQuery{}); return err }},
			{"LastItems", func() error { _, err := ps.LastItems(ctx, alice); return err }},
			{"PayloadBytes", func() error { _, err := ps.PayloadBytes(ctx, alice); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: %v, want context.Canceled", c.name, err)
			}
		}
		if l, _ := ps.Nodes(t.Context(), alice); len(l) != 1 || string(l[0].Config) != "c" {
			t.Errorf("canceled calls changed the nodes: %+v", l)
		}
		if got := itemIDs(mustItemsQ(t, ps, alice, "n", storage.PubSubQuery{})); got != "1=x" {
			t.Errorf("canceled calls changed the items: %s", got)
		}
	})

	t.Run("Service", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ps, ctx := s.PubSubService(), t.Context()
		const svc, other = "pubsub.example.com", "news.example.com"
		if l, err := ps.Nodes(ctx, svc); err != nil || len(l) != 0 {
			t.Fatalf("Nodes of a new service: %v, %v; want none and no error", l, err)
		}
		// No account is needed, and a personal node of the same name is
		// another node.
		mustNode(t, ps, svc, "blog", []byte("c"))
		mustNode(t, ps, other, "blog", []byte("d"))
		if err := ps.CreateNode(ctx, svc, storage.PubSubNode{Name: "blog"}); !errors.Is(err, storage.ErrExists) {
			t.Errorf("CreateNode twice: %v, want ErrExists", err)
		}
		mustPublish(t, ps, svc, "blog", "1", "<a/>", 2)
		mustPublish(t, ps, svc, "blog", "2", "<b/>", 2)
		mustPublish(t, ps, svc, "blog", "3", "<c/>", 2)
		if got := itemIDs(mustItemsQ(t, ps, svc, "blog", storage.PubSubQuery{})); got != "2=<b/> 3=<c/>" {
			t.Errorf("items of a service node: %s", got)
		}
		if got := itemIDs(mustItemsQ(t, ps, other, "blog", storage.PubSubQuery{})); got != "" {
			t.Errorf("another service's node of that name: %s", got)
		}
		if l, err := s.PubSub().Nodes(ctx, alice); !errors.Is(err, storage.ErrNotFound) || len(l) != 0 {
			t.Errorf("personal nodes after service writes: %v, %v", l, err)
		}
		if err := ps.CreateNode(ctx, "alice@example.com", storage.PubSubNode{Name: "x"}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("a service owner that is a JID: %v, want ErrInvalid", err)
		}
		mustNode(t, ps, svc, "other", nil)
		mustPublish(t, ps, svc, "other", "1", "<xyz/>", 0)
		for _, c := range []struct {
			nodes []string
			want  int64
		}{{nil, 0}, {[]string{"blog"}, 8}, {[]string{"blog", "other", "missing"}, 14}, {[]string{"missing"}, 0}} {
			if got, err := ps.NodesBytes(ctx, svc, c.nodes); err != nil || got != c.want {
				t.Errorf("NodesBytes(%v) = %d, %v; want %d", c.nodes, got, err, c.want)
			}
		}
		if got, err := s.PubSub().NodesBytes(ctx, alice, []string{"blog"}); err != nil || got != 0 {
			t.Errorf("NodesBytes of a personal service: %d, %v", got, err)
		}
		if err := ps.DeleteNode(ctx, svc, "blog"); err != nil {
			t.Fatal(err)
		}
		if _, err := ps.Items(ctx, svc, "blog", storage.PubSubQuery{}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("items of a deleted node: %v", err)
		}
		if l, _ := ps.Nodes(ctx, other); len(l) != 1 || string(l[0].Config) != "d" {
			t.Errorf("the other service's nodes: %+v", l)
		}
	})
}
