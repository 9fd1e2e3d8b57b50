package bench

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// scramClient is the client side of SCRAM-SHA-1 (RFC 5802) without
// channel binding ("n,," GS2 header): the load tool authenticates to any
// server, and channel binding would only add work that every server does
// differently.
type scramClient struct {
	user, password string
	nonce          string
	cache          *saltCache

	clientFirstBare string
	authMessage     string
	serverSig       []byte
}

func newSCRAMClient(user, password, nonce string, cache *saltCache) *scramClient {
	return &scramClient{user: user, password: password, nonce: nonce, cache: cache}
}

// randomNonce returns a printable nonce without commas, as RFC 5802 §5.1
// requires.
func randomNonce() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("scram nonce: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// saslName escapes '=' and ',' in a username (RFC 5802 §5.1). Usernames in
// a benchmark are ASCII, so SASLprep has nothing else to do.
func saslName(s string) string {
	if !strings.ContainsAny(s, "=,") {
		return s
	}
	s = strings.ReplaceAll(s, "=", "=3D")
	return strings.ReplaceAll(s, ",", "=2C")
}

// First returns the client-first-message.
func (c *scramClient) First() []byte {
	c.clientFirstBare = "n=" + saslName(c.user) + ",r=" + c.nonce
	return []byte("n,," + c.clientFirstBare)
}

// Final answers the server-first-message with the client-final-message.
func (c *scramClient) Final(serverFirst []byte) ([]byte, error) {
	sf := string(serverFirst)
	attrs, err := scramAttrs(sf)
	if err != nil {
		return nil, err
	}
	if _, ok := attrs['m']; ok {
		return nil, errors.New("scram: server requires an unsupported extension")
	}
	nonce, salt64, iter64 := attrs['r'], attrs['s'], attrs['i']
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, errors.New("scram: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("scram: bad salt %q", salt64)
	}
	iter, err := strconv.Atoi(iter64)
	if err != nil || iter < 1 || iter > 1<<20 {
		return nil, fmt.Errorf("scram: bad iteration count %q", iter64)
	}
	salted, err := c.cache.salted(c.password, salt, iter)
	if err != nil {
		return nil, err
	}
	clientKey := hmacSHA1(salted, []byte("Client Key"))
	storedKey := sha1.Sum(clientKey)
	withoutProof := "c=biws,r=" + nonce
	c.authMessage = c.clientFirstBare + "," + sf + "," + withoutProof
	clientSig := hmacSHA1(storedKey[:], []byte(c.authMessage))
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ clientSig[i]
	}
	c.serverSig = hmacSHA1(hmacSHA1(salted, []byte("Server Key")), []byte(c.authMessage))
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Verify checks the server-final-message, so that a server that does not
// know the password cannot pass for one that does.
func (c *scramClient) Verify(serverFinal []byte) error {
	attrs, err := scramAttrs(string(serverFinal))
	if err != nil {
		return err
	}
	if e, ok := attrs['e']; ok {
		return fmt.Errorf("scram: server error %q", e)
	}
	v, err := base64.StdEncoding.DecodeString(attrs['v'])
	if err != nil || c.serverSig == nil || subtle.ConstantTimeCompare(v, c.serverSig) != 1 {
		return errors.New("scram: server signature does not match")
	}
	return nil
}

// scramAttrs splits "a=x,b=y" into a map keyed by the attribute letter.
func scramAttrs(s string) (map[byte]string, error) {
	m := make(map[byte]string, 4)
	for part := range strings.SplitSeq(s, ",") {
		if len(part) < 2 || part[1] != '=' {
			return nil, fmt.Errorf("scram: malformed attribute %q", part)
		}
		m[part[0]] = part[2:]
	}
	return m, nil
}

func hmacSHA1(key, msg []byte) []byte {
	h := hmac.New(sha1.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// saltCache remembers SaltedPassword per (password, salt, iterations).
// Servers keep one salt per account, so after a first pass the load tool
// no longer spends 4096 SHA-1 rounds per login and measures the server,
// not itself.
type saltCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newSaltCache() *saltCache { return &saltCache{m: make(map[string][]byte)} }

func (c *saltCache) salted(password string, salt []byte, iter int) ([]byte, error) {
	key := strconv.Itoa(iter) + "\x00" + string(salt) + "\x00" + password
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := pbkdf2.Key(sha1.New, password, salt, iter, sha1.Size)
	if err != nil {
		return nil, fmt.Errorf("scram: pbkdf2: %w", err)
	}
	c.mu.Lock()
	c.m[key] = v
	c.mu.Unlock()
	return v, nil
}

// plainResponse is the SASL PLAIN initial response (RFC 4616) with an
// empty authorization identity.
func plainResponse(user, password string) []byte {
	return []byte("\x00" + user + "\x00" + password)
}
