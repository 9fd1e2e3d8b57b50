package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
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
	return createdFrom(t, out)
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

// TestInvitePage: with an https listener, invite create prints a landing
// page link served by parley: the invite with its inviter and expiry, a
// QR code inline and client links, no script; 410 once used or revoked,
// 404 for an unknown token.
func TestInvitePage(t *testing.T) {
	s := startServer(t, serverOpts{https: true})
	s.addUser("alice@localhost", "pw")
	// The page's link names localhost, which the self-signed certificate
	// covers: checked as a browser would.
	pem, err := os.ReadFile(s.cafile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	fetch := func(url string) (int, string) {
		t.Helper()
		resp, b := httpDo(t, hc, http.MethodGet, url, nil, nil)
		return resp.StatusCode, string(b)
	}
	pageOf := func(args ...string) (token, id, page string) {
		t.Helper()
		out, err := s.parley("", append([]string{"invite", "create"}, args...)...)
		if err != nil {
			t.Fatalf("invite create: %v\n%s", err, out)
		}
		token, id = createdFrom(t, out)
		m := regexp.MustCompile(`https://localhost:` + portOf(s.https) + `/invite/([A-Za-z0-9_-]+)`).FindStringSubmatch(out)
		if m == nil || m[1] != token {
			t.Fatalf("invite create printed no landing page link for the HTTPS listener %s:\n%s", s.https, out)
		}
		return token, id, m[0]
	}

	token, _, page := pageOf("--contact", "alice@localhost", "--expires", "3d")
	code, body := fetch(page)
	if code != http.StatusOK {
		t.Fatalf("the landing page: %d\n%s", code, body)
	}
	for _, want := range []string{"localhost", "alice@localhost", time.Now().Add(72 * time.Hour).UTC().Format("2 January 2006"),
		"xmpp:localhost?register;preauth=" + token, "<svg", "Conversations", "Monal", "Dino", "Gajim", "Siskin"} {
		if !strings.Contains(body, want) {
			t.Errorf("the landing page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "src=") {
		t.Errorf("the landing page loads something:\n%s", body)
	}
	if _, got := registerWithToken(t, s, token, "newbie"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration with the invite: %s", got)
	}
	if code, body := fetch(page); code != http.StatusGone || !strings.Contains(body, "used") {
		t.Errorf("the page of a used invite: %d\n%s", code, body)
	}

	_, id, revoked := pageOf()
	if out, err := s.parley("", "invite", "revoke", id); err != nil {
		t.Fatalf("invite revoke: %v\n%s", err, out)
	}
	if code, body := fetch(revoked); code != http.StatusGone || !strings.Contains(body, "withdrawn") {
		t.Errorf("the page of a revoked invite: %d\n%s", code, body)
	}
	if code, _ := fetch("https://localhost:" + portOf(s.https) + "/invite/AAAAAAAAAAAAAAAAAAAAAAAA"); code != http.StatusNotFound {
		t.Errorf("an unknown token: %d", code)
	}
}

// createdFrom reads the token and id invite create printed.
func createdFrom(t *testing.T, out string) (token, id string) {
	t.Helper()
	m := inviteURI.FindStringSubmatch(out)
	idm := regexp.MustCompile(`invite ([0-9a-f]+):`).FindStringSubmatch(out)
	if m == nil || idm == nil {
		t.Fatalf("invite create printed no xmpp:localhost?register;preauth= URI and id:\n%s", out)
	}
	return m[1], idm[1]
}

// TestAdminInvite: the account an invite made with --admin creates is an
// admin (it sees the admin commands), listed by invite admins and parley
// check beside the config's, until invite unadmin takes it back.
func TestAdminInvite(t *testing.T) {
	s := startServer(t, serverOpts{top: "admins = [\"root@localhost\"]\n"})
	token, id := createInvite(t, s, "--admin")
	if _, got := registerWithToken(t, s, token, "boss"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration with the admin invite: %s", got)
	}
	plain, _ := createInvite(t, s)
	if _, got := registerWithToken(t, s, plain, "worker"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration with a plain invite: %s", got)
	}
	seesAdmin := func(user, id string) bool {
		c := dialRaw(t, s.starttls)
		c.login(user+"@localhost", "secret", "r")
		c.send("<iq type='get' id='" + id + "' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>")
		return strings.Contains(c.expectIQ(id), nsAdmin+"#add-user")
	}
	if !seesAdmin("boss", "b1") {
		t.Fatal("the account of an admin invite does not see the admin commands")
	}
	if seesAdmin("worker", "w1") {
		t.Fatal("the account of a plain invite sees the admin commands")
	}
	out, err := s.parley("", "invite", "admins")
	if err != nil || !strings.Contains(out, "root@localhost\tconfig") || !strings.Contains(out, "boss@localhost\tinvite "+id) || !strings.Contains(out, "2 admins") {
		t.Fatalf("invite admins: %v\n%s", err, out)
	}
	out, _ = s.parley("", "check") // may fail on other checks (DNS, ports): the admins line is what counts here
	if !regexp.MustCompile(`(?m)^ok +admins: root@localhost, boss@localhost \(invite ` + id + `\)$`).MatchString(out) {
		t.Errorf("parley check does not list the admins:\n%s", out)
	}
	if out, err := s.parley("", "invite", "unadmin", "boss@localhost"); err != nil {
		t.Fatalf("invite unadmin: %v\n%s", err, out)
	}
	if out, err := s.parley("", "invite", "unadmin", "root@localhost"); err == nil || !strings.Contains(out, "config") {
		t.Fatalf("unadmin of a config admin: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; seesAdmin("boss", fmt.Sprintf("b%d", i+2)); i++ {
		if time.Now().After(deadline) {
			t.Fatal("an admin taken back by invite unadmin still sees the admin commands")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
