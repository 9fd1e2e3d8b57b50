package s2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// fakeServer accepts connections on loopback and hands each to serve, on
// a goroutine the test waits for.
func fakeServer(t *testing.T, serve func(nc net.Conn, dec *xmlstream.Decoder)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				serve(nc, xmlstream.NewDecoder(nc, xmlstream.Limits{}))
			}()
		}
	}()
	return ln.Addr().String()
}

// answerHeader reads the initiator's header and answers with ours and
// the given features.
func answerHeader(nc net.Conn, dec *xmlstream.Decoder, from, to, features string) error {
	if _, err := dec.ReadHeader(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(nc, "%s<stream:features>%s</stream:features>", appendHeader(nil, from, to, "fake-id"), features)
	return err
}

// TestVerificationLimit: dialback verifications under way at once are
// bounded for the whole service, so that many streams cannot make it
// open as many connections; past the bound a db:result gets a dialback
// error at once.
func TestVerificationLimit(t *testing.T) {
	started := make(chan struct{}, 1)
	silent := fakeServer(t, func(nc net.Conn, dec *xmlstream.Decoder) {
		started <- struct{}{}
		dec.ReadHeader() // and never answer, until a hangs up
		dec.Next()
	})
	a := newNode(t, "a.test", func(c *Config) { c.MaxVerifications = 1 })
	b := newNode(t, "b.test", nil)
	a.cfg.Routes["silent.test"] = silent
	a.cfg.Routes["b.test"] = b.addr

	secured := func() *rawPeer {
		p := dialRaw(t, a)
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		p.starttls()
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		return p
	}
	first := secured()
	first.write("<db:result from='silent.test' to='a.test'>k</db:result>")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the first verification did not start")
	}
	second := secured()
	second.write("<db:result from='b.test' to='a.test'>k</db:result>")
	el, err := second.dec.Next()
	if err != nil || el.Name.Local != "result" || el.Attr("type") != "error" || el.Child(stanza.NSServer, "error") == nil ||
		el.Child(stanza.NSServer, "error").Child(stanza.NSStanzas, "resource-constraint") == nil {
		t.Fatalf("answer while verifications are all taken: %v %v", el, err)
	}
}

// TestVerificationShare: one peer address cannot take every place for
// verifications, however many streams it opens.
func TestVerificationShare(t *testing.T) {
	started := make(chan struct{}, 4)
	silent := fakeServer(t, func(nc net.Conn, dec *xmlstream.Decoder) {
		started <- struct{}{}
		dec.ReadHeader() // and never answer, until a hangs up
		dec.Next()
	})
	// 16 places: a share of 2 for each address.
	a := newNode(t, "a.test", func(c *Config) { c.MaxVerifications = 16 })
	a.cfg.Routes["silent.test"] = silent
	secured := func() *rawPeer {
		p := dialRaw(t, a)
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		p.starttls()
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		return p
	}
	for range 2 {
		secured().write("<db:result from='silent.test' to='a.test'>k</db:result>")
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("a verification did not start")
		}
	}
	third := secured()
	third.write("<db:result from='silent.test' to='a.test'>k</db:result>")
	el, err := third.dec.Next()
	if err != nil || el.Name.Local != "result" || el.Attr("type") != "error" || el.Child(stanza.NSServer, "error") == nil ||
		el.Child(stanza.NSServer, "error").Child(stanza.NSStanzas, "resource-constraint") == nil {
		t.Fatalf("answer past the address's share: %v %v", el, err)
	}
}

// TestResolveRefusesAddresses: a domain that is an IP address or a
// single label is never looked up or dialled without a route, since a
// peer names it in its db:result.
func TestResolveRefusesAddresses(t *testing.T) {
	a := newNode(t, "a.test", nil)
	a.cfg.Routes["10.9.8.7"] = "127.0.0.1:1"
	for _, d := range []string{"127.0.0.1", "[::1]", "169.254.169.254", "intranet"} {
		j, err := jid.New("", d, "")
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := a.svc.resolve(context.Background(), j.Domain())
		if !errors.Is(err, errNotFound) {
			t.Errorf("%s resolves to %v, %v", d, addrs, err)
		}
	}
	if addrs, err := a.svc.resolve(context.Background(), "10.9.8.7"); err != nil || len(addrs) != 1 || addrs[0] != "127.0.0.1:1" {
		t.Errorf("a routed address resolves to %v, %v", addrs, err)
	}
}

// TestOutgoingSTARTTLSInjection: bytes the peer (or anyone on the path)
// sends after <proceed/> are refused, not dropped and the handshake made.
func TestOutgoingSTARTTLSInjection(t *testing.T) {
	cert := testCert(t, "b.test")
	handshake := make(chan error, 1)
	addr := fakeServer(t, func(nc net.Conn, dec *xmlstream.Decoder) {
		if err := answerHeader(nc, dec, "b.test", "a.test", "<starttls xmlns='"+stanza.NSTLS+"'><required/></starttls>"); err != nil {
			handshake <- err
			return
		}
		if _, err := dec.Next(); err != nil {
			handshake <- err
			return
		}
		fmt.Fprintf(nc, "<proceed xmlns='%s'/><db:result from='b.test' to='a.test' type='valid'/>", stanza.NSTLS)
		tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}})
		handshake <- tc.Handshake()
	})
	a := newNode(t, "a.test", nil)
	a.cfg.Routes["b.test"] = addr
	send(a, message("alice@a.test/x", "bob@b.test", "injected"))
	if el := wait(t, a.bounced, "bounce"); condition(el) == "" {
		t.Fatalf("not an error: %s", el)
	}
	select {
	case err := <-handshake:
		if err == nil {
			t.Fatal("TLS was negotiated over injected data")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fake server did not finish")
	}
}

// TestIDNCertificate: an internationalised domain is checked against a
// certificate in its A-label form (RFC 6125 §6.4.2), and SNI carries the
// A-label, while the domain itself stays in the canonical Unicode form.
func TestIDNCertificate(t *testing.T) {
	cert := testCert(t, "xn--bcher-kva.test")
	domain := jid.MustParse("xn--bcher-kva.test").Domain()
	if domain != "bücher.test" {
		t.Fatalf("canonical domain %q", domain)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
	if !peerCertValid(cs, roots, domain) {
		t.Error("the certificate of bücher.test is not valid for it")
	}
	if peerCertValid(cs, roots, "other.test") {
		t.Error("the certificate of bücher.test is valid for other.test")
	}
	if sn := clientTLS(&Config{Cert: cert}, "local.test", domain).ServerName; sn != "xn--bcher-kva.test" {
		t.Errorf("server name %q", sn)
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogPrivacy: at info level and above no line names two domains of a
// conversation side by side, nor an IP address next to a domain.
func TestLogPrivacy(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := newNode(t, "a.test", func(c *Config) { c.Log = log })
	b := newNode(t, "b.test", func(c *Config) { c.Log = log })
	a.cfg.Routes["b.test"] = b.addr
	b.cfg.Routes["a.test"] = a.addr
	a.cfg.Routes["dead.test"] = "127.0.0.1:1"
	send(a, message("alice@a.test/x", "bob@b.test", "hi"))
	wait(t, b.routed, "stanza from a.test")
	send(a, message("alice@a.test/x", "bob@dead.test", "lost"))
	wait(t, a.bounced, "bounce for dead.test")
	// A dialback that cannot reach the authoritative server.
	p := dialRaw(t, b)
	p.open(streamHeader("dead.test", "b.test", "jabber:server"))
	p.starttls()
	p.open(streamHeader("dead.test", "b.test", "jabber:server"))
	p.write("<db:result from='dead.test' to='b.test'>k</db:result>")
	if el, err := p.dec.Next(); err != nil || el.Attr("type") != "error" {
		t.Fatalf("dialback answer %v %v", el, err)
	}
	p.write("</stream:stream>")
	p.dec.Next()

	out := logs.String()
	if !strings.Contains(out, "remote_domain=b.test") || !strings.Contains(out, "remote_domain=dead.test") {
		t.Fatalf("the streams were not logged:\n%s", out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		domains := 0
		for _, d := range []string{"a.test", "b.test", "dead.test"} {
			if strings.Contains(line, d) {
				domains++
			}
		}
		if domains > 1 || domains > 0 && strings.Contains(line, "127.0.0.1") {
			t.Errorf("log line: %s", line)
		}
	}
}

// TestShutdownDuringAuthentication: Stop coming while a stream
// authenticates is not undone by the idle deadline the authentication
// sets, so the restarted stream does not wait a whole idle timeout.
func TestShutdownDuringAuthentication(t *testing.T) {
	a := newNode(t, "a.test", func(c *Config) { c.IdleTimeout = time.Hour })
	client, server := net.Pipe()
	defer client.Close()
	c := newInConn(a.svc, server)
	c.local, c.remote = "a.test", "b.test"
	c.dec = xmlstream.NewDecoder(server, xmlstream.Limits{})
	c.shutdown()
	c.verify(pair{local: "a.test", remote: "b.test"}, "test")
	done := make(chan error, 1)
	go func() {
		_, err := c.dec.ReadHeader()
		done <- err
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read ended with %v", err)
		}
	case <-time.After(2 * time.Second):
		server.Close()
		t.Fatal("the stream waits for its header after Stop")
	}
}

// TestVerifyAnswerSpelling: the authoritative server's answer is matched
// on canonical domains, so another spelling of ours is not ignored until
// the timeout.
func TestVerifyAnswerSpelling(t *testing.T) {
	auth := fakeServer(t, func(nc net.Conn, dec *xmlstream.Decoder) {
		if err := answerHeader(nc, dec, "b.test", "a.test", ""); err != nil {
			return
		}
		el, err := dec.Next()
		if err != nil || el.Name.Local != "verify" {
			return
		}
		fmt.Fprintf(nc, "<db:verify from='B.Test' to='A.TEST' id='%s' type='valid'/>", el.Attr("id"))
		dec.Next()
	})
	a := newNode(t, "a.test", func(c *Config) { c.RequireEncryption = false; c.NegotiationTimeout = 3 * time.Second })
	a.cfg.Routes["b.test"] = auth
	ok, err := a.svc.verifyDialback(context.Background(), "a.test", "b.test", "S1", "key")
	if err != nil || !ok {
		t.Fatalf("verification: %v %v", ok, err)
	}
}

// TestDomainPairLimit: one incoming stream authenticates a bounded number
// of domain pairs; past it a db:result gets a dialback error, and no
// verification is made.
func TestDomainPairLimit(t *testing.T) {
	a := newNode(t, "a.test", func(c *Config) { c.MaxDomainPairs = 1 })
	b := newNode(t, "b.test", nil)
	a.cfg.Routes["b.test"] = b.addr
	p := dialRaw(t, a)
	p.open(streamHeader("b.test", "a.test", "jabber:server"))
	p.starttls()
	p.open(streamHeader("b.test", "a.test", "jabber:server"))
	for _, c := range []struct{ to, want string }{{"a.test", "valid"}, {"conference.a.test", "error"}} {
		done := b.svc.expectDialback(dialbackID{receiving: c.to, originating: "b.test", streamID: p.id})
		p.write("<db:result from='b.test' to='%s'>%s</db:result>", c.to, dialbackKey(b.cfg.Secret, c.to, "b.test", p.id))
		el, err := p.dec.Next()
		done()
		if err != nil || el.Name.Local != "result" || el.Attr("type") != c.want {
			t.Fatalf("dialback for %s: %v %v, want %s", c.to, el, err, c.want)
		}
	}
}

// TestDialbackForLocalDomain: a peer cannot ask to be verified as a
// domain we serve, in any spelling.
func TestDialbackForLocalDomain(t *testing.T) {
	a := newNode(t, "a.test", nil)
	for _, from := range []string{"a.test", "A.Test", "conference.a.test."} {
		p := dialRaw(t, a)
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		p.starttls()
		p.open(streamHeader("b.test", "a.test", "jabber:server"))
		p.write("<db:result from='%s' to='a.test'>k</db:result>", from)
		if got := p.streamError(); got != "invalid-from" {
			t.Errorf("%s: stream error %s", from, got)
		}
	}
}

// TestInboundTLSFloor: data sent after <starttls/> is refused (STARTTLS
// injection), and a peer limited to TLS 1.1 gets no TLS.
func TestInboundTLSFloor(t *testing.T) {
	a := newNode(t, "a.test", nil)
	p := dialRaw(t, a)
	p.open(streamHeader("b.test", "a.test", "jabber:server"))
	p.write("<starttls xmlns='%s'/><db:result from='b.test' to='a.test'>k</db:result>", stanza.NSTLS)
	if got := p.streamError(); got != "policy-violation" {
		t.Errorf("stream error %s", got)
	}

	p = dialRaw(t, a)
	p.open(streamHeader("b.test", "a.test", "jabber:server"))
	p.write("<starttls xmlns='%s'/>", stanza.NSTLS)
	if el, err := p.dec.Next(); err != nil || el.Name.Local != "proceed" {
		t.Fatalf("starttls: %v %v", el, err)
	}
	tc := tls.Client(p.nc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err := tc.Handshake(); err == nil {
		t.Fatalf("TLS %x accepted", tc.ConnectionState().Version)
	}
}

// TestUnauthenticatedPerAddress: one address cannot fill every place
// with streams that do not authenticate; one that authenticated no
// longer counts against it.
func TestUnauthenticatedPerAddress(t *testing.T) {
	a := newNode(t, "a.test", func(c *Config) { c.MaxStreams = 100 })
	b := newNode(t, "b.test", nil)
	a.cfg.Routes["b.test"] = b.addr
	share := a.svc.unauthShare()
	if share >= a.cfg.MaxStreams {
		t.Fatalf("share %d", share)
	}
	peers := make([]*rawPeer, share)
	for i := range peers {
		peers[i] = dialRaw(t, a)
		peers[i].open(streamHeader("b.test", "a.test", "jabber:server"))
	}
	refused := dialRaw(t, a)
	if _, err := refused.dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if got := refused.streamError(); got != "resource-constraint" {
		t.Fatalf("stream error %s", got)
	}
	// The first one authenticates: a new stream finds a place again.
	p := peers[0]
	p.starttls()
	p.open(streamHeader("b.test", "a.test", "jabber:server"))
	defer b.svc.expectDialback(dialbackID{receiving: "a.test", originating: "b.test", streamID: p.id})()
	p.write("<db:result from='b.test' to='a.test'>%s</db:result>", dialbackKey(b.cfg.Secret, "a.test", "b.test", p.id))
	if el, err := p.dec.Next(); err != nil || el.Attr("type") != "valid" {
		t.Fatalf("dialback: %v %v", el, err)
	}
	again := dialRaw(t, a)
	if f := again.open(streamHeader("b.test", "a.test", "jabber:server")); f.Name.Local != "features" {
		t.Fatalf("got %s", f)
	}
}

// TestOutgoingRequiresTLS: a peer that does not offer STARTTLS gets
// neither our dialback key nor a stanza in the clear when encryption is
// required; the stanza bounces.
func TestOutgoingRequiresTLS(t *testing.T) {
	got := make(chan string, 1)
	addr := fakeServer(t, func(nc net.Conn, dec *xmlstream.Decoder) {
		if err := answerHeader(nc, dec, "b.test", "a.test", "<dialback xmlns='urn:xmpp:features:dialback'/>"); err != nil {
			got <- err.Error()
			return
		}
		el, err := dec.Next()
		if err != nil {
			got <- ""
			return
		}
		got <- el.String()
	})
	a := newNode(t, "a.test", nil)
	a.cfg.Routes["b.test"] = addr
	send(a, message("alice@a.test/x", "bob@b.test", "secret"))
	if el := wait(t, a.bounced, "bounce"); condition(el) != "remote-server-timeout" {
		t.Fatalf("bounce %s", el)
	}
	select {
	case s := <-got:
		if strings.Contains(s, "result") || strings.Contains(s, "secret") {
			t.Fatalf("sent in the clear: %s", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fake server did not finish")
	}
}

// TestBounceConditionUnderChurn: stanzas for a domain whose streams fail
// at once all bounce with the condition of that failure, even when a new
// stream fails before the stanza that made it could be queued on it.
func TestBounceConditionUnderChurn(t *testing.T) {
	a := newNode(t, "a.test", nil)
	const senders, each = 4, 200
	for g := range senders {
		go func() {
			for i := range each {
				send(a, message("alice@a.test/x", "bob@b.localhost", fmt.Sprint(g, "-", i)))
			}
		}()
	}
	// Every bounce is taken, right or wrong, so that no sender is left
	// blocked on a full channel.
	wrong := 0
	for range senders * each {
		if el := wait(t, a.bounced, "bounce"); condition(el) != "remote-server-not-found" {
			if wrong++; wrong == 1 {
				t.Errorf("bounce %s", el)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d bounces with the wrong condition", wrong, senders*each)
	}
}

// TestLimitsReload: a stanza size lowered by SetLimits (a reload) holds
// for the streams opened after it.
func TestLimitsReload(t *testing.T) {
	b := newNode(t, "b.test", func(c *Config) { c.RequireEncryption = false })
	big := "<db:result from='a.test' to='b.test'>" + strings.Repeat("x", 3000) + "</db:result>"
	// try reads what the server answers within d.
	try := func(d time.Duration) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(d))
		io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>"+big)
		out, _ := io.ReadAll(c)
		return string(out)
	}
	if out := try(time.Second); strings.Contains(out, "too large") {
		t.Fatalf("refused before the limit was lowered: %s", out)
	}
	b.svc.SetLimits(xmlstream.Limits{MaxStanzaBytes: 1000})
	if out := try(5 * time.Second); !strings.Contains(out, "policy-violation") || !strings.Contains(out, "too large") {
		t.Fatalf("a stream opened after the limit was lowered got %q", out)
	}
}
