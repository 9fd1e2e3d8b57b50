package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawClient speaks XMPP by hand, for inputs no real client would send.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	buf  bytes.Buffer
	wait time.Duration // how long expect waits; 10 s when zero
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expect reads until the received data contains want, and returns all of
// it; it fails after 10 s. Quotes are compared loosely: XML allows either.
func (c *rawClient) expect(want string) string {
	c.t.Helper()
	wait := c.wait
	if wait == 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	tmp := make([]byte, 4096)
	want = strings.ReplaceAll(want, "'", `"`)
	for !strings.Contains(strings.ReplaceAll(c.buf.String(), "'", `"`), want) {
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(tmp)
		c.buf.Write(tmp[:n])
		if err != nil {
			c.t.Fatalf("waiting for %q: %v; got %q", want, err, c.buf.String())
		}
	}
	s := strings.ReplaceAll(c.buf.String(), "'", `"`)
	i := strings.Index(s, want) + len(want)
	c.buf.Reset()
	c.buf.WriteString(s[i:])
	return s[:i]
}

// expectClosed reads until the server closes the connection.
func (c *rawClient) expectClosed() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	tmp := make([]byte, 4096)
	for {
		n, err := c.conn.Read(tmp)
		c.buf.Write(tmp[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("connection not closed; got %q", c.buf.String())
			}
			return strings.ReplaceAll(c.buf.String(), "'", `"`)
		}
	}
}

const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`

func (c *rawClient) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.send(header)
	c.expect("</stream:features>")
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.expect("<proceed")
	c.upgrade(cfg)
}

// upgrade does the TLS handshake after <proceed/>.
func (c *rawClient) upgrade(cfg *tls.Config) *tls.Conn {
	c.t.Helper()
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	c.conn = tc
	c.buf.Reset()
	return tc
}

// login does STARTTLS, PLAIN and binding, for an account of any domain.
// secureStream opens a stream with hdr, upgrades it with STARTTLS and
// returns the features offered over TLS.
func (c *rawClient) secureStream(hdr string) string {
	c.t.Helper()
	c.send(hdr)
	c.expect("</stream:features>")
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.expect("<proceed")
	c.upgrade(&tls.Config{InsecureSkipVerify: true})
	c.send(hdr)
	return c.expect("</stream:features>")
}

func (c *rawClient) login(bare, password, resource string) {
	c.t.Helper()
	user, domain, _ := strings.Cut(bare, "@") // PLAIN's authcid is the localpart
	hdr := strings.Replace(header, "to='localhost'", "to='"+domain+"'", 1)
	feats := c.secureStream(hdr)
	if !strings.Contains(feats, "<mechanism>PLAIN</mechanism>") {
		c.t.Fatalf("PLAIN not offered over TLS: %s", feats)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	c.expect("<success")
	c.send(hdr)
	c.expect("</stream:features>")
	c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	if got := c.expect("</iq>"); !strings.Contains(got, "<jid>"+bare+"/"+resource+"</jid>") {
		c.t.Fatalf("bind answered %q", got)
	}
}

func TestPlainNotOfferedBeforeTLS(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := dialRaw(t, s.starttls)
	c.send(header)
	feats := c.expect("</stream:features>")
	if !strings.Contains(feats, "<required/>") {
		t.Errorf("STARTTLS not required: %s", feats)
	}
	if strings.Contains(feats, "PLAIN") || strings.Contains(feats, "mechanism") {
		t.Errorf("mechanisms offered before TLS: %s", feats)
	}
	// Trying PLAIN anyway does not work either.
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>")
	if got := c.expectClosed(); !strings.Contains(got, "<policy-violation") {
		t.Errorf("auth before TLS: %q", got)
	}
}

// handshake reaches the TLS handshake on addr (after STARTTLS on the
// STARTTLS port) and tries it with the given TLS versions.
func handshake(t *testing.T, s *server, addr string, minV, maxV uint16) error {
	c := dialRaw(t, addr)
	conn := c.conn
	if addr == s.starttls {
		c.send(header)
		c.expect("</stream:features>")
		c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		c.expect("<proceed")
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: minV, MaxVersion: maxV})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc.Handshake()
}

func TestOldTLSRefused(t *testing.T) {
	s := startServer(t, serverOpts{})
	for _, addr := range []string{s.starttls, s.direct} {
		if err := handshake(t, s, addr, tls.VersionTLS10, tls.VersionTLS11); err == nil {
			t.Errorf("%s: a TLS 1.1 handshake succeeded", addr)
		}
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			if err := handshake(t, s, addr, v, v); err != nil {
				t.Errorf("%s: TLS version %x refused: %v", addr, v, err)
			}
		}
	}
}

func TestBadXMLGetsStreamErrors(t *testing.T) {
	s := startServer(t, serverOpts{extra: "[limits]\nmax_stanza_bytes = 20000\n"})
	s.addUser("bob@localhost", "pw")

	cases := []struct {
		name, input, condition string
	}{
		{"malformed", "<message><body>hi</message>", "not-well-formed"},
		{"doctype", "<!DOCTYPE foo [<!ENTITY x 'y'>]>", "restricted-xml"},
		{"comment", "<!-- hello -->", "restricted-xml"},
		{"processing instruction", "<?foo bar?>", "restricted-xml"},
		{"entity", "<message to='bob@localhost'><body>&x;</body></message>", "restricted-xml"},
		{"oversized", "<message to='bob@localhost'><body>" + strings.Repeat("a", 30000) + "</body></message>", "policy-violation"},
		{"not a stanza", "<foo xmlns='urn:example'/>", "unsupported-stanza-type"},
		{"spoofed from", "<message from='mallory@localhost' to='bob@localhost'><body>x</body></message>", "invalid-from"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A well-behaved client is online throughout and must not notice.
			bystander := dialRaw(t, s.starttls)
			bystander.login("bob@localhost", "pw", "bystander")

			c := dialRaw(t, s.starttls)
			c.login("bob@localhost", "pw", "bad")
			c.send(tc.input)
			got := c.expectClosed()
			if !strings.Contains(got, "<"+tc.condition+` xmlns="urn:ietf:params:xml:ns:xmpp-streams"`) {
				t.Errorf("got %q, want a <%s/> stream error", got, tc.condition)
			}
			if !strings.Contains(got, "</stream:stream>") {
				t.Errorf("stream not closed: %q", got)
			}
			bystander.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			if r := bystander.expect(`id="p1"`); !strings.Contains(r, `type="result"`) {
				t.Errorf("bystander's ping after the bad client: %q", r)
			}
			if !s.alive() {
				t.Fatal("server died")
			}
		})
	}

	t.Run("before TLS", func(t *testing.T) {
		c := dialRaw(t, s.starttls)
		c.send(header + "<!-- x -->")
		if got := c.expectClosed(); !strings.Contains(got, "<restricted-xml") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("bad stream namespace", func(t *testing.T) {
		c := dialRaw(t, s.starttls)
		c.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
		if got := c.expectClosed(); !strings.Contains(got, "<invalid-namespace") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		c := dialRaw(t, s.starttls)
		c.send(strings.Replace(header, "to='localhost'", "to='elsewhere.example'", 1))
		if got := c.expectClosed(); !strings.Contains(got, "<host-unknown") {
			t.Errorf("got %q", got)
		}
	})
}

func TestUnauthenticatedTimeout(t *testing.T) {
	s := startServer(t, serverOpts{extra: "[limits]\nauth_timeout = \"1s\"\n"})
	c := dialRaw(t, s.starttls)
	c.send(header)
	start := time.Now()
	got := c.expectClosed()
	if !strings.Contains(got, "<connection-timeout") {
		t.Errorf("got %q", got)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("closed after %v", el)
	}
}

func TestCleanCloseAndResourceConflict(t *testing.T) {
	s := startServer(t, serverOpts{})
	s.addUser("carol@localhost", "pw")
	first := dialRaw(t, s.starttls)
	first.login("carol@localhost", "pw", "desk")
	second := dialRaw(t, s.starttls)
	second.login("carol@localhost", "pw", "desk")
	if got := first.expectClosed(); !strings.Contains(got, "<conflict") {
		t.Errorf("old session got %q, want a <conflict/> stream error", got)
	}
	second.send("</stream:stream>")
	if got := second.expectClosed(); !strings.Contains(got, "</stream:stream>") {
		t.Errorf("clean close answered with %q", got)
	}
}

// expectIQ reads the whole IQ whose id is id (self-closing or not).
func (c *rawClient) expectIQ(id string) string {
	c.t.Helper()
	got := c.expect(`id="` + id + `"`)
	rest := c.expect(">")
	if strings.HasSuffix(rest, "/>") {
		return got + rest
	}
	return got + rest + c.expect("</iq>")
}

func TestServerPingsIdleClients(t *testing.T) {
	s := startServer(t, serverOpts{extra: "[limits]\nidle_ping = \"10s\"\n"})
	s.addUser("idle@localhost", "pw")
	c := dialRaw(t, s.starttls)
	c.login("idle@localhost", "pw", "r")
	// Silence: after 10 s the server asks whether we are still there.
	c.wait = 25 * time.Second
	got := c.expect("<ping")
	if !strings.Contains(got, `type="get"`) || !strings.Contains(got, `id="parley-c2s-ping"`) {
		t.Fatalf("server ping: %s", got)
	}
	c.send("<iq type='result' id='parley-c2s-ping' to='localhost'/>")
	// Answered: the session lives on and works.
	c.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.expectIQ("p2"); !strings.Contains(r, `type="result"`) {
		t.Fatalf("after answering the server's ping: %s", r)
	}
}

func TestProfilerOnlyWhenEnabled(t *testing.T) {
	s := startServer(t, serverOpts{admin: true})
	if s.admin == "" {
		t.Fatal("no profiler address printed")
	}
	resp, err := http.Get("http://" + s.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("profiler answered %d: %.200s", resp.StatusCode, body)
	}
	if plain := startServer(t, serverOpts{}); plain.admin != "" {
		t.Fatal("profiler listening without [listen] admin")
	}
}
