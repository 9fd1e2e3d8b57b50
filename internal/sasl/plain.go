package sasl

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// plainLookupOrder is the order PLAIN tries stored credentials in: SHA-256
// first as the one every account is expected to have, then the others so
// accounts stored with only one hash still work.
var plainLookupOrder = [...]string{"SHA-256", "SHA-512", "SHA-1"}

type plainServer struct {
	cfg      Config
	started  bool // Step was called once
	over     bool
	username string
	authzid  string
	// hash and clientKey are those of the credential the password was
	// checked against, kept after success for the caller (ClientKey), as
	// the SCRAM servers do: the PBKDF2 is paid once.
	hash      string
	clientKey []byte
}

func (s *plainServer) Username() string { return s.username }
func (s *plainServer) Authzid() string  { return s.authzid }

// ClientKey and WipeClientKey make PLAIN a ClientKeyHolder.
func (s *plainServer) ClientKey() (hash string, key []byte) { return s.hash, s.clientKey }
func (s *plainServer) WipeClientKey() {
	clear(s.clientKey)
	s.clientKey = nil
}

func (s *plainServer) Step(response []byte) ([]byte, bool, error) {
	if s.over {
		return nil, false, exchangeOver()
	}
	if !s.started && response == nil {
		// No initial response: ask for it with an empty challenge
		// (RFC 4616 §2, RFC 6120 §6.4.2).
		s.started = true
		return []byte{}, false, nil
	}
	s.started = true
	s.over = true
	if err := s.authenticate(response); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// authenticate checks message = [authzid] NUL authcid NUL passwd (RFC 4616 §2).
func (s *plainServer) authenticate(msg []byte) error {
	if len(msg) > maxMessageLen {
		return fail(condMalformedRequest, "message too long")
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return fail(condMalformedRequest, "PLAIN message needs exactly two NUL separators")
	}
	for _, p := range parts {
		if !utf8.Valid(p) {
			return fail(condMalformedRequest, "PLAIN message is not UTF-8")
		}
	}
	authzid, authcid, password := string(parts[0]), string(parts[1]), string(parts[2])
	if authcid == "" || password == "" {
		return fail(condNotAuthorized, "empty username or password")
	}
	user, err := prepareUsername(authcid)
	if err != nil {
		return fail(condNotAuthorized, "invalid username")
	}
	if s.cfg.Guess != nil {
		if err := s.cfg.Guess(user); err != nil {
			return err
		}
	}
	creds, found, err := s.lookup(user)
	if err != nil {
		return err
	}
	if !found {
		// Spend the same PBKDF2 time as for a real account so response
		// time does not reveal which accounts exist.
		creds = fakeCredentials(s.cfg.FakeSecret, "SHA-256", user)
	}
	clientKey, ok := creds.verify(password)
	if !ok || !found {
		clear(clientKey)
		return fail(condNotAuthorized, "")
	}
	s.username = user
	s.authzid = authzid
	s.hash, s.clientKey = creds.Hash, clientKey
	if s.cfg.PlainVerified != nil {
		s.cfg.PlainVerified(user, password)
	}
	return nil
}

// lookup finds the first stored credentials of user in plainLookupOrder.
func (s *plainServer) lookup(user string) (Credentials, bool, error) {
	for _, h := range plainLookupOrder {
		creds, err := s.cfg.Lookup(user, h)
		if errors.Is(err, ErrUnknownUser) {
			continue
		}
		if err != nil {
			return Credentials{}, false, internalError("looking up credentials", err)
		}
		if creds.Hash != h {
			return Credentials{}, false, internalError("looking up credentials", errors.New("got credentials for another hash than asked"))
		}
		if err := creds.check(); err != nil {
			return Credentials{}, false, internalError("stored credentials", err)
		}
		return creds, true, nil
	}
	return Credentials{}, false, nil
}
