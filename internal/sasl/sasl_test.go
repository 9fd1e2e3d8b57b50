package sasl

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMechanisms(t *testing.T) {
	cb := testConfig(nil).ChannelBindings
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"plaintext", Config{}, "SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1"},
		{"TLS without bindings", Config{TLS: true}, "SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
		{"TLS with bindings", Config{TLS: true, ChannelBindings: cb},
			"SCRAM-SHA-512-PLUS SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
		{"anonymous host", Config{TLS: true, ChannelBindings: cb, Anonymous: true}, "ANONYMOUS"},
	}
	for _, tt := range tests {
		if got := strings.Join(Mechanisms(tt.cfg), " "); got != tt.want {
			t.Errorf("%s: Mechanisms = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestNewServerOffered: NewServer accepts exactly the advertised mechanisms.
func TestNewServerOffered(t *testing.T) {
	all := []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512",
		"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "ANONYMOUS",
		"SCRAM-MD5", "SCRAM-SHA-384", "scram-sha-1", "SCRAM-SHA-1-plus", "SCRAM--PLUS", "SCRAM-", "DIGEST-MD5", "EXTERNAL", ""}
	anon := func() (string, error) { return "x", nil }
	full := testConfig(store{})
	noCB := testConfig(store{})
	noCB.ChannelBindings = nil
	plain := noCB
	plain.TLS = false
	anonHost := testConfig(store{})
	anonHost.Anonymous, anonHost.NewAnonymousUsername = true, anon
	for _, cfg := range []Config{full, noCB, plain, anonHost} {
		offered := Mechanisms(cfg)
		for _, m := range all {
			srv, err := NewServer(m, cfg)
			switch {
			case slices.Contains(offered, m):
				if err != nil || srv == nil {
					t.Errorf("%v: NewServer(%q) = %v, want a server", offered, m, err)
				}
			case m == "PLAIN" && !cfg.TLS && !cfg.Anonymous:
				if failure(t, err).Condition != condEncryptionRequired {
					t.Errorf("%v: NewServer(PLAIN) = %v, want encryption-required", offered, err)
				}
			default:
				if failure(t, err).Condition != condInvalidMechanism {
					t.Errorf("%v: NewServer(%q) = %v, want invalid-mechanism", offered, m, err)
				}
			}
		}
	}
}

func TestNewServerConfigErrors(t *testing.T) {
	noLookup := testConfig(store{})
	noLookup.Lookup = nil
	noSecret := testConfig(store{})
	noSecret.FakeSecret = nil
	tests := []struct {
		mech string
		cfg  Config
	}{
		{"SCRAM-SHA-256", noLookup},
		{"PLAIN", noLookup},
		{"SCRAM-SHA-256-PLUS", noSecret},
		{"PLAIN", noSecret},
		{"ANONYMOUS", Config{Anonymous: true}},
	}
	for _, tt := range tests {
		_, err := NewServer(tt.mech, tt.cfg)
		if err == nil {
			t.Errorf("NewServer(%q) accepted an incomplete config", tt.mech)
		}
		var f *Failure
		if errors.As(err, &f) {
			t.Errorf("NewServer(%q) config error is a client Failure: %v", tt.mech, err)
		}
	}
}

func TestFailureError(t *testing.T) {
	if got := (&Failure{Condition: "not-authorized"}).Error(); got != "sasl: not-authorized" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Failure{Condition: "not-authorized", Text: "invalid-proof"}).Error(); got != "sasl: not-authorized: invalid-proof" {
		t.Errorf("Error() = %q", got)
	}
}
