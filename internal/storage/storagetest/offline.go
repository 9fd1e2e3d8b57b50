package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"parley/internal/storage"
)

func mustPush(t *testing.T, o storage.Offline, owner string, data []byte) storage.OfflineMessage {
	t.Helper()
	m, err := o.Push(t.Context(), owner, data, 0)
	if err != nil {
		t.Fatalf("Push(%s): %v", owner, err)
	}
	return m
}

func mustList(t *testing.T, o storage.Offline, owner string) []storage.OfflineMessage {
	t.Helper()
	ms, err := o.List(t.Context(), owner)
	if err != nil {
		t.Fatalf("List(%s): %v", owner, err)
	}
	return ms
}

func messagesEqual(a, b storage.OfflineMessage) bool {
	return a.ID == b.ID && a.Stored.Equal(b.Stored) && bytes.Equal(a.Data, b.Data)
}

func ids(ms []storage.OfflineMessage) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func runOffline(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("PushListRoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		got := mustList(t, o, "alice@example.com")
		if len(got) != 0 {
			t.Fatalf("List on a new account = %+v", got)
		}
		big := bytes.Repeat([]byte{0xab}, storage.MaxValueBytes)
		payloads := [][]byte{[]byte("<message>hi</message>"), {}, {0, 1, 2, 0xff}, big, nil, []byte("last")}
		var pushed []storage.OfflineMessage
		for i, p := range payloads {
			before := time.Now().Add(-time.Second)
			m := mustPush(t, o, "alice@example.com", p)
			after := time.Now().Add(time.Second)
			if !bytes.Equal(m.Data, p) {
				t.Errorf("Push %d returned data %.20q, want %.20q", i, m.Data, p)
			}
			if m.Stored.Location() != time.UTC || m.Stored.Before(before) || m.Stored.After(after) || m.Stored.Nanosecond()%1000 != 0 {
				t.Errorf("Push %d: Stored = %v, want now in UTC, whole microseconds", i, m.Stored)
			}
			if i > 0 && m.ID <= pushed[i-1].ID {
				t.Errorf("Push %d: ID %d not above previous %d", i, m.ID, pushed[i-1].ID)
			}
			pushed = append(pushed, m)
		}
		got = mustList(t, o, "alice@example.com")
		if len(got) != len(pushed) {
			t.Fatalf("List returned %d messages, want %d", len(got), len(pushed))
		}
		for i := range pushed {
			if !messagesEqual(got[i], pushed[i]) {
				t.Errorf("List[%d] = {%d %v %.20q}, want {%d %v %.20q}", i,
					got[i].ID, got[i].Stored, got[i].Data, pushed[i].ID, pushed[i].Stored, pushed[i].Data)
			}
			if got[i].Stored.Location() != time.UTC {
				t.Errorf("List[%d].Stored in %v, want UTC", i, got[i].Stored.Location())
			}
		}
		if n, err := o.Count(t.Context(), "alice@example.com"); err != nil || n != len(payloads) {
			t.Errorf("Count = %d, %v; want %d", n, err, len(payloads))
		}
	})

	t.Run("PushAtKeepsTheGivenTime", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		at := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600))
		m, err := o.PushAt(t.Context(), "alice@example.com", at, []byte("x"), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := at.UTC().Truncate(time.Microsecond)
		if !m.Stored.Equal(want) || m.Stored.Location() != time.UTC {
			t.Errorf("PushAt stored %v, want %v", m.Stored, want)
		}
		if got := mustList(t, o, "alice@example.com"); len(got) != 1 || !messagesEqual(got[0], m) {
			t.Errorf("List = %+v, want %+v", got, m)
		}
	})

	t.Run("OwnersAreSeparate", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		// Interleaved, so ids of the two owners alternate.
		var mine, theirs []storage.OfflineMessage
		for i := range 4 {
			mine = append(mine, mustPush(t, o, "alice@example.com", fmt.Appendf(nil, "a%d", i)))
			theirs = append(theirs, mustPush(t, o, "bob@example.com", fmt.Appendf(nil, "b%d", i)))
		}
		if got := ids(mustList(t, o, "alice@example.com")); !slices.Equal(got, ids(mine)) {
			t.Errorf("alice's ids = %v, want %v", got, ids(mine))
		}
		// Deleting bob's ids through alice must not touch bob's messages.
		if err := o.Delete(t.Context(), "alice@example.com", ids(theirs)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := ids(mustList(t, o, "bob@example.com")); !slices.Equal(got, ids(theirs)) {
			t.Errorf("alice's Delete removed bob's messages: bob has %v, want %v", got, ids(theirs))
		}
		if n, err := o.Count(t.Context(), "bob@example.com"); err != nil || n != 4 {
			t.Errorf("bob's Count = %d, %v; want 4", n, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		var all []storage.OfflineMessage
		for i := range 6 {
			all = append(all, mustPush(t, o, "alice@example.com", fmt.Appendf(nil, "m%d", i)))
		}
		steps := []struct {
			name string
			del  []int64
			want []int64 // remaining, by index into all
		}{
			{"nothing (nil)", nil, []int64{0, 1, 2, 3, 4, 5}},
			{"nothing (empty)", []int64{}, []int64{0, 1, 2, 3, 4, 5}},
			{"one", []int64{all[2].ID}, []int64{0, 1, 3, 4, 5}},
			{"several, with absent and duplicate ids", []int64{all[0].ID, all[2].ID, all[5].ID, all[5].ID, all[5].ID + 1000, -1}, []int64{1, 3, 4}},
			{"only absent", []int64{all[0].ID, 1 << 62}, []int64{1, 3, 4}},
			{"the rest", []int64{all[4].ID, all[1].ID, all[3].ID}, nil},
		}
		for _, st := range steps {
			if err := o.Delete(t.Context(), "alice@example.com", st.del); err != nil {
				t.Fatalf("%s: Delete: %v", st.name, err)
			}
			var want []int64
			for _, i := range st.want {
				want = append(want, all[i].ID)
			}
			if got := ids(mustList(t, o, "alice@example.com")); !slices.Equal(got, want) {
				t.Errorf("%s: remaining ids %v, want %v", st.name, got, want)
			}
		}
		// Ids are never handed out twice, even after everything was
		// deleted: callers use them as message identifiers.
		if m := mustPush(t, o, "alice@example.com", []byte("new")); m.ID <= all[len(all)-1].ID {
			t.Errorf("Push after deleting all got ID %d, not above the last ever (%d)", m.ID, all[len(all)-1].ID)
		}
	})

	t.Run("DeleteManyIDs", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		var keep []int64
		var del []int64
		for i := range 60 {
			m := mustPush(t, o, "alice@example.com", []byte{byte(i)})
			if i%3 == 0 {
				keep = append(keep, m.ID)
			} else {
				del = append(del, m.ID)
			}
		}
		// More ids than SQLite's historical 999-parameter cap.
		for i := range 1500 {
			del = append(del, 1<<40+int64(i))
		}
		if err := o.Delete(t.Context(), "alice@example.com", del); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := ids(mustList(t, o, "alice@example.com")); !slices.Equal(got, keep) {
			t.Errorf("remaining ids %v, want %v", got, keep)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		const max = 3
		var pushed []storage.OfflineMessage
		for i := range max {
			m, err := o.Push(ctx, "alice@example.com", []byte{byte(i)}, max)
			if err != nil {
				t.Fatalf("Push %d under the limit: %v", i, err)
			}
			pushed = append(pushed, m)
		}
		_, err := o.Push(ctx, "alice@example.com", []byte("extra"), max)
		wantErr(t, "Push beyond the limit", err, storage.ErrLimit)
		_, err = o.Push(ctx, "alice@example.com", []byte("extra"), 1)
		wantErr(t, "Push with a limit below the count", err, storage.ErrLimit)
		if n, err := o.Count(ctx, "alice@example.com"); err != nil || n != max {
			t.Errorf("refused Push stored something: Count = %d, %v", n, err)
		}
		// The limit is per owner.
		if _, err := o.Push(ctx, "bob@example.com", []byte("b"), 1); err != nil {
			t.Errorf("bob's first Push with max 1: %v", err)
		}
		if err := o.Delete(ctx, "alice@example.com", []int64{pushed[0].ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Push(ctx, "alice@example.com", []byte("room"), max); err != nil {
			t.Errorf("Push after Delete made room: %v", err)
		}
		if _, err := o.Push(ctx, "alice@example.com", []byte("unlimited"), 0); err != nil {
			t.Errorf("Push with max 0: %v", err)
		}
		if n, err := o.Count(ctx, "alice@example.com"); err != nil || n != max+1 {
			t.Errorf("Count = %d, %v; want %d", n, err, max+1)
		}
	})

	t.Run("ConcurrentPushWithLimit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		const racers, max = 30, 10
		var wg sync.WaitGroup
		results := make(chan error, 2*racers)
		for i := range racers {
			wg.Go(func() {
				_, err := o.Push(context.Background(), "alice@example.com", []byte{byte(i)}, max)
				results <- err
			})
			// Unlimited pushes for another owner at the same time must
			// neither fail nor count against alice.
			wg.Go(func() {
				_, err := o.Push(context.Background(), "bob@example.com", []byte{byte(i)}, 0)
				results <- err
			})
		}
		wg.Wait()
		close(results)
		won := 0
		for err := range results {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, storage.ErrLimit):
				t.Errorf("racing Push: %v", err)
			}
		}
		if won != max+racers {
			t.Errorf("%d racing Pushes succeeded, want exactly %d", won, max+racers)
		}
		if n, err := o.Count(t.Context(), "alice@example.com"); err != nil || n != max {
			t.Errorf("alice's Count = %d, %v; want %d", n, err, max)
		}
		if n, err := o.Count(t.Context(), "bob@example.com"); err != nil || n != racers {
			t.Errorf("bob's Count = %d, %v; want %d", n, err, racers)
		}
	})

	t.Run("DeleteBefore", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		var all []storage.OfflineMessage
		for i := range 6 {
			owner := []string{"alice@example.com", "bob@example.com"}[i%2]
			all = append(all, mustPush(t, o, owner, []byte{byte(i)}))
			time.Sleep(2 * time.Millisecond) // distinct timestamps
		}
		remaining := func() []int64 {
			var out []int64
			for _, owner := range []string{"alice@example.com", "bob@example.com"} {
				out = append(out, ids(mustList(t, o, owner))...)
			}
			slices.Sort(out)
			return out
		}
		steps := []struct {
			name string
			t    time.Time
			n    int     // how many go
			keep []int64 // indexes into all that remain
		}{
			{"long ago", time.Unix(0, 0), 0, []int64{0, 1, 2, 3, 4, 5}},
			// Strictly before: a message stored exactly at t stays.
			{"exactly the first", all[0].Stored, 0, []int64{0, 1, 2, 3, 4, 5}},
			{"a nanosecond after the first", all[0].Stored.Add(time.Nanosecond), 1, []int64{1, 2, 3, 4, 5}},
			{"exactly the fourth, in another zone", all[3].Stored.In(time.FixedZone("X", 5*3600)), 2, []int64{3, 4, 5}},
			{"far future", time.Now().Add(time.Hour), 3, nil},
			{"again", time.Now().Add(time.Hour), 0, nil},
		}
		for _, st := range steps {
			n, err := o.DeleteBefore(ctx, st.t)
			if err != nil {
				t.Fatalf("%s: DeleteBefore: %v", st.name, err)
			}
			if n != st.n {
				t.Errorf("%s: DeleteBefore removed %d, want %d", st.name, n, st.n)
			}
			var want []int64
			for _, i := range st.keep {
				want = append(want, all[i].ID)
			}
			if got := remaining(); !slices.Equal(got, want) {
				t.Errorf("%s: remaining %v, want %v", st.name, got, want)
			}
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		_, err := o.Push(ctx, "alice@example.com", make([]byte, storage.MaxValueBytes+1), 0)
		wantErr(t, "Push of an oversized message", err, storage.ErrInvalid)
		for _, ow := range invalidOwners {
			_, err := o.Push(ctx, ow.jid, []byte("x"), 0)
			wantErr(t, "Push for owner "+ow.name, err, storage.ErrInvalid)
			_, err = o.List(ctx, ow.jid)
			wantErr(t, "List for owner "+ow.name, err, storage.ErrInvalid)
			err = o.Delete(ctx, ow.jid, []int64{1})
			wantErr(t, "Delete for owner "+ow.name, err, storage.ErrInvalid)
			_, err = o.Count(ctx, ow.jid)
			wantErr(t, "Count for owner "+ow.name, err, storage.ErrInvalid)
		}
		if n, err := o.Count(ctx, "alice@example.com"); err != nil || n != 0 {
			t.Errorf("rejected Push stored something: Count = %d, %v", n, err)
		}
	})

	t.Run("MissingOwner", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		ctx := t.Context()
		calls := []struct {
			name string
			call func() error
		}{
			{"Push", func() error { _, err := o.Push(ctx, missingOwner, []byte("x"), 0); return err }},
			{"Push with limit", func() error { _, err := o.Push(ctx, missingOwner, []byte("x"), 5); return err }},
			{"List", func() error { _, err := o.List(ctx, missingOwner); return err }},
			{"Delete", func() error { return o.Delete(ctx, missingOwner, []int64{1, 2}) }},
			{"Delete nothing", func() error { return o.Delete(ctx, missingOwner, nil) }},
			{"Count", func() error { _, err := o.Count(ctx, missingOwner); return err }},
		}
		for _, c := range calls {
			wantErr(t, c.name, c.call(), storage.ErrNotFound)
		}
	})

	t.Run("DeleteAccountCascades", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := s.Offline()
		ctx := t.Context()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		for i := range 3 {
			mustPush(t, o, "alice@example.com", []byte{byte(i)})
			mustPush(t, o, "bob@example.com", []byte{byte(i)})
		}
		if err := s.Users().Delete(ctx, "alice@example.com"); err != nil {
			t.Fatalf("Users.Delete: %v", err)
		}
		_, err := o.List(ctx, "alice@example.com")
		wantErr(t, "List of deleted account", err, storage.ErrNotFound)
		mustCreate(t, s.Users(), "alice@example.com", nil)
		if ms := mustList(t, o, "alice@example.com"); len(ms) != 0 {
			t.Errorf("re-created account inherited %d messages", len(ms))
		}
		if n, err := o.Count(ctx, "bob@example.com"); err != nil || n != 3 {
			t.Errorf("deleting alice changed bob's messages: Count = %d, %v", n, err)
		}
		// Retention sees only bob's now.
		if n, err := o.DeleteBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 3 {
			t.Errorf("DeleteBefore = %d, %v; want bob's 3", n, err)
		}
	})
}
