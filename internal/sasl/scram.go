package sasl

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"unicode/utf8"
)

// serverNonceLen is the number of random bytes in the server's nonce part:
// 192 bits, well above the 18-byte floor the project requires, and a
// multiple of 3 so the base64 has no padding.
const serverNonceLen = 24

type scramState int

const (
	scramStart      scramState = iota // nothing received yet
	scramAwaitFirst                   // sent the empty challenge, want client-first
	scramAwaitFinal                   // sent server-first, want client-final
	scramOver                         // succeeded or failed
)

type scramServer struct {
	cfg      Config
	hashName string
	newHash  func() hash.Hash
	plus     bool
	// serverNonce makes the server's nonce part; tests replace it to replay
	// the RFC examples.
	serverNonce func() (string, error)

	state           scramState
	gs2Header       string // exactly as the client sent it, for c=
	cbData          []byte
	clientFirstBare string
	serverFirst     string
	nonce           string // client nonce + server nonce
	creds           Credentials
	fake            bool // creds are fakeCredentials: never succeed
	username        string
	authzid         string
	// clientKey is what the proof revealed, kept only after success for
	// the caller (ClientKey) to derive the user's key-wrapping key.
	clientKey []byte
}

func newSCRAMServer(hashName string, plus bool, cfg Config) *scramServer {
	newHash, _ := hashFunc(hashName)
	return &scramServer{
		cfg:         cfg,
		hashName:    hashName,
		newHash:     newHash,
		plus:        plus,
		serverNonce: randomNonce,
	}
}

func randomNonce() (string, error) {
	b := make([]byte, serverNonceLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (s *scramServer) Username() string { return s.username }
func (s *scramServer) Authzid() string  { return s.authzid }

func (s *scramServer) Step(response []byte) ([]byte, bool, error) {
	if s.state == scramOver {
		return nil, false, exchangeOver()
	}
	challenge, done, err := s.step(response)
	if err != nil || done {
		s.state = scramOver
	}
	if err != nil {
		// Username is only meaningful after success.
		s.username = ""
		return nil, false, err
	}
	return challenge, done, nil
}

func (s *scramServer) step(response []byte) ([]byte, bool, error) {
	if len(response) > maxMessageLen {
		return nil, false, fail(condMalformedRequest, "message too long")
	}
	switch s.state {
	case scramStart:
		if response == nil {
			// No initial response: the empty challenge asks for
			// client-first (RFC 6120 §6.4.2).
			s.state = scramAwaitFirst
			return []byte{}, false, nil
		}
		return s.clientFirst(string(response))
	case scramAwaitFirst:
		return s.clientFirst(string(response))
	default:
		return s.clientFinal(string(response))
	}
}

// clientFirst handles RFC 5802 §7 client-first-message:
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
func (s *scramServer) clientFirst(msg string) ([]byte, bool, error) {
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, false, fail(condMalformedRequest, "missing GS2 header")
	}
	authzField, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, false, fail(condMalformedRequest, "missing GS2 header")
	}
	s.gs2Header = msg[:len(flag)+1+len(authzField)+1]

	if err := s.channelBindingFlag(flag); err != nil {
		return nil, false, err
	}
	if authzField != "" {
		name, found := strings.CutPrefix(authzField, "a=")
		if !found {
			return nil, false, fail(condMalformedRequest, "bad authzid in GS2 header")
		}
		authzid, err := decodeSASLName(name)
		if err != nil {
			return nil, false, fail(condMalformedRequest, "authzid: "+err.Error())
		}
		s.authzid = authzid
	}

	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		// RFC 5802 §5.1: a server that does not understand a mandatory
		// extension must fail.
		return nil, false, fail(condMalformedRequest, "extensions-not-supported")
	}
	if len(attrs) < 2 {
		return nil, false, fail(condMalformedRequest, "client-first needs n= and r=")
	}
	rawUser, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return nil, false, fail(condMalformedRequest, "client-first must start with n=")
	}
	clientNonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return nil, false, fail(condMalformedRequest, "client-first needs r= after n=")
	}
	if !validNonce(clientNonce) {
		return nil, false, fail(condMalformedRequest, "bad client nonce")
	}
	if !validExtensions(attrs[2:]) {
		return nil, false, fail(condMalformedRequest, "bad extension attribute")
	}
	user, err := decodeSASLName(rawUser)
	if err != nil {
		return nil, false, fail(condMalformedRequest, "username: "+err.Error())
	}
	// Only a name that could never be an account fails here, so this
	// reveals nothing about which accounts exist.
	user, err = prepareUsername(user)
	if err != nil {
		return nil, false, fail(condNotAuthorized, "invalid username")
	}

	creds, err := s.cfg.Lookup(user, s.hashName)
	switch {
	case errors.Is(err, ErrUnknownUser):
		creds = fakeCredentials(s.cfg.FakeSecret, s.hashName, user)
		s.fake = true
	case err != nil:
		return nil, false, internalError("looking up credentials", err)
	case creds.Hash != s.hashName:
		return nil, false, internalError("looking up credentials", fmt.Errorf("got %q credentials, asked for %q", creds.Hash, s.hashName))
	default:
		if err := creds.check(); err != nil {
			return nil, false, internalError("stored credentials", err)
		}
	}

	serverNonce, err := s.serverNonce()
	if err != nil {
		return nil, false, internalError("making nonce", err)
	}
	s.username = user
	s.creds = creds
	s.clientFirstBare = bare
	s.nonce = clientNonce + serverNonce
	s.serverFirst = "r=" + s.nonce +
		",s=" + base64.StdEncoding.EncodeToString(creds.Salt) +
		",i=" + strconv.Itoa(creds.Iterations)
	s.state = scramAwaitFinal
	return []byte(s.serverFirst), false, nil
}

// channelBindingFlag checks gs2-cbind-flag against the mechanism and the
// connection, and fetches the channel binding data for p=.
// Failure texts for the two channel-binding negotiation failures. They
// happen before any password is checked, so the XMPP layer does not count
// them as guesses.
const (
	TextDowngrade                 = "server-does-support-channel-binding"
	TextUnsupportedChannelBinding = "unsupported-channel-binding-type"
)

func (s *scramServer) channelBindingFlag(flag string) error {
	switch {
	case flag == "n":
		if s.plus {
			return fail(condMalformedRequest, "-PLUS mechanism without channel binding")
		}
	case flag == "y":
		if s.plus {
			return fail(condMalformedRequest, "-PLUS mechanism without channel binding")
		}
		// The client could bind but believes we cannot: since we
		// advertised -PLUS, someone stripped it from the list
		// (RFC 5802 §6).
		if len(s.cfg.ChannelBindings) > 0 {
			return fail(condNotAuthorized, TextDowngrade)
		}
	case strings.HasPrefix(flag, "p="):
		if !s.plus {
			return fail(condMalformedRequest, "channel binding requested with a non-PLUS mechanism")
		}
		cbType := flag[len("p="):]
		if !validCBName(cbType) {
			return fail(condMalformedRequest, "bad channel binding type name")
		}
		get, ok := s.cfg.ChannelBindings[cbType]
		if !ok || get == nil {
			return fail(condNotAuthorized, TextUnsupportedChannelBinding)
		}
		data, err := get()
		if err != nil {
			return internalError("channel binding "+cbType, err)
		}
		s.cbData = data
	default:
		return fail(condMalformedRequest, "bad GS2 channel binding flag")
	}
	return nil
}

// clientFinal handles RFC 5802 §7 client-final-message:
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
func (s *scramServer) clientFinal(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, false, fail(condMalformedRequest, "client-final must end with p=")
	}
	withoutProof, proofB64 := msg[:i], msg[i+len(",p="):]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 {
		return nil, false, fail(condMalformedRequest, "client-final needs c=, r= and p=")
	}
	cb, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return nil, false, fail(condMalformedRequest, "client-final must start with c=")
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return nil, false, fail(condMalformedRequest, "client-final needs r= after c=")
	}
	if !validExtensions(attrs[2:]) {
		return nil, false, fail(condMalformedRequest, "bad extension attribute")
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(proofB64)
	if err != nil {
		return nil, false, fail(condMalformedRequest, "proof is not base64")
	}

	if s.cfg.Guess != nil {
		if err := s.cfg.Guess(s.username); err != nil {
			return nil, false, err
		}
	}
	// The client must echo our GS2 header and channel binding data
	// exactly: that is what ties the authentication to this TLS session.
	wantCB := base64.StdEncoding.EncodeToString(append([]byte(s.gs2Header), s.cbData...))
	if subtle.ConstantTimeCompare([]byte(cb), []byte(wantCB)) != 1 {
		return nil, false, fail(condNotAuthorized, "channel-bindings-dont-match")
	}
	if subtle.ConstantTimeCompare([]byte(nonce), []byte(s.nonce)) != 1 {
		return nil, false, fail(condNotAuthorized, "nonce mismatch")
	}

	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientKey, ok := s.proofOK(proof, authMessage)
	if !ok || s.fake {
		clear(clientKey)
		return nil, false, fail(condNotAuthorized, "invalid-proof")
	}
	s.clientKey = clientKey
	serverSignature := hmacSum(s.newHash, s.creds.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), true, nil
}

// proofOK recovers ClientKey from the proof (ClientProof XOR
// ClientSignature) and checks that it hashes to StoredKey (RFC 5802 §3).
func (s *scramServer) proofOK(proof []byte, authMessage string) ([]byte, bool) {
	signature := hmacSum(s.newHash, s.creds.StoredKey, authMessage)
	if len(proof) != len(signature) {
		return nil, false
	}
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, signature)
	return clientKey, hmac.Equal(hashSum(s.newHash, clientKey), s.creds.StoredKey)
}

// ClientKey returns the hash and the ClientKey the client proved it
// knows, once the exchange succeeded (nil before and after a failure).
// The ClientKey is a password equivalent for this server's verifier:
// the caller derives what it needs and wipes it (WipeClientKey), never
// stores or logs it.
func (s *scramServer) ClientKey() (hash string, key []byte) {
	return s.hashName, s.clientKey
}

// WipeClientKey zeroes and forgets the ClientKey.
func (s *scramServer) WipeClientKey() {
	clear(s.clientKey)
	s.clientKey = nil
}

// decodeSASLName undoes RFC 5802's saslname escaping ("=2C" is ',', "=3D" is
// '='); any other '=' is an error, as are NUL and invalid UTF-8.
func decodeSASLName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty name")
	}
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", errors.New("invalid-username-encoding")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("invalid-username-encoding")
		}
		i += 2
	}
	return b.String(), nil
}

// validNonce: printable ASCII except ',' (RFC 5802 §7 "printable").
func validNonce(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName: cb-name = 1*(ALPHA / DIGIT / "." / "-").
func validCBName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validExtensions checks optional attr-val extensions, which we ignore. An
// attribute name SCRAM already defines is not an extension: a repeated or
// misplaced c=, r=, p=, n= or m= makes the message malformed.
func validExtensions(attrs []string) bool {
	for _, a := range attrs {
		if len(a) < 3 || !isAlpha(a[0]) || a[1] != '=' {
			return false
		}
		if strings.IndexByte("cmnprsiv", a[0]) >= 0 {
			return false
		}
		if !utf8.ValidString(a) || strings.ContainsRune(a, 0) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
