package sealstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"parley/internal/seal"
)

// ServerKey is a Vault whose one key is a server key (module.Host.Key):
// with it, KV keeps maps the server must read while their owner is away
// (the archive's preferences, push registrations) sealed and
// blind-indexed, so a copy of the data directory without the key file
// reads neither the keys (JIDs, push services) nor the values.
type ServerKey struct {
	s     *seal.Sealer
	blind []byte
}

// NewServerKey returns the Vault for a 32-byte server key.
func NewServerKey(key []byte) (*ServerKey, error) {
	s, err := seal.New(key)
	if err != nil {
		return nil, fmt.Errorf("sealstore: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("parley sealstore blind index key"))
	return &ServerKey{s: s, blind: mac.Sum(nil)}, nil
}

var _ Vault = (*ServerKey)(nil)

func (k *ServerKey) Seal(_ context.Context, owner string, plain, ad []byte) ([]byte, error) {
	return k.s.Seal(plain, seal.AD(owner, string(ad))), nil
}

// Open fails with seal.ErrWrongKey when the server key changed: the
// layer then treats the entry as lost, as it does for a user's key.
func (k *ServerKey) Open(_ context.Context, owner string, blob, ad []byte) ([]byte, error) {
	return k.s.Open(blob, seal.AD(owner, string(ad)))
}

func (k *ServerKey) Blind(purpose, value string) []byte {
	m := hmac.New(sha256.New, k.blind)
	m.Write(seal.AD("parley blind index", purpose, value))
	return m.Sum(nil)[:16]
}
