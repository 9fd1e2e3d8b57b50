package integration

import (
	"crypto/tls"
	"regexp"
	"strings"
	"testing"
	"time"
)

var inviteURI = regexp.MustCompile(`xmpp:localhost\?register;preauth=([A-Za-z0-9_-]+)`)

// createInvite runs parley invite create and returns the token and the
// invite's id.
func createInvite(t *testing.T, s *server, args ...string) (token, id string) {
	t.Helper()
	out, err := s.parley("", append([]string{"invite", "create"}, args...)...)
	if err != nil {
		t.Fatalf("invite create: %v\n%s", err, out)
	}
	m := inviteURI.FindStringSubmatch(out)
	idm := regexp.MustCompile(`invite ([0-9a-f]+):`).FindStringSubmatch(out)
	if m == nil || idm == nil {
		t.Fatalf("invite create printed no xmpp:localhost?register;preauth= URI and id:\n%s", out)
	}
	return m[1], idm[1]
}

// registerWithToken registers user on a fresh stream after showing
// token (none when ""); it returns the answers to preauth and register.
func registerWithToken(t *testing.T, s *server, token, user string) (preauth, reg string) {
	t.Helper()
	c := dialRaw(t, s.starttls)
	c.startTLS(&tls.Config{InsecureSkipVerify: true})
	c.send(header)
	if feats := c.expect("</stream:features>"); !strings.Contains(feats, "urn:xmpp:invite") {
		t.Fatalf("invites not advertised: %s", feats)
	}
	if token != "" {
		c.send("<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token='" + token + "'/></iq>")
		preauth = c.expectIQ("p")
	}
	c.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>" + user + "</username><password>secret</password></query></iq>")
	return preauth, c.expectIQ("s")
}

// TestInvites: with registration closed, an invite creates one account,
// with the inviter as a mutual contact, and is then refused; expired and
// revoked invites are refused; users invite when user_invites is on.
func TestInvites(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{extra: "[registration]\nuser_invites = true\n"})
	s.addUser("alice@localhost", "pw")

	if _, got := registerWithToken(t, s, "", "nobody"); !strings.Contains(got, "<not-allowed") || !strings.Contains(got, "invitation") {
		t.Fatalf("registration without an invite: %s", got)
	}
	if p, _ := registerWithToken(t, s, "forged-token", "nobody"); !strings.Contains(p, "<item-not-found") {
		t.Fatalf("a forged token: %s", p)
	}

	token, _ := createInvite(t, s, "--uses", "1", "--expires", "7d", "--contact", "alice@localhost")
	p, got := registerWithToken(t, s, token, "newbie")
	if !strings.Contains(p, `type="result"`) || !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration with an invite: preauth %s, register %s", p, got)
	}
	newbie := s.connect(t, "newbie@localhost", "secret")
	roster := newbie.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	if !strings.Contains(roster.String(), `jid="alice@localhost"`) || !strings.Contains(roster.String(), `subscription="both"`) {
		t.Fatalf("the inviter is not a mutual contact: %s", roster)
	}
	if p, got := registerWithToken(t, s, token, "second"); !strings.Contains(p, "<item-not-found") || strings.Contains(got, `type="result"`) {
		t.Fatalf("a used invite: preauth %s, register %s", p, got)
	}

	expired, _ := createInvite(t, s, "--expires", "1s")
	time.Sleep(1500 * time.Millisecond)
	if p, _ := registerWithToken(t, s, expired, "late"); !strings.Contains(p, "<item-not-found") {
		t.Fatalf("an expired invite: %s", p)
	}

	revoked, id := createInvite(t, s, "--uses", "5")
	if out, err := s.parley("", "invite", "list"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "0/5 used") {
		t.Fatalf("invite list: %v\n%s", err, out)
	}
	if out, err := s.parley("", "invite", "revoke", id); err != nil {
		t.Fatalf("invite revoke: %v\n%s", err, out)
	}
	if p, _ := registerWithToken(t, s, revoked, "revoked"); !strings.Contains(p, "<item-not-found") {
		t.Fatalf("a revoked invite: %s", p)
	}

	// A user invites a friend.
	alice := online(t, s, "alice@localhost")
	r := alice.iq("<iq type='set' to='localhost'><command xmlns='%s' node='urn:xmpp:invite#invite' action='execute'/></iq>", nsCommands)
	m := inviteURI.FindStringSubmatch(completed(t, "the user invite command", r).String())
	if m == nil {
		t.Fatalf("the invite command gave no link: %s", r)
	}
	if _, got := registerWithToken(t, s, m[1], "friend"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration with a user's invite: %s", got)
	}
}
