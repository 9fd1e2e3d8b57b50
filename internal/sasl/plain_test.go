package sasl

import (
	"errors"
	"strings"
	"testing"
)

func TestPLAIN(t *testing.T) {
	s := store{}
	s.add(t, "juliet", "r0m30 myr0m30", Hashes...)
	s.add(t, "nurse", "old\u00e9", "SHA-1") // only SHA-1 stored
	tests := []struct {
		name, msg             string
		wantUser, wantAuthzid string
		wantCond              string // "" for success
	}{
		{"ok", "\x00juliet\x00r0m30 myr0m30", "juliet", "", ""},
		{"authzid", "juliet@example.com\x00juliet\x00r0m30 myr0m30", "juliet", "juliet@example.com", ""},
		{"case mapped user", "\x00JuLiEt\x00r0m30 myr0m30", "juliet", "", ""},
		{"width mapped user", "\x00\uff4auliet\x00r0m30 myr0m30", "juliet", "", ""},
		{"password prepared (NBSP)", "\x00juliet\x00r0m30\u00a0myr0m30", "juliet", "", ""},
		{"SHA-1 only account, NFC", "\x00nurse\x00old" + "e\u0301", "nurse", "", ""},
		{"wrong password", "\x00juliet\x00r0m30myr0m30", "", "", condNotAuthorized},
		{"password case", "\x00juliet\x00R0M30 MYR0M30", "", "", condNotAuthorized},
		{"unknown user", "\x00romeo\x00r0m30 myr0m30", "", "", condNotAuthorized},
		{"empty authcid", "\x00\x00r0m30 myr0m30", "", "", condNotAuthorized},
		{"empty password", "\x00juliet\x00", "", "", condNotAuthorized},
		{"unpreparable password", "\x00juliet\x00\u0007", "", "", condNotAuthorized},
		{"username not localpart", "\x00juliet@example.com\x00r0m30 myr0m30", "", "", condNotAuthorized},
		{"username space", "\x00jul iet\x00r0m30 myr0m30", "", "", condNotAuthorized},
		{"one NUL", "juliet\x00r0m30 myr0m30", "", "", condMalformedRequest},
		{"three NULs", "\x00juliet\x00r0m30\x00myr0m30", "", "", condMalformedRequest},
		{"empty", "", "", "", condMalformedRequest},
		{"not UTF-8", "\x00juliet\x00\xff", "", "", condMalformedRequest},
		{"too long", "\x00juliet\x00" + strings.Repeat("x", maxMessageLen), "", "", condMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := NewServer("PLAIN", testConfig(s))
			if err != nil {
				t.Fatal(err)
			}
			data, done, err := srv.Step([]byte(tt.msg))
			if tt.wantCond == "" {
				if err != nil || !done || data != nil {
					t.Fatalf("Step = %q, %v, %v; want success", data, done, err)
				}
				if srv.Username() != tt.wantUser || srv.Authzid() != tt.wantAuthzid {
					t.Errorf("Username, Authzid = %q, %q; want %q, %q", srv.Username(), srv.Authzid(), tt.wantUser, tt.wantAuthzid)
				}
			} else {
				if done {
					t.Fatal("succeeded")
				}
				if f := failure(t, err); f.Condition != tt.wantCond {
					t.Errorf("condition %q (%s), want %q", f.Condition, f.Text, tt.wantCond)
				}
				if srv.Username() != "" {
					t.Errorf("Username = %q after failure", srv.Username())
				}
			}
			if _, _, err := srv.Step([]byte(tt.msg)); failure(t, err).Condition != condMalformedRequest {
				t.Errorf("second Step: %v", err)
			}
		})
	}
}

func TestPLAINNoInitialResponse(t *testing.T) {
	s := store{}
	s.add(t, "juliet", "secret", "SHA-256")
	srv, err := NewServer("PLAIN", testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	c, done, err := srv.Step(nil)
	if err != nil || done || c == nil || len(c) != 0 {
		t.Fatalf("Step(nil) = %q, %v, %v; want empty challenge", c, done, err)
	}
	if _, done, err := srv.Step([]byte("\x00juliet\x00secret")); err != nil || !done {
		t.Fatalf("Step = %v, %v", done, err)
	}
}

// TestPLAINLookup: PLAIN tries every hash before calling a user unknown, and
// storage errors are temporary failures that keep their cause.
func TestPLAINLookup(t *testing.T) {
	var calls []string
	cfg := testConfig(nil)
	cfg.Lookup = func(user, hash string) (Credentials, error) {
		calls = append(calls, hash)
		return Credentials{}, ErrUnknownUser
	}
	srv, err := NewServer("PLAIN", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Step([]byte("\x00romeo\x00pw")); failure(t, err).Condition != condNotAuthorized {
		t.Fatalf("unknown user: %v", err)
	}
	if strings.Join(calls, " ") != "SHA-256 SHA-512 SHA-1" {
		t.Errorf("lookup order %v", calls)
	}

	cfg.Lookup = func(string, string) (Credentials, error) { return Credentials{}, errTestInternal }
	srv, err = NewServer("PLAIN", cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = srv.Step([]byte("\x00romeo\x00pw"))
	if failure(t, err).Condition != condTemporaryAuthFailure || !errors.Is(err, errTestInternal) {
		t.Errorf("lookup error: %v", err)
	}
}

func TestPLAINNeedsTLS(t *testing.T) {
	cfg := testConfig(store{})
	cfg.TLS = false
	cfg.ChannelBindings = nil
	_, err := NewServer("PLAIN", cfg)
	if f := failure(t, err); f.Condition != condEncryptionRequired {
		t.Errorf("condition %q, want %q", f.Condition, condEncryptionRequired)
	}
}

// PlainVerified sees the password of a successful PLAIN login only, so an
// account can gain the hashes it lacks without a wrong guess reaching it.
func TestPLAINVerifiedHook(t *testing.T) {
	s := store{}
	s.add(t, "nurse", "old pw", "SHA-1")
	for _, tc := range []struct {
		msg  string
		want string
	}{
		{"\x00nurse\x00old pw", "nurse:old pw"},
		{"\x00nurse\x00wrong", ""},
		{"\x00romeo\x00old pw", ""},
	} {
		var got string
		cfg := testConfig(s)
		cfg.PlainVerified = func(user, password string) { got = user + ":" + password }
		srv, err := NewServer("PLAIN", cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv.Step([]byte(tc.msg))
		if got != tc.want {
			t.Errorf("%q: hook saw %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// PLAIN gives the ClientKey of the credential it checked, as SCRAM does,
// so the caller needs no second PBKDF2; a failed check gives none.
func TestPLAINClientKey(t *testing.T) {
	s := store{}
	s.add(t, "nurse", "pw", "SHA-256", "SHA-1")
	c := s["nurse"]["SHA-256"]
	want, err := ClientKey("SHA-256", "pw", c.Salt, c.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		msg string
		ok  bool
	}{{"\x00nurse\x00pw", true}, {"\x00nurse\x00wrong", false}} {
		srv, err := NewServer("PLAIN", testConfig(s))
		if err != nil {
			t.Fatal(err)
		}
		_, done, _ := srv.Step([]byte(tc.msg))
		hash, key := srv.(ClientKeyHolder).ClientKey()
		if done != tc.ok || (tc.ok && (hash != "SHA-256" || string(key) != string(want))) || (!tc.ok && key != nil) {
			t.Fatalf("%q: done %v, ClientKey %s %x; want %v and %x", tc.msg, done, hash, key, tc.ok, want)
		}
	}
}
