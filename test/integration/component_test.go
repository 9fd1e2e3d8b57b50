package integration

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

const componentConfig = "[[components]]\ndomain = \"comp.localhost\"\nsecret = \"s3cret-component\"\n"

// dialComponent opens a component stream (XEP-0114) for domain and sends
// the handshake made with secret.
func dialComponent(t *testing.T, s *server, domain, secret string) *rawClient {
	t.Helper()
	c := dialRaw(t, s.comp)
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>")
	head := c.expect("<stream:stream")
	head += c.expect(">")
	m := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(head)
	if m == nil || !strings.Contains(head, `from="`+domain+`"`) {
		t.Fatalf("component stream header: %q", head)
	}
	sum := sha1.Sum([]byte(m[1] + secret))
	c.send("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")
	return c
}

func TestExternalComponent(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{component: true, extra: componentConfig})
	s.addUser("alice@localhost", "pw-alice")

	comp := dialComponent(t, s, "comp.localhost", "s3cret-component")
	comp.expect("<handshake/>")
	alice := s.connect(t, "alice@localhost/desk", "pw-alice")
	alice.send("<presence/>")
	alice.expect("its own presence", isPresence(alice.jid, ""))

	// A client writes to a user of the component, which answers.
	alice.send("<message to='user@comp.localhost' type='chat' id='m1'><body>hello gateway</body></message>")
	got := comp.expect("hello gateway</body></message>")
	if !strings.Contains(got, `from="alice@localhost/desk"`) || !strings.Contains(got, `to="user@comp.localhost"`) {
		t.Fatalf("component received %q", got)
	}
	comp.send("<message from='user@comp.localhost/bridge' to='alice@localhost/desk' type='chat'><body>hello human</body></message>")
	alice.expect("the component's answer", isMessage("user@comp.localhost/bridge", "hello human"))

	// The subdomains of its domain are the component's too.
	alice.send("<message to='bot@rooms.comp.localhost' type='chat'><body>to a subdomain</body></message>")
	comp.expect("to a subdomain</body></message>")

	// The component asks the server something and gets the answer.
	comp.send("<iq type='get' id='c1' from='comp.localhost' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r := comp.expect("</iq>"); !strings.Contains(r, `type="result"`) || !strings.Contains(r, `id="c1"`) {
		t.Fatalf("disco#info from a component: %q", r)
	}
	// The server lists it.
	items := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if !strings.Contains(items.String(), `jid="comp.localhost"`) {
		t.Fatalf("disco#items: %s", items)
	}

	// A second live connection for the domain is refused; the first one
	// proves it is alive by answering the server's ping.
	second := dialComponent(t, s, "comp.localhost", "s3cret-component")
	ping := comp.expect("</iq>")
	id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(ping)
	if id == nil || !strings.Contains(ping, "urn:xmpp:ping") {
		t.Fatalf("liveness ping: %q", ping)
	}
	comp.send("<iq type='result' id='" + id[1] + "' from='comp.localhost' to='localhost'/>")
	if out := second.expectClosed(); !strings.Contains(out, "<conflict") {
		t.Fatalf("second connection: %q", out)
	}

	// A forged 'from' ends the stream; nothing reaches alice.
	comp.send("<message from='admin@localhost' to='alice@localhost/desk' type='chat'><body>forged</body></message>")
	if out := comp.expectClosed(); !strings.Contains(out, "<invalid-from") {
		t.Fatalf("forged from: %q", out)
	}
	alice.expectNone("the forged message", 300*time.Millisecond, isMessage("admin@localhost", "forged"))

	// With the component gone, stanzas for it are answered with an error.
	waitLog(t, s, `msg="component: disconnected" domain=comp.localhost`)
	alice.send("<message to='user@comp.localhost' type='chat' id='m2'><body>anyone?</body></message>")
	if e := alice.expect("an error for the absent component", func(el *xmlstream.Element) bool { return el.Attr("id") == "m2" }); errorCondition(e) != "service-unavailable" {
		t.Fatalf("absent component: %s", e)
	}

	// A wrong secret is refused, and logged without it.
	bad := dialComponent(t, s, "comp.localhost", "wrong")
	if out := bad.expectClosed(); !strings.Contains(out, "<not-authorized") {
		t.Fatalf("wrong secret: %q", out)
	}
	waitLog(t, s, `msg="component: authentication failed" domain=comp.localhost`)

	// It reconnects, and a connection that went silent is replaced.
	silent := dialComponent(t, s, "comp.localhost", "s3cret-component")
	silent.expect("<handshake/>")
	fresh := dialComponent(t, s, "comp.localhost", "s3cret-component")
	fresh.expect("<handshake/>")
	if out := silent.expectClosed(); !strings.Contains(out, "<conflict") {
		t.Fatalf("replaced connection: %q", out)
	}
	alice.send("<message to='user@comp.localhost' type='chat'><body>after the reconnection</body></message>")
	fresh.expect("after the reconnection</body></message>")

	logs := s.Stderr()
	if strings.Contains(logs, "s3cret-component") {
		t.Fatal("the component's secret is in the log")
	}
	if !strings.Contains(logs, `msg="component: connected" domain=comp.localhost`) {
		t.Fatalf("no log line for the connection:\n%s", logs)
	}
}

// waitLog waits up to 10 s for the server to log want.
func waitLog(t *testing.T, s *server, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Stderr(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log %q:\n%s", want, s.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// biboumi, Debian's IRC gateway, connects to parley as a component,
// answers disco#info, and answers a client's attempt to join an IRC
// channel on a server that is not there: the answer, whatever biboumi
// makes it, came through parley's routing both ways.
func TestBiboumi(t *testing.T) {
	needSlixmpp(t)
	bin := needTool(t, "biboumi", "biboumi")
	s := startServer(t, serverOpts{component: true, extra: "[[components]]\ndomain = \"irc.localhost\"\nsecret = \"gateway-secret\"\n"})
	s.addUser("alice@localhost", "pw-alice")

	dir := t.TempDir()
	host, port := hostPort(s.comp)
	cfg := strings.Join([]string{
		"hostname=irc.localhost",
		"password=gateway-secret",
		"xmpp_server_ip=" + host,
		"port=" + port,
		"db_name=" + filepath.Join(dir, "biboumi.sqlite"),
		"policy_directory=" + dir,
		"log_file=" + filepath.Join(dir, "biboumi.log"),
		"log_level=0",
		"admin=",
	}, "\n") + "\n"
	path := filepath.Join(dir, "biboumi.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, path)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "biboumi.log"))
			t.Logf("biboumi output:\n%s\n%s", out.String(), log)
		}
	})
	waitLog(t, s, `msg="component: connected" domain=irc.localhost`)

	alice := s.connect(t, "alice@localhost/desk", "pw-alice")
	alice.send("<presence/>")
	alice.expect("its own presence", isPresence(alice.jid, ""))

	info := alice.iq("<iq type='get' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if info.Attr("type") != "result" || info.Attr("from") != "irc.localhost" {
		t.Fatalf("disco#info of the gateway: %s", info)
	}
	q := info.Child("http://jabber.org/protocol/disco#info", "query")
	id := q.Child("http://jabber.org/protocol/disco#info", "identity")
	if id == nil || id.Attr("category") == "" {
		t.Fatalf("the gateway has no identity: %s", info)
	}
	t.Logf("biboumi's identity: %s", id)

	// No IRC server listens on 127.0.0.1: biboumi's connection is refused
	// and it says so to the client, as an error presence (or a message).
	room := "#parley%127.0.0.1@irc.localhost"
	alice.send("<presence to='%s/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	got := alice.expect("biboumi's answer to the join", func(el *xmlstream.Element) bool {
		return strings.HasPrefix(el.Attr("from"), room) && ((el.Name.Local == "presence" && el.Attr("type") == "error") || el.Name.Local == "message")
	})
	t.Logf("biboumi answered the join with %s", got)

	cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, s, `msg="component: disconnected" domain=irc.localhost`)
}
