package session

import (
	"fmt"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// Snapshot is what the other nodes of a cluster see of a session's
// State: enough for the delivery rules and for the modules' choices of
// whom to send what (availability, priority, presence for probes and
// entity capabilities, roster and block-list interest, carbons).
// Module values travel when they are booleans or strings, under their
// key's type name; other values stay on the session's node.
type Snapshot struct {
	Available  bool   `json:"a,omitempty"`
	Priority   int    `json:"p,omitempty"`
	Presence   string `json:"x,omitempty"`
	Interested bool   `json:"i,omitempty"`
	Detached   bool   `json:"d,omitempty"`
	// Directed lists who got directed presence (group chat rooms): they
	// hear "unavailable" when the session's node dies.
	Directed []string       `json:"t,omitempty"`
	Values   map[string]any `json:"v,omitempty"`
}

// valueName names a module value's key across processes: keys are
// values of types private to their module, so the type's name is
// unique and the same on every node running the same build.
func valueName(key any) string { return fmt.Sprintf("%T", key) }

// Watch sets the function that hears every change of s (a cluster
// node's session); it runs after the change, without the lock held.
func (s *State) Watch(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch = fn
}

func (s *State) changed() {
	s.mu.Lock()
	fn := s.watch
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// Snapshot returns the replicated part of s.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Available: s.available, Priority: s.priority, Interested: s.interested, Detached: s.detached}
	if s.presence != nil {
		snap.Presence = s.presence.String()
	}
	for j := range s.directed {
		snap.Directed = append(snap.Directed, j.String())
	}
	for k, v := range s.values {
		switch v.(type) {
		case bool, string:
			if snap.Values == nil {
				snap.Values = make(map[string]any)
			}
			snap.Values[valueName(k)] = v
		}
	}
	return snap
}

// Replica is the State of a session on another node as its snapshot
// says; changes made to it stay local to this copy.
func Replica(snap Snapshot) (*State, error) {
	st := &State{available: snap.Available, priority: snap.Priority, interested: snap.Interested,
		detached: snap.Detached, replica: snap.Values}
	if st.replica == nil {
		st.replica = map[string]any{}
	}
	for _, d := range snap.Directed {
		if j, err := jid.Parse(d); err == nil {
			if st.directed == nil {
				st.directed = map[jid.JID]struct{}{}
			}
			st.directed[j] = struct{}{}
		}
	}
	if snap.Presence != "" {
		p, err := xmlstream.ParseElement([]byte(snap.Presence), stanza.NSClient)
		if err != nil {
			return nil, fmt.Errorf("session: a replicated presence does not parse: %w", err)
		}
		st.presence = p
	}
	return st, nil
}
