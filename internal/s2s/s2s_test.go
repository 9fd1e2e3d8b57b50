package s2s

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/tlsconf"
	"parley/internal/xmlstream"
)

func TestDialbackKey(t *testing.T) {
	// The example of XEP-0185 §3.
	got := dialbackKey([]byte("s3cr3tf0rd14lb4ck"), "xmpp.example.com", "example.org", "D60000229F")
	if want := "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"; got != want {
		t.Fatalf("key = %s, want %s", got, want)
	}
	secret := []byte("secret")
	key := dialbackKey(secret, "b.test", "a.test", "id1")
	if !verifyDialbackKey(secret, "b.test", "a.test", "id1", key) {
		t.Fatal("a key does not verify")
	}
	for _, c := range []struct{ secret, recv, orig, id string }{
		{"other", "b.test", "a.test", "id1"},
		{"secret", "c.test", "a.test", "id1"},
		{"secret", "b.test", "c.test", "id1"},
		{"secret", "b.test", "a.test", "id2"},
		{"secret", "a.test", "b.test", "id1"}, // the roles swapped
		{"secret", "b.test", "a.test", ""},
	} {
		if verifyDialbackKey([]byte(c.secret), c.recv, c.orig, c.id, key) {
			t.Errorf("key verifies for %+v", c)
		}
	}
}

// node is one Service in a test, listening on loopback.
type node struct {
	domain  string
	svc     *Service
	addr    string
	cfg     *Config
	routed  chan *xmlstream.Element
	bounced chan *xmlstream.Element
}

func testCert(t *testing.T, domain string) tls.Certificate {
	t.Helper()
	c, err := tlsconf.Load("", "", t.TempDir(), []string{domain})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newNode starts a Service for domain; routes may be filled in until the
// first stanza is sent.
func newNode(t *testing.T, domain string, mod func(*Config)) *node {
	t.Helper()
	n := &node{domain: domain, routed: make(chan *xmlstream.Element, 16), bounced: make(chan *xmlstream.Element, 16)}
	n.cfg = &Config{
		IsLocal: func(d string) bool { return d == domain || d == "conference."+domain },
		Route:   func(_ context.Context, el *xmlstream.Element) { n.routed <- el },
		Bounce:  func(_ context.Context, el *xmlstream.Element) { n.bounced <- el },
		Cert:    testCert(t, domain),
		Roots:   x509.NewCertPool(),
		Routes:  map[string]string{},
		Secret:  []byte("secret of " + domain),

		RequireEncryption:  true,
		NegotiationTimeout: 5 * time.Second,
		IdleTimeout:        time.Minute,
		MaxStreams:         10,
		Log:                slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(n.cfg)
	}
	n.svc = New(n.cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.svc.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.svc.Stop(ctx); err != nil {
			buf := make([]byte, 1<<20)
			t.Errorf("Stop: %v\n%s", err, buf[:runtime.Stack(buf, true)])
		}
		<-done
	})
	return n
}

func wait(t *testing.T, ch chan *xmlstream.Element, what string) *xmlstream.Element {
	t.Helper()
	select {
	case el := <-ch:
		return el
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		return nil
	}
}

func message(from, to, body string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "from", from, "to", to, "type", "chat", "id", "m-"+body)
	m.AddChild(xmlstream.New(stanza.NSClient, "body").AddText(body))
	return m
}

func send(n *node, el *xmlstream.Element) {
	n.svc.Send(context.Background(), jid.MustParse(el.Attr("from")), jid.MustParse(el.Attr("to")), el)
}

func condition(el *xmlstream.Element) string {
	e := el.Child(stanza.NSClient, "error")
	if el.Attr("type") != "error" || e == nil || e.FirstElement() == nil {
		return ""
	}
	return e.FirstElement().Name.Local
}

// TestFederationDialback: two services with self-signed certificates
// exchange stanzas both ways, authenticated by dialback; the stanzas
// arrive in jabber:client, in order.
func TestFederationDialback(t *testing.T) {
	a := newNode(t, "a.test", nil)
	b := newNode(t, "b.test", nil)
	a.cfg.Routes["b.test"] = b.addr
	b.cfg.Routes["a.test"] = a.addr
	for i := range 3 {
		send(a, message("alice@a.test/x", "bob@b.test", fmt.Sprint("hi", i)))
	}
	for i := range 3 {
		el := wait(t, b.routed, "stanza from a.test")
		body := el.Child(stanza.NSClient, "body")
		if el.Name.Space != stanza.NSClient || body == nil || body.Text() != fmt.Sprint("hi", i) || el.Attr("from") != "alice@a.test/x" {
			t.Fatalf("stanza %d arrived as %s", i, el)
		}
	}
	send(b, message("bob@b.test/y", "alice@a.test/x", "back"))
	if el := wait(t, a.routed, "stanza from b.test"); el.Attr("to") != "alice@a.test/x" {
		t.Fatalf("arrived as %s", el)
	}
	// A service domain of a.test gets its own stream, verified by
	// dialback against the same server.
	b.cfg.Routes["conference.a.test"] = a.addr
	send(a, message("room@conference.a.test/nick", "bob@b.test", "from the room"))
	if el := wait(t, b.routed, "stanza from the room"); el.Attr("from") != "room@conference.a.test/nick" {
		t.Fatalf("arrived as %s", el)
	}
	select {
	case el := <-a.bounced:
		t.Fatalf("bounced: %s", el)
	default:
	}
}

// TestFederationExternal: when each trusts the other's certificate, SASL
// EXTERNAL is used and dialback is not needed (even refused).
func TestFederationExternal(t *testing.T) {
	ca := testCert(t, "a.test")
	cb := testCert(t, "b.test")
	trust := func(c tls.Certificate) func(*Config) {
		return func(cfg *Config) {
			cfg.Roots = x509.NewCertPool()
			cfg.Roots.AddCert(c.Leaf)
			cfg.RequireValidCertificates = true
		}
	}
	a := newNode(t, "a.test", func(c *Config) { trust(cb)(c); c.Cert = ca })
	b := newNode(t, "b.test", func(c *Config) { trust(ca)(c); c.Cert = cb })
	a.cfg.Routes["b.test"] = b.addr
	b.cfg.Routes["a.test"] = a.addr
	send(a, message("alice@a.test/x", "bob@b.test", "by certificate"))
	wait(t, b.routed, "stanza authenticated by certificate")

	// A server whose certificate b does not trust is refused when b
	// requires valid certificates.
	c := newNode(t, "c.test", nil)
	c.cfg.Routes["b.test"] = b.addr
	send(c, message("carol@c.test/x", "bob@b.test", "untrusted"))
	if el := wait(t, c.bounced, "bounce"); condition(el) == "" {
		t.Fatalf("not an error: %s", el)
	}
}

// TestBounceOnConnectionFailure: stanzas waiting for a stream that
// cannot be made are answered with errors, not dropped; errors are not
// answered.
func TestBounceOnConnectionFailure(t *testing.T) {
	// Port 1 (tcpmux) refuses connections: nobody serves it, and a test
	// cannot bind it, unlike a freed port that a later listener may get.
	closed := "127.0.0.1:1"
	// A server that accepts but never says a word.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	a := newNode(t, "a.test", func(c *Config) { c.NegotiationTimeout = 300 * time.Millisecond })
	a.cfg.Routes["dead.test"] = closed
	a.cfg.Routes["silent.test"] = silent.Addr().String()

	for _, c := range []struct{ domain, condition string }{
		{"dead.test", "remote-server-not-found"},
		{"nowhere.invalid", "remote-server-not-found"},
		{"b.localhost", "remote-server-not-found"},
		{"silent.test", "remote-server-timeout"},
	} {
		for i := range 3 {
			send(a, message("alice@a.test/x", "bob@"+c.domain, fmt.Sprint(i)))
		}
		errMsg := message("alice@a.test/x", "bob@"+c.domain, "e")
		errMsg.SetAttr("type", "error")
		send(a, errMsg)
		for range 3 {
			el := wait(t, a.bounced, "bounce for "+c.domain)
			if condition(el) != c.condition || el.Attr("to") != "alice@a.test/x" || el.Attr("from") != "bob@"+c.domain {
				t.Errorf("%s: bounce %s", c.domain, el)
			}
		}
		select {
		case el := <-a.bounced:
			t.Errorf("%s: an error was answered: %s", c.domain, el)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rawPeer is a fake server speaking to a node's listener by hand.
type rawPeer struct {
	t   *testing.T
	nc  net.Conn
	dec *xmlstream.Decoder
	id  string
}

func dialRaw(t *testing.T, n *node) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{t: t, nc: nc, dec: xmlstream.NewDecoder(nc, xmlstream.Limits{})}
}

func (p *rawPeer) write(format string, args ...any) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.nc, format, args...); err != nil {
		p.t.Fatal(err)
	}
}

// open sends a header and reads the answer and the features.
func (p *rawPeer) open(header string) *xmlstream.Element {
	p.t.Helper()
	p.write("%s", header)
	h, err := p.dec.ReadHeader()
	if err != nil {
		p.t.Fatalf("reading the header: %v", err)
	}
	for _, a := range h.Attrs {
		if a.Name.Local == "id" {
			p.id = a.Value
		}
	}
	el, err := p.dec.Next()
	if err != nil {
		p.t.Fatalf("reading the features: %v", err)
	}
	return el
}

func (p *rawPeer) starttls() {
	p.t.Helper()
	p.write("<starttls xmlns='%s'/>", stanza.NSTLS)
	if el, err := p.dec.Next(); err != nil || el.Name.Local != "proceed" {
		p.t.Fatalf("starttls: %v %v", el, err)
	}
	tc := tls.Client(p.nc, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		p.t.Fatal(err)
	}
	p.nc = tc
	p.dec.Reset(tc)
}

// streamError reads until the stream error and returns its condition.
func (p *rawPeer) streamError() string {
	p.t.Helper()
	for {
		el, err := p.dec.Next()
		if err != nil {
			p.t.Fatalf("no stream error, but %v", err)
		}
		if el.Name.Space == stanza.NSStream && el.Name.Local == "error" {
			return streamErrorCondition(el)
		}
	}
}

func streamHeader(from, to, ns string) string {
	return fmt.Sprintf("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' from='%s' to='%s'>", ns, from, to)
}

// TestInboundNegotiation drives the listener with a fake peer through the
// rules of RFC 6120 and XEP-0220.
func TestInboundNegotiation(t *testing.T) {
	a := newNode(t, "a.test", nil)
	b := newNode(t, "b.test", nil) // the fake peer's authoritative server
	a.cfg.Routes["b.test"] = b.addr

	errorAfterHeader := func(t *testing.T, hdr, want string) {
		p := dialRaw(t, a)
		p.write("%s", hdr)
		if _, err := p.dec.ReadHeader(); err != nil {
			t.Fatalf("no header before the error: %v", err)
		}
		if got := p.streamError(); got != want {
			t.Errorf("stream error %s, want %s", got, want)
		}
	}
	t.Run("client namespace", func(t *testing.T) {
		errorAfterHeader(t, streamHeader("b.test", "a.test", "jabber:client"), "invalid-namespace")
	})
	t.Run("unknown to", func(t *testing.T) {
		errorAfterHeader(t, streamHeader("b.test", "other.test", "jabber:server"), "host-unknown")
	})
	t.Run("from a local domain", func(t *testing.T) {
		errorAfterHeader(t, streamHeader("a.test", "a.test", "jabber:server"), "invalid-from")
	})
	t.Run("no version", func(t *testing.T) {
		errorAfterHeader(t, strings.Replace(streamHeader("b.test", "a.test", "jabber:server"), " version='1.0'", "", 1), "unsupported-version")
	})
	t.Run("dialback before TLS", func(t *testing.T) {
		p := dialRaw(t, a)
		f := p.open(streamHeader("b.test", "a.test", "jabber:server"))
		if f.Child(stanza.NSTLS, "starttls") == nil || f.Child(stanza.NSTLS, "starttls").Child(stanza.NSTLS, "required") == nil {
			t.Fatalf("features before TLS: %s", f)
		}
		if f.Child(nsDialbackFeature, "dialback") != nil {
			t.Fatalf("dialback offered before TLS: %s", f)
		}
		p.write("<db:result from='b.test' to='a.test'>abc</db:result>")
		if got := p.streamError(); got != "policy-violation" {
			t.Errorf("stream error %s", got)
		}
	})

	// secured opens a TLS stream as b.test and authenticates by dialback
	// with b's real key, verified by b.
	secured := func(t *testing.T) *rawPeer {
		p := dialRaw(t, a)
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		p.starttls()
		f := p.open(streamHeader("b.test", "a.test", "jabber:server"))
		if f.Child(nsDialbackFeature, "dialback") == nil {
			t.Fatalf("no dialback offered after TLS: %s", f)
		}
		return p
	}
	t.Run("stanza before authentication", func(t *testing.T) {
		p := secured(t)
		p.write("<message from='bob@b.test' to='alice@a.test'><body>x</body></message>")
		if got := p.streamError(); got != "not-authorized" {
			t.Errorf("stream error %s", got)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		p := secured(t)
		p.write("<db:result from='b.test' to='a.test'>%s</db:result>", dialbackKey([]byte("guess"), "a.test", "b.test", p.id))
		el, err := p.dec.Next()
		if err != nil || el.Name.Local != "result" || el.Attr("type") != "invalid" {
			t.Fatalf("answer to a wrong key: %v %v", el, err)
		}
		p.write("<message from='bob@b.test' to='alice@a.test'><body>x</body></message>")
		if got := p.streamError(); got != "not-authorized" {
			t.Errorf("stream error %s", got)
		}
	})
	authenticated := func(t *testing.T) *rawPeer {
		p := secured(t)
		// b confirms only a key one of its streams waits for.
		defer b.svc.expectDialback(dialbackID{receiving: "a.test", originating: "b.test", streamID: p.id})()
		p.write("<db:result from='b.test' to='a.test'>%s</db:result>", dialbackKey(b.cfg.Secret, "a.test", "b.test", p.id))
		el, err := p.dec.Next()
		if err != nil || el.Name.Local != "result" || el.Attr("type") != "valid" {
			t.Fatalf("answer to the right key: %v %v", el, err)
		}
		return p
	}
	t.Run("verified", func(t *testing.T) {
		p := authenticated(t)
		p.write("<message from='bob@b.test/r' to='alice@a.test' type='chat'><body>hello</body></message>")
		el := wait(t, a.routed, "routed stanza")
		if el.Name.Space != stanza.NSClient || el.Child(stanza.NSClient, "body") == nil || el.Attr("from") != "bob@b.test/r" {
			t.Fatalf("routed %s", el)
		}
		// An IQ without an id is answered with an error, the stream stays.
		p.write("<iq from='bob@b.test/r' to='a.test' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
		if el := wait(t, a.bounced, "error for a bad IQ"); condition(el) != "bad-request" {
			t.Fatalf("bad IQ answered with %s", el)
		}
		p.write("</stream:stream>")
	})
	for _, c := range []struct{ name, stanza, want string }{
		{"unverified from", "<message from='mallory@c.test' to='alice@a.test'><body>x</body></message>", "invalid-from"},
		{"to elsewhere", "<message from='bob@b.test' to='carol@c.test'><body>x</body></message>", "host-unknown"},
		{"no to", "<message from='bob@b.test'><body>x</body></message>", "improper-addressing"},
		{"no from", "<message to='alice@a.test'><body>x</body></message>", "improper-addressing"},
		{"not a stanza", "<foo xmlns='urn:x'/>", "unsupported-stanza-type"},
		// b.test proved itself towards a.test only: another of our
		// domains is another pair, with its own dialback (XEP-0220 §4).
		{"pair not verified", "<message from='bob@b.test' to='room@conference.a.test'><body>x</body></message>", "invalid-from"},
		{"subdomain of the verified domain", "<message from='bob@x.b.test' to='alice@a.test'><body>x</body></message>", "invalid-from"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := authenticated(t)
			p.write("%s", c.stanza)
			if got := p.streamError(); got != c.want {
				t.Errorf("stream error %s, want %s", got, c.want)
			}
		})
	}
	t.Run("spellings of the verified pair", func(t *testing.T) {
		p := authenticated(t)
		p.write("<message from='bob@B.TEST/r' to='alice@A.Test.' type='chat'><body>case</body></message>")
		if el := wait(t, a.routed, "routed stanza"); el.Attr("from") != "bob@b.test/r" || el.Attr("to") != "alice@a.test" {
			t.Fatalf("routed %s", el)
		}
	})
	t.Run("new target pair is verified again", func(t *testing.T) {
		p := authenticated(t)
		p.write("<db:result from='b.test' to='conference.a.test'>not-a-key</db:result>")
		el, err := p.dec.Next()
		if err != nil || el.Name.Local != "result" || el.Attr("type") != "invalid" || el.Attr("from") != "conference.a.test" {
			t.Fatalf("answer to a wrong key for a new pair: %v %v", el, err)
		}
	})
	t.Run("failed dialbacks are bounded", func(t *testing.T) {
		p := secured(t)
		for range maxDialbackFailures {
			p.write("<db:result from='b.test' to='a.test'>not-a-key</db:result>")
			if el, err := p.dec.Next(); err != nil || el.Attr("type") != "invalid" {
				t.Fatalf("answer to a wrong key: %v %v", el, err)
			}
		}
		p.write("<db:result from='b.test' to='a.test'>not-a-key</db:result>")
		if got := p.streamError(); got != "policy-violation" {
			t.Errorf("stream error %s", got)
		}
	})
	t.Run("no dialback to an address", func(t *testing.T) {
		p := secured(t)
		p.write("<db:result from='127.0.0.1' to='a.test'>k</db:result>")
		el, err := p.dec.Next()
		if err != nil || el.Name.Local != "result" || el.Attr("type") != "error" {
			t.Fatalf("answer to dialback for an IP address: %v %v", el, err)
		}
	})
	t.Run("answers db:verify", func(t *testing.T) {
		p := secured(t)
		key := dialbackKey(a.cfg.Secret, "b.test", "a.test", "S1")
		done := a.svc.expectDialback(dialbackID{receiving: "b.test", originating: "a.test", streamID: "S1"})
		p.write("<db:verify from='b.test' to='a.test' id='S1'>%s</db:verify>", key)
		p.write("<db:verify from='b.test' to='a.test' id='S2'>%s</db:verify>", key)
		// Another spelling of the same domains is the same request.
		p.write("<db:verify from='B.Test' to='A.TEST.' id='S1'>%s</db:verify>", key)
		for _, want := range []string{"valid", "invalid", "valid"} {
			el, err := p.dec.Next()
			if err != nil || el.Name.Local != "verify" || el.Attr("type") != want || el.Attr("from") != "a.test" || el.Attr("to") != "b.test" {
				t.Fatalf("verify answer %v %v, want %s", el, err, want)
			}
		}
		// Once no stream of a.test waits for that dialback, the same
		// right key is unsolicited and not confirmed (XEP-0220 §5.1).
		done()
		p.write("<db:verify from='b.test' to='a.test' id='S1'>%s</db:verify>", key)
		for _, want := range []string{"invalid"} {
			el, err := p.dec.Next()
			if err != nil || el.Name.Local != "verify" || el.Attr("type") != want || el.Attr("from") != "a.test" || el.Attr("to") != "b.test" {
				t.Fatalf("verify answer %v %v, want %s", el, err, want)
			}
		}
	})
	select {
	case el := <-a.routed:
		t.Fatalf("a stanza from a refused stream was routed: %s", el)
	default:
	}
}

// TestIncomingLimit: streams past MaxStreams are refused at once.
func TestIncomingLimit(t *testing.T) {
	a := newNode(t, "a.test", func(c *Config) { c.MaxStreams = 1 })
	first := dialRaw(t, a)
	first.open(streamHeader("b.test", "a.test", "jabber:server"))
	second := dialRaw(t, a)
	if _, err := second.dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if got := second.streamError(); got != "resource-constraint" {
		t.Errorf("stream error %s", got)
	}
}

// FuzzInboundStream feeds arbitrary bytes to an incoming stream: it must
// end with a stream error or a close, never panic or hang, and never
// route anything (nothing can authenticate without a verifier).
func FuzzInboundStream(f *testing.F) {
	for _, s := range []string{
		streamHeader("b.test", "a.test", "jabber:server"),
		streamHeader("b.test", "a.test", "jabber:server") + "<db:result from='b.test' to='a.test'>k</db:result>",
		streamHeader("b.test", "a.test", "jabber:server") + "<db:verify from='b.test' to='a.test' id='x'>k</db:verify>",
		streamHeader("b.test", "a.test", "jabber:server") + "<message from='b@b.test' to='a@a.test'/>",
		streamHeader("b.test", "a.test", "jabber:server") + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		streamHeader("b.test", "a.test", "jabber:server") + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
		"<?xml version='1.0'?><stream:stream xmlns='jabber:server'>",
		"</stream:stream>",
	} {
		f.Add([]byte(s))
	}
	var routed sync.Mutex
	cfg := &Config{
		IsLocal:            func(d string) bool { return d == "a.test" },
		Route:              func(context.Context, *xmlstream.Element) { routed.Lock(); defer routed.Unlock(); f.Error("routed") },
		Bounce:             func(context.Context, *xmlstream.Element) {},
		Secret:             []byte("s"),
		Routes:             map[string]string{"b.test": "127.0.0.1:1"},
		NegotiationTimeout: time.Second,
		IdleTimeout:        time.Second,
		MaxStreams:         1,
		Log:                slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		svc := New(cfg)
		defer svc.Stop(context.Background())
		client, server := net.Pipe()
		c := newInConn(svc, server)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve()
		}()
		go io.Copy(io.Discard, bufio.NewReader(client))
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the stream did not end")
		}
	})
}

// TestOutgoingLimit: a stanza that would open one stream too many is
// bounced at once, while the open stream keeps its queue.
func TestOutgoingLimit(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	a := newNode(t, "a.test", func(c *Config) { c.MaxStreams = 1; c.NegotiationTimeout = time.Second })
	a.cfg.Routes["silent.test"] = silent.Addr().String()
	a.cfg.Routes["other.test"] = silent.Addr().String()
	send(a, message("alice@a.test/x", "bob@silent.test", "waits"))
	send(a, message("alice@a.test/x", "bob@other.test", "one too many"))
	if el := wait(t, a.bounced, "bounce"); condition(el) != "resource-constraint" || el.Attr("from") != "bob@other.test" {
		t.Fatalf("bounce %s", el)
	}
	if el := wait(t, a.bounced, "bounce after the timeout"); condition(el) != "remote-server-timeout" || el.Attr("from") != "bob@silent.test" {
		t.Fatalf("bounce %s", el)
	}
}

// TestPeerClosesIdleStream: when the peer ends an idle stream first, the
// next stanza opens a new one.
func TestPeerClosesIdleStream(t *testing.T) {
	a := newNode(t, "a.test", nil)
	b := newNode(t, "b.test", func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	a.cfg.Routes["b.test"] = b.addr
	b.cfg.Routes["a.test"] = a.addr
	send(a, message("alice@a.test/x", "bob@b.test", "first"))
	wait(t, b.routed, "first stanza")
	time.Sleep(600 * time.Millisecond) // b closes the idle incoming stream
	send(a, message("alice@a.test/x", "bob@b.test", "second"))
	if el := wait(t, b.routed, "second stanza"); el.Child(stanza.NSClient, "body").Text() != "second" {
		t.Fatalf("got %s", el)
	}
	select {
	case el := <-a.bounced:
		t.Fatalf("bounced: %s", el)
	default:
	}
}
