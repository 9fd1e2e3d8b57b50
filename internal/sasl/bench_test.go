package sasl

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"fmt"
	"testing"
)

// BenchmarkSCRAMSHA256Login is one complete server-side SCRAM-SHA-256 login
// against DefaultIterations credentials, with a client that has cached its
// SaltedPassword: what the server pays per login.
func BenchmarkSCRAMSHA256Login(b *testing.B) {
	s := store{}
	c, err := NewCredentials("SHA-256", "secret", DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	s["juliet"] = map[string]Credentials{"SHA-256": c}
	salted, err := pbkdf2.Key(sha256.New, "secret", c.Salt, c.Iterations, sha256.Size)
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(s)
	for b.Loop() {
		cl := &scramClient{hash: "SHA-256", user: "juliet", gs2: "n,,", nonce: "fyko+d2lbbFgONRv9qkxdawL", salted: salted}
		if _, _, err := runSCRAM(b, "SCRAM-SHA-256", cfg, cl); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSCRAMSHA256LoginClientPBKDF2 adds the client's PBKDF2 to each
// login, for comparison: that cost is the client's, not the server's.
func BenchmarkSCRAMSHA256LoginClientPBKDF2(b *testing.B) {
	s := store{}
	c, err := NewCredentials("SHA-256", "secret", DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	s["juliet"] = map[string]Credentials{"SHA-256": c}
	cfg := testConfig(s)
	for b.Loop() {
		cl := &scramClient{hash: "SHA-256", user: "juliet", password: "secret", gs2: "n,,", nonce: "fyko+d2lbbFgONRv9qkxdawL"}
		if _, _, err := runSCRAM(b, "SCRAM-SHA-256", cfg, cl); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSCRAMUnknownUser is the server's cost for a login attempt on an
// account that does not exist (fake credentials, no PBKDF2).
func BenchmarkSCRAMUnknownUser(b *testing.B) {
	cfg := testConfig(store{})
	salted := make([]byte, sha256.Size)
	for b.Loop() {
		cl := &scramClient{hash: "SHA-256", user: "romeo", gs2: "n,,", nonce: "fyko+d2lbbFgONRv9qkxdawL", salted: salted}
		if _, _, err := runSCRAM(b, "SCRAM-SHA-256", cfg, cl); err == nil {
			b.Fatal("unknown user logged in")
		}
	}
}

// BenchmarkPLAINLogin: PLAIN makes the server run PBKDF2 on every login.
func BenchmarkPLAINLogin(b *testing.B) {
	s := store{}
	c, err := NewCredentials("SHA-256", "secret", DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	s["juliet"] = map[string]Credentials{"SHA-256": c}
	cfg := testConfig(s)
	for b.Loop() {
		srv, err := NewServer("PLAIN", cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, done, err := srv.Step([]byte("\x00juliet\x00secret")); err != nil || !done {
			b.Fatal(done, err)
		}
	}
}

// BenchmarkNewCredentials is the account-creation cost per hash at
// DefaultIterations.
func BenchmarkNewCredentials(b *testing.B) {
	for _, h := range Hashes {
		b.Run(h, func(b *testing.B) {
			for b.Loop() {
				if _, err := NewCredentials(h, "secret", DefaultIterations); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ExampleNewCredentials() {
	c, err := NewCredentials("SHA-256", "pencil", DefaultIterations)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Hash, c.Iterations, len(c.Salt), c.VerifyPassword("pencil"), c.VerifyPassword("pen"))
	// Output: SHA-256 10000 16 true false
}
