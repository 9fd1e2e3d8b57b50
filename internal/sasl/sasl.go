// Package sasl implements the server side of the SASL mechanisms parley
// offers to clients: SCRAM-SHA-1/256/512 with and without channel binding
// (RFC 5802, RFC 7677, RFC 9266, RFC 5929), PLAIN (RFC 4616) and ANONYMOUS
// (RFC 4505).
//
// The package deals in raw bytes: the XMPP layer owns the XML framing and the
// base64 transfer encoding of RFC 6120 §6.4.
package sasl

import (
	"errors"
	"fmt"
	"strings"
)

// RFC 6120 §6.5 SASL failure conditions used by this package.
const (
	condMalformedRequest     = "malformed-request"
	condEncryptionRequired   = "encryption-required"
	condInvalidMechanism     = "invalid-mechanism"
	condNotAuthorized        = "not-authorized"
	condTemporaryAuthFailure = "temporary-auth-failure"
)

const (
	mechPlain     = "PLAIN"
	mechAnonymous = "ANONYMOUS"
	scramPrefix   = "SCRAM-"
	plusSuffix    = "-PLUS"
)

// maxMessageLen bounds every client response. Legitimate SCRAM and PLAIN
// messages are a few hundred bytes; the bound keeps PRECIS preparation and
// parsing cheap on hostile input even if the XMPP layer allows larger
// elements.
const maxMessageLen = 8192

// Failure is a SASL failure to be reported to the client as the RFC 6120
// §6.5 condition Condition with optional descriptive Text.
type Failure struct{ Condition, Text string }

func (f *Failure) Error() string {
	if f.Text != "" {
		return "sasl: " + f.Condition + ": " + f.Text
	}
	return "sasl: " + f.Condition
}

func fail(condition, text string) *Failure {
	return &Failure{Condition: condition, Text: text}
}

// internalError reports a server-side problem (storage, randomness, TLS
// state). It is not an authentication failure, so it is not a bare *Failure:
// it wraps both a temporary-auth-failure (for errors.As, to tell the client
// something) and the cause (for the server's logs).
func internalError(context string, err error) error {
	return fmt.Errorf("%w: %s: %w", fail(condTemporaryAuthFailure, ""), context, err)
}

// ErrUnknownUser is returned (possibly wrapped) by Config.Lookup when there is
// no account of that name, or the account has no credentials for that hash.
var ErrUnknownUser = errors.New("sasl: unknown user")

// Config describes what one connection may use to authenticate.
type Config struct {
	// Lookup returns the stored credentials of username (already
	// PRECIS-prepared localpart) for hash. It returns ErrUnknownUser when
	// there is no such account (or no credentials for that hash); the SCRAM
	// server then continues the exchange with deterministic fake credentials
	// derived from FakeSecret, so an attacker cannot tell unknown accounts
	// from wrong passwords, and fails at the proof step with not-authorized.
	// Any other error fails the exchange with temporary-auth-failure.
	Lookup func(username, hash string) (Credentials, error)
	// Guess, when set, is called with the prepared username right before
	// a password or proof for it is checked: it is how the XMPP layer
	// learns which account a guess was for, also when the guess fails,
	// and reserves its place under the login throttles before anything is
	// evaluated. A non-nil error ends the exchange with that error, and
	// nothing is checked; it should wrap a *Failure.
	Guess func(username string) error
	// FakeSecret is a per-server secret, stable across restarts so fake
	// salts do not change (which would give unknown accounts away). Required
	// for SCRAM and PLAIN.
	FakeSecret []byte
	// TLS is true when the stream is encrypted. PLAIN is refused with
	// encryption-required without it.
	TLS bool
	// ChannelBindings maps each channel binding type this connection
	// supports ("tls-exporter", "tls-server-end-point") to a func returning
	// its data. Empty when not on TLS. -PLUS mechanisms are only available
	// when it is non-empty.
	ChannelBindings map[string]func() ([]byte, error)
	// Anonymous is true on hosts where ANONYMOUS is allowed. Such hosts have
	// no registered accounts, so nothing else is offered there.
	Anonymous bool
	// NewAnonymousUsername returns a fresh random username for ANONYMOUS
	// (the caller creates the account).
	NewAnonymousUsername func() (string, error)
	// PlainVerified, when set, is called after PLAIN checked a password:
	// the one moment the server holds it, which lets an account moved
	// from a server that kept only SCRAM-SHA-1 gain the other hashes.
	PlainVerified func(username, password string)
}

// Server is one server-side SASL exchange. It is single-use and not safe for
// concurrent use.
type Server interface {
	// Step is called first with the initial response (nil when the client
	// sent none, which is different from an empty one), then with each
	// response. It returns the next challenge, or, when done is true, the
	// additional data with success (may be nil). Authentication failures
	// are a *Failure; server-side problems are errors wrapping a
	// *Failure{temporary-auth-failure}, so use errors.As to get the
	// condition. After done or any error, Step only returns a Failure.
	Step(response []byte) (challenge []byte, done bool, err error)
	// Username is the authenticated username (localpart), valid once done.
	Username() string
	// Authzid is the requested authorization identity, "" if none. The
	// XMPP layer decides whether Username may act as it.
	Authzid() string
}

// ClientKeyHolder is implemented by the SCRAM and PLAIN servers: after
// success
// ClientKey gives the hash and the ClientKey recovered from the client's
// proof (RFC 5802 §3: ClientKey = ClientProof XOR ClientSignature), from
// which the caller derives the user's key-wrapping key; WipeClientKey
// zeroes it once used.
type ClientKeyHolder interface {
	ClientKey() (hash string, key []byte)
	WipeClientKey()
}

// Mechanisms lists the mechanisms to advertise for cfg, strongest first.
func Mechanisms(cfg Config) []string {
	if cfg.Anonymous {
		return []string{mechAnonymous}
	}
	// Strongest hash first so clients that pick the first mutually
	// supported mechanism get the best one.
	order := []string{"SHA-512", "SHA-256", "SHA-1"}
	var mechs []string
	if len(cfg.ChannelBindings) > 0 {
		for _, h := range order {
			mechs = append(mechs, scramPrefix+h+plusSuffix)
		}
	}
	for _, h := range order {
		mechs = append(mechs, scramPrefix+h)
	}
	if cfg.TLS {
		mechs = append(mechs, mechPlain)
	}
	return mechs
}

// NewServer starts an exchange for mechanism. Mechanisms that are unknown or
// not offered under cfg give *Failure{invalid-mechanism}, except PLAIN
// without TLS, which gives *Failure{encryption-required} so the client knows
// why. Incomplete configuration is a plain error (a server bug, not the
// client's).
func NewServer(mechanism string, cfg Config) (Server, error) {
	if cfg.Anonymous {
		if mechanism != mechAnonymous {
			return nil, fail(condInvalidMechanism, mechanism+" is not offered on an anonymous host")
		}
		if cfg.NewAnonymousUsername == nil {
			return nil, errors.New("sasl: ANONYMOUS needs Config.NewAnonymousUsername")
		}
		return &anonymousServer{newUsername: cfg.NewAnonymousUsername}, nil
	}
	switch mechanism {
	case mechAnonymous:
		return nil, fail(condInvalidMechanism, "ANONYMOUS is not offered on this host")
	case mechPlain:
		if !cfg.TLS {
			return nil, fail(condEncryptionRequired, "PLAIN needs an encrypted stream")
		}
		if err := checkAccountConfig(cfg); err != nil {
			return nil, err
		}
		return &plainServer{cfg: cfg}, nil
	}
	hashName, plus, ok := parseSCRAMName(mechanism)
	if !ok {
		return nil, fail(condInvalidMechanism, "unsupported mechanism")
	}
	if plus && len(cfg.ChannelBindings) == 0 {
		return nil, fail(condInvalidMechanism, mechanism+" needs channel binding, which this stream does not offer")
	}
	if err := checkAccountConfig(cfg); err != nil {
		return nil, err
	}
	return newSCRAMServer(hashName, plus, cfg), nil
}

func checkAccountConfig(cfg Config) error {
	if cfg.Lookup == nil {
		return errors.New("sasl: Config.Lookup is required")
	}
	if len(cfg.FakeSecret) == 0 {
		return errors.New("sasl: Config.FakeSecret is required")
	}
	return nil
}

// parseSCRAMName splits "SCRAM-<hash>[-PLUS]".
func parseSCRAMName(mechanism string) (hashName string, plus bool, ok bool) {
	rest, found := strings.CutPrefix(mechanism, scramPrefix)
	if !found {
		return "", false, false
	}
	rest, plus = strings.CutSuffix(rest, plusSuffix)
	if _, known := hashFunc(rest); !known {
		return "", false, false
	}
	return rest, plus, true
}

// exchangeOver is what Step returns once a Server is used up.
func exchangeOver() *Failure {
	return fail(condMalformedRequest, "the authentication exchange is already over")
}
