package sasl

import (
	"testing"
)

// Guess hears the username of every guess, also a wrong one, before the
// password is checked; refusing it ends the exchange unchecked, even with
// the right password.
func TestGuessHook(t *testing.T) {
	s := store{}
	s.add(t, "alice", "right", "SHA-256")
	refused := &Failure{Condition: "temporary-auth-failure", Text: "throttled"}
	for _, tc := range []struct {
		name, password string
		allow          bool
		wantCond       string
	}{
		{"wrong password reported", "wrong", true, "not-authorized"},
		{"refused before the check", "right", false, "temporary-auth-failure"},
		{"allowed and right", "right", true, ""},
	} {
		for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
			t.Run(tc.name+" "+mech, func(t *testing.T) {
				var heard []string
				lookups := 0
				cfg := testConfig(s)
				cfg.ChannelBindings = nil
				inner := cfg.Lookup
				cfg.Lookup = func(u, h string) (Credentials, error) { lookups++; return inner(u, h) }
				cfg.Guess = func(u string) error {
					heard = append(heard, u)
					if !tc.allow {
						return refused
					}
					return nil
				}
				var stepErr error
				if mech == "PLAIN" {
					srv, err := NewServer(mech, cfg)
					if err != nil {
						t.Fatal(err)
					}
					_, _, stepErr = srv.Step([]byte("\x00Alice\x00" + tc.password))
					if !tc.allow && lookups != 0 {
						t.Error("PLAIN looked the account up after Guess refused")
					}
				} else {
					_, _, stepErr = runSCRAM(t, mech, cfg, &scramClient{hash: "SHA-256", user: "alice", password: tc.password, gs2: "n,,", nonce: "clientnonce123"})
				}
				if len(heard) != 1 || heard[0] != "alice" {
					t.Fatalf("Guess heard %q, want [alice]", heard)
				}
				if tc.wantCond == "" {
					if stepErr != nil {
						t.Fatalf("login failed: %v", stepErr)
					}
					return
				}
				if f := failure(t, stepErr); f.Condition != tc.wantCond {
					t.Fatalf("failed with %v, want %s", f, tc.wantCond)
				}
			})
		}
	}
}
