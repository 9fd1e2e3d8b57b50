package integration

import (
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"parley/internal/xmlstream"
)

// The tests of issue 10, items 3, 4 and 5: large bursts reach a client
// that reads slowly, paced by what it reads, and nobody is cut off or
// loses a message for output it did not ask for.

// throttled reads at most rate bytes a second, like a phone on a slow
// network: a chunk, then a pause.
type throttled struct {
	r    io.Reader
	rate int
}

func (t throttled) Read(p []byte) (int, error) {
	const chunk = 16 << 10
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := t.r.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(t.rate))
	return n, err
}

// slowClient is a raw client after login whose stream is read by its own
// goroutine at a limited rate; with stream management it answers the
// server's <r/> with the count of stanzas read so far.
type slowClient struct {
	t   *testing.T
	raw *rawClient
	wmu sync.Mutex

	mu      sync.Mutex
	cond    *sync.Cond
	got     []*xmlstream.Element
	handled int
	err     error // why reading ended
	acked   int   // the last h sent
	bigs    int   // large messages handled
	bigsAck int   // large messages acknowledged by the last h sent
	stopAck bool  // stop acknowledging (a client about to vanish)
}

const smNS = "urn:xmpp:sm:3"

// slowLogin logs bare/resource in on a raw socket, enables stream
// management when sm is set, and starts reading at rate bytes a second.
func slowLogin(t *testing.T, s *server, bare, resource string, sm bool, rate int) *slowClient {
	t.Helper()
	raw := dialRaw(t, s.starttls)
	raw.login(bare, "pw", resource)
	if sm {
		raw.send("<enable xmlns='urn:xmpp:sm:3'/>")
		raw.expect("<enabled")
		raw.expect(">")
	}
	c := &slowClient{t: t, raw: raw}
	c.cond = sync.NewCond(&c.mu)
	// The decoder reads a stream: give it a header, then what the login
	// left unread, then the socket.
	src := io.MultiReader(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`),
		strings.NewReader(raw.buf.String()), raw.conn)
	raw.buf.Reset()
	raw.conn.SetReadDeadline(time.Time{})
	dec := xmlstream.NewDecoder(throttled{r: src, rate: rate}, xmlstream.Limits{MaxStanzaBytes: 4 << 20})
	if _, err := dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	go c.read(dec)
	return c
}

func (c *slowClient) read(dec *xmlstream.Decoder) {
	for {
		el, err := dec.Next()
		c.mu.Lock()
		if err != nil {
			c.err = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		ack := -1
		switch {
		case el.Name.Space == smNS && el.Name.Local == "r":
			if !c.stopAck {
				ack = c.handled
				c.acked, c.bigsAck = ack, c.bigs
			}
		case el.Name.Space == "jabber:client":
			c.handled++
			if bodyTag(el) != "" {
				c.bigs++
			}
			c.got = append(c.got, el)
		default:
			c.got = append(c.got, el)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if ack >= 0 {
			c.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", ack))
		}
	}
}

func (c *slowClient) send(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.raw.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	c.raw.conn.Write([]byte(s))
}

// ack acknowledges everything read so far.
func (c *slowClient) ack() {
	c.mu.Lock()
	h := c.handled
	c.acked, c.bigsAck = h, c.bigs
	c.mu.Unlock()
	c.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h))
}

// waitFor waits until cond (called under the lock) holds, reading ends,
// or d passes; it reports whether cond held.
func (c *slowClient) waitFor(d time.Duration, cond func() bool) bool {
	timer := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		if c.err != nil || time.Now().After(deadline) {
			return cond()
		}
		c.cond.Wait()
	}
	return true
}

// count is how many received stanzas match.
func (c *slowClient) count(match func(*xmlstream.Element) bool) int {
	n := 0
	for _, el := range c.got {
		if match(el) {
			n++
		}
	}
	return n
}

// alive checks that the session still answers, and did not get a stream
// error.
func (c *slowClient) alive(id string) {
	c.t.Helper()
	c.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if !c.waitFor(30*time.Second, func() bool {
		return c.count(func(el *xmlstream.Element) bool { return el.Name.Local == "iq" && el.Attr("id") == id }) > 0
	}) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.t.Fatalf("the session no longer answers (read ended with %v); last received: %s", c.err, c.last())
	}
}

// last describes the last element received, for failure messages.
func (c *slowClient) last() string {
	if len(c.got) == 0 {
		return "nothing"
	}
	s := c.got[len(c.got)-1].String()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// bigBody is a body of about n bytes whose start says which one it is.
func bigBody(i, n int) string {
	tag := fmt.Sprintf("m%03d:", i)
	return tag + strings.Repeat("x", n-len(tag))
}

func bodyTag(el *xmlstream.Element) string {
	b := el.Child("jabber:client", "body")
	if el.Name.Local != "message" || b == nil || len(b.Text()) < 5 {
		return ""
	}
	return b.Text()[:5]
}

// drain reads everything a raw client receives, fast, and forgets it.
func drain(c *rawClient) {
	go io.Copy(io.Discard, c.conn)
}

// sendAll sends the big messages from a raw client, then waits until the
// server has handled them all (a ping answered after them).
func sendAll(t *testing.T, from *slowClient, to string, n, size int) {
	t.Helper()
	for i := range n {
		from.send(fmt.Sprintf("<message to='%s' type='chat' id='big%d'><body>%s</body></message>", to, i, bigBody(i, size)))
	}
	from.alive("sent-all")
}

func offlineRows(t *testing.T, s *server, owner string) int {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "data", "parley.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM offline_messages WHERE owner = ?", owner).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitRows waits until owner has want offline rows, and returns the count.
func waitRows(t *testing.T, s *server, owner string, want int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := offlineRows(t, s, owner)
		if n == want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const (
	bigSize  = 200_000
	slowRate = 2_000_000 // bytes a second
)

// TestLargeOfflineMessagesReachASlowClient: 40 messages of 200,000 bytes
// wait for dave; he logs in reading at 2 MB/s, with and without stream
// management, receives all 40 and keeps his session, and they leave
// offline storage only once delivered.
func TestLargeOfflineMessagesReachASlowClient(t *testing.T) {
	for _, sm := range []bool{false, true} {
		t.Run(fmt.Sprintf("sm=%v", sm), func(t *testing.T) {
			s := startServer(t, serverOpts{})
			s.addUser("alice@localhost", "pw")
			s.addUser("dave@localhost", "pw")
			alice := slowLogin(t, s, "alice@localhost", "r", false, 100_000_000)
			const n = 40
			sendAll(t, alice, "dave@localhost", n, bigSize)
			if rows := offlineRows(t, s, "dave@localhost"); rows != n {
				t.Fatalf("%d offline rows, want %d", rows, n)
			}
			dave := slowLogin(t, s, "dave@localhost", "r", sm, slowRate)
			dave.send("<presence/>")
			isBig := func(el *xmlstream.Element) bool { return bodyTag(el) != "" }
			if !dave.waitFor(60*time.Second, func() bool { return dave.count(isBig) == n }) {
				dave.mu.Lock()
				defer dave.mu.Unlock()
				t.Fatalf("dave received %d of %d messages; reading ended with %v; last: %s", dave.count(isBig), n, dave.err, dave.last())
			}
			seen := map[string]bool{}
			dave.mu.Lock()
			for _, el := range dave.got {
				if tag := bodyTag(el); tag != "" {
					if seen[tag] {
						t.Errorf("message %s received twice", tag)
					}
					seen[tag] = true
				}
			}
			dave.mu.Unlock()
			dave.alive("after-offline")
			if sm {
				dave.ack()
			}
			if rows := waitRows(t, s, "dave@localhost", 0); rows != 0 {
				t.Fatalf("%d delivered messages still in offline storage", rows)
			}
		})
	}
}

// TestOfflineDeliveryInterrupted: dave (stream management) reads a few
// of the large messages, acknowledges them and vanishes. What he did not
// acknowledge stays stored and comes at the next login, once.
func TestOfflineDeliveryInterrupted(t *testing.T) {
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	s.addUser("dave@localhost", "pw")
	alice := slowLogin(t, s, "alice@localhost", "r", false, 100_000_000)
	const n = 40
	sendAll(t, alice, "dave@localhost", n, bigSize)

	dave := slowLogin(t, s, "dave@localhost", "r", true, slowRate)
	dave.send("<presence/>")
	isBig := func(el *xmlstream.Element) bool { return bodyTag(el) != "" }
	if !dave.waitFor(60*time.Second, func() bool { return dave.count(isBig) >= 8 }) {
		t.Fatalf("dave received %d messages, then nothing", dave.count(isBig))
	}
	dave.mu.Lock()
	dave.stopAck = true
	acked := dave.bigsAck
	dave.mu.Unlock()
	dave.raw.conn.Close()
	// The acknowledged ones are gone, the rest stays.
	rows := waitRows(t, s, "dave@localhost", n-acked)
	if rows != n-acked {
		t.Fatalf("%d messages acknowledged of %d, but %d left in storage", acked, n, rows)
	}
	again := slowLogin(t, s, "dave@localhost", "r2", true, 50_000_000)
	again.send("<presence/>")
	if !again.waitFor(60*time.Second, func() bool { return again.count(isBig) == rows }) {
		t.Fatalf("at the next login dave received %d of the %d left", again.count(isBig), rows)
	}
	again.alive("after")
	again.ack()
	if left := waitRows(t, s, "dave@localhost", 0); left != 0 {
		t.Fatalf("%d messages left after the second delivery", left)
	}
}

// TestLargeArchivePageReachesASlowClient: 60 archived messages of 200 KB,
// queried with max=50 by a client reading at 2 and 10 MB/s: no disconnect,
// pages capped by size with complete='false', and paging on reaches
// every message once.
func TestLargeArchivePageReachesASlowClient(t *testing.T) {
	for _, rate := range []int{slowRate, 10_000_000} {
		t.Run(fmt.Sprintf("%dMB/s", rate/1_000_000), func(t *testing.T) { archivePages(t, rate) })
	}
}

func archivePages(t *testing.T, rate int) {
	s := startServer(t, serverOpts{})
	s.addUser("bob@localhost", "pw")
	s.addUser("carol@localhost", "pw")
	carol := dialRaw(t, s.starttls)
	carol.login("carol@localhost", "pw", "r")
	carol.send("<presence/>")
	drain(carol)
	bobSender := slowLogin(t, s, "bob@localhost", "send", false, 100_000_000)
	const n = 60
	sendAll(t, bobSender, "carol@localhost", n, bigSize)
	time.Sleep(500 * time.Millisecond) // the archive writes in batches

	bob := slowLogin(t, s, "bob@localhost", "r", false, rate)
	seen := map[string]int{}
	after := ""
	for page := 0; page < n; page++ {
		id := fmt.Sprintf("q%d", page)
		set := "<max>50</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		bob.send(fmt.Sprintf("<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'><set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>", id, id, set))
		var fin *xmlstream.Element
		if !bob.waitFor(60*time.Second, func() bool {
			for _, el := range bob.got {
				if el.Name.Local == "iq" && el.Attr("id") == id {
					fin = el.Child("urn:xmpp:mam:2", "fin")
					return true
				}
			}
			return false
		}) {
			bob.mu.Lock()
			defer bob.mu.Unlock()
			t.Fatalf("no answer to page %d; reading ended with %v; last: %s", page, bob.err, bob.last())
		}
		if fin == nil {
			t.Fatalf("page %d answered without <fin/>", page)
		}
		bob.mu.Lock()
		results := 0
		for _, el := range bob.got {
			r := el.Child("urn:xmpp:mam:2", "result")
			if r == nil || r.Attr("queryid") != id {
				continue
			}
			results++
			fwd := r.Child("urn:xmpp:forward:0", "forwarded")
			if fwd != nil {
				if m := fwd.Child("jabber:client", "message"); m != nil {
					seen[bodyTag(m)]++
				}
			}
		}
		bob.got = nil
		bob.mu.Unlock()
		if results > 50 || results*bigSize > 2<<20 {
			t.Fatalf("page %d has %d results of 200 KB", page, results)
		}
		set2 := fin.Child("http://jabber.org/protocol/rsm", "set")
		if fin.Attr("complete") == "true" {
			break
		}
		if set2 == nil || set2.Child("http://jabber.org/protocol/rsm", "last") == nil {
			t.Fatalf("incomplete page %d without a cursor: %s", page, fin)
		}
		after = set2.Child("http://jabber.org/protocol/rsm", "last").Text()
	}
	if len(seen) != n {
		t.Fatalf("paging reached %d distinct messages of %d", len(seen), n)
	}
	for tag, k := range seen {
		if k != 1 {
			t.Errorf("message %s came %d times", tag, k)
		}
	}
	bob.alive("after-pages")
}

// TestSlowRecipientKeepsItsSession: carol reads at 2 MB/s and alice
// sends her 45 messages of 200 KB. Carol keeps her session; alice is
// slowed down (or told to wait), and nobody else is.
func TestSlowRecipientKeepsItsSession(t *testing.T) {
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		s.addUser(u+"@localhost", "pw")
	}
	carol := slowLogin(t, s, "carol@localhost", "r", false, slowRate)
	carol.send("<presence/>")
	dave := slowLogin(t, s, "dave@localhost", "r", false, 100_000_000)
	dave.send("<presence/>")
	alice := slowLogin(t, s, "alice@localhost", "r", false, 100_000_000)
	bob := slowLogin(t, s, "bob@localhost", "r", false, 100_000_000)
	carol.alive("c0")
	dave.alive("d0")

	const n = 45
	go func() {
		for i := range n {
			alice.send(fmt.Sprintf("<message to='carol@localhost' type='chat' id='big%d'><body>%s</body></message>", i, bigBody(i, bigSize)))
		}
	}()
	// While alice waits for carol, bob's message to dave goes through.
	time.Sleep(500 * time.Millisecond)
	sent := time.Now()
	bob.send("<message to='dave@localhost' type='chat'><body>meanwhile</body></message>")
	if !dave.waitFor(10*time.Second, func() bool {
		return dave.count(func(el *xmlstream.Element) bool { return el.Name.Local == "message" && el.Attr("type") != "error" }) > 0
	}) {
		t.Fatal("a message between two others was held up by the slow recipient")
	}
	t.Logf("bob's message reached dave in %v while carol was being fed", time.Since(sent).Round(time.Millisecond))

	isBig := func(el *xmlstream.Element) bool { return bodyTag(el) != "" }
	isWait := func(el *xmlstream.Element) bool {
		e := el.Child("jabber:client", "error")
		return el.Attr("type") == "error" && e != nil && e.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "resource-constraint") != nil
	}
	ok := carol.waitFor(90*time.Second, func() bool {
		alice.mu.Lock()
		bounced := alice.count(isWait)
		alice.mu.Unlock()
		return carol.count(isBig)+bounced == n
	})
	carol.mu.Lock()
	got, err := carol.count(isBig), carol.err
	carol.mu.Unlock()
	if !ok {
		t.Fatalf("carol received %d of %d (read ended with %v)", got, n, err)
	}
	alice.mu.Lock()
	t.Logf("carol received %d, alice was told to wait %d times", got, alice.count(isWait))
	alice.mu.Unlock()
	carol.alive("c1")
	if got == 0 {
		t.Fatal("carol received none of the messages")
	}
}

// TestPresenceAndIQFloodsAreLimited: 10,000 directed presences and
// 10,000 IQs in under a second are refused with policy-violation, as
// messages are, and the session goes on.
func TestPresenceAndIQFloodsAreLimited(t *testing.T) {
	s := startServer(t, serverOpts{})
	s.addUser("mallory@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	m := slowLogin(t, s, "mallory@localhost", "r", false, 100_000_000)
	const n = 10_000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "<presence to='bob@localhost/x%d'/>", i%50)
	}
	m.send(b.String())
	b.Reset()
	for i := range n {
		fmt.Fprintf(&b, "<iq type='get' id='f%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", i)
	}
	m.send(b.String())
	refused := func(kind string) func(*xmlstream.Element) bool {
		return func(el *xmlstream.Element) bool {
			e := el.Child("jabber:client", "error")
			return el.Name.Local == kind && el.Attr("type") == "error" && e != nil &&
				e.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "policy-violation") != nil
		}
	}
	isPresence, isIQ := refused("presence"), refused("iq")
	presences, iqs, next := 0, 0, 0
	counted := func() bool {
		for ; next < len(m.got); next++ {
			if isPresence(m.got[next]) {
				presences++
			} else if isIQ(m.got[next]) {
				iqs++
			}
		}
		return presences > n/2 && iqs > n/2
	}
	if !m.waitFor(30*time.Second, counted) {
		m.mu.Lock()
		defer m.mu.Unlock()
		t.Fatalf("refused %d presences and %d IQs of %d each (read ended with %v)", presences, iqs, n, m.err)
	}
	t.Logf("refused %d presences and %d IQs of %d each", presences, iqs, n)
	time.Sleep(2 * time.Second) // the budget refills
	m.alive("after-flood")
}

// TestPingAnsweredBeforeAPause: the client answers the server's ping,
// and the server is paused (SIGSTOP, as a frozen VM) before it reads the
// answer, until past its ping deadline. Resumed, it reads the answer
// waiting in its socket instead of ending the session with
// connection-timeout. (The ping deadline is a minute, hence the wait.)
func TestPingAnsweredBeforeAPause(t *testing.T) {
	if testing.Short() {
		t.Skip("waits more than a minute")
	}
	s := startServer(t, serverOpts{extra: "[limits]\nidle_ping = \"10s\"\n"})
	s.addUser("idle@localhost", "pw")
	c := dialRaw(t, s.starttls)
	c.login("idle@localhost", "pw", "r")
	c.wait = 30 * time.Second
	c.expect("<ping")
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			s.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	c.send("<iq type='result' id='parley-c2s-ping' to='localhost'/>")
	time.Sleep(65 * time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	c.send("<iq type='get' id='after-pause' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.expectIQ("after-pause"); !strings.Contains(r, `type="result"`) || strings.Contains(r, "connection-timeout") {
		t.Fatalf("after the pause: %s", r)
	}
}

// TestManyLargeAnswersReachASlowClient: a client asks for a large stored
// item two hundred times at once (12 MB of answers) while reading at 2 MB/s.
// The answers are paced by what it reads; it is not cut off.
func TestManyLargeAnswersReachASlowClient(t *testing.T) {
	s := startServer(t, serverOpts{})
	s.addUser("erin@localhost", "pw")
	c := slowLogin(t, s, "erin@localhost", "r", false, slowRate)
	const itemSize = 60_000 // private storage keeps 64 KiB per namespace
	c.send("<iq type='set' id='store'><query xmlns='jabber:iq:private'><big xmlns='urn:example:big'>" + bigBody(0, itemSize) + "</big></query></iq>")
	isAnswer := func(id string) func(*xmlstream.Element) bool {
		return func(el *xmlstream.Element) bool { return el.Name.Local == "iq" && el.Attr("id") == id }
	}
	if !c.waitFor(30*time.Second, func() bool { return c.count(isAnswer("store")) == 1 }) {
		t.Fatal("storing the item was not answered")
	}
	c.mu.Lock()
	for _, el := range c.got {
		if isAnswer("store")(el) && el.Attr("type") != "result" {
			t.Fatalf("storing the item: %s", errorCondition(el))
		}
	}
	c.mu.Unlock()
	const n = 200
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "<iq type='get' id='get%d'><query xmlns='jabber:iq:private'><big xmlns='urn:example:big'/></query></iq>", i)
	}
	c.send(b.String())
	answered, next := map[string]bool{}, 0
	if !c.waitFor(60*time.Second, func() bool {
		for ; next < len(c.got); next++ {
			el := c.got[next]
			q := el.Child("jabber:iq:private", "query")
			if el.Name.Local == "iq" && el.Attr("type") == "result" && q != nil && len(q.FirstElement().Text()) == itemSize {
				answered[el.Attr("id")] = true
			}
		}
		return len(answered) == n
	}) {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("not all %d answers arrived; reading ended with %v; last: %s", n, c.err, c.last())
	}
	c.alive("after-answers")
}
