package sasl

// anonymousServer implements RFC 4505 ANONYMOUS. The trace data is not
// checked at all: it is unauthenticated and many clients send none.
type anonymousServer struct {
	newUsername func() (string, error)
	over        bool
	username    string
}

func (s *anonymousServer) Username() string { return s.username }
func (s *anonymousServer) Authzid() string  { return "" }

// Step succeeds at once, even without an initial response: answering a
// missing one with an empty challenge would only cost a round trip, and
// clients commonly send <auth mechanism='ANONYMOUS'/> and expect success.
func (s *anonymousServer) Step([]byte) ([]byte, bool, error) {
	if s.over {
		return nil, false, exchangeOver()
	}
	s.over = true
	name, err := s.newUsername()
	if err != nil {
		return nil, false, internalError("making anonymous username", err)
	}
	s.username = name
	return nil, true, nil
}
