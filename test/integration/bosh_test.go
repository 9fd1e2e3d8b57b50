package integration

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// boshClient speaks XEP-0124/0206 by hand.
type boshClient struct {
	t   *testing.T
	url string
	hc  *http.Client
	sid string
	rid uint64
}

func newBOSH(t *testing.T, url string) *boshClient {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(hc.CloseIdleConnections)
	return &boshClient{t: t, url: url, hc: hc, rid: 1000}
}

// post sends one body and returns the answer, quotes normalised to ".
func (b *boshClient) post(body string) string {
	b.t.Helper()
	resp, err := b.hc.Post(b.url, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		b.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("POST answered %s: %s", resp.Status, data)
	}
	b.t.Logf("-> %s\n<- %s", body, data)
	return strings.ReplaceAll(string(data), "'", `"`)
}

// send posts payload in the next rid.
func (b *boshClient) send(payload string, attrs ...string) string {
	b.t.Helper()
	b.rid++
	return b.post(b.body(b.rid, payload, attrs...))
}

func (b *boshClient) body(rid uint64, payload string, attrs ...string) string {
	s := "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='" + strconv.FormatUint(rid, 10) + "' sid='" + b.sid + "'"
	for _, a := range attrs {
		s += " " + a
	}
	return s + ">" + payload + "</body>"
}

// await sends empty requests until an answer contains want.
func (b *boshClient) await(first, want string) string {
	b.t.Helper()
	if strings.Contains(first, want) {
		return first
	}
	for range 10 {
		if r := b.send(""); strings.Contains(r, want) {
			return r
		}
	}
	b.t.Fatalf("no answer with %q", want)
	return ""
}

func attr(s, name string) string {
	_, rest, ok := strings.Cut(s, " "+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// login creates a session, authenticates with PLAIN, restarts and binds.
func (b *boshClient) login(user, password, resource string) {
	b.t.Helper()
	r := b.post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' content='text/xml; charset=utf-8' hold='1' rid='1000' to='localhost' ver='1.6' wait='3' xml:lang='en' xmpp:version='1.0'/>")
	b.sid = attr(r, "sid")
	if b.sid == "" || attr(r, "authid") == "" || attr(r, "xmpp:restartlogic") != "true" {
		b.t.Fatalf("session creation answered %s", r)
	}
	feats := b.await(r, "</stream:features>")
	if strings.Contains(feats, "starttls") || !strings.Contains(feats, "<mechanism>PLAIN</mechanism>") {
		b.t.Fatalf("features over BOSH: %s", feats)
	}
	r = b.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	b.await(r, "<success")
	r = b.send("", "xmpp:restart='true' to='localhost' xml:lang='en'")
	b.await(r, "<bind ")
	r = b.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	b.await(r, "/"+resource+"</jid>")
}

// TestBOSHSession logs in over BOSH on both listeners and exchanges
// messages with a TCP client, then terminates.
func TestBOSHSession(t *testing.T) {
	s := startServer(t, serverOpts{https: true, http: true})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "desk")
	for _, url := range []string{"https://" + s.https + "/http-bind", "http://" + s.http + "/http-bind"} {
		t.Run(url[:strings.Index(url, ":")], func(t *testing.T) {
			a := newBOSH(t, url)
			a.login("alice", "pw", "web")
			a.send("<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>hi over bosh</body></message>")
			bob.expect("hi over bosh</body>")
			// A held request gets the message as soon as it arrives.
			got := make(chan string, 1)
			go func() {
				got <- a.send("")
			}()
			time.Sleep(200 * time.Millisecond)
			bob.send("<message to='alice@localhost/web' type='chat'><body>hi back</body></message>")
			select {
			case r := <-got:
				if !strings.Contains(r, "hi back") || !strings.Contains(r, `<message xmlns="jabber:client"`) {
					t.Fatalf("held request answered %s", r)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the held request was not answered")
			}
			r := a.send("<presence xmlns='jabber:client' type='unavailable'/>", "type='terminate'")
			if attr(r, "type") != "terminate" {
				t.Fatalf("terminate answered %s", r)
			}
			if r := a.send(""); attr(r, "type") != "terminate" {
				t.Fatalf("a request after terminate: %s", r)
			}
		})
	}
}

// TestBOSHRids: a repeated rid gets the same answer and its payload is
// not taken twice; a request overtaking the one before waits for it; a
// rid far outside the window ends the session.
func TestBOSHRids(t *testing.T) {
	s := startServer(t, serverOpts{https: true})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "desk")
	a := newBOSH(t, "https://"+s.https+"/http-bind")
	a.login("alice", "pw", "web")

	msg := "<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>once</body></message>"
	a.rid++
	first := a.post(a.body(a.rid, msg))
	again := a.post(a.body(a.rid, msg)) // the client lost the answer
	if first != again {
		t.Fatalf("a retransmitted rid got another answer:\n%s\n%s", first, again)
	}
	bob.expect("once</body>")
	bob.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	bob.expect("p1")
	if strings.Contains(bob.buf.String(), "once</body>") {
		t.Fatal("the retransmitted payload was delivered twice")
	}

	// rid+2 arrives before rid+1: it is held until rid+1 came.
	a.rid += 2
	var wg sync.WaitGroup
	var late string
	wg.Add(1)
	go func() {
		defer wg.Done()
		late = a.post(a.body(a.rid, "<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>second</body></message>"))
	}()
	time.Sleep(300 * time.Millisecond)
	a.post(a.body(a.rid-1, "<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>first</body></message>"))
	wg.Wait()
	_ = late
	got := bob.expect("second</body>")
	if i, j := strings.Index(got, "first</body>"), strings.Index(got, "second</body>"); i < 0 || i > j {
		t.Fatalf("payloads out of rid order: %s", got)
	}

	if r := a.post(a.body(a.rid+100, "")); attr(r, "type") != "terminate" || attr(r, "condition") != "item-not-found" {
		t.Fatalf("a rid outside the window: %s", r)
	}

	// A domain not served here.
	u := newBOSH(t, "https://"+s.https+"/http-bind")
	r := u.post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' hold='1' rid='1' to='elsewhere.example' ver='1.6' wait='3' xmpp:version='1.0'/>")
	if attr(r, "type") != "terminate" || attr(r, "condition") != "host-unknown" {
		t.Fatalf("session for a domain not served: %s", r)
	}
}

// TestDiscovery: host-meta in XRD and JSON names both transports, and
// any page may read it.
func TestDiscovery(t *testing.T) {
	s := startServer(t, serverOpts{https: true})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	_, port := hostPort(s.https)
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "https://"+s.https+path, nil)
		req.Host = "localhost:" + port
		req.Header.Set("Origin", "https://elsewhere.example")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, xrd := get("/.well-known/host-meta")
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("host-meta without CORS: %v", resp.Header)
	}
	for _, want := range []string{
		"rel='urn:xmpp:alt-connections:websocket' href='wss://localhost:" + port + "/xmpp-websocket'",
		"rel='urn:xmpp:alt-connections:xbosh' href='https://localhost:" + port + "/http-bind'",
	} {
		if !strings.Contains(xrd, want) {
			t.Fatalf("host-meta lacks %s:\n%s", want, xrd)
		}
	}
	_, js := get("/.well-known/host-meta.json")
	var doc struct {
		Links []struct{ Rel, Href string }
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Links) != 2 || doc.Links[0].Href != "wss://localhost:"+port+"/xmpp-websocket" {
		t.Fatalf("host-meta.json: %v %s", err, js)
	}
	req, _ := http.NewRequest("GET", "https://"+s.https+"/.well-known/host-meta", nil)
	req.Host = "unknown.example"
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("host-meta of a host not served: %v %v", resp, err)
	}
}

// TestBOSHInactivityThenResume: a BOSH client that stops sending
// requests has lost its connection; its resumable session waits, and a
// WebSocket resumes it with what arrived meanwhile.
func TestBOSHInactivityThenResume(t *testing.T) {
	s := startServer(t, serverOpts{https: true, extra: "[http]\nbosh_inactivity = \"2s\"\n"})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "desk")
	a := newBOSH(t, "https://"+s.https+"/http-bind")
	a.login("alice", "pw", "web")
	r := a.await(a.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"), "<enabled")
	id := attr(r, "id")
	if id == "" {
		t.Fatalf("no resumption id in %s", r)
	}
	// The client goes quiet; after bosh_inactivity the session is gone.
	time.Sleep(4 * time.Second)
	if r := a.send(""); attr(r, "type") != "terminate" {
		t.Fatalf("a request after the inactivity limit: %s", r)
	}
	bob.send("<message to='alice@localhost/web' type='chat'><body>while you were away</body></message>")

	w := mustDialWS(t, "wss://"+s.https+"/xmpp-websocket")
	w.send(wsOpen)
	w.expect("<stream:features")
	w.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) + "</auth>")
	w.expect("<success")
	w.send(wsOpen)
	w.expect("<stream:features")
	w.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='0'/>")
	w.expect("<resumed")
	w.expect("while you were away")
}

// TestBOSHPause: a paused session outlives bosh_inactivity (up to its
// pause), and the pause answers the held request at once.
func TestBOSHPause(t *testing.T) {
	s := startServer(t, serverOpts{https: true, extra: "[http]\nbosh_inactivity = \"2s\"\nbosh_max_pause = \"30s\"\n"})
	s.addUser("alice@localhost", "pw")
	a := newBOSH(t, "https://"+s.https+"/http-bind")
	a.login("alice", "pw", "web")
	// A request held by the server (nothing to send) ...
	held := make(chan string, 1)
	a.rid++
	go func() { held <- a.post(a.body(a.rid, "")) }()
	time.Sleep(300 * time.Millisecond)
	// ... is answered when the client pauses.
	start := time.Now()
	a.send("", "pause='8'")
	select {
	case <-held:
	case <-time.After(2 * time.Second):
		t.Fatal("the held request was not answered at the pause")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the pause request itself was held %v", d)
	}
	time.Sleep(4 * time.Second) // beyond bosh_inactivity, within the pause
	r := a.send("<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r = a.await(r, "id=\"p\""); attr(r, "type") == "terminate" {
		t.Fatalf("the paused session ended: %s", r)
	}
}
