package sasl

import (
	"bytes"
	"crypto/pbkdf2"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/text/secure/precis"
)

var fuzzMechs = []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS"}

// FuzzSCRAMServer feeds arbitrary client-first and client-final messages to
// a server whose only account is user/pencil. It must never panic, and may
// only succeed for that account with a proof the test computes itself.
func FuzzSCRAMServer(f *testing.F) {
	s := store{}
	s.add(f, "user", "pencil", Hashes...)
	cfg := testConfig(s)
	salted := map[string][]byte{}
	for _, h := range Hashes {
		c := s["user"][h]
		hf := clientHash(h)
		k, err := pbkdf2.Key(hf, "pencil", c.Salt, c.Iterations, hf().Size())
		if err != nil {
			f.Fatal(err)
		}
		salted[h] = k
	}
	newServer := func(mech string) Server {
		srv, err := NewServer(mech, cfg)
		if err != nil {
			f.Fatal(err)
		}
		srv.(*scramServer).serverNonce = func() (string, error) { return "S", nil }
		return srv
	}

	// Seeds: a complete valid exchange per mechanism, plus near misses.
	for i, mech := range fuzzMechs {
		h, plus, _ := parseSCRAMName(mech)
		c := &scramClient{hash: h, user: "user", password: "pencil", gs2: "n,a=x=2Cy,", nonce: "C", salted: salted[h]}
		if plus {
			c.gs2, c.cbData = "p=tls-exporter,,", testExporter
		}
		srv := newServer(mech)
		first := c.first()
		sf, _, err := srv.Step(first)
		if err != nil {
			f.Fatal(err)
		}
		final, err := c.final(sf)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), false, first, final)
		f.Add(uint8(i), true, first, final)
		f.Add(uint8(i), false, []byte("y,,n=user,r=C"), []byte("c=eSws,r=CS,p=AAAA"))
		f.Add(uint8(i), false, []byte("n,,n=nobody,r=C"), final)
	}
	f.Add(uint8(0), false, []byte("n,,m=x,n=user,r=C"), []byte(""))
	f.Add(uint8(4), false, []byte("p=tls-server-end-point,,n=us=2Cer,r=C,x=y"), []byte("c=,r=CS,x=1,p="))

	f.Fuzz(func(t *testing.T, mechIndex uint8, noInitial bool, first, final []byte) {
		mech := fuzzMechs[int(mechIndex)%len(fuzzMechs)]
		srv := newServer(mech)
		if noInitial {
			if c, done, err := srv.Step(nil); err != nil || done || len(c) != 0 {
				t.Fatalf("Step(nil) = %q, %v, %v", c, done, err)
			}
		}
		serverFirst, done, err := srv.Step(first)
		if err != nil {
			checkFailure(t, err)
			return
		}
		if done {
			t.Fatal("done after client-first")
		}
		serverFinal, done, err := srv.Step(final)
		if err != nil {
			checkFailure(t, err)
			return
		}
		if !done {
			t.Fatal("not done after client-final")
		}
		checkSCRAMSuccess(t, mech, cfg, salted, first, serverFirst, final, serverFinal)
		if srv.Username() != "user" {
			t.Fatalf("succeeded as %q", srv.Username())
		}
	})
}

func checkFailure(t *testing.T, err error) {
	t.Helper()
	f := failure(t, err)
	switch f.Condition {
	case condMalformedRequest, condNotAuthorized:
	default:
		t.Fatalf("unexpected condition %q", f.Condition)
	}
}

// checkSCRAMSuccess recomputes, independently of the server, what a correct
// client must have sent for this exchange and what the server must answer.
func checkSCRAMSuccess(t *testing.T, mech string, cfg Config, salted map[string][]byte, first, serverFirst, final, serverFinal []byte) {
	t.Helper()
	h, _, _ := parseSCRAMName(mech)
	hf := clientHash(h)
	parts := strings.SplitN(string(first), ",", 3)
	if len(parts) != 3 {
		t.Fatalf("success with client-first %q", first)
	}
	gs2, bare := parts[0]+","+parts[1]+",", parts[2]
	var cbData []byte
	if typ, ok := strings.CutPrefix(parts[0], "p="); ok {
		data, err := cfg.ChannelBindings[typ]()
		if err != nil {
			t.Fatal(err)
		}
		cbData = data
	}
	i := strings.LastIndex(string(final), ",p=")
	if i < 0 {
		t.Fatalf("success with client-final %q", final)
	}
	withoutProof := string(final[:i])
	if !strings.HasPrefix(withoutProof, "c="+base64.StdEncoding.EncodeToString(append([]byte(gs2), cbData...))+",") {
		t.Fatalf("success with wrong channel binding: %q", final)
	}
	authMessage := bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := clientHMAC(hf, salted[h], "Client Key")
	sum := hf()
	sum.Write(clientKey)
	sig := clientHMAC(hf, sum.Sum(nil), authMessage)
	proof := make([]byte, len(sig))
	for j := range proof {
		proof[j] = clientKey[j] ^ sig[j]
	}
	if got := string(final[i+3:]); got != base64.StdEncoding.EncodeToString(proof) {
		t.Fatalf("success with proof %q, want %q", got, base64.StdEncoding.EncodeToString(proof))
	}
	wantFinal := "v=" + base64.StdEncoding.EncodeToString(clientHMAC(hf, clientHMAC(hf, salted[h], "Server Key"), authMessage))
	if string(serverFinal) != wantFinal {
		t.Fatalf("server-final %q, want %q", serverFinal, wantFinal)
	}
}

// FuzzPLAIN: never panics, and only user/pencil (after PRECIS preparation,
// done here with x/text directly) ever succeeds.
func FuzzPLAIN(f *testing.F) {
	s := store{}
	s.add(f, "user", "pencil", "SHA-256")
	cfg := testConfig(s)
	for _, seed := range []string{"\x00user\x00pencil", "admin\x00user\x00pencil", "\x00USER\x00pencil",
		"\x00user\x00pencil\x00", "\x00nobody\x00pencil", "\x00\x00", "", "\x00user\x00pencl"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		srv, err := NewServer("PLAIN", cfg)
		if err != nil {
			t.Fatal(err)
		}
		data, done, err := srv.Step(msg)
		if err != nil {
			checkFailure(t, err)
			if done || srv.Username() != "" {
				t.Fatal("failure with done or a username")
			}
			return
		}
		if !done || data != nil {
			t.Fatalf("Step = %q, %v", data, done)
		}
		parts := bytes.Split(msg, []byte{0})
		if len(parts) != 3 {
			t.Fatalf("success with %d fields", len(parts))
		}
		user, err := precis.UsernameCaseMapped.Bytes(parts[1])
		if err != nil || string(user) != "user" || srv.Username() != "user" {
			t.Fatalf("success as %q (%q)", parts[1], srv.Username())
		}
		pass, err := precis.OpaqueString.Bytes(parts[2])
		if err != nil || string(pass) != "pencil" {
			t.Fatalf("success with password %q", parts[2])
		}
		if srv.Authzid() != string(parts[0]) {
			t.Fatalf("Authzid %q, want %q", srv.Authzid(), parts[0])
		}
	})
}
