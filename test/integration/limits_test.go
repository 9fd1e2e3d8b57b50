package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// TestMUCRoomCreationLimits: one user creating persistent rooms as fast
// as the server answers (12,000 in 9 s before) is stopped by the default
// per-user rate, with policy-violation; others still create rooms. A
// service at max_rooms refuses a new room with resource-constraint.
func TestMUCRoomCreationLimits(t *testing.T) {
	needSlixmpp(t)
	t.Run("rate", func(t *testing.T) {
		s := startServer(t, serverOpts{}) // defaults: 30 creations per hour
		s.addUser("alice@localhost", "pw")
		s.addUser("bob@localhost", "pw")
		alice := s.connect(t, "alice@localhost/r", "pw")
		created := 0
		var refusal *xmlstream.Element
		for i := range 40 {
			room := fmt.Sprintf("spam%d@conference.localhost", i)
			alice.send("<presence to='%s/A'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			p := alice.expect("an answer from "+room, func(el *xmlstream.Element) bool {
				return el.Name.Local == "presence" && el.Attr("from") == room+"/A"
			})
			if p.Attr("type") == "error" {
				refusal = p
				break
			}
			mucConfigure(t, alice, room, "persistentroom", "1")
			created++
		}
		if refusal == nil {
			t.Fatalf("40 rooms created in a row, none refused")
		}
		if created != 30 || errorCondition(refusal) != "policy-violation" || !strings.Contains(refusal.String(), "per hour") {
			t.Fatalf("after %d rooms: %s; want the 31st refused with policy-violation and a text", created, refusal)
		}
		// Existing rooms can still be joined, and bob has an allowance
		// of his own.
		bob := s.connect(t, "bob@localhost/r", "pw")
		mucEnter(t, bob, "spam3@conference.localhost", "B")
		mucCreate(t, bob, "bobs@conference.localhost", "B")
	})
	t.Run("service", func(t *testing.T) {
		s := startServer(t, serverOpts{extra: "[muc]\nmax_rooms = 3\nroom_creations_per_hour = 0\n"})
		s.addUser("alice@localhost", "pw")
		s.addUser("bob@localhost", "pw")
		alice := s.connect(t, "alice@localhost/r", "pw")
		bob := s.connect(t, "bob@localhost/r", "pw")
		mucCreate(t, alice, "a1@conference.localhost", "A", "persistentroom", "1")
		mucCreate(t, alice, "a2@conference.localhost", "A", "persistentroom", "1")
		mucCreate(t, bob, "b1@conference.localhost", "B")
		bob.send("<presence to='b2@conference.localhost/B'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
		p := bob.expect("the refusal", isPresence("b2@conference.localhost/B", "error"))
		if errorCondition(p) != "resource-constraint" || !strings.Contains(p.String(), "maximum of 3 rooms") {
			t.Fatalf("a fourth room on a service of 3: %s", p)
		}
		// bob's temporary room ends when he leaves, which frees a place.
		bob.send("<presence to='b1@conference.localhost/B' type='unavailable'/>")
		bob.expect("leaving", isPresence("b1@conference.localhost/B", "unavailable"))
		mucCreate(t, bob, "b2@conference.localhost", "B")
	})
}

// TestPEPQuota: publishing 200 KB items (400 of them, 72 MB, were all
// kept before) stops at the default quota of 10 MiB per user with
// resource-constraint, on both stores; an avatar can still be replaced.
func TestPEPQuota(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			s.addUser("alice@localhost", "pw")
			alice := s.connect(t, "alice@localhost/r", "pw")
			publish := func(node, id, data, opts string) *xmlstream.Element {
				return alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='%s'><data xmlns='urn:xmpp:avatar:data'>%s</data></item></publish>%s</pubsub></iq>", node, id, data, opts)
			}
			maxItems := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#max_items'><value>max</value></field></x></publish-options>"
			avatar := strings.Repeat("QUJD", 10000) // 40 KB
			if r := publish("urn:xmpp:avatar:data", "av1", avatar, ""); r.Attr("type") != "result" {
				t.Fatalf("publishing an avatar: %s", r)
			}
			big := strings.Repeat("A", 200_000)
			accepted := 0
			var refusal *xmlstream.Element
			for i := range 60 {
				r := publish("urn:example:hoard", fmt.Sprint(i), big, maxItems)
				if r.Attr("type") != "result" {
					refusal = r
					break
				}
				accepted++
			}
			// 10 MiB hold 52 of these next to the avatar.
			if refusal == nil || accepted != 52 {
				t.Fatalf("%d items of 200 KB accepted, then %v; want 52 and a refusal", accepted, refusal)
			}
			if errorCondition(refusal) != "resource-constraint" || !strings.Contains(refusal.String(), "quota") {
				t.Fatalf("publish past the quota: %s", refusal)
			}
			// Replacing the avatar frees what it replaces.
			if r := publish("urn:xmpp:avatar:data", "av2", avatar, ""); r.Attr("type") != "result" {
				t.Fatalf("replacing the avatar at the quota: %s", r)
			}
			// Deleting the hoard makes room again.
			r := alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:example:hoard'/></pubsub></iq>")
			if r.Attr("type") != "result" {
				t.Fatalf("deleting the node: %s", r)
			}
			if r := publish("urn:example:hoard", "again", big, maxItems); r.Attr("type") != "result" {
				t.Fatalf("publishing after deleting: %s", r)
			}
		})
	}
}

// tlsToUpload opens a TLS connection to the HTTPS listener as an HTTP
// client would, trusting the server's certificate.
func tlsToUpload(t *testing.T, s *server) *tls.Conn {
	t.Helper()
	pem, err := os.ReadFile(s.cafile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", s.https, &tls.Config{RootCAs: pool, ServerName: "upload.localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slowPut is the result of a PUT whose body trickles in.
type slowPut struct {
	status   int           // 0 when the connection ended without an answer
	after    time.Duration // from the first byte of the body to the answer or the end
	sentBody int
}

// trickle sends a PUT for slot with its headers at once and its body one
// byte every gap, until the server answers or closes, or limit passes.
func trickle(t *testing.T, s *server, slot uploadSlot, size int, gap, limit time.Duration) slowPut {
	c := tlsToUpload(t, s)
	u, err := url.Parse(slot.put)
	if err != nil {
		t.Error(err)
		return slowPut{}
	}
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", u.EscapedPath(), u.Host, slot.auth, size)
	start := time.Now()
	answer := make(chan int, 1)
	go func() {
		c.SetReadDeadline(start.Add(limit))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answer <- 0
			return
		}
		resp.Body.Close()
		answer <- resp.StatusCode
	}()
	sent := 0
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case st := <-answer:
			return slowPut{status: st, after: time.Since(start), sentBody: sent}
		case <-tick.C:
			if sent < size {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte{'x'}); err == nil {
					sent++
				}
			}
		}
	}
}

// TestUploadSlowLoris: PUTs that send one byte every 2 seconds (one
// held a connection for 75 s before, 300 of them 600 descriptors) are
// cut by the default minimum rate (1 KiB/s, measured over 10 s after a
// 10 s grace) with 408; past the default of 3 uploads in progress per
// user, further PUTs get 429 at once and slot requests wait.
func TestUploadSlowLoris(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{https: true, extra: "[upload]\nhost = \"upload.localhost\"\n"})
	s.addUser("alice@localhost", "pw")
	alice := s.connect(t, "alice@localhost/phone", "pw")
	var slots []uploadSlot
	for i := range 5 {
		r, slot := requestSlot(t, alice, fmt.Sprintf("f%d.bin", i), 100_000, "")
		if slot.put == "" {
			t.Fatalf("slot request: %s", r)
		}
		slots = append(slots, slot)
	}
	results := make([]slowPut, len(slots))
	var wg sync.WaitGroup
	for i, slot := range slots {
		wg.Go(func() { results[i] = trickle(t, s, slot, 100_000, 2*time.Second, 60*time.Second) })
		if i < 3 {
			// The first three are under way before the others start.
			time.Sleep(300 * time.Millisecond)
		}
	}
	// While three trickle, a slot request is told to wait.
	time.Sleep(2 * time.Second)
	r, _ := requestSlot(t, alice, "more.bin", 10, "")
	if errorCondition(r) != "resource-constraint" || !strings.Contains(r.String(), `type="wait"`) {
		t.Errorf("slot request with three uploads in progress: %s", r)
	}
	wg.Wait()
	var cut, refused int
	for i, res := range results {
		switch {
		case res.status == http.StatusTooManyRequests && res.after < 5*time.Second:
			refused++
		case res.status == http.StatusRequestTimeout && res.after >= 15*time.Second && res.after < 35*time.Second:
			cut++
		default:
			t.Errorf("PUT %d: status %d after %v (%d body bytes sent)", i, res.status, res.after, res.sentBody)
		}
	}
	if cut != 3 || refused != 2 {
		t.Errorf("%d slow PUTs cut with 408 in 15-35 s and %d refused with 429; want 3 and 2", cut, refused)
	}
	// The cut uploads left nothing behind and no longer count.
	if files := uploadDir(s); len(files) != 0 {
		t.Errorf("left in the upload directory: %v", files)
	}
	if r, slot := requestSlot(t, alice, "after.bin", 10, ""); slot.put == "" {
		t.Errorf("slot request after the slow uploads ended: %s", r)
	}
}

// TestUploadSlowHeaders: headers trickling in are cut by the HTTPS
// listener's header timeout.
func TestUploadSlowHeaders(t *testing.T) {
	s := startServer(t, serverOpts{https: true, extra: "[upload]\nhost = \"upload.localhost\"\n"})
	c := tlsToUpload(t, s)
	start := time.Now()
	c.SetDeadline(start.Add(60 * time.Second))
	req := "PUT /upload/x/y HTTP/1.1\r\nHost: upload.localhost\r\nX-Slow: " + strings.Repeat("a", 100)
	for i := range len(req) {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			break
		}
		time.Sleep(time.Second)
		if time.Since(start) > 40*time.Second {
			t.Fatal("headers trickling for 40 s were not cut")
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("slow headers cut after %v, want about 10 s", d)
	}
}

// TestUploadConnectionsPerAddress: one address may hold at most the
// default of 20 HTTPS connections; the next is closed at once, while
// another address still gets in.
func TestUploadConnectionsPerAddress(t *testing.T) {
	s := startServer(t, serverOpts{https: true, extra: "[upload]\nhost = \"upload.localhost\"\n"})
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", s.https)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// A connection the server closed at once reads EOF; an accepted one
	// waits for the TLS handshake (10 s) and times out here first.
	closedAtOnce := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		ne, ok := err.(net.Error)
		return !(ok && ne.Timeout())
	}
	var held []net.Conn
	for range 20 {
		held = append(held, dialFrom("127.0.0.5"))
	}
	if closedAtOnce(held[19]) {
		t.Fatal("the 20th connection from one address was closed")
	}
	if !closedAtOnce(dialFrom("127.0.0.5")) {
		t.Fatal("a 21st connection from one address was kept open")
	}
	c := tlsToUpload(t, s) // from 127.0.0.1
	if err := c.Handshake(); err != nil {
		t.Fatalf("another address was refused: %v", err)
	}
	// Closing one gives its place back.
	// The server notices the close when its handshake read fails.
	held[0].Close()
	for i := 0; closedAtOnce(dialFrom("127.0.0.5")); i++ {
		if i == 10 {
			t.Fatal("a place freed by a closed connection was not given back")
		}
	}
}
