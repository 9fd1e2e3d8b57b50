package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"parley/internal/tlsconf"
	"parley/internal/xmlstream"
)

// freeLoopbackPort reserves a port the kernel hands out and frees it, so
// that two servers can be told each other's address before either runs.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startFederation starts a.localhost and b.localhost, each routed to the
// other's s2s listener. Their certificates are self-signed, so they
// authenticate each other with dialback, unless extraA/extraB say more.
// dead names a routed domain whose port has nothing listening.
func startFederation(t *testing.T, extraA, extraB string) (a, b *server, dead string) {
	t.Helper()
	return startFederationOpts(t, serverOpts{extra: extraA}, serverOpts{extra: extraB})
}

func startFederationOpts(t *testing.T, oa, ob serverOpts) (a, b *server, dead string) {
	t.Helper()
	pa, pb := freeLoopbackPort(t), freeLoopbackPort(t)
	// Port 1 refuses connections: nobody serves it and no test can bind it.
	route := func(domain, addr string) string {
		return fmt.Sprintf("[s2s]\nroutes = { %q = %q, \"dead.example\" = \"127.0.0.1:1\" }\n", domain, addr)
	}
	oa.hosts, oa.s2s, oa.extra = []string{"a.localhost"}, pa, route("b.localhost", pb)+oa.extra
	ob.hosts, ob.s2s, ob.extra = []string{"b.localhost"}, pb, route("a.localhost", pa)+ob.extra
	a = startServer(t, oa)
	b = startServer(t, ob)
	return a, b, "dead.example"
}

func isError(condition string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool { return errorCondition(el) == condition }
}

// TestFederation: users of two servers write to each other, subscribe to
// each other's presence, query the other server, and get an error for a
// domain that cannot be reached. Both sides archive the conversation and
// copy it to the sender's other devices.
func TestFederation(t *testing.T) {
	needSlixmpp(t)
	// a.localhost runs on each store; b.localhost on SQLite.
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) { testFederation(t, driver) })
	}
}

func testFederation(t *testing.T, driver storeDriver) {
	a, b, dead := startFederation(t, driver.toml, "")
	a.addUser("alice@a.localhost", "pw")
	b.addUser("bob@b.localhost", "pw")
	alice := a.connect(t, "alice@a.localhost/phone", "pw")
	laptop := a.connect(t, "alice@a.localhost/laptop", "pw")
	bob := b.connect(t, "bob@b.localhost/desk", "pw")
	for _, x := range []*agent{alice, laptop} {
		if r := x.iq("<iq type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Attr("type") != "result" {
			t.Fatalf("enable carbons: %s", r)
		}
	}
	for _, x := range []*agent{alice, laptop, bob} {
		x.send("<presence/>")
		x.expect("own presence", isPresence(x.jid, ""))
	}

	t.Run("message", func(t *testing.T) {
		alice.send("<message to='bob@b.localhost' type='chat' id='m1'><body>hello from a</body></message>")
		m := bob.expect("alice's message over s2s", isMessage("alice@a.localhost/phone", "hello from a"))
		if m.Attr("from") != "alice@a.localhost/phone" || m.Attr("to") != "bob@b.localhost" && m.Attr("to") != "bob@b.localhost/desk" {
			t.Errorf("addresses: %s", m)
		}
		laptop.expect("a sent carbon of the outbound message", func(el *xmlstream.Element) bool {
			c := el.Child("urn:xmpp:carbons:2", "sent")
			return c != nil && strings.Contains(c.String(), "hello from a")
		})
		bob.send("<message to='alice@a.localhost/phone' type='chat'><body>hello from b</body></message>")
		alice.expect("bob's answer over s2s", isMessage("bob@b.localhost/desk", "hello from b"))
		laptop.expect("a received carbon of the inbound message", func(el *xmlstream.Element) bool {
			c := el.Child("urn:xmpp:carbons:2", "received")
			return c != nil && strings.Contains(c.String(), "hello from b")
		})
		for _, side := range []struct {
			who  *agent
			want []string
		}{{alice, []string{"hello from a", "hello from b"}}, {bob, []string{"hello from a", "hello from b"}}} {
			res, _ := mamQuery(t, side.who, "q-"+side.who.name, "", "")
			var got []string
			for _, r := range res {
				got = append(got, r.String())
			}
			all := strings.Join(got, "\n")
			for _, w := range side.want {
				if !strings.Contains(all, w) {
					t.Errorf("%s's archive lacks %q:\n%s", side.who.name, w, all)
				}
			}
		}
	})

	t.Run("presence subscription", func(t *testing.T) {
		alice.send("<presence to='bob@b.localhost' type='subscribe'/>")
		bob.expect("alice's subscription request", isPresence("alice@a.localhost", "subscribe"))
		bob.send("<presence to='alice@a.localhost' type='subscribed'/>")
		alice.expect("the approval", isPresence("bob@b.localhost", "subscribed"))
		alice.expect("bob's presence after the approval", isPresence("bob@b.localhost/desk", ""))
		// And the other way round.
		bob.send("<presence to='alice@a.localhost' type='subscribe'/>")
		alice.expect("bob's subscription request", isPresence("bob@b.localhost", "subscribe"))
		alice.send("<presence to='bob@b.localhost' type='subscribed'/>")
		bob.expect("the approval", isPresence("alice@a.localhost", "subscribed"))
		bob.expect("alice's presence after the approval", isPresence("alice@a.localhost/", ""))
		// A presence change now reaches the contact on the other server.
		bob.send("<presence><show>away</show></presence>")
		p := alice.expect("bob's new presence", func(el *xmlstream.Element) bool {
			return isPresence("bob@b.localhost/desk", "")(el) && el.Child("jabber:client", "show") != nil
		})
		if p.Child("jabber:client", "show").Text() != "away" {
			t.Errorf("presence: %s", p)
		}
		// A new session's initial presence probes the remote contact,
		// whose server answers with its current presence, and is
		// broadcast to it.
		tablet := a.connect(t, "alice@a.localhost/tablet", "pw")
		tablet.send("<presence/>")
		p = tablet.expect("bob's presence, answering the probe", func(el *xmlstream.Element) bool {
			return isPresence("bob@b.localhost/desk", "")(el) && el.Child("jabber:client", "show") != nil
		})
		if p.Child("jabber:client", "show").Text() != "away" {
			t.Errorf("probed presence: %s", p)
		}
		bob.expect("the new session's presence", isPresence("alice@a.localhost/tablet", ""))
		tablet.op("quit")
		bob.expect("the new session going away", isPresence("alice@a.localhost/tablet", "unavailable"))
	})

	t.Run("iq to the remote server", func(t *testing.T) {
		r := alice.iq("<iq type='get' to='b.localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if r.Attr("type") != "result" || r.Attr("from") != "b.localhost" {
			t.Errorf("ping b.localhost: %s", r)
		}
		r = bob.iq("<iq type='get' to='a.localhost'><query xmlns='jabber:iq:version'/></iq>")
		if r.Attr("type") != "result" || !strings.Contains(r.String(), "parley") {
			t.Errorf("version of a.localhost: %s", r)
		}
		// An unknown account on the other server: the error comes back.
		r = alice.iq("<iq type='get' to='nobody@b.localhost'><query xmlns='jabber:iq:version'/></iq>")
		if errorCondition(r) != "service-unavailable" {
			t.Errorf("IQ to an unknown remote account: %s", r)
		}
	})

	t.Run("blocking", func(t *testing.T) {
		if r := bob.iq("<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='alice@a.localhost'/></block></iq>"); r.Attr("type") != "result" {
			t.Fatalf("block: %s", r)
		}
		alice.send("<message to='bob@b.localhost' type='chat' id='blocked1'><body>do you hear me</body></message>")
		e := alice.expect("the error for a blocked message", func(el *xmlstream.Element) bool {
			return el.Name.Local == "message" && el.Attr("id") == "blocked1"
		})
		if errorCondition(e) != "service-unavailable" || e.Attr("from") != "bob@b.localhost" {
			t.Errorf("blocked message answered with %s", e)
		}
		bob.expectNone("a message from a blocked remote user", 200*time.Millisecond, isMessage("alice@a.localhost", "do you hear me"))
		if r := bob.iq("<iq type='set'><unblock xmlns='urn:xmpp:blocking'/></iq>"); r.Attr("type") != "result" {
			t.Fatalf("unblock: %s", r)
		}
	})

	t.Run("unreachable domains bounce", func(t *testing.T) {
		for _, d := range []string{"nowhere.invalid", dead} {
			alice.send("<message to='someone@%s' type='chat' id='to-%s'><body>anyone?</body></message>", d, d)
			e := alice.expect("the bounce for "+d, func(el *xmlstream.Element) bool {
				return el.Name.Local == "message" && el.Attr("id") == "to-"+d
			})
			if errorCondition(e) != "remote-server-not-found" {
				t.Errorf("bounce for %s: %s", d, e)
			}
		}
	})
	// Server streams are logged with domains only, never who talks to
	// whom: no user, and above debug no two domains side by side, nor an
	// address next to a domain.
	for _, srv := range []*server{a, b} {
		for _, l := range strings.Split(srv.Stderr(), "\n") {
			if !strings.Contains(l, `msg="s2s:`) {
				continue
			}
			if strings.Contains(l, "@") {
				t.Errorf("an s2s log line names a user: %s", l)
			}
			if strings.Contains(l, "level=DEBUG") {
				continue
			}
			domains := 0
			for _, d := range []string{"a.localhost", "b.localhost", dead} {
				if strings.Contains(l, d) {
					domains++
				}
			}
			if domains > 1 || domains > 0 && strings.Contains(l, "127.0.0.1") {
				t.Errorf("an s2s log line links two domains, or a domain and an address: %s", l)
			}
		}
	}
}

// TestFederatedPush: the app server of XEP-0357 is an account on the
// other server; the notification goes there over s2s.
func TestFederatedPush(t *testing.T) {
	needSlixmpp(t)
	a, b, _ := startFederation(t, "", "")
	a.addUser("alice@a.localhost", "pw")
	b.addUser("bob@b.localhost", "pw")
	b.addUser("appserver@b.localhost", "pw")
	app := b.connect(t, "appserver@b.localhost/push", "pw")
	alice := a.connect(t, "alice@a.localhost/phone", "pw", "--sm")
	alice.waitEvent("sm_enabled")
	r := alice.iq("<iq type='set'><enable xmlns='urn:xmpp:push:0' jid='appserver@b.localhost/push' node='n0d3'/></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("push enable: %s", r)
	}
	alice.send("<presence/>")
	alice.expect("own presence", isPresence("alice@a.localhost/phone", ""))
	alice.op("abort")
	alice.waitEvent("disconnected")
	time.Sleep(200 * time.Millisecond)
	bob := b.connect(t, "bob@b.localhost/desk", "pw")
	bob.send("<message to='alice@a.localhost' type='chat'><body>wake up</body></message>")
	n := app.expect("the push notification over s2s", func(el *xmlstream.Element) bool {
		return el.Name.Local == "iq" && el.Attr("type") == "set" && strings.Contains(el.String(), "urn:xmpp:push:0")
	})
	if n.Attr("from") != "alice@a.localhost" || !strings.Contains(n.String(), `node="n0d3"`) {
		t.Errorf("notification: %s", n)
	}
	alice.op("quit")
}

// TestFederationCertificates: servers that trust each other's
// certificates (a private CA here: each other's self-signed certificate)
// authenticate with SASL EXTERNAL, and with require_valid_certificates no
// dialback is even offered.
func TestFederationCertificates(t *testing.T) {
	needSlixmpp(t)
	dir := t.TempDir()
	certs := map[string]string{}
	for _, d := range []string{"a.localhost", "b.localhost"} {
		if _, err := tlsconf.Load("", "", filepath.Join(dir, d), []string{d}); err != nil {
			t.Fatal(err)
		}
		certs[d] = filepath.Join(dir, d, "selfsigned")
	}
	extra := func(self, peer string) string {
		return fmt.Sprintf("ca_file = %q\nrequire_valid_certificates = true\n[tls]\ncert = %q\nkey = %q\n", certs[peer]+".crt", certs[self]+".crt", certs[self]+".key")
	}
	a, b, _ := startFederationOpts(t,
		serverOpts{extra: extra("a.localhost", "b.localhost"), cafile: certs["a.localhost"] + ".crt"},
		serverOpts{extra: extra("b.localhost", "a.localhost"), cafile: certs["b.localhost"] + ".crt"})
	a.addUser("alice@a.localhost", "pw")
	b.addUser("bob@b.localhost", "pw")
	alice := a.connect(t, "alice@a.localhost/phone", "pw")
	bob := b.connect(t, "bob@b.localhost/desk", "pw")
	alice.send("<message to='bob@b.localhost/desk' type='chat'><body>signed</body></message>")
	bob.expect("the message", isMessage("alice@a.localhost/phone", "signed"))
	bob.send("<message to='alice@a.localhost/phone' type='chat'><body>sealed</body></message>")
	alice.expect("the answer", isMessage("bob@b.localhost/desk", "sealed"))
	for _, srv := range []*server{a, b} {
		if log := srv.Stderr(); !strings.Contains(log, `method="sasl external"`) || strings.Contains(log, "method=dialback") {
			t.Errorf("not authenticated by certificate:\n%s", log)
		}
	}
}

// prosody is a Prosody serving p.localhost on loopback, with the account
// carol@p.localhost (password pw), that trusts the certificate made for
// a parley serving a.localhost.
type prosody struct {
	c2s, s2s         string
	pCrt, aCrt, aKey string
}

// parleyTOML is the config a parley serving a.localhost needs to reach
// this Prosody and be trusted by it.
func (p prosody) parleyTOML() string {
	return fmt.Sprintf("[s2s]\nroutes = { \"p.localhost\" = %q }\nca_file = %q\nrequire_valid_certificates = true\n[tls]\ncert = %q\nkey = %q\n", p.s2s, p.pCrt, p.aCrt, p.aKey)
}

// connect logs carol in to Prosody.
func (p prosody) connect(t *testing.T) *agent {
	return (&server{t: t, starttls: p.c2s, ca: p.pCrt}).connect(t, "carol@p.localhost/x", "pw")
}

// startProsody runs Prosody until the test ends; skipped where Prosody
// is not installed, except under CI.
func startProsody(t *testing.T) prosody {
	t.Helper()
	bin, err := exec.LookPath("prosody")
	mustHave(t, "Prosody", err == nil, "apt-get install prosody")
	dir := t.TempDir()
	crt := func(d string) (string, string) {
		if _, err := tlsconf.Load("", "", filepath.Join(dir, d), []string{d}); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, d, "selfsigned.crt"), filepath.Join(dir, d, "selfsigned.key")
	}
	aCrt, aKey := crt("a.localhost")
	pCrt, pKey := crt("p.localhost")
	c2s, s2s := freeLoopbackPort(t), freeLoopbackPort(t)
	_, c2sPort := hostPort(c2s)
	_, s2sPort := hostPort(s2s)
	data := filepath.Join(dir, "prosody-data")
	// internal_plain keeps the password as is, which SCRAM-SHA-256 can
	// use; the account file is Prosody's own storage format.
	accounts := filepath.Join(data, "p%2elocalhost", "accounts")
	if err := os.MkdirAll(accounts, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(accounts, "carol.dat"), []byte(`return { ["password"] = "pw"; };`), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "prosody.log")
	cfg := fmt.Sprintf(`
run_as_root = true
daemonize = false
pidfile = %q
data_path = %q
plugin_paths = {}
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { %s }
s2s_ports = { %s }
c2s_direct_tls_ports = {}
s2s_direct_tls_ports = {}
component_ports = {}
http_ports = {}
https_ports = {}
modules_enabled = { "tls", "saslauth", "dialback", "disco", "roster", "ping" }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
log = { { levels = { min = "debug" }, to = "file", filename = %q } }
ssl = { certificate = %q, key = %q, cafile = %q }
VirtualHost "p.localhost"
`, filepath.Join(dir, "prosody.pid"), data, c2sPort, s2sPort, logFile, pCrt, pKey, aCrt)
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath, "-F")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			l, _ := os.ReadFile(logFile)
			t.Logf("prosody output:\n%s\nprosody log:\n%s", out.String(), l)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", c2s, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("prosody exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosody does not listen on %s", c2s)
		}
		time.Sleep(100 * time.Millisecond)
	}

	return prosody{c2s: c2s, s2s: s2s, pCrt: pCrt, aCrt: aCrt, aKey: aKey}
}

// TestFederationWithProsody sends a message from parley to a user of a
// real Prosody on loopback, authenticated by certificates (SASL
// EXTERNAL): Prosody finds parley through its route-less resolver only
// by DNS, so only this direction can be tested without DNS or
// /etc/hosts. Skipped where Prosody is not installed, except under CI.
func TestFederationWithProsody(t *testing.T) {
	needSlixmpp(t)
	pr := startProsody(t)
	a := startServer(t, serverOpts{hosts: []string{"a.localhost"}, s2s: "127.0.0.1:0", cafile: pr.aCrt, extra: pr.parleyTOML()})
	a.addUser("alice@a.localhost", "pw")
	alice := a.connect(t, "alice@a.localhost/phone", "pw")
	carol := pr.connect(t)
	alice.send("<message to='carol@p.localhost/x' type='chat'><body>hello prosody</body></message>")
	carol.expect("parley's message through prosody", isMessage("alice@a.localhost/phone", "hello prosody"))
	if log := a.Stderr(); !strings.Contains(log, `msg="s2s: outgoing stream ready" remote_domain=p.localhost`) {
		t.Errorf("no outgoing stream to prosody in the log:\n%s", log)
	}
}
