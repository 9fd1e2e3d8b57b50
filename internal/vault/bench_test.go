package vault

import (
	"context"
	"testing"

	"parley/internal/seal"
)

// BenchmarkUnlockClientKey is what the vault adds to each SCRAM login:
// reading the keys, deriving the wrapping key, unwrapping the data key
// and unsealing the mail-drop private key (compare
// sasl.BenchmarkSCRAMSHA256Login, the login without it).
func BenchmarkUnlockClientKey(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		b.Fatal(err)
	}
	ck := f.clientKey("SHA-256", "secret")
	for b.Loop() {
		f.v.Lock(owner)
		if err := f.v.UnlockClientKey(ctx, owner, "SHA-256", ck); err != nil {
			b.Fatal(err)
		}
	}
}

var benchPlain = make([]byte, 600) // a chat message stanza with its delay

// BenchmarkSealServerKey is the per-message cost before the vault: one
// server-key seal.
func BenchmarkSealServerKey(b *testing.B) {
	s, _ := seal.New(make([]byte, 32))
	for b.Loop() {
		s.Seal(benchPlain, []byte("ad"))
	}
}

// BenchmarkSealDataKey seals for a logged-in user (key held).
func BenchmarkSealDataKey(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := f.v.Seal(ctx, owner, benchPlain, []byte("ad")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealMailDrop seals for a user who is away (X25519 per message).
func BenchmarkSealMailDrop(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		b.Fatal(err)
	}
	f.v.Lock(owner)
	for b.Loop() {
		if _, err := f.v.Seal(ctx, owner, benchPlain, []byte("ad")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlind is one blind index (two per archived message).
func BenchmarkBlind(b *testing.B) {
	f := newFixture(b, Options{})
	for b.Loop() {
		f.v.Blind("archive with", "romeo@example.net/orchard")
	}
}
