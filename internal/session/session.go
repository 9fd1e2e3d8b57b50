// Package session describes a bound client session as the routing core and
// the modules see it: an address, a way to deliver to it, and the RFC 6121
// state (availability, priority, presence) that delivery rules depend on.
package session

import (
	"sync"

	"parley/internal/jid"
	"parley/internal/xmlstream"
)

// Session is a bound client stream.
type Session interface {
	// JID is the full JID the session is bound to.
	JID() jid.JID
	// Deliver queues el for writing and never blocks; a session that
	// cannot keep up closes itself rather than grow without bound.
	Deliver(el *xmlstream.Element)
	// Replace ends the session because another one took its resource
	// (RFC 6120 §7.7.2.2): it sends a <conflict/> stream error.
	Replace()
	// State is the session's presence state.
	State() *State
}

// State is the RFC 6121 presence state of one session. The session's own
// goroutine changes it while other sessions read it, hence the lock.
type State struct {
	mu         sync.Mutex
	available  bool
	priority   int
	presence   *xmlstream.Element
	interested bool
	directed   map[jid.JID]struct{}
	values     map[any]any
	detached   bool
	// watch, when set, hears every change after it is made: a cluster
	// node tells the others what they need of the session. Never set on
	// a single node.
	watch func()
	// replica holds the replicated values of another node's session,
	// keyed by their key's type name (see Snapshot).
	replica map[string]any
}

// SetDetached records that the session's connection broke and the
// session waits for the client to resume it (XEP-0198): it still counts
// as available, but the device may be asleep.
func (s *State) SetDetached(d bool) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detached = d
}

func (s *State) Detached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detached
}

// Available reports whether the session sent available presence, and its
// priority.
func (s *State) Available() (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.available, s.priority
}

// SetAvailable records the session's latest available presence. It
// reports whether this was the initial presence.
func (s *State) SetAvailable(presence *xmlstream.Element, priority int) (initial bool) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	initial = !s.available
	s.available = true
	s.priority = priority
	s.presence = presence
	return initial
}

// SetUnavailable records that the session became unavailable; it returns
// whether it was available and the directed-presence recipients, which
// must now hear that it is gone (RFC 6121 §4.6.3).
func (s *State) SetUnavailable() (wasAvailable bool, directed []jid.JID) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	wasAvailable = s.available
	s.available = false
	s.presence = nil
	for j := range s.directed {
		directed = append(directed, j)
	}
	s.directed = nil
	return wasAvailable, directed
}

// Presence is the last available presence, nil when unavailable.
func (s *State) Presence() *xmlstream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence
}

// SetInterested marks a session that requested the roster: it receives
// roster pushes from now on (RFC 6121 §2.1.6).
func (s *State) SetInterested() {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interested = true
}

func (s *State) Interested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interested
}

// maxDirected bounds the directed-presence set so that a client cannot
// grow server memory by sending presence to many addresses.
const maxDirected = 1000

// AddDirected remembers an address that got directed presence.
func (s *State) AddDirected(j jid.JID) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.directed == nil {
		s.directed = make(map[jid.JID]struct{})
	}
	if len(s.directed) < maxDirected {
		s.directed[j] = struct{}{}
	}
}

// DirectedTo reports whether the session sent directed presence to an
// address of bare: it is in that group chat room, for instance.
func (s *State) DirectedTo(bare jid.JID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for j := range s.directed {
		if j.Bare().Equal(bare) {
			return true
		}
	}
	return false
}

// RemoveDirected forgets an address (it got directed unavailable presence).
func (s *State) RemoveDirected(j jid.JID) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.directed, j)
}

// Value and SetValue keep per-session data of modules, keyed by a value of
// a type private to the module so that keys cannot collide.
func (s *State) Value(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[key]; ok || s.replica == nil {
		return v
	}
	return s.replica[valueName(key)]
}

func (s *State) SetValue(key, v any) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = make(map[any]any)
	}
	s.values[key] = v
}

// Ender is a session the server can close on an admin's order.
type Ender interface {
	// End closes the stream with a stream error whose text says why.
	End(text string)
}

// End closes s when it can be closed, and reports whether it could.
func End(s Session, text string) bool {
	e, ok := s.(Ender)
	if ok {
		e.End(text)
	}
	return ok
}
