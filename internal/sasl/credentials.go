package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/text/secure/precis"
)

// Credentials are what the server stores per account and per hash: never the
// password or anything reversible to it (RFC 5802 §3: StoredKey and
// ServerKey cannot be turned back into the password, nor used to log in).
type Credentials struct {
	Hash       string // "SHA-1", "SHA-256", "SHA-512"
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Hashes are the hashes SCRAM credentials can use. Treat as read-only.
var Hashes = []string{"SHA-1", "SHA-256", "SHA-512"}

// DefaultIterations is the PBKDF2 iteration count for new credentials.
//
// RFC 7677 asks for at least 4096. 10000 is a middle ground: the cost is paid
// once per hash at account creation or password change (a few milliseconds
// per hash on one core, see BenchmarkNewCredentials) and by the CLIENT at
// each SCRAM login (clients may cache the salted password), while the
// server's per-login SCRAM cost is a handful of HMACs whatever the count.
// PLAIN is the exception: there the server runs PBKDF2 itself on every login.
const DefaultIterations = 10000

const (
	// minIterations is RFC 7677's floor for new credentials.
	minIterations = 4096
	// maxIterations stops a corrupt store or a careless caller from turning
	// every PLAIN login into seconds of CPU.
	maxIterations = 10_000_000
	saltLen       = 16
)

// hashFunc maps a SCRAM hash name to its constructor.
func hashFunc(name string) (func() hash.Hash, bool) {
	switch name {
	case "SHA-1":
		return sha1.New, true
	case "SHA-256":
		return sha256.New, true
	case "SHA-512":
		return sha512.New, true
	}
	return nil, false
}

// NewCredentials derives credentials for password with a fresh random
// 16-byte salt. The password is PRECIS OpaqueString-prepared first.
func NewCredentials(hash, password string, iterations int) (Credentials, error) {
	salt := make([]byte, saltLen)
	// crypto/rand.Read never fails on supported platforms (it crashes the
	// program instead), but keep the check in case that ever changes.
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, fmt.Errorf("sasl: generating salt: %w", err)
	}
	return DeriveCredentials(hash, password, salt, iterations)
}

// DeriveCredentials derives credentials for password with the given salt
// (RFC 5802 §3). The password is PRECIS OpaqueString-prepared first, as
// RFC 6120 §6.3.8 and RFC 8265 require in place of SASLprep.
func DeriveCredentials(hash, password string, salt []byte, iterations int) (Credentials, error) {
	if _, ok := hashFunc(hash); !ok {
		return Credentials{}, fmt.Errorf("sasl: unsupported hash %q", hash)
	}
	if iterations < minIterations || iterations > maxIterations {
		return Credentials{}, fmt.Errorf("sasl: iteration count %d outside [%d, %d]", iterations, minIterations, maxIterations)
	}
	if len(salt) == 0 {
		return Credentials{}, errors.New("sasl: empty salt")
	}
	prepared, err := preparePassword(password)
	if err != nil {
		return Credentials{}, err
	}
	return derive(hash, prepared, salt, iterations)
}

// derive computes credentials from an already prepared password without the
// policy checks of DeriveCredentials, so stored credentials made under an
// older policy still verify.
func derive(hashName, prepared string, salt []byte, iterations int) (Credentials, error) {
	c, clientKey, err := deriveWithClientKey(hashName, prepared, salt, iterations)
	clear(clientKey)
	return c, err
}

// deriveWithClientKey is derive that also returns the ClientKey (the
// caller wipes it).
func deriveWithClientKey(hashName, prepared string, salt []byte, iterations int) (Credentials, []byte, error) {
	newHash, _ := hashFunc(hashName)
	size := newHash().Size()
	salted, err := pbkdf2.Key(newHash, prepared, salt, iterations, size)
	if err != nil {
		return Credentials{}, nil, fmt.Errorf("sasl: PBKDF2: %w", err)
	}
	defer clear(salted)
	clientKey := hmacSum(newHash, salted, "Client Key")
	return Credentials{
		Hash:       hashName,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  hashSum(newHash, clientKey),
		ServerKey:  hmacSum(newHash, salted, "Server Key"),
	}, clientKey, nil
}

// ClientKey computes the SCRAM ClientKey of password under stored
// credentials' hash, salt and iteration count (RFC 5802 §3): what a
// SCRAM client proves it knows, here derived from a password the server
// has just verified (PLAIN, a password change).
func ClientKey(hashName, password string, salt []byte, iterations int) ([]byte, error) {
	newHash, ok := hashFunc(hashName)
	if !ok {
		return nil, fmt.Errorf("sasl: unsupported hash %q", hashName)
	}
	if iterations < 1 || iterations > maxIterations {
		return nil, fmt.Errorf("sasl: iteration count %d out of range", iterations)
	}
	prepared, err := preparePassword(password)
	if err != nil {
		return nil, err
	}
	salted, err := pbkdf2.Key(newHash, prepared, salt, iterations, newHash().Size())
	if err != nil {
		return nil, fmt.Errorf("sasl: PBKDF2: %w", err)
	}
	defer clear(salted)
	return hmacSum(newHash, salted, "Client Key"), nil
}

// VerifyPassword reports whether password matches c, comparing in constant
// time. It lets PLAIN work against SCRAM-only storage.
func (c Credentials) VerifyPassword(password string) bool {
	clientKey, ok := c.verify(password)
	clear(clientKey)
	return ok
}

// verify is VerifyPassword that also returns the password's ClientKey
// when it matches (nil otherwise; the caller wipes it).
func (c Credentials) verify(password string) ([]byte, bool) {
	if c.check() != nil {
		return nil, false
	}
	prepared, err := preparePassword(password)
	if err != nil {
		return nil, false
	}
	got, clientKey, err := deriveWithClientKey(c.Hash, prepared, c.Salt, c.Iterations)
	if err != nil {
		return nil, false
	}
	// Both keys, and no early exit between them, so timing does not say
	// which one differed.
	stored := subtle.ConstantTimeCompare(got.StoredKey, c.StoredKey)
	server := subtle.ConstantTimeCompare(got.ServerKey, c.ServerKey)
	if stored&server != 1 {
		clear(clientKey)
		return nil, false
	}
	return clientKey, true
}

// check reports whether c is usable: a known hash and keys of its size.
func (c Credentials) check() error {
	newHash, ok := hashFunc(c.Hash)
	if !ok {
		return fmt.Errorf("unsupported hash %q", c.Hash)
	}
	size := newHash().Size()
	switch {
	case len(c.Salt) == 0:
		return errors.New("empty salt")
	case c.Iterations < 1 || c.Iterations > maxIterations:
		return fmt.Errorf("iteration count %d out of range", c.Iterations)
	case len(c.StoredKey) != size || len(c.ServerKey) != size:
		return fmt.Errorf("key lengths %d/%d, want %d", len(c.StoredKey), len(c.ServerKey), size)
	}
	return nil
}

// fakeCredentials returns credentials for an account that does not exist.
// They are a pure function of the server secret, hash and username, so
// repeated probes see the same salt, as they would for a real account, and
// they cost no PBKDF2 to make. Nobody knows a password for them: the keys are
// HMAC outputs, not derived from any password.
func fakeCredentials(secret []byte, hashName, username string) Credentials {
	newHash, _ := hashFunc(hashName)
	label := func(purpose string) string {
		return "parley sasl fake " + purpose + "\x00" + hashName + "\x00" + username
	}
	salt := hmacSum(sha256.New, secret, label("salt"))[:saltLen]
	return Credentials{
		Hash:       hashName,
		Salt:       salt,
		Iterations: DefaultIterations,
		StoredKey:  hmacSum(newHash, secret, label("stored key")),
		ServerKey:  hmacSum(newHash, secret, label("server key")),
	}
}

func hmacSum(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func hashSum(newHash func() hash.Hash, data []byte) []byte {
	h := newHash()
	h.Write(data)
	return h.Sum(nil)
}

func preparePassword(password string) (string, error) {
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("sasl: preparing password: %w", err)
	}
	if prepared == "" { // RFC 8265 §4.2.2 forbids empty passwords
		return "", errors.New("sasl: empty password")
	}
	return prepared, nil
}

// maxLocalpartLen is RFC 7622 §3.3's limit.
const maxLocalpartLen = 1023

// prepareUsername applies the XMPP localpart rule (RFC 7622 §3.3):
// UsernameCaseMapped plus the characters a localpart may not hold, so the
// result can be used as a JID localpart as is.
func prepareUsername(name string) (string, error) {
	prepared, err := precis.UsernameCaseMapped.String(name)
	if err != nil {
		return "", fmt.Errorf("sasl: preparing username: %w", err)
	}
	// x/text lets an empty string through, RFC 8265 §3.3.2 does not.
	if prepared == "" {
		return "", errors.New("sasl: empty username")
	}
	if strings.ContainsAny(prepared, "\"&'/:<>@") {
		return "", errors.New("sasl: username has characters a localpart may not hold")
	}
	if len(prepared) > maxLocalpartLen {
		return "", errors.New("sasl: username too long for a localpart")
	}
	return prepared, nil
}
