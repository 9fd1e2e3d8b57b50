package integration

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// goroutines returns the server's goroutine profile (debug=1).
func (s *server) goroutines(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parkWait is longer than the time after which an idle session gives up
// its goroutine (parkAfter in internal/c2s, 5 s).
const parkWait = 7 * time.Second

// TestIdleSessionsPark: sessions that have been idle for a while hold no
// goroutine (issue 4: memory per idle connection), and still receive,
// send, answer the server's pings, notice a client going away, and end
// cleanly when the server stops.
func TestIdleSessionsPark(t *testing.T) {
	s := startServer(t, serverOpts{admin: true, extra: "[limits]\nidle_ping = \"12s\"\n"})
	for _, u := range []string{"alice", "bob", "carol"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := dialRaw(t, s.starttls)
	alice.login("alice@localhost", "pw", "r")
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "r")
	carol := dialRaw(t, s.starttls)
	carol.login("carol@localhost", "pw", "r")

	time.Sleep(parkWait)
	if g := s.goroutines(t); strings.Contains(g, "c2s.(*idleReader).ReadIdle") || strings.Contains(g, "c2s.(*conn).stanzaLoop") {
		t.Fatalf("idle sessions still hold goroutines:\n%s", g)
	}

	// A parked session wakes for what its client sends, and one parked
	// session reaches another.
	alice.send("<message to='bob@localhost/r' type='chat' id='m1'><body>wake up</body></message>")
	if got := bob.expect("</message>"); !strings.Contains(got, "wake up") {
		t.Fatalf("bob got %q", got)
	}
	bob.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := bob.expect(`id="p1"`); !strings.Contains(got, `type="result"`) {
		t.Fatalf("bob's ping: %q", got)
	}

	// A client that goes away while its session is parked is noticed.
	time.Sleep(parkWait)
	carol.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Stderr(), "session ended\" jid=carol@localhost/r") && !strings.Contains(s.Stderr(), "session ended jid=carol@localhost/r") {
		if time.Now().After(deadline) {
			t.Fatalf("carol's closed connection was not noticed:\n%s", s.Stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The read deadline wakes a parked session for the server's ping (12 s
	// of silence; alice has been quiet since her message).
	alice.wait = 20 * time.Second
	if got := alice.expect("<ping"); !strings.Contains(got, `id="parley-c2s-ping"`) {
		t.Fatalf("server ping: %q", got)
	}
	alice.send("<iq type='result' id='parley-c2s-ping' to='localhost'/>")

	// Stopping the server ends parked sessions with system-shutdown.
	time.Sleep(parkWait)
	start := time.Now()
	s.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopping with parked sessions took %v", d)
	}
	if got := bob.expectClosed(); !strings.Contains(got, "system-shutdown") {
		t.Fatalf("bob at shutdown: %q", got)
	}
}

// TestParkedSessionResumed: a client whose old connection still looks
// alive to the server (its session parked) resumes on a new one
// (XEP-0198): the parked session is woken, gives up the old socket and
// continues on the new one, with what was sent meanwhile.
func TestParkedSessionResumed(t *testing.T) {
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	old := dialRaw(t, s.starttls)
	old.login("alice@localhost", "pw", "phone")
	old.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	enabled := old.expect("/>")
	_, rest, ok := strings.Cut(enabled, `id="`)
	if !ok {
		t.Fatalf("enable answered %q", enabled)
	}
	id, _, _ := strings.Cut(rest, `"`)
	old.send("<presence/>")
	old.expect("<presence")

	time.Sleep(parkWait)
	bob := dialRaw(t, s.starttls)
	bob.login("bob@localhost", "pw", "r")
	bob.send("<message to='alice@localhost/phone' type='chat'><body>while you moved</body></message>")
	time.Sleep(200 * time.Millisecond)

	// The new connection authenticates and resumes; the old socket is
	// never closed by the client.
	nc := dialRaw(t, s.starttls)
	nc.startTLS(&tls.Config{InsecureSkipVerify: true})
	nc.send(header)
	nc.expect("</stream:features>")
	nc.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) + "</auth>")
	nc.expect("<success")
	nc.send(header)
	nc.expect("</stream:features>")
	nc.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='0'/>")
	nc.expect("<resumed")
	if got := nc.expect("</message>"); !strings.Contains(got, "while you moved") {
		t.Fatalf("after resuming: %q", got)
	}
	nc.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := nc.expect(`id="p2"`); !strings.Contains(got, `type="result"`) {
		t.Fatalf("ping on the resumed session: %q", got)
	}
}
