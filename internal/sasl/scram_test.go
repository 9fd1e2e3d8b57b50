package sasl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestSCRAMRFCVectors replays RFC 5802 §5 and RFC 7677 §3 byte for byte.
func TestSCRAMRFCVectors(t *testing.T) {
	tests := []struct {
		mech, salt, serverNonce  string
		clientFirst, serverFirst string
		clientFinal, serverFinal string
	}{
		{
			mech:        "SCRAM-SHA-1",
			salt:        "QSXCR+Q6sek8bf92",
			serverNonce: "3rfcNHYJY1ZVvWVs7j",
			clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			mech:        "SCRAM-SHA-256",
			salt:        "W22ZaJ0SNY7soEsUEjb6gQ==",
			serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.mech, func(t *testing.T) {
			hashName, _, _ := parseSCRAMName(tt.mech)
			salt, err := base64.StdEncoding.DecodeString(tt.salt)
			if err != nil {
				t.Fatal(err)
			}
			creds, err := DeriveCredentials(hashName, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(nil)
			cfg.ChannelBindings = nil // the examples use "n"
			cfg.Lookup = func(user, h string) (Credentials, error) {
				if user != "user" || h != hashName {
					t.Errorf("Lookup(%q, %q)", user, h)
				}
				return creds, nil
			}
			srv, err := NewServer(tt.mech, cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.(*scramServer).serverNonce = func() (string, error) { return tt.serverNonce, nil }

			got, done, err := srv.Step([]byte(tt.clientFirst))
			if err != nil || done || string(got) != tt.serverFirst {
				t.Fatalf("server-first = %q, %v, %v; want %q", got, done, err, tt.serverFirst)
			}
			got, done, err = srv.Step([]byte(tt.clientFinal))
			if err != nil || !done || string(got) != tt.serverFinal {
				t.Fatalf("server-final = %q, %v, %v; want %q", got, done, err, tt.serverFinal)
			}
			if srv.Username() != "user" || srv.Authzid() != "" {
				t.Errorf("Username, Authzid = %q, %q", srv.Username(), srv.Authzid())
			}
		})
	}
}

func TestSCRAMRoundTrip(t *testing.T) {
	s := store{}
	s.add(t, "juliet", "r0m30myr0m30", Hashes...)
	s.add(t, "a,b=c", "pass word", Hashes...)
	tests := []struct {
		mech, user, password, gs2 string
		cbData                    []byte
		wantAuthzid               string
	}{
		{mech: "SCRAM-SHA-1", user: "juliet", password: "r0m30myr0m30", gs2: "n,,"},
		{mech: "SCRAM-SHA-256", user: "juliet", password: "r0m30myr0m30", gs2: "n,,"},
		{mech: "SCRAM-SHA-512", user: "juliet", password: "r0m30myr0m30", gs2: "n,,"},
		{mech: "SCRAM-SHA-256", user: "JULIET", password: "r0m30myr0m30", gs2: "n,,"},
		{mech: "SCRAM-SHA-256", user: "a,b=c", password: "pass word", gs2: "n,a=admin=2Cx=3Dy@example.net,", wantAuthzid: "admin,x=y@example.net"},
		{mech: "SCRAM-SHA-1-PLUS", user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-exporter,,", cbData: testExporter},
		{mech: "SCRAM-SHA-256-PLUS", user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-exporter,,", cbData: testExporter},
		{mech: "SCRAM-SHA-512-PLUS", user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-exporter,,", cbData: testExporter},
		{mech: "SCRAM-SHA-1-PLUS", user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-server-end-point,,", cbData: testEndPoint},
		{mech: "SCRAM-SHA-256-PLUS", user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-server-end-point,a=juliet@example.com,", cbData: testEndPoint, wantAuthzid: "juliet@example.com"},
		{mech: "SCRAM-SHA-512-PLUS", user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-server-end-point,,", cbData: testEndPoint},
	}
	for _, tt := range tests {
		t.Run(tt.mech+"/"+tt.gs2, func(t *testing.T) {
			hashName, _, _ := parseSCRAMName(tt.mech)
			c := &scramClient{hash: hashName, user: tt.user, password: tt.password, gs2: tt.gs2, cbData: tt.cbData, nonce: "clientnonce+/="}
			srv, _, err := runSCRAM(t, tt.mech, testConfig(s), c)
			if err != nil {
				t.Fatalf("exchange failed: %v", err)
			}
			if want := strings.ToLower(tt.user); srv.Username() != want {
				t.Errorf("Username = %q, want %q", srv.Username(), want)
			}
			if srv.Authzid() != tt.wantAuthzid {
				t.Errorf("Authzid = %q, want %q", srv.Authzid(), tt.wantAuthzid)
			}
		})
	}
}

// TestSCRAMRejected covers complete, well-formed exchanges that must fail,
// and where.
func TestSCRAMRejected(t *testing.T) {
	s := store{}
	s.add(t, "juliet", "r0m30myr0m30", Hashes...)
	noCB := testConfig(s)
	noCB.ChannelBindings = nil
	tests := []struct {
		name, mech string
		cfg        Config
		client     scramClient
		// wantSteps is how many challenges the server sent before
		// failing: 1 means it failed only at the proof.
		wantSteps int
		wantCond  string
		wantText  string
	}{
		{"wrong password", "SCRAM-SHA-256", testConfig(s), scramClient{user: "juliet", password: "wrong", gs2: "n,,"}, 1, condNotAuthorized, "invalid-proof"},
		{"unknown user", "SCRAM-SHA-256", testConfig(s), scramClient{user: "romeo", password: "r0m30myr0m30", gs2: "n,,"}, 1, condNotAuthorized, "invalid-proof"},
		{"unknown user SHA-1", "SCRAM-SHA-1", testConfig(s), scramClient{user: "romeo", password: "x", gs2: "n,,"}, 1, condNotAuthorized, "invalid-proof"},
		{"downgrade y with PLUS offered", "SCRAM-SHA-256", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "y,,"}, 0, condNotAuthorized, "server-does-support-channel-binding"},
		{"cb data mismatch", "SCRAM-SHA-256-PLUS", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-exporter,,", cbData: testEndPoint}, 1, condNotAuthorized, "channel-bindings-dont-match"},
		{"cb header mismatch", "SCRAM-SHA-256", noCB, scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "n,,", cbData: []byte("x")}, 1, condNotAuthorized, "channel-bindings-dont-match"},
		{"unsupported cb type", "SCRAM-SHA-256-PLUS", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-unique,,"}, 0, condNotAuthorized, "unsupported-channel-binding-type"},
		{"PLUS without p", "SCRAM-SHA-256-PLUS", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "n,,"}, 0, condMalformedRequest, ""},
		{"PLUS with y", "SCRAM-SHA-256-PLUS", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "y,,"}, 0, condMalformedRequest, ""},
		{"p with non-PLUS", "SCRAM-SHA-256", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "p=tls-exporter,,", cbData: testExporter}, 0, condMalformedRequest, ""},
		{"client nonce only", "SCRAM-SHA-256", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "n,,", finalNonce: "abcdef"}, 1, condNotAuthorized, "nonce mismatch"},
		{"other server nonce", "SCRAM-SHA-256", testConfig(s), scramClient{user: "juliet", password: "r0m30myr0m30", gs2: "n,,", finalNonce: "abcdefAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 1, condNotAuthorized, "nonce mismatch"},
		{"username not a localpart", "SCRAM-SHA-256", testConfig(s), scramClient{user: "juliet@example.com", password: "r0m30myr0m30", gs2: "n,,"}, 0, condNotAuthorized, "invalid username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hashName, _, _ := parseSCRAMName(tt.mech)
			c := tt.client
			c.hash, c.nonce = hashName, "abcdef"
			srv, steps, err := runSCRAM(t, tt.mech, tt.cfg, &c)
			if err == nil {
				t.Fatal("exchange succeeded")
			}
			f := failure(t, err)
			if f.Condition != tt.wantCond || (tt.wantText != "" && f.Text != tt.wantText) {
				t.Errorf("failure %q/%q, want %q/%q", f.Condition, f.Text, tt.wantCond, tt.wantText)
			}
			if steps != tt.wantSteps {
				t.Errorf("failed after %d challenges, want %d", steps, tt.wantSteps)
			}
			if srv.Username() != "" {
				t.Errorf("Username = %q after failure", srv.Username())
			}
			if _, _, err := srv.Step([]byte("n,,n=juliet,r=x")); failure(t, err).Condition != condMalformedRequest {
				t.Errorf("Step after failure: %v", err)
			}
		})
	}
}

// TestSCRAMDowngradeWithoutPLUS: "y" is fine when we offered no -PLUS.
func TestSCRAMYWithoutPLUS(t *testing.T) {
	s := store{}
	s.add(t, "juliet", "r0m30myr0m30", "SHA-256")
	cfg := testConfig(s)
	cfg.ChannelBindings = nil
	c := &scramClient{hash: "SHA-256", user: "juliet", password: "r0m30myr0m30", gs2: "y,,", nonce: "n"}
	if _, _, err := runSCRAM(t, "SCRAM-SHA-256", cfg, c); err != nil {
		t.Fatal(err)
	}
}

// TestSCRAMUnknownUserLooksReal: an unknown user gets a stable salt and the
// default iteration count, like a real account would.
func TestSCRAMUnknownUserLooksReal(t *testing.T) {
	s := store{}
	serverFirst := func(cfg Config, user string) string {
		srv, err := NewServer("SCRAM-SHA-256", cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv.(*scramServer).serverNonce = func() (string, error) { return "S", nil }
		out, _, err := srv.Step([]byte("n,,n=" + user + ",r=C"))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	cfg := testConfig(s)
	a, b := serverFirst(cfg, "romeo"), serverFirst(cfg, "romeo")
	if a != b {
		t.Errorf("fake server-first not stable: %q vs %q", a, b)
	}
	if c := serverFirst(cfg, "tybalt"); c == a {
		t.Errorf("two unknown users share a salt: %q", c)
	}
	cfg.FakeSecret = []byte("other secret")
	if c := serverFirst(cfg, "romeo"); c == a {
		t.Errorf("fake salt does not depend on the secret: %q", c)
	}
	attrs := strings.Split(a, ",")
	salt, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(attrs[1], "s="))
	if err != nil || len(salt) != saltLen || attrs[2] != "i=10000" {
		t.Errorf("fake server-first %q: salt %d bytes (%v), want %d bytes and i=%d", a, len(salt), err, saltLen, DefaultIterations)
	}
}

func TestSCRAMMalformed(t *testing.T) {
	s := store{}
	s.add(t, "user", "pencil", "SHA-256")
	const validFirst = "n,,n=user,r=C" // server nonce is "S"
	tests := []struct {
		name string
		msg  string
		// atFinal sends msg as client-final after validFirst.
		atFinal  bool
		wantCond string
	}{
		{"empty first", "", false, condMalformedRequest},
		{"no gs2", "n=user,r=C", false, condMalformedRequest},
		{"gs2 only", "n,,", false, condMalformedRequest},
		{"bad flag", "x,,n=user,r=C", false, condMalformedRequest},
		{"flag too long", "nn,,n=user,r=C", false, condMalformedRequest},
		{"bad authzid attr", "n,b=x,n=user,r=C", false, condMalformedRequest},
		{"empty authzid", "n,a=,n=user,r=C", false, condMalformedRequest},
		{"bad authzid escape", "n,a=x=2c,n=user,r=C", false, condMalformedRequest},
		{"mandatory extension", "n,,m=foo,n=user,r=C", false, condMalformedRequest},
		{"no username", "n,,r=C", false, condMalformedRequest},
		{"empty username", "n,,n=,r=C", false, condMalformedRequest},
		{"bad username escape", "n,,n=us=er,r=C", false, condMalformedRequest},
		{"truncated escape", "n,,n=user=2,r=C", false, condMalformedRequest},
		{"username not UTF-8", "n,,n=us\xffer,r=C", false, condMalformedRequest},
		{"username NUL", "n,,n=us\x00er,r=C", false, condMalformedRequest},
		{"username space", "n,,n=us er,r=C", false, condNotAuthorized},
		{"no nonce", "n,,n=user", false, condMalformedRequest},
		{"empty nonce", "n,,n=user,r=", false, condMalformedRequest},
		{"nonce not printable", "n,,n=user,r=a b", false, condMalformedRequest},
		{"attrs swapped", "n,,r=C,n=user", false, condMalformedRequest},
		{"bad extension", "n,,n=user,r=C,foo", false, condMalformedRequest},
		{"repeated r", "n,,n=user,r=C,r=D", false, condMalformedRequest},
		{"cb type bad chars", "p=tls_exporter,,n=user,r=C", false, condMalformedRequest},
		{"too long", "n,,n=user,r=" + strings.Repeat("C", maxMessageLen), false, condMalformedRequest},

		{"empty final", "", true, condMalformedRequest},
		{"final no proof", "c=biws,r=CS", true, condMalformedRequest},
		{"final no nonce", "c=biws,p=AAAA", true, condMalformedRequest},
		{"final no cb", "r=CS,p=AAAA", true, condMalformedRequest},
		{"final swapped", "r=CS,c=biws,p=AAAA", true, condMalformedRequest},
		{"final proof not base64", "c=biws,r=CS,p=!!!!", true, condMalformedRequest},
		{"final proof unpadded", "c=biws,r=CS,p=AAA", true, condMalformedRequest},
		{"final proof short", "c=biws,r=CS,p=AAAA", true, condNotAuthorized},
		{"final proof zero", "c=biws,r=CS,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), true, condNotAuthorized},
		{"final wrong nonce", "c=biws,r=CX,p=AAAA", true, condNotAuthorized},
		{"final client nonce only", "c=biws,r=C,p=AAAA", true, condNotAuthorized},
		{"final cb not canonical", "c=biws=,r=CS,p=AAAA", true, condNotAuthorized},
		{"final bad extension", "c=biws,r=CS,x,p=AAAA", true, condMalformedRequest},
		{"final repeated p", "c=biws,r=CS,p=AAAA,p=AAAA", true, condMalformedRequest},
		{"final too long", "c=biws,r=CS,p=" + strings.Repeat("A", maxMessageLen), true, condMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mech, cfg := "SCRAM-SHA-256", testConfig(s)
			if strings.HasPrefix(tt.msg, "p=") {
				mech += "-PLUS"
			} else {
				cfg.ChannelBindings = nil
			}
			srv, err := NewServer(mech, cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.(*scramServer).serverNonce = func() (string, error) { return "S", nil }
			if tt.atFinal {
				if _, _, err := srv.Step([]byte(validFirst)); err != nil {
					t.Fatalf("valid client-first failed: %v", err)
				}
			}
			_, done, err := srv.Step([]byte(tt.msg))
			if err == nil || done {
				t.Fatalf("accepted: done=%v err=%v", done, err)
			}
			if f := failure(t, err); f.Condition != tt.wantCond {
				t.Errorf("condition %q (%s), want %q", f.Condition, f.Text, tt.wantCond)
			}
		})
	}
}

func TestSCRAMNoInitialResponse(t *testing.T) {
	s := store{}
	s.add(t, "juliet", "secret", "SHA-1")
	srv, err := NewServer("SCRAM-SHA-1", testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	challenge, done, err := srv.Step(nil)
	if err != nil || done || challenge == nil || len(challenge) != 0 {
		t.Fatalf("Step(nil) = %q, %v, %v; want empty challenge", challenge, done, err)
	}
	c := &scramClient{hash: "SHA-1", user: "juliet", password: "secret", gs2: "n,,", nonce: "xyz"}
	sf, done, err := srv.Step(c.first())
	if err != nil || done {
		t.Fatalf("client-first: %v %v", done, err)
	}
	final, err := c.final(sf)
	if err != nil {
		t.Fatal(err)
	}
	sv, done, err := srv.Step(final)
	if err != nil || !done {
		t.Fatalf("client-final: %v %v", done, err)
	}
	if err := c.verify(sv); err != nil {
		t.Fatal(err)
	}
	// Single use: nothing more after success.
	if _, _, err := srv.Step(final); failure(t, err).Condition != condMalformedRequest {
		t.Errorf("Step after success: %v", err)
	}
	if srv.Username() != "juliet" {
		t.Errorf("Username = %q after success", srv.Username())
	}
}

// TestSCRAMEmptyInitialResponse: an empty initial response is a (bad)
// client-first, not a request for a challenge.
func TestSCRAMEmptyInitialResponse(t *testing.T) {
	srv, err := NewServer("SCRAM-SHA-1", testConfig(store{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Step([]byte{}); failure(t, err).Condition != condMalformedRequest {
		t.Errorf("Step(empty) = %v", err)
	}
}

func TestSCRAMInternalErrors(t *testing.T) {
	good := store{}
	good.add(t, "juliet", "secret", "SHA-256")
	badCreds := good["juliet"]["SHA-256"]
	badCreds.StoredKey = badCreds.StoredKey[:5]
	tests := []struct {
		name   string
		mutate func(*Config)
		gs2    string
		mech   string
		cause  error
	}{
		{"lookup fails", func(c *Config) {
			c.Lookup = func(string, string) (Credentials, error) { return Credentials{}, errTestInternal }
		}, "n,,", "SCRAM-SHA-256", errTestInternal},
		{"lookup returns other hash", func(c *Config) {
			c.Lookup = func(string, string) (Credentials, error) { return Credentials{Hash: "SHA-1"}, nil }
		}, "n,,", "SCRAM-SHA-256", nil},
		{"lookup returns broken creds", func(c *Config) {
			c.Lookup = func(string, string) (Credentials, error) { return badCreds, nil }
		}, "n,,", "SCRAM-SHA-256", nil},
		{"channel binding fails", func(c *Config) {
			c.ChannelBindings["tls-exporter"] = func() ([]byte, error) { return nil, errTestInternal }
		}, "p=tls-exporter,,", "SCRAM-SHA-256-PLUS", errTestInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(good)
			tt.mutate(&cfg)
			srv, err := NewServer(tt.mech, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = srv.Step([]byte(tt.gs2 + "n=juliet,r=abc"))
			if f := failure(t, err); f.Condition != condTemporaryAuthFailure {
				t.Errorf("condition %q, want %q", f.Condition, condTemporaryAuthFailure)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("error %v does not wrap the cause", err)
			}
		})
	}
}

func TestDecodeSASLName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"user", "user", true},
		{"a=2Cb=3Dc", "a,b=c", true},
		{"=3D=3D", "==", true},
		{"=2C", ",", true},
		{"", "", false},
		{"=", "", false},
		{"=2", "", false},
		{"=2c", "", false},
		{"=41", "", false},
		{"a=", "", false},
		{"\xc3", "", false},
		{"a\x00b", "", false},
	}
	for _, tt := range tests {
		got, err := decodeSASLName(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("decodeSASLName(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// The ClientKey a successful exchange recovers from the proof is the one
// the password gives, for every hash; a failed exchange gives none.
func TestSCRAMClientKey(t *testing.T) {
	for _, h := range Hashes {
		t.Run(h, func(t *testing.T) {
			s := store{}
			s.add(t, "juliet", "secret", h)
			c := s["juliet"][h]
			want, err := ClientKey(h, "secret", c.Salt, c.Iterations)
			if err != nil {
				t.Fatal(err)
			}
			cl := &scramClient{hash: h, user: "juliet", password: "secret", gs2: "n,,", nonce: "fyko+d2lbbFgONRv9qkxdawL"}
			srv, _, err := runSCRAM(t, "SCRAM-"+h, testConfig(s), cl)
			if err != nil {
				t.Fatal(err)
			}
			holder, ok := srv.(ClientKeyHolder)
			if !ok {
				t.Fatal("SCRAM server does not give its ClientKey")
			}
			gotHash, got := holder.ClientKey()
			if gotHash != h || !bytes.Equal(got, want) {
				t.Fatalf("ClientKey = %s %x, want %s %x", gotHash, got, h, want)
			}
			holder.WipeClientKey()
			if _, k := holder.ClientKey(); k != nil || !bytes.Equal(got, make([]byte, len(got))) {
				t.Fatal("WipeClientKey left the key")
			}

			bad := &scramClient{hash: h, user: "juliet", password: "wrong", gs2: "n,,", nonce: "fyko+d2lbbFgONRv9qkxdawL"}
			srv, _, err = runSCRAM(t, "SCRAM-"+h, testConfig(s), bad)
			if err == nil {
				t.Fatal("wrong password accepted")
			}
			if _, k := srv.(ClientKeyHolder).ClientKey(); k != nil {
				t.Fatal("a failed exchange kept a ClientKey")
			}
		})
	}
}
