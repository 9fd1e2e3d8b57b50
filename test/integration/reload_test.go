package integration

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLog waits up to 20 s for the server's log to contain want.
func (s *server) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.Stderr(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, s.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) hup(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// TestReloadOnSIGHUP: SIGHUP makes new TLS connections get the
// certificate now in the files while a logged-in session goes on, applies
// the changes that can be applied and names those that need a restart;
// a broken config is refused and the running one kept.
func TestReloadOnSIGHUP(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old issuer"), newTestCA(t, "new issuer")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	far := time.Now().Add(24 * time.Hour)
	oldCA.issue(crt, key, far, "localhost")
	tlsConf := fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", crt, key)
	s := startServer(t, serverOpts{extra: tlsConf})
	s.addUser("rita@localhost", "pw")
	c := dialRaw(t, s.starttls)
	c.login("rita@localhost", "pw", "desk")
	if got := presented(t, s.direct, "localhost", false).Issuer.CommonName; got != "old issuer" {
		t.Fatalf("before the reload the issuer is %q", got)
	}

	newCA.issue(crt, key, far, "localhost")
	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	changed := string(cfg) + "[limits]\nmax_roster_items = 7\n[log]\nlevel = \"debug\"\n[registration]\nopen = true\n"
	changed = strings.Replace(changed, "c2s = \"127.0.0.1:0\"", "c2s = \"127.0.0.1:1\"", 1)
	changed = strings.Replace(changed, `hosts = ["localhost"]`, `hosts = ["localhost", "other.localhost"]`, 1)
	changed = strings.Replace(changed, "data_dir = ", "data_dir = \"/nonexistent/elsewhere\"\n# was ", 1)
	if err := os.WriteFile(s.config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	s.hup(t)
	s.waitLog(t, "reloaded")
	log := s.Stderr()
	if !strings.Contains(log, "limits.max_roster_items") || !strings.Contains(log, "log.level") {
		t.Errorf("the applied changes are not logged:\n%s", log)
	}
	restart := regexp.MustCompile(`take effect only after a restart" keys="\[([^]]*)\]"`).FindStringSubmatch(log)
	if restart == nil || !slices.Equal(strings.Fields(restart[1]), []string{"hosts", "data_dir", "listen.c2s", "storage.dsn"}) {
		t.Errorf("the changes that need a restart are not named (want hosts, data_dir, listen.c2s and storage.dsn, which follows data_dir):\n%s", log)
	}
	if got := presented(t, s.direct, "localhost", false).Issuer.CommonName; got != "new issuer" {
		t.Errorf("after the reload a new connection sees the issuer %q", got)
	}
	// Registration opened by the reload.
	r := dialRaw(t, s.starttls)
	r.startTLS(&tls.Config{InsecureSkipVerify: true})
	r.send(header)
	r.expect("</stream:features>")
	r.send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>newcomer</username><password>pw</password></query></iq>")
	if got := r.expectIQ("reg"); !strings.Contains(got, `type="result"`) {
		t.Errorf("registration after the reload opened it: %s", got)
	}
	c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.expectIQ("p1"); !strings.Contains(r, `type="result"`) {
		t.Fatalf("the session open during the reload: %s", r)
	}

	// A broken file: refused, the server goes on with what it had.
	if err := os.WriteFile(s.config, []byte(changed+"[limits]\nno_such_key = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldCA.issue(crt, key, far, "localhost")
	s.hup(t)
	s.waitLog(t, "reload refused")
	if !s.alive() {
		t.Fatal("the server stopped on a broken config")
	}
	if got := presented(t, s.direct, "localhost", false).Issuer.CommonName; got != "new issuer" {
		t.Errorf("a refused reload changed the certificate to one from %q", got)
	}
	c.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.expectIQ("p2"); !strings.Contains(r, `type="result"`) {
		t.Fatalf("after a refused reload: %s", r)
	}
}

// TestReloadAppliesLimitsAdminsWelcome: settings beyond certificates and
// registration take effect on SIGHUP without a restart: a new admin sees
// the admin commands in the session open during the reload, a lowered
// stanza size applies to connections opened afterwards (the one open
// keeps its own), the E2EE policy applies to the next message (not an admin's), and a new
// account is greeted with the new welcome text.
func TestReloadAppliesLimitsAdminsWelcome(t *testing.T) {
	s := startServer(t, serverOpts{extra: "[registration]\nwelcome = \"Old welcome\"\n"})
	for _, u := range []string{"carol", "dan", "erin"} {
		s.addUser(u+"@localhost", "pw")
	}
	carol := dialRaw(t, s.starttls)
	carol.login("carol@localhost", "pw", "desk")
	commands := func(id string) string {
		carol.send("<iq type='get' id='" + id + "' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>")
		return carol.expectIQ(id)
	}
	if items := commands("c1"); strings.Contains(items, nsAdmin) {
		t.Fatalf("carol sees admin commands before she is an admin: %s", items)
	}

	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	next := "admins = [\"carol@localhost\"]\n" + strings.Replace(string(cfg), "Old welcome", "New welcome", 1) +
		"[limits]\nmax_stanza_bytes = 10000\n[privacy]\nrequire_e2ee = \"enforce\"\n"
	if err := os.WriteFile(s.config, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	s.hup(t)
	s.waitLog(t, "reloaded")
	log := s.Stderr()
	for _, k := range []string{"admins", "registration.welcome", "limits.max_stanza_bytes", "privacy.require_e2ee"} {
		if !strings.Contains(log, k) {
			t.Errorf("the reload does not name %s as applied:\n%s", k, log)
		}
	}
	if strings.Contains(log, "after a restart") {
		t.Errorf("a reloadable change is said to need a restart:\n%s", log)
	}

	if items := commands("c2"); !strings.Contains(items, nsAdmin+"#add-user") {
		t.Errorf("carol, made an admin by the reload, does not see the admin commands: %s", items)
	}

	big := "<message to='dan@localhost' type='normal'><body>" + strings.Repeat("x", 20000) + "</body></message>"
	// The connection open before the reload keeps the size it began with.
	carol.send(big)
	carol.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := carol.expectIQ("p1"); !strings.Contains(r, `type="result"`) {
		t.Fatalf("the session open during the reload after a 20,000-byte stanza: %s", r)
	}
	erin := dialRaw(t, s.starttls)
	erin.login("erin@localhost", "pw", "desk")
	erin.send("<message to='dan@localhost' type='chat' id='m1'><body>in the clear</body></message>")
	if got := erin.expect("</message>"); !strings.Contains(got, `type="error"`) || !strings.Contains(got, "policy-violation") {
		t.Errorf("require_e2ee = enforce after the reload let a plain chat message through: %s", got)
	}
	erin.send(big)
	if got := erin.expectClosed(); !strings.Contains(got, "policy-violation") {
		t.Errorf("a 20,000-byte stanza on a connection opened after lowering max_stanza_bytes to 10000: %s", got)
	}

	dan := dialRaw(t, s.starttls)
	dan.login("dan@localhost", "pw", "desk")
	dan.send("<presence/>")
	if got := dan.expect("New welcome"); strings.Contains(got, "Old welcome") {
		t.Errorf("the old welcome text after the reload: %s", got)
	}
}
