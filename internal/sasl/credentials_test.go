package sasl

import (
	"bytes"
	"crypto/pbkdf2"
	"strings"
	"testing"
)

func TestDeriveCredentials(t *testing.T) {
	salt := []byte("0123456789abcdef")
	tests := []struct {
		name, hash, password string
		iterations           int
		salt                 []byte
		ok                   bool
	}{
		{"SHA-1", "SHA-1", "pencil", 4096, salt, true},
		{"SHA-256", "SHA-256", "pencil", 4096, salt, true},
		{"SHA-512", "SHA-512", "pencil", 4096, salt, true},
		{"unknown hash", "SHA-384", "pencil", 4096, salt, false},
		{"lower-case hash", "sha-256", "pencil", 4096, salt, false},
		{"too few iterations", "SHA-256", "pencil", 4095, salt, false},
		{"too many iterations", "SHA-256", "pencil", maxIterations + 1, salt, false},
		{"empty salt", "SHA-256", "pencil", 4096, nil, false},
		{"empty password", "SHA-256", "", 4096, salt, false},
		{"control char in password", "SHA-256", "pen\x07cil", 4096, salt, false},
	}
	for _, tt := range tests {
		c, err := DeriveCredentials(tt.hash, tt.password, tt.salt, tt.iterations)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if err := c.check(); err != nil {
			t.Errorf("%s: derived credentials invalid: %v", tt.name, err)
		}
		if c.Hash != tt.hash || c.Iterations != tt.iterations || !bytes.Equal(c.Salt, tt.salt) {
			t.Errorf("%s: got %+v", tt.name, c)
		}
	}
}

// TestDeriveCredentialsIndependent compares the derived keys with a direct
// computation of RFC 5802 §3's formulas in the test.
func TestDeriveCredentialsIndependent(t *testing.T) {
	salt := []byte("QSXCR+Q6sek8bf92")
	for _, h := range Hashes {
		c, err := DeriveCredentials(h, "pencil", salt, 4096)
		if err != nil {
			t.Fatal(err)
		}
		hf := clientHash(h)
		salted, err := pbkdf2.Key(hf, "pencil", salt, 4096, hf().Size())
		if err != nil {
			t.Fatal(err)
		}
		sum := hf()
		sum.Write(clientHMAC(hf, salted, "Client Key"))
		if want := sum.Sum(nil); !bytes.Equal(c.StoredKey, want) {
			t.Errorf("%s StoredKey = %x, want %x", h, c.StoredKey, want)
		}
		if want := clientHMAC(hf, salted, "Server Key"); !bytes.Equal(c.ServerKey, want) {
			t.Errorf("%s ServerKey = %x, want %x", h, c.ServerKey, want)
		}
	}
}

func TestNewCredentials(t *testing.T) {
	a, err := NewCredentials("SHA-256", "secret", DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCredentials("SHA-256", "secret", DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Salt) != 16 || bytes.Equal(a.Salt, b.Salt) || bytes.Equal(a.StoredKey, b.StoredKey) {
		t.Errorf("salts not fresh 16-byte values: %x %x", a.Salt, b.Salt)
	}
	if a.Iterations != DefaultIterations {
		t.Errorf("Iterations = %d", a.Iterations)
	}
	if _, err := NewCredentials("MD5", "secret", DefaultIterations); err == nil {
		t.Error("MD5 accepted")
	}
}

func TestVerifyPassword(t *testing.T) {
	c, err := DeriveCredentials("SHA-256", "Correct Horse\u00e9", []byte("salt"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	broken := c
	broken.ServerKey = append([]byte(nil), c.ServerKey...)
	broken.ServerKey[0] ^= 1
	short := c
	short.StoredKey = c.StoredKey[:31]
	noHash := c
	noHash.Hash = ""
	legacy, err := derive("SHA-1", "old", []byte("s"), 100) // made under an older policy
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		c        Credentials
		password string
		want     bool
	}{
		{"right", c, "Correct Horse\u00e9", true},
		{"NFC equivalent", c, "Correct Horsee\u0301", true},
		{"non-ASCII space maps to space", c, "Correct\u2003Horse\u00e9", true},
		{"wrong", c, "correct horse\u00e9", false},
		{"empty", c, "", false},
		{"unpreparable", c, "\x00", false},
		{"ServerKey differs", broken, "Correct Horse\u00e9", false},
		{"bad key length", short, "Correct Horse\u00e9", false},
		{"no hash", noHash, "Correct Horse\u00e9", false},
		{"zero value", Credentials{}, "x", false},
		{"legacy low iteration count", legacy, "old", true},
	}
	for _, tt := range tests {
		if got := tt.c.VerifyPassword(tt.password); got != tt.want {
			t.Errorf("%s: VerifyPassword = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFakeCredentials(t *testing.T) {
	for _, h := range Hashes {
		c := fakeCredentials([]byte("k"), h, "romeo")
		if err := c.check(); err != nil {
			t.Errorf("%s: fake credentials invalid: %v", h, err)
		}
		if c.Iterations != DefaultIterations || len(c.Salt) != saltLen {
			t.Errorf("%s: fake credentials %+v do not look like new ones", h, c)
		}
		if c.VerifyPassword("romeo") || c.VerifyPassword("k") {
			t.Errorf("%s: fake credentials accept a password", h)
		}
	}
}

func TestPrepareUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Juliet", "juliet", true},
		{"\uff2a\uff55\uff4c\uff49\uff45\uff54", "juliet", true},
		{"a,b=c", "a,b=c", true},
		{"ju liet", "", false},
		{"", "", false},
		{"juliet@example.com", "", false},
		{"a/b", "", false},
		{"a:b", "", false},
		{"a<b", "", false},
		{"a'b", "", false},
		{"a\"b", "", false},
		{"a&b", "", false},
		{strings.Repeat("a", 1024), "", false},
		{strings.Repeat("a", 1023), strings.Repeat("a", 1023), true},
	}
	for _, tt := range tests {
		got, err := prepareUsername(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("prepareUsername(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
