package sasl

import (
	"errors"
	"testing"
)

func TestANONYMOUS(t *testing.T) {
	for _, trace := range [][]byte{nil, {}, []byte("sirhc"), []byte("\xff\x00any bytes")} {
		n := 0
		cfg := Config{Anonymous: true, NewAnonymousUsername: func() (string, error) {
			n++
			return "anon-" + string(rune('0'+n)), nil
		}}
		srv, err := NewServer("ANONYMOUS", cfg)
		if err != nil {
			t.Fatal(err)
		}
		data, done, err := srv.Step(trace)
		if err != nil || !done || data != nil {
			t.Fatalf("trace %q: Step = %q, %v, %v", trace, data, done, err)
		}
		if srv.Username() != "anon-1" || srv.Authzid() != "" {
			t.Errorf("Username, Authzid = %q, %q", srv.Username(), srv.Authzid())
		}
		if _, _, err := srv.Step(nil); failure(t, err).Condition != condMalformedRequest {
			t.Errorf("second Step: %v", err)
		}
		if n != 1 {
			t.Errorf("NewAnonymousUsername called %d times", n)
		}
	}
}

func TestANONYMOUSUsernameError(t *testing.T) {
	cfg := Config{Anonymous: true, NewAnonymousUsername: func() (string, error) { return "", errTestInternal }}
	srv, err := NewServer("ANONYMOUS", cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, done, err := srv.Step(nil)
	if done || failure(t, err).Condition != condTemporaryAuthFailure || !errors.Is(err, errTestInternal) {
		t.Errorf("Step = %v, %v", done, err)
	}
}
