// Package seal encrypts and authenticates records kept in the database
// (offline messages, the archive) under a key that lives outside it.
//
// A sealed blob is: the format version (2), a key id, a random nonce and
// the AES-256-GCM ciphertext. Every field that gives the record its
// meaning (owner, position, peer, time, id) goes in as additional data,
// so a blob copied to another row, another owner or another time fails
// to open. The key id (derived from the key, revealing nothing of it)
// tells a record sealed under another key (the server's secret was lost
// or replaced) from a record that was altered.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the format of blobs Seal makes. Version 1 (no key id, fewer
// fields bound) is still opened through OpenV1, so existing data stays
// readable.
const (
	Version  = 2
	V1       = 1
	keyIDLen = 4
)

var (
	// ErrWrongKey: the record was sealed under another key; nothing says
	// it was altered.
	ErrWrongKey = errors.New("seal: sealed under another key")
	// ErrTampered: the record fails its integrity check (altered,
	// damaged, or moved to a place it was not sealed for).
	ErrTampered = errors.New("seal: failed its integrity check")
)

// Sealer seals and opens records under one key.
type Sealer struct {
	aead  cipher.AEAD
	keyID [keyIDLen]byte
}

// New returns a sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	s := &Sealer{aead: aead}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("parley seal key id"))
	copy(s.keyID[:], mac.Sum(nil))
	return s, nil
}

// AD encodes the fields bound to a record, each with its length, so no
// two different lists encode alike.
func AD(fields ...string) []byte {
	n := 0
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Seal encrypts plain bound to ad.
func (s *Sealer) Seal(plain, ad []byte) []byte {
	ns := s.aead.NonceSize()
	head := 1 + keyIDLen
	out := make([]byte, head+ns, head+ns+len(plain)+s.aead.Overhead())
	out[0] = Version
	copy(out[1:], s.keyID[:])
	_, _ = rand.Read(out[head:]) // never fails (crypto/rand panics instead)
	return s.aead.Seal(out, out[head:head+ns], plain, ad)
}

// Format returns the version of a sealed blob (0 when empty).
func Format(blob []byte) byte {
	if len(blob) == 0 {
		return 0
	}
	return blob[0]
}

// Open checks and decrypts a blob made by Seal with the same ad.
func (s *Sealer) Open(blob, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	head := 1 + keyIDLen
	if len(blob) < head+ns+s.aead.Overhead() || blob[0] != Version {
		return nil, ErrTampered
	}
	if !hmac.Equal(blob[1:head], s.keyID[:]) {
		return nil, ErrWrongKey
	}
	plain, err := s.aead.Open(nil, blob[head:head+ns], blob[head+ns:], ad)
	if err != nil {
		return nil, ErrTampered
	}
	return plain, nil
}

// OpenV1 opens a blob of the first format (version byte, nonce,
// ciphertext), which bound only what ad says and had no key id: a wrong
// key looks like tampering there.
func (s *Sealer) OpenV1(blob, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(blob) < 1+ns+s.aead.Overhead() || blob[0] != V1 {
		return nil, ErrTampered
	}
	plain, err := s.aead.Open(nil, blob[1:1+ns], blob[1+ns:], ad)
	if err != nil {
		return nil, ErrTampered
	}
	return plain, nil
}
