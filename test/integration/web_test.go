package integration

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient speaks RFC 7395 by hand: one frame per element.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialWS(t *testing.T, url string, hdr http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: hdr, Subprotocols: []string{"xmpp"}})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t: t, ws: ws}, resp, nil
}

func mustDialWS(t *testing.T, url string) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	if p := c.ws.Subprotocol(); p != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", p)
	}
	return c
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, quotes normalised to ".
func (c *wsClient) next() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("binary frame %q", b)
	}
	c.t.Logf("frame: %s", b)
	return strings.ReplaceAll(string(b), "'", `"`)
}

// expect reads frames until one contains want.
func (c *wsClient) expect(want string) string {
	c.t.Helper()
	want = strings.ReplaceAll(want, "'", `"`)
	for range 50 {
		if f := c.next(); strings.Contains(f, want) {
			return f
		}
	}
	c.t.Fatalf("no frame with %q in 50", want)
	return ""
}

const wsOpen = `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`

// login authenticates with PLAIN and binds resource; sm enables
// stream management and returns its id.
func (c *wsClient) login(user, password, resource string, sm bool) (smID string) {
	c.t.Helper()
	c.send(wsOpen)
	if f := c.next(); !strings.HasPrefix(f, `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"`) || !strings.Contains(f, `from="localhost"`) {
		c.t.Fatalf("first frame %q, want <open/>", f)
	}
	feats := c.next()
	if !strings.HasPrefix(feats, `<stream:features xmlns:stream="http://etherx.jabber.org/streams"`) {
		c.t.Fatalf("features frame %q", feats)
	}
	if strings.Contains(feats, "starttls") || !strings.Contains(feats, "<mechanism>PLAIN</mechanism>") {
		c.t.Fatalf("over WebSocket: no STARTTLS, PLAIN offered; got %s", feats)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	c.expect("<success")
	c.send(wsOpen)
	c.expect("<open ")
	c.expect("<bind ")
	if sm {
		return ""
	}
	c.bind(resource)
	return ""
}

func (c *wsClient) bind(resource string) {
	c.t.Helper()
	c.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	if f := c.expect("<iq "); !strings.HasPrefix(f, `<iq xmlns="jabber:client"`) || !strings.Contains(f, "/"+resource+"</jid>") {
		c.t.Fatalf("bind answered %q", f)
	}
}

// TestWebSocketSession logs in over WebSocket on both listeners and
// exchanges messages with a TCP client: the framing is the only
// difference.
func TestWebSocketSession(t *testing.T) {
	s := startServer(t, serverOpts{https: true, http: true})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "desk")
	for _, url := range []string{"wss://" + s.https + "/xmpp-websocket", "ws://" + s.http + "/xmpp-websocket"} {
		t.Run(url[:strings.Index(url, ":")], func(t *testing.T) {
			a := mustDialWS(t, url)
			a.login("alice", "pw", "web", false)
			a.send("<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>hi from the web</body></message>")
			bob.expect("hi from the web</body>")
			bob.send("<message to='alice@localhost/web' type='chat'><body>hi back</body></message>")
			if f := a.expect("hi back"); !strings.HasPrefix(f, `<message xmlns="jabber:client"`) {
				t.Fatalf("a stanza frame must declare its namespace: %q", f)
			}
			a.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
			if f := a.next(); !strings.HasPrefix(f, `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"`) {
				t.Fatalf("answer to <close/>: %q", f)
			}
		})
	}
}

// TestWebSocketFraming: a frame that is not RFC 7395 gets a stream
// error in a frame of its own, then <close/>.
func TestWebSocketFraming(t *testing.T) {
	s := startServer(t, serverOpts{https: true})
	a := mustDialWS(t, "wss://"+s.https+"/xmpp-websocket")
	a.send(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`)
	a.expect("<open ")
	if f := a.next(); !strings.HasPrefix(f, `<stream:error xmlns:stream="http://etherx.jabber.org/streams"`) || !strings.Contains(f, "invalid-xml") {
		t.Fatalf("want a stream error frame, got %q", f)
	}
	a.expect("<close ")

	b := mustDialWS(t, "wss://"+s.https+"/xmpp-websocket")
	b.send(`<open xmlns="jabber:client" to="localhost" version="1.0"/>`)
	b.expect("<open ")
	if f := b.next(); !strings.Contains(f, "invalid-namespace") {
		t.Fatalf("<open/> in the wrong namespace: got %q", f)
	}
}

// TestWebSocketOrigins: browsers from other sites are refused, the
// host's own origin and non-browsers are not, and no one but a trusted
// proxy may use plain HTTP.
func TestWebSocketOrigins(t *testing.T) {
	s := startServer(t, serverOpts{https: true, http: true,
		extra: "[http]\nallowed_origins = [\"https://chat.example.org\"]\ntrusted_proxies = [\"127.0.0.2\"]\n"})
	url := "wss://" + s.https + "/xmpp-websocket"
	if _, resp, err := dialWS(t, url, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, response %v; want 403", err, resp)
	}
	if _, _, err := dialWS(t, url, http.Header{"Origin": {"https://chat.example.org"}}); err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	if _, _, err := dialWS(t, url, nil); err != nil {
		t.Fatalf("no origin refused: %v", err)
	}
	// 127.0.0.1 is not a trusted proxy here.
	if _, resp, err := dialWS(t, "ws://"+s.http+"/xmpp-websocket", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("plain HTTP from an untrusted peer: err %v, response %v; want 403", err, resp)
	}
}

// TestWebSocketForwardedFor: behind a trusted proxy, the limit on
// unauthenticated connections counts the address X-Forwarded-For names.
func TestWebSocketForwardedFor(t *testing.T) {
	s := startServer(t, serverOpts{http: true, extra: "[limits]\npreauth_connections_per_address = 1\n"})
	url := "ws://" + s.http + "/xmpp-websocket"
	dial := func(xff string) *wsClient {
		c, _, err := dialWS(t, url, http.Header{"X-Forwarded-For": {xff}})
		if err != nil {
			t.Fatal(err)
		}
		c.send(wsOpen)
		return c
	}
	a := dial("192.0.2.1")
	a.expect("<stream:features")
	b := dial("192.0.2.2") // another client behind the same proxy
	b.expect("<stream:features")
	c := dial("192.0.2.1, 192.0.2.1") // the same client again
	c.expect("<open ")
	if f := c.next(); !strings.Contains(f, "policy-violation") {
		t.Fatalf("second unauthenticated connection from 192.0.2.1: got %q, want policy-violation", f)
	}
}

// TestWebSocketResume drops a WebSocket under a resumable session; a new
// WebSocket resumes it and gets what was sent meanwhile.
func TestWebSocketResume(t *testing.T) {
	s := startServer(t, serverOpts{https: true})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "desk")
	url := "wss://" + s.https + "/xmpp-websocket"
	a := mustDialWS(t, url)
	a.login("alice", "pw", "web", false)
	a.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	f := a.expect("<enabled")
	_, rest, _ := strings.Cut(f, `id="`)
	id, _, _ := strings.Cut(rest, `"`)
	if id == "" {
		t.Fatalf("no resumption id in %q", f)
	}
	a.send("<presence xmlns='jabber:client'/>")
	a.expect("<presence")
	a.ws.CloseNow() // the browser tab's network went away

	bob.send("<message to='alice@localhost/web' type='chat'><body>while you were away</body></message>")
	a2 := mustDialWS(t, url)
	a2.send(wsOpen)
	a2.expect("<stream:features")
	a2.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) + "</auth>")
	a2.expect("<success")
	a2.send(wsOpen)
	a2.expect("<stream:features")
	a2.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='1'/>")
	a2.expect("<resumed")
	a2.expect("while you were away")
	a2.send("<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>back</body></message>")
	bob.expect("back</body>")
}
