// Package recent remembers, in memory, which keys had something done
// lately, so that work repeated at every login (recording it, checking
// for data to migrate) is done once in a while instead of every time.
package recent

import (
	"sync"
	"time"
)

// Set holds up to max keys with the time each was added. Past max it
// forgets everything at once: the work is then done again once per key,
// which is correct, only slower, and memory stays bounded without an
// eviction order to keep.
type Set struct {
	mu  sync.Mutex
	max int
	at  map[string]time.Time
}

// New holds up to max keys (at least 1).
func New(limit int) *Set { return &Set{max: max(limit, 1), at: make(map[string]time.Time)} }

// Within reports whether key was added at most d before now; d <= 0
// means at any time.
func (s *Set) Within(key string, now time.Time, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[key]
	return ok && (d <= 0 || now.Sub(t) < d)
}

// Add records key at now.
func (s *Set) Add(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[key]; !ok && len(s.at) >= s.max {
		clear(s.at)
	}
	s.at[key] = now
}

// Len is the number of keys held.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}
