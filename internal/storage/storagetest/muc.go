package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"parley/internal/storage"
)

func mustRoom(t *testing.T, m storage.MUC, room, config string) {
	t.Helper()
	if err := m.PutRoom(t.Context(), storage.MUCRoom{JID: room, Config: []byte(config)}); err != nil {
		t.Fatalf("PutRoom(%s): %v", room, err)
	}
}

func mustAppendRoom(t *testing.T, m storage.MUC, room, id string, stamp time.Time) {
	t.Helper()
	if _, err := m.AppendMessage(t.Context(), room, storage.MUCMessage{ID: id, Stamp: stamp, Data: []byte("<m " + id + "/>")}); err != nil {
		t.Fatalf("AppendMessage(%s, %q): %v", room, id, err)
	}
}

// roomPage renders a page as "id id ... [complete]".
func roomPage(p storage.MUCPage) string {
	ids := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		ids[i] = m.ID
	}
	s := strings.Join(ids, " ")
	if p.Complete {
		s += " [complete]"
	}
	return strings.TrimSpace(s)
}

func runMUC(t *testing.T, open func(t *testing.T) storage.Store) {
	const room, other = "chat@conference.example.com", "other@conference.example.com"

	t.Run("Rooms", func(t *testing.T) {
		t.Parallel()
		m := open(t).MUC()
		ctx := t.Context()
		if _, err := m.Room(ctx, room); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Room of a missing room: %v, want ErrNotFound", err)
		}
		if err := m.DeleteRoom(ctx, room); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteRoom of a missing room: %v, want ErrNotFound", err)
		}
		before := time.Now().Add(-time.Second)
		mustRoom(t, m, room, "v1")
		mustRoom(t, m, other, "o")
		mustRoom(t, m, "elsewhere@muc.example.net", "e")
		r, err := m.Room(ctx, room)
		if err != nil || string(r.Config) != "v1" || r.Created.Before(before) || r.Created.Location() != time.UTC {
			t.Fatalf("Room = %+v, %v; want config v1 created now in UTC", r, err)
		}
		mustRoom(t, m, room, "v2")
		r2, err := m.Room(ctx, room)
		if err != nil || string(r2.Config) != "v2" || !r2.Created.Equal(r.Created) {
			t.Errorf("Room after a second PutRoom = %+v, %v; want config v2, created kept at %v", r2, err, r.Created)
		}
		list, err := m.Rooms(ctx, "conference.example.com")
		if err != nil || len(list) != 2 || list[0].JID != room || list[1].JID != other || string(list[1].Config) != "o" {
			t.Errorf("Rooms = %+v, %v; want %s then %s", list, err, room, other)
		}
		if list, err := m.Rooms(ctx, "nothing.example.com"); err != nil || len(list) != 0 {
			t.Errorf("Rooms of an empty service = %+v, %v", list, err)
		}
		if err := m.PutRoom(ctx, storage.MUCRoom{JID: "no-local-part"}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("PutRoom without a localpart: %v, want ErrInvalid", err)
		}
		if err := m.DeleteRoom(ctx, other); err != nil {
			t.Fatalf("DeleteRoom: %v", err)
		}
		if _, err := m.Room(ctx, other); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Room after DeleteRoom: %v, want ErrNotFound", err)
		}
	})

	t.Run("Affiliations", func(t *testing.T) {
		t.Parallel()
		m := open(t).MUC()
		ctx := t.Context()
		owner := storage.MUCAffiliation{JID: "alice@example.com", Affiliation: storage.AffOwner}
		if err := m.SetAffiliation(ctx, room, owner); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetAffiliation in a missing room: %v, want ErrNotFound", err)
		}
		if err := m.SetAffiliation(ctx, room, storage.MUCAffiliation{JID: "a@example.com", Affiliation: storage.AffNone}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("removing an affiliation in a missing room: %v, want ErrNotFound", err)
		}
		if _, err := m.Affiliations(ctx, room); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Affiliations of a missing room: %v, want ErrNotFound", err)
		}
		mustRoom(t, m, room, "")
		mustRoom(t, m, other, "")
		if list, err := m.Affiliations(ctx, room); err != nil || len(list) != 0 {
			t.Errorf("Affiliations of a new room = %+v, %v; want none", list, err)
		}
		set := []storage.MUCAffiliation{
			owner,
			{JID: "carol@example.com", Affiliation: storage.AffOutcast, Reason: "spam"},
			{JID: "bob@example.com", Affiliation: storage.AffMember},
			{JID: "example.net", Affiliation: storage.AffOutcast},
			{JID: "bob@example.com", Affiliation: storage.AffAdmin}, // replaces
			{JID: "dave@example.com", Affiliation: storage.AffMember},
			{JID: "dave@example.com", Affiliation: storage.AffNone}, // removes
			{JID: "erin@example.com", Affiliation: storage.AffNone}, // absent: no error
		}
		for _, a := range set {
			if err := m.SetAffiliation(ctx, room, a); err != nil {
				t.Fatalf("SetAffiliation(%+v): %v", a, err)
			}
		}
		if err := m.SetAffiliation(ctx, other, storage.MUCAffiliation{JID: "zed@example.com", Affiliation: storage.AffMember}); err != nil {
			t.Fatalf("SetAffiliation in the other room: %v", err)
		}
		list, err := m.Affiliations(ctx, room)
		if err != nil {
			t.Fatalf("Affiliations: %v", err)
		}
		got := fmt.Sprint(list)
		want := "[{alice@example.com owner } {bob@example.com admin } {carol@example.com outcast spam} {example.net outcast }]"
		if got != want {
			t.Errorf("Affiliations = %s, want %s", got, want)
		}
		for _, bad := range []storage.MUCAffiliation{
			{JID: "x@example.com", Affiliation: "visitor"},
			{JID: "", Affiliation: storage.AffMember},
			{JID: "x@example.com/res", Affiliation: storage.AffMember},
			{JID: "x@example.com", Affiliation: storage.AffMember, Reason: "nul\x00"},
		} {
			if err := m.SetAffiliation(ctx, room, bad); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("SetAffiliation(%+v): %v, want ErrInvalid", bad, err)
			}
		}
		// Deleting a room takes its affiliations with it.
		if err := m.DeleteRoom(ctx, room); err != nil {
			t.Fatalf("DeleteRoom: %v", err)
		}
		mustRoom(t, m, room, "")
		if list, err := m.Affiliations(ctx, room); err != nil || len(list) != 0 {
			t.Errorf("Affiliations of a re-created room = %+v, %v; want none", list, err)
		}
		if list, err := m.Affiliations(ctx, other); err != nil || len(list) != 1 {
			t.Errorf("Affiliations of the other room = %+v, %v; want its one member", list, err)
		}
	})

	t.Run("Messages", func(t *testing.T) {
		t.Parallel()
		m := open(t).MUC()
		ctx := t.Context()
		if _, err := m.AppendMessage(ctx, room, storage.MUCMessage{ID: "x", Data: []byte("d")}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("AppendMessage to a missing room: %v, want ErrNotFound", err)
		}
		if _, err := m.Messages(ctx, room, storage.MUCQuery{Max: 5}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Messages of a missing room: %v, want ErrNotFound", err)
		}
		mustRoom(t, m, room, "")
		mustRoom(t, m, other, "")
		if p, err := m.Messages(ctx, room, storage.MUCQuery{Max: 5}); err != nil || roomPage(p) != "[complete]" {
			t.Errorf("Messages of an empty room = %q, %v", roomPage(p), err)
		}
		base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		for i, id := range []string{"a", "b", "c", "d", "e"} {
			mustAppendRoom(t, m, room, id, base.Add(time.Duration(i)*time.Minute))
		}
		mustAppendRoom(t, m, other, "a", base) // ids are per room
		got, err := m.AppendMessage(ctx, room, storage.MUCMessage{ID: "now", Data: []byte("n")})
		if err != nil || got.Stamp.IsZero() || time.Since(got.Stamp) > time.Minute || got.Stamp.Location() != time.UTC {
			t.Errorf("AppendMessage without a stamp = %+v, %v; want it stamped now in UTC", got, err)
		}
		if _, err := m.AppendMessage(ctx, room, storage.MUCMessage{ID: "a", Data: []byte("again")}); !errors.Is(err, storage.ErrExists) {
			t.Errorf("AppendMessage with a taken id: %v, want ErrExists", err)
		}
		cases := []struct {
			name string
			q    storage.MUCQuery
			want string
		}{
			{"all", storage.MUCQuery{Max: 10}, "a b c d e now [complete]"},
			{"first page", storage.MUCQuery{Max: 2}, "a b"},
			{"last page", storage.MUCQuery{Max: 2, Last: true}, "e now"},
			{"after", storage.MUCQuery{Max: 2, After: "b"}, "c d"},
			{"after to the end", storage.MUCQuery{Max: 10, After: "d"}, "e now [complete]"},
			{"before", storage.MUCQuery{Max: 2, Before: "d"}, "b c"},
			{"before from the start", storage.MUCQuery{Max: 5, Before: "c"}, "a b [complete]"},
			{"between", storage.MUCQuery{Max: 5, After: "a", Before: "e"}, "b c d [complete]"},
			{"start", storage.MUCQuery{Max: 3, Start: base.Add(2 * time.Minute), End: base.Add(3 * time.Minute)}, "c d [complete]"},
			{"since, newest", storage.MUCQuery{Max: 1, Last: true, Start: base.Add(30 * time.Second), End: base.Add(4 * time.Minute)}, "e"},
		}
		for _, c := range cases {
			p, err := m.Messages(ctx, room, c.q)
			if err != nil || roomPage(p) != c.want {
				t.Errorf("%s: Messages(%+v) = %q, %v; want %q", c.name, c.q, roomPage(p), err, c.want)
			}
		}
		// Filters make the counted result set; cursors page through it.
		filters := []struct {
			name  string
			q     storage.MUCQuery
			want  string
			count int
		}{
			{"no filter", storage.MUCQuery{Max: 2}, "a b", 6},
			{"after-id", storage.MUCQuery{Max: 2, AfterID: "b"}, "c d", 4},
			{"before-id", storage.MUCQuery{Max: 5, BeforeID: "c"}, "a b [complete]", 2},
			{"after-id and cursor", storage.MUCQuery{Max: 5, AfterID: "a", After: "c"}, "d e now [complete]", 5},
			{"before-id, last page", storage.MUCQuery{Max: 1, BeforeID: "e", Last: true}, "d", 4},
			{"ids", storage.MUCQuery{Max: 5, IDs: []string{"e", "b", "zz"}}, "b e [complete]", 2},
			{"empty ids", storage.MUCQuery{Max: 5, IDs: []string{}}, "[complete]", 0},
			{"ids and time", storage.MUCQuery{Max: 5, IDs: []string{"a", "d"}, Start: base.Add(time.Minute)}, "d [complete]", 1},
		}
		for _, c := range filters {
			p, err := m.Messages(ctx, room, c.q)
			if err != nil || roomPage(p) != c.want || p.Count != c.count {
				t.Errorf("%s: Messages(%+v) = %q count %d, %v; want %q count %d", c.name, c.q, roomPage(p), p.Count, err, c.want, c.count)
			}
		}
		if _, err := m.Messages(ctx, room, storage.MUCQuery{Max: 5, AfterID: "nope"}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Messages after-id an unknown id: %v, want ErrNotFound", err)
		}
		if _, err := m.Messages(ctx, room, storage.MUCQuery{Max: 5, IDs: make([]string, storage.MaxArchiveQueryIDs+1)}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Messages with too many ids: %v, want ErrInvalid", err)
		}
		if p, _ := m.Messages(ctx, room, storage.MUCQuery{Max: 1}); len(p.Messages) != 1 || string(p.Messages[0].Data) != "<m a/>" || !p.Messages[0].Stamp.Equal(base) {
			t.Errorf("first message = %+v, want data <m a/> stamped %v", p.Messages, base)
		}
		if _, err := m.Messages(ctx, room, storage.MUCQuery{Max: 5, After: "nope"}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Messages after an unknown id: %v, want ErrNotFound", err)
		}
		if _, err := m.Messages(ctx, room, storage.MUCQuery{}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Messages without a page size: %v, want ErrInvalid", err)
		}
		if err := m.ReplaceMessage(ctx, room, "c", []byte("tombstone")); err != nil {
			t.Fatalf("ReplaceMessage: %v", err)
		}
		if err := m.ReplaceMessage(ctx, room, "nope", []byte("x")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceMessage of an unknown id: %v, want ErrNotFound", err)
		}
		if p, err := m.Messages(ctx, room, storage.MUCQuery{Max: 1, After: "b"}); err != nil || len(p.Messages) != 1 || string(p.Messages[0].Data) != "tombstone" {
			t.Errorf("replaced message = %+v, %v; want tombstone", p.Messages, err)
		}
		n, err := m.DeleteMessagesBefore(ctx, base.Add(2*time.Minute))
		if err != nil || n != 3 { // a, b in room and a in other
			t.Errorf("DeleteMessagesBefore = %d, %v; want 3", n, err)
		}
		if p, err := m.Messages(ctx, room, storage.MUCQuery{Max: 10}); err != nil || roomPage(p) != "c d e now [complete]" {
			t.Errorf("after retention: %q, %v", roomPage(p), err)
		}
		if err := m.DeleteRoom(ctx, room); err != nil {
			t.Fatalf("DeleteRoom: %v", err)
		}
		mustRoom(t, m, room, "")
		if p, err := m.Messages(ctx, room, storage.MUCQuery{Max: 10}); err != nil || roomPage(p) != "[complete]" {
			t.Errorf("a re-created room has messages: %q, %v", roomPage(p), err)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		m := open(t).MUC()
		mustRoom(t, m, room, "")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"PutRoom", func() error { return m.PutRoom(ctx, storage.MUCRoom{JID: other}) }},
			{"Room", func() error { _, err := m.Room(ctx, room); return err }},
			{"Rooms", func() error { _, err := m.Rooms(ctx, "conference.example.com"); return err }},
			{"DeleteRoom", func() error { return m.DeleteRoom(ctx, room) }},
			{"SetAffiliation", func() error {
				return m.SetAffiliation(ctx, room, storage.MUCAffiliation{JID: "a@example.com", Affiliation: storage.AffMember})
			}},
			{"Affiliations", func() error { _, err := m.Affiliations(ctx, room); return err }},
			{"AppendMessage", func() error {
				_, err := m.AppendMessage(ctx, room, storage.MUCMessage{ID: "x", Data: []byte("d")})
				return err
			}},
			{"Messages", func() error { _, err := m.Messages(ctx, room, storage.MUCQuery{Max: 1}); return err }},
			{"DeleteMessagesBefore", func() error { _, err := m.DeleteMessagesBefore(ctx, time.Now()); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: %v, want context.Canceled", c.name, err)
			}
		}
		if _, err := m.Room(t.Context(), room); err != nil {
			t.Errorf("the room is gone after canceled calls: %v", err)
		}
	})
}
