package s2s

// Streams counts the open server streams, incoming and outgoing, for
// metrics.
func (s *Service) Streams() (in, out int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.in), len(s.out)
}
