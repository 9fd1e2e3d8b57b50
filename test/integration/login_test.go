package integration

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSlixmppLogin(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "correct horse")
	_, stPort := hostPort(s.starttls)
	_, dPort := hostPort(s.direct)

	cases := []struct {
		name string
		args []string
		mech string
	}{
		{"starttls scram-sha-1", []string{"--port", stPort, "--mech", "SCRAM-SHA-1", "--no-channel-binding"}, "SCRAM-SHA-1"},
		{"starttls scram-sha-256", []string{"--port", stPort, "--mech", "SCRAM-SHA-256", "--no-channel-binding"}, "SCRAM-SHA-256"},
		{"starttls scram-sha-512", []string{"--port", stPort, "--mech", "SCRAM-SHA-512", "--no-channel-binding"}, "SCRAM-SHA-512"},
		{"starttls plain", []string{"--port", stPort, "--mech", "PLAIN"}, "PLAIN"},
		{"direct tls scram-sha-256", []string{"--port", dPort, "--direct-tls", "--mech", "SCRAM-SHA-256", "--no-channel-binding"}, "SCRAM-SHA-256"},
		{"direct tls scram-sha-1", []string{"--port", dPort, "--direct-tls", "--mech", "SCRAM-SHA-1", "--no-channel-binding"}, "SCRAM-SHA-1"},
		// Unmodified slixmpp 1.8 tries its tls-unique -PLUS mechanisms and
		// its 'y' flag first; those refusals must not use up its retries,
		// so it still gets in.
		{"starttls unmodified slixmpp", []string{"--port", stPort}, ""},
		{"direct tls unmodified slixmpp", []string{"--port", dPort, "--direct-tls"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.slixmppLogin(t, append([]string{"--jid", "alice@localhost/phone", "--password", "correct horse"}, c.args...)...)
			if !r.Authenticated {
				t.Fatalf("not authenticated: %+v", r)
			}
			if c.mech != "" && r.Mech != c.mech {
				t.Errorf("mechanism %q, want %q", r.Mech, c.mech)
			}
			if r.BoundJID != "alice@localhost/phone" {
				t.Errorf("bound %q", r.BoundJID)
			}
			if r.Ping != "ok" {
				t.Errorf("ping: %s", r.Ping)
			}
			feats, _ := r.DiscoFeatures.([]any)
			var got []string
			for _, f := range feats {
				got = append(got, f.(string))
			}
			for _, want := range []string{"urn:xmpp:ping", "http://jabber.org/protocol/disco#info"} {
				if !slices.Contains(got, want) {
					t.Errorf("disco#info lacks %s: %v", want, r.DiscoFeatures)
				}
			}
			if r.UnknownIQError != "service-unavailable" {
				t.Errorf("unknown IQ got %q, want service-unavailable", r.UnknownIQError)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		r := s.slixmppLogin(t, "--jid", "alice@localhost", "--password", "wrong", "--port", stPort, "--mech", "SCRAM-SHA-256", "--no-channel-binding")
		if r.Authenticated {
			t.Fatalf("authenticated with a wrong password: %+v", r)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		r := s.slixmppLogin(t, "--jid", "nobody@localhost", "--password", "x", "--port", stPort, "--mech", "SCRAM-SHA-1", "--no-channel-binding")
		if r.Authenticated {
			t.Fatalf("authenticated an unknown user: %+v", r)
		}
	})
	if strings.Contains(s.Stderr(), "127.0.0.1") {
		t.Errorf("the log at the default level names an address:\n%s", s.Stderr())
	}
}

func TestSlixmppAnonymous(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{anonymous: []string{"anon.localhost"}})
	_, stPort := hostPort(s.starttls)
	r := s.slixmppLogin(t, "--jid", "anon.localhost", "--port", stPort)
	if !r.Authenticated || r.Mech != "ANONYMOUS" {
		t.Fatalf("anonymous login: %+v", r)
	}
	if !strings.HasSuffix(strings.SplitN(r.BoundJID, "/", 2)[0], "@anon.localhost") {
		t.Errorf("anonymous JID %q", r.BoundJID)
	}
	// The throwaway account is gone once its session ended (the server
	// may take a moment to notice the disconnection).
	var out string
	for range 50 {
		var err error
		out, err = s.parley("", "user", "list", "anon.localhost")
		if err != nil {
			t.Fatal(err, out)
		}
		if strings.TrimSpace(out) == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("anonymous account left behind: %q", out)
}
