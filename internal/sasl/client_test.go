package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"testing"
)

// scramClient is a minimal SCRAM client written for the tests from RFC 5802
// §3 and §7, independent of the server code, so round trips check the server
// against a second reading of the spec.
type scramClient struct {
	hash     string
	user     string // unescaped
	password string // used as is (tests pass prepared passwords)
	gs2      string // e.g. "n,,", "p=tls-exporter,a=x,"
	cbData   []byte
	nonce    string
	// finalNonce, if set, replaces the nonce echoed in client-final (the
	// proof is still computed over what is sent).
	finalNonce string
	// salted caches SaltedPassword, as real clients may; nil to derive.
	salted []byte

	bare      string
	serverSig []byte
}

func clientHash(name string) func() hash.Hash {
	switch name {
	case "SHA-1":
		return sha1.New
	case "SHA-256":
		return sha256.New
	case "SHA-512":
		return sha512.New
	}
	panic("test bug: hash " + name)
}

func clientHMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func escapeName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (c *scramClient) first() []byte {
	c.bare = "n=" + escapeName(c.user) + ",r=" + c.nonce
	return []byte(c.gs2 + c.bare)
}

func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	attrs := strings.Split(string(serverFirst), ",")
	if len(attrs) != 3 || !strings.HasPrefix(attrs[0], "r=") || !strings.HasPrefix(attrs[1], "s=") || !strings.HasPrefix(attrs[2], "i=") {
		return nil, fmt.Errorf("bad server-first %q", serverFirst)
	}
	nonce := attrs[0][2:]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, fmt.Errorf("server nonce %q does not extend ours", nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs[1][2:])
	if err != nil {
		return nil, err
	}
	iter, err := strconv.Atoi(attrs[2][2:])
	if err != nil {
		return nil, err
	}
	h := clientHash(c.hash)
	salted := c.salted
	if salted == nil {
		salted, err = pbkdf2.Key(h, c.password, salt, iter, h().Size())
		if err != nil {
			return nil, err
		}
	}
	if c.finalNonce != "" {
		nonce = c.finalNonce
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + nonce
	authMessage := c.bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := clientHMAC(h, salted, "Client Key")
	sum := h()
	sum.Write(clientKey)
	clientSig := clientHMAC(h, sum.Sum(nil), authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ clientSig[i]
	}
	c.serverSig = clientHMAC(h, clientHMAC(h, salted, "Server Key"), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (c *scramClient) verify(serverFinal []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(c.serverSig)
	if !bytes.Equal(serverFinal, []byte(want)) {
		return fmt.Errorf("server-final %q, want %q", serverFinal, want)
	}
	return nil
}

// runSCRAM drives one exchange. It returns the server, the number of
// challenges the server sent before the outcome, and the error (nil on
// success, after the client checked the server signature).
func runSCRAM(t testing.TB, mech string, cfg Config, c *scramClient) (Server, int, error) {
	t.Helper()
	srv, err := NewServer(mech, cfg)
	if err != nil {
		return nil, 0, err
	}
	challenge, done, err := srv.Step(c.first())
	if err != nil {
		return srv, 0, err
	}
	if done {
		t.Fatalf("%s: done after client-first", mech)
	}
	final, err := c.final(challenge)
	if err != nil {
		t.Fatalf("%s: client: %v", mech, err)
	}
	data, done, err := srv.Step(final)
	if err != nil {
		return srv, 1, err
	}
	if !done {
		t.Fatalf("%s: not done after client-final", mech)
	}
	if err := c.verify(data); err != nil {
		t.Fatalf("%s: %v", mech, err)
	}
	return srv, 1, nil
}

// store is an in-memory account store for Config.Lookup.
type store map[string]map[string]Credentials

func (s store) add(t testing.TB, user, password string, hashes ...string) {
	t.Helper()
	if s[user] == nil {
		s[user] = map[string]Credentials{}
	}
	for _, h := range hashes {
		c, err := NewCredentials(h, password, minIterations)
		if err != nil {
			t.Fatal(err)
		}
		s[user][h] = c
	}
}

func (s store) lookup(user, hash string) (Credentials, error) {
	c, ok := s[user][hash]
	if !ok {
		return Credentials{}, fmt.Errorf("lookup %q/%s: %w", user, hash, ErrUnknownUser)
	}
	return c, nil
}

var (
	testExporter    = []byte("exporter-data-0123456789abcdef01")
	testEndPoint    = []byte("end-point-data-0123456789abcdef0")
	errTestInternal = errors.New("test: storage is down")
)

func testConfig(s store) Config {
	return Config{
		Lookup:     s.lookup,
		FakeSecret: []byte("test fake secret"),
		TLS:        true,
		ChannelBindings: map[string]func() ([]byte, error){
			"tls-exporter":         func() ([]byte, error) { return testExporter, nil },
			"tls-server-end-point": func() ([]byte, error) { return testEndPoint, nil },
		},
	}
}

// failure extracts the *Failure of err, failing the test if there is none.
func failure(t testing.TB, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *Failure", err, err)
	}
	return f
}
