package offline

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/xmlstream"
)

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
	f := newFixture(t, filepath.Join(t.TempDir(), "db"), "secret")
	m := f.m
	store := m.store
	owner := jid.MustParse("alice@example.org")
	f.keep(t, owner.String(), "a", "b", "c", "d", "e", "f")
	stored, _ := store.List(context.Background(), owner.String())
	if len(stored) != 6 {
		t.Fatalf("%d messages stored, want 6", len(stored))
	}
	s := &pacedSession{full: jid.MustParse("alice@example.org/phone"), room: 4}
	m.flush(context.Background(), s)
	if len(s.got) != 4 {
		t.Fatalf("%d messages handed over, want 4 (then the session went away)", len(s.got))
	}
	// A second session of the same account meanwhile gets only what the
	// first is not delivering already.
	other := &pacedSession{full: jid.MustParse("alice@example.org/desk"), room: 100}
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
		if l.ID == stored[0].ID || l.ID == stored[1].ID {
			t.Fatalf("undelivered message %d deleted, or delivered one kept: %v", l.ID, left)
		}
	}
}
