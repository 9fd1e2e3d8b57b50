package component

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

type fixture struct {
	svc  *Service
	addr string

	mu      sync.Mutex
	routed  []*xmlstream.Element
	bounced []*xmlstream.Element
	changed chan struct{}
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	f := &fixture{changed: make(chan struct{}, 100)}
	cfg := &Config{
		Components:       []Spec{{Domain: "irc.example.org", Secret: "s3cret"}, {Domain: "other.irc.example.org", Secret: "x"}},
		ServerDomain:     "example.org",
		Route:            func(_ context.Context, el *xmlstream.Element) { f.add(&f.routed, el) },
		Bounce:           func(_ context.Context, el *xmlstream.Element) { f.add(&f.bounced, el) },
		Limits:           xmlstream.Limits{MaxStanzaBytes: 10000},
		HandshakeTimeout: 5 * time.Second,
		ProbeTimeout:     500 * time.Millisecond,
		Log:              slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(cfg)
	}
	f.svc = New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go f.svc.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.svc.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return f
}

func (f *fixture) add(list *[]*xmlstream.Element, el *xmlstream.Element) {
	f.mu.Lock()
	*list = append(*list, el)
	f.mu.Unlock()
	f.changed <- struct{}{}
}

// wait returns the n-th element of list once it is there.
func (f *fixture) wait(t *testing.T, list *[]*xmlstream.Element, n int) *xmlstream.Element {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		if len(*list) > n {
			el := (*list)[n]
			f.mu.Unlock()
			return el
		}
		f.mu.Unlock()
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatal("nothing arrived")
		}
	}
}

// peer is a scripted component.
type peer struct {
	t   *testing.T
	nc  net.Conn
	dec *xmlstream.Decoder
	id  string
}

func dial(t *testing.T, f *fixture, domain string) *peer {
	t.Helper()
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	p := &peer{t: t, nc: nc, dec: xmlstream.NewDecoder(nc, xmlstream.Limits{})}
	p.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>")
	h, err := p.dec.ReadHeader()
	if err != nil {
		t.Fatalf("reading the header: %v", err)
	}
	for _, a := range h.Attrs {
		if a.Name.Local == "id" {
			p.id = a.Value
		}
	}
	return p
}

func (p *peer) send(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.nc, s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) next() *xmlstream.Element {
	p.t.Helper()
	el, err := p.dec.Next()
	if err != nil {
		p.t.Fatalf("reading: %v", err)
	}
	return el
}

// streamError reads until a stream error and returns its condition.
func (p *peer) streamError() string {
	p.t.Helper()
	for {
		el, err := p.dec.Next()
		if err != nil {
			p.t.Fatalf("no stream error before %v", err)
		}
		if el.Name.Space == stanza.NSStream && el.Name.Local == "error" {
			return el.FirstElement().Name.Local
		}
	}
}

func connect(t *testing.T, f *fixture) *peer {
	t.Helper()
	p := dial(t, f, "irc.example.org")
	p.send("<handshake>" + handshakeDigest(p.id, "s3cret") + "</handshake>")
	if el := p.next(); el.Name.Local != "handshake" || el.Name.Space != NS {
		t.Fatalf("handshake answered with %s", el)
	}
	return p
}

func TestHandshakeDigest(t *testing.T) {
	if got := handshakeDigest("abc", "def"); got != "1f8ac10f23c5b5bc1167bda84b833e5c057a77d2" {
		t.Fatalf("digest %s, want sha1(\"abcdef\")", got)
	}
	if !handshakeValid(" 1F8AC10F23C5B5BC1167BDA84B833E5C057A77D2 ", "abc", "def") {
		t.Fatal("an uppercase digest is refused")
	}
	if handshakeValid("1f8ac10f23c5b5bc1167bda84b833e5c057a77d3", "abc", "def") {
		t.Fatal("a wrong digest is accepted")
	}
}

func TestRoutingBothWays(t *testing.T) {
	f := newFixture(t, nil)
	p := connect(t, f)
	if !f.svc.Connected("irc.example.org") {
		t.Fatal("not connected after the handshake")
	}
	h := f.svc.Handler("irc.example.org")
	from, to := jid.MustParse("alice@example.org/phone"), jid.MustParse("#chan%irc@irc.example.org")
	msg := xmlstream.New(stanza.NSClient, "message", "from", from.String(), "to", to.String(), "type", "chat")
	msg.AddChild(xmlstream.New(stanza.NSClient, "body").AddText("hi"))
	h(context.Background(), from, to, msg)
	got := p.next()
	if got.Name.Space != NS || got.Name.Local != "message" || got.Attr("from") != from.String() || got.Child(NS, "body").Text() != "hi" {
		t.Fatalf("component got %s", got)
	}
	// From a subdomain's JID, back to a user.
	p.send("<message from='bot@sub.irc.example.org/x' to='alice@example.org'><body>yo</body></message>")
	el := f.wait(t, &f.routed, 0)
	if el.Name.Space != stanza.NSClient || el.Child(stanza.NSClient, "body").Text() != "yo" || el.Attr("from") != "bot@sub.irc.example.org/x" {
		t.Fatalf("routed %s", el)
	}
}

func TestForgedFromIsRefused(t *testing.T) {
	for _, from := range []string{"alice@example.org", "evilirc.example.org", "", "example.org", "x@other.irc.example.org", "a.other.irc.example.org"} {
		t.Run(from, func(t *testing.T) {
			f := newFixture(t, nil)
			p := connect(t, f)
			attr := ""
			if from != "" {
				attr = " from='" + from + "'"
			}
			p.send("<message" + attr + " to='alice@example.org'><body>x</body></message>")
			if c := p.streamError(); c != "invalid-from" {
				t.Fatalf("got %s, want invalid-from", c)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.routed) != 0 {
				t.Fatal("a forged stanza was routed")
			}
		})
	}
}

func TestWrongSecretAndUnknownDomain(t *testing.T) {
	f := newFixture(t, nil)
	p := dial(t, f, "irc.example.org")
	p.send("<handshake>" + handshakeDigest(p.id, "wrong") + "</handshake>")
	if c := p.streamError(); c != "not-authorized" {
		t.Fatalf("wrong secret: %s", c)
	}
	if f.svc.Connected("irc.example.org") {
		t.Fatal("connected with a wrong secret")
	}
	p = dial(t, f, "other.example.org")
	if c := p.streamError(); c != "host-unknown" {
		t.Fatalf("unknown domain: %s", c)
	}
	// A stanza before the handshake is not taken.
	p = dial(t, f, "irc.example.org")
	p.send("<message from='irc.example.org' to='alice@example.org'/>")
	if c := p.streamError(); c != "not-authorized" {
		t.Fatalf("stanza before handshake: %s", c)
	}
}

func TestNotConnectedBounces(t *testing.T) {
	f := newFixture(t, nil)
	from, to := jid.MustParse("alice@example.org/phone"), jid.MustParse("irc.example.org")
	iq := xmlstream.New(stanza.NSClient, "iq", "from", from.String(), "to", to.String(), "type", "get", "id", "1")
	iq.AddChild(xmlstream.New("http://jabber.org/protocol/disco#info", "query"))
	f.svc.Handler("irc.example.org")(context.Background(), from, to, iq)
	el := f.wait(t, &f.bounced, 0)
	if el.Attr("type") != "error" || el.Attr("to") != from.String() || !strings.Contains(el.String(), "service-unavailable") {
		t.Fatalf("bounce %s", el)
	}
}

func TestSecondLiveStreamGetsConflict(t *testing.T) {
	f := newFixture(t, nil)
	first := connect(t, f)
	// The first answers the liveness ping.
	go func() {
		for {
			el, err := first.dec.Next()
			if err != nil {
				return
			}
			if el.Name.Local == "iq" && el.Attr("type") == "get" {
				io.WriteString(first.nc, "<iq type='result' id='"+el.Attr("id")+"' from='irc.example.org' to='"+el.Attr("from")+"'/>")
			}
		}
	}()
	second := dial(t, f, "irc.example.org")
	second.send("<handshake>" + handshakeDigest(second.id, "s3cret") + "</handshake>")
	if c := second.streamError(); c != "conflict" {
		t.Fatalf("second stream: %s", c)
	}
	if !f.svc.Connected("irc.example.org") {
		t.Fatal("the first stream lost its domain")
	}
}

func TestSilentStreamIsReplaced(t *testing.T) {
	f := newFixture(t, nil)
	first := connect(t, f) // never reads or answers again
	second := connect(t, f)
	if c := first.streamError(); c != "conflict" {
		t.Fatalf("replaced stream: %s", c)
	}
	h := f.svc.Handler("irc.example.org")
	from, to := jid.MustParse("alice@example.org/phone"), jid.MustParse("irc.example.org")
	h(context.Background(), from, to, xmlstream.New(stanza.NSClient, "message", "from", from.String(), "to", to.String()))
	for {
		el := second.next()
		if el.Name.Local == "message" {
			break
		}
	}
}

func TestHandshakeTimeoutAndPreauthLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.PreauthPerAddress = 1
	})
	p := dial(t, f, "irc.example.org")
	// The one place of this address is taken: the next is refused.
	q, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(q)
	if !strings.Contains(string(b), "policy-violation") {
		t.Fatalf("second unauthenticated connection got %q", b)
	}
	if c := p.streamError(); c != "connection-timeout" {
		t.Fatalf("silent handshake: %s", c)
	}
}

func TestOversizedStanza(t *testing.T) {
	f := newFixture(t, nil)
	p := connect(t, f)
	p.send("<message from='irc.example.org' to='alice@example.org'><body>" + strings.Repeat("x", 20000) + "</body></message>")
	if c := p.streamError(); c != "policy-violation" {
		t.Fatalf("oversized stanza: %s", c)
	}
}

// TestClusterAnnounce: in a cluster the domain is announced once the
// handshake is valid, a refusal by the other nodes ends the stream with
// the error they give (and the domain stays free here), and a stream
// that ends withdraws its domain.
func TestClusterAnnounce(t *testing.T) {
	var mu sync.Mutex
	var events []string
	refuse := false
	withdrawn := make(chan struct{}, 1)
	f := newFixture(t, nil)
	f.svc.SetCluster(func(_ context.Context, d string) error {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "announce "+d)
		if refuse {
			return stream.Conflict("connected to another node")
		}
		return nil
	}, func(_ context.Context, d string) {
		mu.Lock()
		events = append(events, "withdraw "+d)
		mu.Unlock()
		withdrawn <- struct{}{}
	})
	p := connect(t, f)
	p.send("</stream:stream>")
	select {
	case <-withdrawn:
	case <-time.After(5 * time.Second):
		t.Fatal("the domain was not withdrawn when its stream ended")
	}

	mu.Lock()
	refuse = true
	mu.Unlock()
	p = dial(t, f, "irc.example.org")
	p.send("<handshake>" + handshakeDigest(p.id, "s3cret") + "</handshake>")
	if c := p.streamError(); c != "conflict" {
		t.Fatalf("refused announcement ended the stream with %q", c)
	}
	if f.svc.Connected("irc.example.org") {
		t.Fatal("a component the other nodes refused holds the domain here")
	}
	mu.Lock()
	defer mu.Unlock()
	want := "announce irc.example.org,withdraw irc.example.org,announce irc.example.org"
	if got := strings.Join(events, ","); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}
