package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"parley/internal/storage"
)

// archiveT0 is the stamp of the first message in most archive tests: fixed,
// so time filters can be checked to the microsecond.
var archiveT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustAppend(t *testing.T, a storage.Archive, owner string, m storage.ArchiveMessage) storage.ArchiveMessage {
	t.Helper()
	got, err := a.Append(t.Context(), owner, m)
	if err != nil {
		t.Fatalf("Append(%s, %s): %v", owner, m.ID, err)
	}
	return got
}

func mustQuery(t *testing.T, a storage.Archive, owner string, q storage.ArchiveQuery) storage.ArchivePage {
	t.Helper()
	p, err := a.Query(t.Context(), owner, q)
	if err != nil {
		t.Fatalf("Query(%s, %+v): %v", owner, q, err)
	}
	return p
}

func archiveIDs(ms []storage.ArchiveMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// fmtArchived shows a message without dumping a megabyte of data.
func fmtArchived(m storage.ArchiveMessage) string {
	return fmt.Sprintf("{%.20q %q %v out=%v data=%.16x (%d bytes)}", m.ID, m.With, m.Stamp, m.Outgoing, m.Data, len(m.Data))
}

func archivedEqual(a, b storage.ArchiveMessage) bool {
	return a.ID == b.ID && a.With == b.With && a.Stamp.Equal(b.Stamp) && a.Stamp.Location() == b.Stamp.Location() &&
		a.Outgoing == b.Outgoing && bytes.Equal(a.Data, b.Data)
}

// archiveFixture archives, for alice, messages m1..m6 one second apart:
//
//	m1 in  bob@example.com/phone     m4 in  carol@example.com
//	m2 out bob@example.com           m5 in  bob@example.com/laptop
//	m3 out bob@example.com/phone     m6 out example.net (a server)
//
// and one message for dave, so every query also proves owners are apart.
func archiveFixture(t *testing.T, s storage.Store) storage.Archive {
	t.Helper()
	mustCreate(t, s.Users(), "alice@example.com", nil)
	mustCreate(t, s.Users(), "dave@example.com", nil)
	a := s.Archive()
	withs := []struct {
		with string
		out  bool
	}{
		{"bob@example.com/phone", false},
		{"bob@example.com", true},
		{"bob@example.com/phone", true},
		{"carol@example.com", false},
		{"bob@example.com/laptop", false},
		{"example.net", true},
	}
	for i, w := range withs {
		mustAppend(t, a, "alice@example.com", storage.ArchiveMessage{
			ID: fmt.Sprintf("m%d", i+1), With: w.with, Outgoing: w.out,
			Stamp: archiveT0.Add(time.Duration(i) * time.Second), Data: []byte(fmt.Sprintf("data %d", i+1)),
		})
	}
	mustAppend(t, a, "dave@example.com", storage.ArchiveMessage{ID: "m1", With: "bob@example.com", Stamp: archiveT0, Data: []byte("dave's")})
	return a
}

// runArchive is the Archive part of Run; open needs only Users and
// Archive to work.
func runArchive(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("AppendBatch", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := s.Archive()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		ctx := context.Background()
		if _, err := a.Append(ctx, "alice@example.com", storage.ArchiveMessage{ID: "taken", With: "x@example.net"}); err != nil {
			t.Fatal(err)
		}
		batch := []storage.ArchiveEntry{
			{Owner: "alice@example.com", Message: storage.ArchiveMessage{ID: "1", With: "bob@example.com/r", Data: []byte("one")}},
			{Owner: "bob@example.com", Message: storage.ArchiveMessage{ID: "1", With: "alice@example.com", Outgoing: true, Data: []byte("uno")}},
			{Owner: "gone@example.com", Message: storage.ArchiveMessage{ID: "2", With: "bob@example.com"}},
			{Owner: "alice@example.com", Message: storage.ArchiveMessage{ID: "taken", With: "y@example.net"}},
			{Owner: "alice@example.com", Message: storage.ArchiveMessage{ID: "3", With: "bob@example.com", Data: []byte("three")}},
		}
		if err := a.AppendBatch(ctx, batch); err != nil {
			t.Fatalf("AppendBatch: %v", err)
		}
		p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 10})
		if len(p.Messages) != 3 || p.Messages[0].ID != "taken" || p.Messages[0].With != "x@example.net" || p.Messages[1].ID != "1" || p.Messages[2].ID != "3" || string(p.Messages[2].Data) != "three" {
			t.Fatalf("alice's archive after the batch: %+v", p.Messages)
		}
		if p := mustQuery(t, a, "bob@example.com", storage.ArchiveQuery{Max: 10}); len(p.Messages) != 1 || !p.Messages[0].Outgoing {
			t.Fatalf("bob's archive after the batch: %+v", p.Messages)
		}
		if err := a.AppendBatch(ctx, []storage.ArchiveEntry{{Owner: "not a jid", Message: storage.ArchiveMessage{ID: "x"}}}); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("an invalid batch: %v", err)
		}
		if err := a.AppendBatch(ctx, nil); err != nil {
			t.Fatalf("an empty batch: %v", err)
		}
		// A large batch (drivers may split it into statements) keeps its
		// order and skips what it must.
		var big []storage.ArchiveEntry
		for i := range 150 {
			owner := "bob@example.com"
			if i%10 == 7 {
				owner = "gone@example.com"
			}
			big = append(big, storage.ArchiveEntry{Owner: owner, Message: storage.ArchiveMessage{ID: fmt.Sprintf("big%03d", i), With: "carol@example.net", Data: []byte{byte(i)}}})
		}
		big = append(big, storage.ArchiveEntry{Owner: "bob@example.com", Message: storage.ArchiveMessage{ID: "big000", With: "dup@example.net"}})
		if err := a.AppendBatch(ctx, big); err != nil {
			t.Fatalf("AppendBatch of %d: %v", len(big), err)
		}
		p = mustQuery(t, a, "bob@example.com", storage.ArchiveQuery{Max: 200, With: "carol@example.net"})
		if len(p.Messages) != 135 {
			t.Fatalf("bob's archive after the big batch: %d messages, want 135", len(p.Messages))
		}
		want := 0
		for _, m := range p.Messages {
			for want%10 == 7 {
				want++
			}
			if m.ID != fmt.Sprintf("big%03d", want) || len(m.Data) != 1 || m.Data[0] != byte(want) {
				t.Fatalf("message %s out of order or altered, want big%03d", m.ID, want)
			}
			want++
		}
	})

	t.Run("AppendQueryRoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := s.Archive()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		if p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 10}); len(p.Messages) != 0 || p.Count != 0 || !p.Complete {
			t.Fatalf("Query of an empty archive = %+v, want empty and complete", p)
		}
		local := time.FixedZone("x", 3600)
		big := bytes.Repeat([]byte{0xcd}, storage.MaxValueBytes)
		in := []storage.ArchiveMessage{
			{ID: "a", With: "bob@example.com/phone", Stamp: time.Date(2025, 1, 2, 3, 4, 5, 6789, local), Data: []byte("<message/>")},
			{ID: "b", With: "bob@example.com", Outgoing: true, Data: nil},
			{ID: "c", With: "example.net", Data: []byte{}},
			{ID: "d", With: "bob@example.com/a/b@c", Outgoing: true, Data: big},
			{ID: strings.Repeat("z", storage.MaxArchiveIDBytes), With: "bob@example.com", Data: []byte{0, 1, 0xff}},
		}
		var want []storage.ArchiveMessage
		for _, m := range in {
			before := time.Now().Add(-time.Second)
			got := mustAppend(t, a, "alice@example.com", m)
			exp := m
			if m.Stamp.IsZero() {
				if got.Stamp.Before(before) || got.Stamp.After(time.Now().Add(time.Second)) {
					t.Errorf("Append(%s) with zero stamp stored %v, want now", m.ID, got.Stamp)
				}
				exp.Stamp = got.Stamp
			} else {
				exp.Stamp = m.Stamp.UTC().Truncate(time.Microsecond)
			}
			if exp.Data == nil {
				exp.Data = []byte{}
			}
			if got.Stamp.Location() != time.UTC || got.Stamp.Nanosecond()%1000 != 0 {
				t.Errorf("Append(%s) stamp %v, want UTC whole microseconds", m.ID, got.Stamp)
			}
			if !archivedEqual(got, exp) {
				t.Errorf("Append(%s) returned %s, want %s", m.ID, fmtArchived(got), fmtArchived(exp))
			}
			want = append(want, exp)
		}
		p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 100})
		if len(p.Messages) != len(want) || p.Count != len(want) || !p.Complete {
			t.Fatalf("Query: %d messages, count %d, complete %v; want %d, %d, true", len(p.Messages), p.Count, p.Complete, len(want), len(want))
		}
		for i := range want {
			if !archivedEqual(p.Messages[i], want[i]) {
				t.Errorf("Query[%d] = %s, want %s", i, fmtArchived(p.Messages[i]), fmtArchived(want[i]))
			}
			if p.Messages[i].Data == nil {
				t.Errorf("Query[%d].Data is nil, want non-nil", i)
			}
		}
	})

	t.Run("OrderIsArchiveOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := s.Archive()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		// Stamps going backwards must not reorder the archive: RSM
		// cursors follow archive order.
		for i, id := range []string{"x3", "x1", "x2"} {
			mustAppend(t, a, "alice@example.com", storage.ArchiveMessage{ID: id, With: "bob@example.com",
				Stamp: archiveT0.Add(-time.Duration(i) * time.Minute)})
		}
		if got := archiveIDs(mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 10}).Messages); !slices.Equal(got, []string{"x3", "x1", "x2"}) {
			t.Errorf("order = %v, want insertion order [x3 x1 x2]", got)
		}
		got := archiveIDs(mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{After: "x3", Max: 1}).Messages)
		if !slices.Equal(got, []string{"x1"}) {
			t.Errorf("page after x3 = %v, want [x1]", got)
		}
	})

	t.Run("AppendErrors", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := s.Archive()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		mustCreate(t, s.Users(), "bob@example.com", nil)
		mustAppend(t, a, "alice@example.com", storage.ArchiveMessage{ID: "dup", With: "bob@example.com", Data: []byte("first")})
		_, err := a.Append(t.Context(), "alice@example.com", storage.ArchiveMessage{ID: "dup", With: "carol@example.com", Data: []byte("second")})
		wantErr(t, "Append of a duplicate id", err, storage.ErrExists)
		// Ids are unique per owner only.
		mustAppend(t, a, "bob@example.com", storage.ArchiveMessage{ID: "dup", With: "alice@example.com"})
		_, err = a.Append(t.Context(), missingOwner, storage.ArchiveMessage{ID: "x", With: "bob@example.com"})
		wantErr(t, "Append for a missing owner", err, storage.ErrNotFound)

		invalid := []struct {
			name  string
			owner string
			m     storage.ArchiveMessage
		}{
			{"bare owner domain", "example.com", storage.ArchiveMessage{ID: "x", With: "bob@example.com"}},
			{"empty id", "alice@example.com", storage.ArchiveMessage{With: "bob@example.com"}},
			{"long id", "alice@example.com", storage.ArchiveMessage{ID: strings.Repeat("i", storage.MaxArchiveIDBytes+1), With: "bob@example.com"}},
			{"NUL in id", "alice@example.com", storage.ArchiveMessage{ID: "a\x00b", With: "bob@example.com"}},
			{"empty with", "alice@example.com", storage.ArchiveMessage{ID: "x"}},
			{"empty resource", "alice@example.com", storage.ArchiveMessage{ID: "x", With: "bob@example.com/"}},
			{"empty localpart", "alice@example.com", storage.ArchiveMessage{ID: "x", With: "@example.com"}},
			{"bad UTF-8 resource", "alice@example.com", storage.ArchiveMessage{ID: "x", With: "bob@example.com/\xff"}},
			{"oversized data", "alice@example.com", storage.ArchiveMessage{ID: "x", With: "bob@example.com", Data: make([]byte, storage.MaxValueBytes+1)}},
		}
		for _, tc := range invalid {
			_, err := a.Append(t.Context(), tc.owner, tc.m)
			wantErr(t, "Append with "+tc.name, err, storage.ErrInvalid)
		}
		p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 100})
		if got := archiveIDs(p.Messages); !slices.Equal(got, []string{"dup"}) || string(p.Messages[0].Data) != "first" {
			t.Errorf("after failed appends the archive holds %v, want only the first dup", got)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := archiveFixture(t, s)
		tests := []struct {
			name string
			q    storage.ArchiveQuery
			want []string
		}{
			{"none", storage.ArchiveQuery{}, []string{"m1", "m2", "m3", "m4", "m5", "m6"}},
			{"with bare matches all resources", storage.ArchiveQuery{With: "bob@example.com"}, []string{"m1", "m2", "m3", "m5"}},
			{"with full matches one resource", storage.ArchiveQuery{With: "bob@example.com/phone"}, []string{"m1", "m3"}},
			{"with full of unseen resource", storage.ArchiveQuery{With: "bob@example.com/tablet"}, nil},
			{"with domain", storage.ArchiveQuery{With: "example.net"}, []string{"m6"}},
			{"with is not a prefix match", storage.ArchiveQuery{With: "bob@example.co"}, nil},
			{"start inclusive", storage.ArchiveQuery{Start: archiveT0.Add(3 * time.Second)}, []string{"m4", "m5", "m6"}},
			{"start one microsecond later", storage.ArchiveQuery{Start: archiveT0.Add(3*time.Second + time.Microsecond)}, []string{"m5", "m6"}},
			{"start one nanosecond later", storage.ArchiveQuery{Start: archiveT0.Add(3*time.Second + time.Nanosecond)}, []string{"m5", "m6"}},
			{"end inclusive", storage.ArchiveQuery{End: archiveT0.Add(1 * time.Second)}, []string{"m1", "m2"}},
			{"end one nanosecond earlier", storage.ArchiveQuery{End: archiveT0.Add(1*time.Second - time.Nanosecond)}, []string{"m1"}},
			{"start and end in another zone", storage.ArchiveQuery{
				Start: archiveT0.Add(time.Second).In(time.FixedZone("y", -7200)),
				End:   archiveT0.Add(2 * time.Second).In(time.FixedZone("z", 3600)),
			}, []string{"m2", "m3"}},
			{"start after end", storage.ArchiveQuery{Start: archiveT0.Add(4 * time.Second), End: archiveT0}, nil},
			{"after-id", storage.ArchiveQuery{AfterID: "m4"}, []string{"m5", "m6"}},
			{"before-id", storage.ArchiveQuery{BeforeID: "m3"}, []string{"m1", "m2"}},
			{"after-id and before-id", storage.ArchiveQuery{AfterID: "m1", BeforeID: "m4"}, []string{"m2", "m3"}},
			{"after-id of the last", storage.ArchiveQuery{AfterID: "m6"}, nil},
			{"ids", storage.ArchiveQuery{IDs: []string{"m5", "m2", "nope", "m2"}}, []string{"m2", "m5"}},
			{"ids empty", storage.ArchiveQuery{IDs: []string{}}, nil},
			{"ids with quotes", storage.ArchiveQuery{IDs: []string{`m1"]`, "m3"}}, []string{"m3"}},
			{"everything together", storage.ArchiveQuery{
				With: "bob@example.com", Start: archiveT0.Add(time.Second), End: archiveT0.Add(5 * time.Second),
				AfterID: "m1", BeforeID: "m6", IDs: []string{"m2", "m4", "m5"},
			}, []string{"m2", "m5"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				q := tc.q
				q.Max = 100
				p := mustQuery(t, a, "alice@example.com", q)
				if got := archiveIDs(p.Messages); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
					t.Errorf("ids = %v, want %v", got, tc.want)
				}
				if p.Count != len(tc.want) || !p.Complete {
					t.Errorf("count %d complete %v, want %d true", p.Count, p.Complete, len(tc.want))
				}
			})
		}
		// dave's archive is untouched by all of alice's.
		p := mustQuery(t, a, "dave@example.com", storage.ArchiveQuery{Max: 100})
		if got := archiveIDs(p.Messages); !slices.Equal(got, []string{"m1"}) || string(p.Messages[0].Data) != "dave's" {
			t.Errorf("dave's archive = %v", got)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := archiveFixture(t, s)
		tests := []struct {
			name     string
			q        storage.ArchiveQuery
			want     []string
			count    int
			complete bool
		}{
			{"first page", storage.ArchiveQuery{Max: 2}, []string{"m1", "m2"}, 6, false},
			{"after m2", storage.ArchiveQuery{After: "m2", Max: 2}, []string{"m3", "m4"}, 6, false},
			{"after m4", storage.ArchiveQuery{After: "m4", Max: 2}, []string{"m5", "m6"}, 6, true},
			{"after the last", storage.ArchiveQuery{After: "m6", Max: 2}, nil, 6, true},
			{"page exactly the rest", storage.ArchiveQuery{After: "m3", Max: 3}, []string{"m4", "m5", "m6"}, 6, true},
			{"last page", storage.ArchiveQuery{Last: true, Max: 2}, []string{"m5", "m6"}, 6, false},
			{"before m5", storage.ArchiveQuery{Before: "m5", Max: 2}, []string{"m3", "m4"}, 6, false},
			{"before m3", storage.ArchiveQuery{Before: "m3", Max: 2}, []string{"m1", "m2"}, 6, true},
			{"before m3 with Last set too", storage.ArchiveQuery{Before: "m3", Last: true, Max: 5}, []string{"m1", "m2"}, 6, true},
			{"before the first", storage.ArchiveQuery{Before: "m1", Max: 2}, nil, 6, true},
			{"last page of all", storage.ArchiveQuery{Last: true, Max: 6}, []string{"m1", "m2", "m3", "m4", "m5", "m6"}, 6, true},
			{"after and before", storage.ArchiveQuery{After: "m1", Before: "m6", Max: 2}, []string{"m4", "m5"}, 6, false},
			{"max 0 counts", storage.ArchiveQuery{Max: 0}, nil, 6, false},
			{"max 0 at the end", storage.ArchiveQuery{After: "m6", Max: 0}, nil, 6, true},
			{"max 0 backwards", storage.ArchiveQuery{Last: true, Max: 0}, nil, 6, false},
			{"filtered set pages", storage.ArchiveQuery{With: "bob@example.com", Max: 2}, []string{"m1", "m2"}, 4, false},
			{"filtered after", storage.ArchiveQuery{With: "bob@example.com", After: "m2", Max: 2}, []string{"m3", "m5"}, 4, true},
			// A cursor outside the filtered set still positions the page.
			{"filtered after a cursor outside the set", storage.ArchiveQuery{With: "bob@example.com", After: "m4", Max: 2}, []string{"m5"}, 4, true},
			{"filtered last", storage.ArchiveQuery{With: "bob@example.com", Last: true, Max: 3}, []string{"m2", "m3", "m5"}, 4, false},
			{"after-id filter and RSM after", storage.ArchiveQuery{AfterID: "m2", After: "m3", Max: 10}, []string{"m4", "m5", "m6"}, 4, true},
			{"before-id filter and RSM last", storage.ArchiveQuery{BeforeID: "m5", Last: true, Max: 2}, []string{"m3", "m4"}, 4, false},
			{"ids paged", storage.ArchiveQuery{IDs: []string{"m1", "m3", "m6"}, After: "m1", Max: 1}, []string{"m3"}, 3, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := mustQuery(t, a, "alice@example.com", tc.q)
				if got := archiveIDs(p.Messages); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
					t.Errorf("ids = %v, want %v", got, tc.want)
				}
				if p.Count != tc.count || p.Complete != tc.complete {
					t.Errorf("count %d complete %v, want %d %v", p.Count, p.Complete, tc.count, tc.complete)
				}
			})
		}
		// Walking forwards and backwards page by page visits everything
		// once, in order.
		var fwd, back []string
		q := storage.ArchiveQuery{Max: 4}
		for range 10 {
			p := mustQuery(t, a, "alice@example.com", q)
			fwd = append(fwd, archiveIDs(p.Messages)...)
			if p.Complete {
				break
			}
			q.After = p.Messages[len(p.Messages)-1].ID
		}
		q = storage.ArchiveQuery{Last: true, Max: 4}
		for range 10 {
			p := mustQuery(t, a, "alice@example.com", q)
			back = append(archiveIDs(p.Messages), back...)
			if p.Complete {
				break
			}
			q.Before = p.Messages[0].ID
		}
		all := []string{"m1", "m2", "m3", "m4", "m5", "m6"}
		if !slices.Equal(fwd, all) || !slices.Equal(back, all) {
			t.Errorf("walk forwards = %v, backwards = %v; want %v", fwd, back, all)
		}
	})

	t.Run("QueryErrors", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := archiveFixture(t, s)
		notFound := []storage.ArchiveQuery{
			{AfterID: "nope", Max: 1},
			{BeforeID: "nope", Max: 1},
			{After: "nope", Max: 1},
			{Before: "nope", Max: 1},
			// dave's id is not alice's: cursors never cross owners.
			{After: "m1", With: "bob@example.com", Max: 1, Start: archiveT0, AfterID: "m9"},
		}
		for _, q := range notFound {
			_, err := a.Query(t.Context(), "alice@example.com", q)
			wantErr(t, fmt.Sprintf("Query(%+v)", q), err, storage.ErrNotFound)
		}
		mustCreate(t, s.Users(), "erin@example.com", nil)
		_, err := a.Query(t.Context(), "erin@example.com", storage.ArchiveQuery{After: "m1", Max: 1})
		wantErr(t, "Query with a cursor of another owner", err, storage.ErrNotFound)
		_, err = a.Query(t.Context(), missingOwner, storage.ArchiveQuery{Max: 1})
		wantErr(t, "Query of a missing owner", err, storage.ErrNotFound)

		invalid := []struct {
			name  string
			owner string
			q     storage.ArchiveQuery
		}{
			{"bad owner", "nobody", storage.ArchiveQuery{}},
			{"negative max", "alice@example.com", storage.ArchiveQuery{Max: -1}},
			{"huge max", "alice@example.com", storage.ArchiveQuery{Max: storage.MaxArchivePage + 1}},
			{"bad with", "alice@example.com", storage.ArchiveQuery{With: "a@b@c"}},
			{"too many ids", "alice@example.com", storage.ArchiveQuery{IDs: make([]string, storage.MaxArchiveQueryIDs+1)}},
			{"long cursor", "alice@example.com", storage.ArchiveQuery{After: strings.Repeat("x", storage.MaxArchiveIDBytes+1)}},
			{"NUL in ids", "alice@example.com", storage.ArchiveQuery{IDs: []string{"\x00"}}},
		}
		for _, tc := range invalid {
			_, err := a.Query(t.Context(), tc.owner, tc.q)
			wantErr(t, "Query with "+tc.name, err, storage.ErrInvalid)
		}
		// The largest allowed page and id list work.
		ids := make([]string, storage.MaxArchiveQueryIDs)
		for i := range ids {
			ids[i] = fmt.Sprintf("m%d", i)
		}
		p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{IDs: ids, Max: storage.MaxArchivePage})
		if p.Count != 6 || len(p.Messages) != 6 {
			t.Errorf("query with %d ids found %d (%d), want 6", len(ids), p.Count, len(p.Messages))
		}
	})

	t.Run("DeleteBefore", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := archiveFixture(t, s)
		n, err := a.DeleteBefore(t.Context(), archiveT0.Add(-time.Hour))
		if err != nil || n != 0 {
			t.Fatalf("DeleteBefore(nothing older) = %d, %v; want 0", n, err)
		}
		// m3 is stamped at exactly T0+2s: "before" excludes it, and a
		// nanosecond more includes it.
		n, err = a.DeleteBefore(t.Context(), archiveT0.Add(2*time.Second))
		if err != nil || n != 3 { // alice's m1, m2 and dave's m1
			t.Fatalf("DeleteBefore(T0+2s) = %d, %v; want 3", n, err)
		}
		if got := archiveIDs(mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 100}).Messages); !slices.Equal(got, []string{"m3", "m4", "m5", "m6"}) {
			t.Errorf("alice after retention = %v", got)
		}
		if p := mustQuery(t, a, "dave@example.com", storage.ArchiveQuery{Max: 100}); p.Count != 0 {
			t.Errorf("dave after retention has %d messages", p.Count)
		}
		n, err = a.DeleteBefore(t.Context(), archiveT0.Add(2*time.Second+time.Nanosecond))
		if err != nil || n != 1 {
			t.Fatalf("DeleteBefore(T0+2s+1ns) = %d, %v; want 1", n, err)
		}
		// Deleted ids are gone as cursors too.
		_, err = a.Query(t.Context(), "alice@example.com", storage.ArchiveQuery{After: "m1", Max: 1})
		wantErr(t, "Query after a deleted id", err, storage.ErrNotFound)
	})

	t.Run("DeleteBeforeMany", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := s.Archive()
		mustCreate(t, s.Users(), "alice@example.com", nil)
		// More than any sensible batch size, to cover drivers that delete
		// in batches.
		const total, old = 12001, 12000
		for i := range total {
			stamp := archiveT0
			if i >= old {
				stamp = archiveT0.Add(time.Hour)
			}
			mustAppend(t, a, "alice@example.com", storage.ArchiveMessage{ID: fmt.Sprint(i), With: "bob@example.com", Stamp: stamp})
		}
		n, err := a.DeleteBefore(t.Context(), archiveT0.Add(time.Minute))
		if err != nil || n != old {
			t.Fatalf("DeleteBefore = %d, %v; want %d", n, err, old)
		}
		if p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 10}); p.Count != total-old {
			t.Errorf("%d messages left, want %d", p.Count, total-old)
		}
	})

	t.Run("AccountDeletionCascades", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := archiveFixture(t, s)
		if err := s.Users().Delete(t.Context(), "alice@example.com"); err != nil {
			t.Fatalf("Delete account: %v", err)
		}
		_, err := a.Query(t.Context(), "alice@example.com", storage.ArchiveQuery{Max: 1})
		wantErr(t, "Query after account deletion", err, storage.ErrNotFound)
		mustCreate(t, s.Users(), "alice@example.com", nil)
		if p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 10}); p.Count != 0 {
			t.Errorf("a re-created account inherited %d archived messages", p.Count)
		}
		// The old ids are free again.
		mustAppend(t, a, "alice@example.com", storage.ArchiveMessage{ID: "m1", With: "bob@example.com"})
		if p := mustQuery(t, a, "dave@example.com", storage.ArchiveQuery{Max: 10}); p.Count != 1 {
			t.Errorf("another owner lost messages: count %d", p.Count)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := archiveFixture(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"Append", func() error {
				_, err := a.Append(ctx, "alice@example.com", storage.ArchiveMessage{ID: "new", With: "bob@example.com"})
				return err
			}},
			{"Query", func() error { _, err := a.Query(ctx, "alice@example.com", storage.ArchiveQuery{Max: 1}); return err }},
			{"DeleteBefore", func() error { _, err := a.DeleteBefore(ctx, time.Now()); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with canceled context: err = %v, want context.Canceled", c.name, err)
			}
		}
		if p := mustQuery(t, a, "alice@example.com", storage.ArchiveQuery{Max: 100}); p.Count != 6 {
			t.Errorf("canceled calls changed the archive: %d messages", p.Count)
		}
	})
}
