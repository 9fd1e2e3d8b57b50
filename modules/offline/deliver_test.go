package offline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// memOffline is offline storage in memory.
type memOffline struct {
	mu   sync.Mutex
	next int64
	msgs []storage.OfflineMessage
	own  map[int64]string
}

func (s *memOffline) Push(_ context.Context, owner string, data []byte, _ int) (storage.OfflineMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	m := storage.OfflineMessage{ID: s.next, Data: data}
	s.msgs = append(s.msgs, m)
	if s.own == nil {
		s.own = map[int64]string{}
	}
	s.own[m.ID] = owner
	return m, nil
}

func (s *memOffline) List(_ context.Context, owner string) ([]storage.OfflineMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.OfflineMessage
	for _, m := range s.msgs {
		if s.own[m.ID] == owner {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *memOffline) Delete(_ context.Context, owner string, ids []int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = slices.DeleteFunc(s.msgs, func(m storage.OfflineMessage) bool {
		return s.own[m.ID] == owner && slices.Contains(ids, m.ID)
	})
	return nil
}

func (s *memOffline) Count(ctx context.Context, owner string) (int, error) {
	l, _ := s.List(ctx, owner)
	return len(l), nil
}

func (s *memOffline) DeleteBefore(context.Context, time.Time) (int, error) { return 0, nil }

// pacedSession records what it is given and lets the test say which
// stanzas the client acknowledged.
type pacedSession struct {
	full  jid.JID
	state session.State
	mu    sync.Mutex
	got   []*xmlstream.Element
	done  []func(bool)
	room  int // deliveries accepted before the session goes away
}

func (s *pacedSession) JID() jid.JID                  { return s.full }
func (s *pacedSession) Deliver(el *xmlstream.Element) { s.DeliverPaced(context.Background(), el, nil) }
func (s *pacedSession) Replace()                      {}
func (s *pacedSession) State() *session.State         { return &s.state }
func (s *pacedSession) WaitRoom(context.Context, time.Time) error {
	return nil
}

func (s *pacedSession) DeliverPaced(_ context.Context, el *xmlstream.Element, done func(bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == s.room {
		if done != nil {
			done(false)
		}
		return context.Canceled
	}
	s.got = append(s.got, el)
	s.done = append(s.done, done)
	return nil
}

// Only what the client acknowledged is deleted; the rest, and what was
// never sent because the session went away, stays for the next login.
func TestOfflineDeletedOnlyOnceDelivered(t *testing.T) {
	m := testModule(t, 1)
	store := &memOffline{}
	m.store = store
	m.host = modtest.NewHost("example.org")
	m.startDeleter()
	owner := jid.MustParse("dave@example.org")
	for i := range 6 {
		msg := xmlstream.New(stanza.NSClient, "message", "type", "chat").
			AddChild(xmlstream.New(stanza.NSClient, "body").AddText(string(rune('a' + i))))
		sealed, err := m.seal(owner, msg.Append(nil, stanza.NSClient))
		if err != nil {
			t.Fatal(err)
		}
		store.Push(context.Background(), owner.String(), sealed, 0)
	}
	s := &pacedSession{full: jid.MustParse("dave@example.org/phone"), room: 4}
	m.flush(context.Background(), s)
	if len(s.got) != 4 {
		t.Fatalf("%d messages handed over, want 4 (then the session went away)", len(s.got))
	}
	// A second session of the same account meanwhile gets only what the
	// first is not delivering already.
	other := &pacedSession{full: jid.MustParse("dave@example.org/desk"), room: 100}
	m.flush(context.Background(), other)
	if len(other.got) != 2 {
		t.Fatalf("the second session got %d messages, want the 2 not in flight", len(other.got))
	}
	s.done[0](true)
	s.done[1](true)
	s.done[2](false) // the session ended before the client acknowledged
	// s.done[3] never answers: still in flight.
	m.stopDeleter()
	left, _ := store.List(context.Background(), owner.String())
	if len(left) != 4 {
		t.Fatalf("%d messages left, want 4 (2 delivered of 6)", len(left))
	}
	for _, l := range left {
		if l.ID == 1 || l.ID == 2 {
			t.Fatalf("undelivered message %d deleted, or delivered one kept: %v", l.ID, left)
		}
	}
}
