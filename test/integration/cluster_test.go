package integration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"parley/internal/bench"
	"parley/internal/xmlstream"
)

// clusterEnv gives a test its own NATS (embedded, with JetStream, on a
// free loopback port) and its own PostgreSQL database, dropped after.
type clusterEnv struct {
	nats, dsn string
	secret    []byte
}

func newClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	admin := os.Getenv("PARLEY_TEST_POSTGRES_DSN")
	if admin == "" {
		admin = defaultPostgresDSN
	}
	db, err := sql.Open("pgx", admin)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	mustHave(t, "PostgreSQL at "+admin, err == nil, fmt.Sprint(err))
	var b [6]byte
	rand.Read(b[:])
	name := "parley_cluster_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name

	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	t.Cleanup(ns.Shutdown)
	env := &clusterEnv{nats: ns.ClientURL(), dsn: u.String(), secret: make([]byte, 32)}
	rand.Read(env.secret)
	return env
}

// node starts one parley node of the cluster; every node has the same
// server secret, as the README says to set up.
func (e *clusterEnv) node(t *testing.T, name string) *server {
	t.Helper()
	return e.nodeWith(t, name, serverOpts{})
}

// nodeWith is node with more options (hosts, s2s, extra TOML).
func (e *clusterEnv) nodeWith(t *testing.T, name string, o serverOpts) *server {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "server.secret"), e.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	o.admin, o.dataDir = true, data
	o.extra = fmt.Sprintf("[storage]\ndriver = \"postgres\"\ndsn = %q\n[cluster]\nnats_url = %q\nnode = %q\n", e.dsn, e.nats, name) + o.extra
	s := startServer(t, o)
	s.ca = filepath.Join(data, "tls", "selfsigned.crt")
	return s
}

// threeNodes starts a cluster of three nodes for slixmpp clients, with
// an account for each user (password "pw").
func threeNodes(t *testing.T, users ...string) (n1, n2, n3 *server) {
	t.Helper()
	needSlixmpp(t)
	env := newClusterEnv(t)
	n1, n2, n3 = env.node(t, "n1"), env.node(t, "n2"), env.node(t, "n3")
	for _, u := range users {
		n1.addUser(u+"@localhost", "pw")
	}
	return n1, n2, n3
}

// awaitStanza is expect with a longer bound, for what takes a node's
// heartbeat to expire.
func awaitStanza(a *agent, d time.Duration, what string, match func(*xmlstream.Element) bool) *xmlstream.Element {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	deadline := time.Now().Add(d)
	for {
		for i, el := range a.stanzas {
			if match(el) {
				a.stanzas = append(a.stanzas[:i], a.stanzas[i+1:]...)
				return el
			}
		}
		if a.closed || time.Now().After(deadline) {
			a.t.Fatalf("%s: did not receive %s within %v", a.name, what, d)
		}
		n := len(a.stanzas)
		a.waitFor(func() bool { return len(a.stanzas) != n }) // something new, or 10 s
	}
}

func isCarbon(kind, body string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		c := el.Child("urn:xmpp:carbons:2", kind)
		if el.Name.Local != "message" || c == nil {
			return false
		}
		fwd := c.Child("urn:xmpp:forward:0", "forwarded")
		if fwd == nil {
			return false
		}
		m := fwd.Child("jabber:client", "message")
		return m != nil && m.Child("jabber:client", "body") != nil && m.Child("jabber:client", "body").Text() == body
	}
}

// TestClusterMessagesPresenceCarbons: three nodes on one NATS and one
// database; users on different nodes subscribe to each other, see each
// other's presence, exchange messages, and a user's resources on two
// nodes get carbons of what the other resource sends and receives.
func TestClusterMessagesPresenceCarbons(t *testing.T) {
	n1, n2, n3 := threeNodes(t, "alice", "bob")

	alice := n1.connect(t, "alice@localhost/a1", "pw")
	bob := n2.connect(t, "bob@localhost/b1", "pw")
	befriend(t, alice, bob)
	alice.expect("bob's presence", isPresence("bob@localhost/b1", ""))

	alice.send("<message to='bob@localhost' type='chat'><body>hello from n1</body></message>")
	bob.expect("alice's message", isMessage("alice@localhost/a1", "hello from n1"))
	bob.send("<message to='alice@localhost/a1' type='chat'><body>hello from n2</body></message>")
	alice.expect("bob's answer", isMessage("bob@localhost/b1", "hello from n2"))

	// bob's second resource is on the third node.
	bob2 := n3.connect(t, "bob@localhost/b2", "pw")
	bob2.send("<presence/>")

	alice.expect("bob's second resource's presence", isPresence("bob@localhost/b2", ""))
	bob.expect("bob's own second resource's presence", isPresence("bob@localhost/b2", ""))
	for _, b := range []*agent{bob, bob2} {
		if r := b.iq("<iq type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Attr("type") != "result" {
			t.Fatalf("enabling carbons: %s", r)
		}
	}
	alice.send("<message to='bob@localhost/b1' type='chat'><body>to b1 only</body></message>")
	bob.expect("the message to b1", isMessage("alice@localhost/a1", "to b1 only"))
	bob2.expect("a received carbon on n3", isCarbon("received", "to b1 only"))
	bob.send("<message to='alice@localhost/a1' type='chat'><body>from b1</body></message>")
	alice.expect("b1's message", isMessage("bob@localhost/b1", "from b1"))
	bob2.expect("a sent carbon on n3", isCarbon("sent", "from b1"))

	// A bare-JID message reaches both resources, on two nodes.
	alice.send("<message to='bob@localhost' type='chat'><body>to both</body></message>")
	bob.expect("the message to the bare JID on n2", isMessage("alice@localhost/a1", "to both"))
	bob2.expect("the message to the bare JID on n3", isMessage("alice@localhost/a1", "to both"))

	bob2.op("close")
	alice.expect("bob's second resource going away", isPresence("bob@localhost/b2", "unavailable"))

	// Each node's /metrics has the cluster's view.
	fams := scrape(t, n3)
	if v, _ := value(fams, "parley_cluster_nodes", nil); v != 3 {
		t.Errorf("parley_cluster_nodes on n3 = %v", v)
	}
	for node, want := range map[string]float64{"n1": 1, "n2": 1, "n3": 0} {
		if v, ok := value(fams, "parley_cluster_sessions", map[string]string{"node": node}); !ok || v != want {
			t.Errorf("parley_cluster_sessions{node=%s} on n3 = %v, want %v", node, v, want)
		}
	}
	// parley check reaches NATS and PostgreSQL.
	out, err := n1.parley("", "check")
	for _, want := range []string{"ok    cluster nats", "ok    cluster postgres"} {
		if !strings.Contains(out, want) {
			t.Errorf("parley check does not say %q (%v):\n%s", want, err, out)
		}
	}

	// The admin listing sees every node's sessions from any node.
	out, err = n3.parley("", "sessions")
	if err != nil {
		t.Fatalf("parley sessions: %v\n%s", err, out)
	}
	for _, want := range []string{"alice@localhost/a1", "bob@localhost/b1"} {
		if !strings.Contains(out, want) {
			t.Errorf("parley sessions on n3 does not list %s:\n%s", want, out)
		}
	}
	// notify, announce and kick on n3 reach sessions on n1 and n2.
	if out, err := n3.parley("", "notify", "--message", "from n3", "alice@localhost"); err != nil {
		t.Fatalf("parley notify: %v\n%s", err, out)
	}
	alice.expect("the notice from n3", isMessage("localhost", "from n3"))
	if out, err := n3.parley("", "announce", "maintenance at noon"); err != nil {
		t.Fatalf("parley announce: %v\n%s", err, out)
	}
	alice.expect("the announcement on n1", isMessage("localhost", "maintenance at noon"))
	bob.expect("the announcement on n2", isMessage("localhost", "maintenance at noon"))
	if out, err := n3.parley("", "kick", "bob@localhost/b1"); err != nil || !strings.Contains(out, "1 sessions ended") {
		t.Fatalf("parley kick: %v\n%s", err, out)
	}
	bob.waitEvent("disconnected")
	alice.expect("bob kicked off n2", isPresence("bob@localhost/b1", "unavailable"))
}

// TestClusterNodeLoss: kill -9 of one node. Its users' contacts see them
// go unavailable within 30 s, messages for them go to offline storage
// and arrive at their next login on another node, and the other nodes
// keep serving meanwhile.
func TestClusterNodeLoss(t *testing.T) {
	n1, n2, n3 := threeNodes(t, "alice", "bob", "carol", "dave")
	// dave's phone on n2 can resume its stream (XEP-0198).
	phone := dialRaw(t, n2.starttls)
	phone.login("dave@localhost", "pw", "phone")
	phone.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	enabled := phone.expect("/>")
	_, rest, ok := strings.Cut(enabled, `id="`)
	if !ok {
		t.Fatalf("enable answered %q", enabled)
	}
	smID, _, _ := strings.Cut(rest, `"`)
	alice := n1.connect(t, "alice@localhost/a1", "pw")
	bob := n2.connect(t, "bob@localhost/b1", "pw")
	carol := n3.connect(t, "carol@localhost/c1", "pw")
	befriend(t, alice, bob)
	alice.expect("bob's presence", isPresence("bob@localhost/b1", ""))

	if err := n2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-n2.done

	// Sent before anyone noticed: n2 does not answer, the message is
	// kept for bob.
	alice.send("<message to='bob@localhost' type='chat' id='m1'><body>while n2 is dead</body></message>")
	// The other nodes keep serving.
	carol.send("<message to='alice@localhost/a1' type='chat'><body>n3 still here</body></message>")
	alice.expect("carol's message", isMessage("carol@localhost/c1", "n3 still here"))

	awaitStanza(alice, 30*time.Second, "bob going unavailable", isPresence("bob@localhost/b1", "unavailable"))
	t.Logf("contacts saw the lost node's session unavailable after %v", time.Since(killed).Round(100*time.Millisecond))
	alice.send("<message to='bob@localhost' type='chat' id='m2'><body>after the loss</body></message>")
	alice.expectNone("an error for the messages kept offline", 500*time.Millisecond, func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && el.Attr("type") == "error"
	})

	// Resuming on another node is refused cleanly; the client binds a
	// new session on the same connection.
	nc := dialRaw(t, n3.starttls)
	nc.startTLS(&tls.Config{InsecureSkipVerify: true})
	nc.send(header)
	nc.expect("</stream:features>")
	nc.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00dave\x00pw")) + "</auth>")
	nc.expect("<success")
	nc.send(header)
	nc.expect("</stream:features>")
	nc.send("<resume xmlns='urn:xmpp:sm:3' previd='" + smID + "' h='0'/>")
	if got := nc.expect("</failed>"); !strings.Contains(got, "item-not-found") {
		t.Fatalf("resuming on another node: %q", got)
	}
	nc.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
	if got := nc.expect("</iq>"); !strings.Contains(got, "<jid>dave@localhost/phone</jid>") {
		t.Fatalf("bind after the refused resumption: %q", got)
	}

	bob2 := n3.connect(t, "bob@localhost/b2", "pw")
	bob2.send("<presence/>")
	bob2.expect("alice's presence, probed on another node", isPresence("alice@localhost/a1", ""))
	bob2.expect("the message sent while n2 was dying", isMessage("alice@localhost/a1", "while n2 is dead"))
	bob2.expect("the message sent after the loss", isMessage("alice@localhost/a1", "after the loss"))
	alice.expect("bob back on n3", isPresence("bob@localhost/b2", ""))
	if !n1.alive() || !n3.alive() {
		t.Fatal("a surviving node stopped")
	}
}

// TestClusterCrossNodeCost measures what crossing nodes costs a message:
// latency of one message at a time, and CPU per message over a burst,
// for a recipient on the sender's node and for one on another node.
// PARLEY_CLUSTER_BENCH=N sets the number of messages (default 300).
func TestClusterCrossNodeCost(t *testing.T) {
	env := newClusterEnv(t)
	n1, n2 := env.node(t, "n1"), env.node(t, "n2")
	// Senders take turns: each session may send 50 messages a second
	// (burst 200), and the run must measure the path, not the limit.
	const senders = 40
	for _, u := range []string{"near", "far"} {
		n1.addUser(u+"@localhost", "pw")
	}
	ss := make([]*rawClient, senders)
	for i := range ss {
		n1.addUser(fmt.Sprintf("s%d@localhost", i), "pw")
		ss[i] = dialRaw(t, n1.starttls)
		ss[i].login(fmt.Sprintf("s%d@localhost", i), "pw", "r")
	}
	n := 300
	if v, err := strconv.Atoi(os.Getenv("PARLEY_CLUSTER_BENCH")); err == nil && v > 0 {
		n = v
	}
	near := dialRaw(t, n1.starttls)
	near.login("near@localhost", "pw", "r")
	far := dialRaw(t, n2.starttls)
	far.login("far@localhost", "pw", "r")
	far.wait, near.wait = 30*time.Second, 30*time.Second

	cpu := func() (nodes, test time.Duration) {
		for _, s := range []*server{n1, n2} {
			p, err := bench.ReadProc(s.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			nodes += p.CPU
		}
		p, err := bench.ReadProc(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		return nodes, p.CPU
	}
	for _, tc := range []struct {
		name string
		to   *rawClient
		jid  string
	}{{"warm-up", near, "near@localhost/r"}, {"same node", near, "near@localhost/r"}, {"across nodes", far, "far@localhost/r"},
		{"same node", near, "near@localhost/r"}, {"across nodes", far, "far@localhost/r"}} {
		// One at a time: the latency of the path.
		lat := make([]time.Duration, 0, n)
		for i := range n {
			body := fmt.Sprintf("%p-l%d.", &tc, i)
			start := time.Now()
			ss[i%senders].send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", tc.jid, body))
			readUntil(t, tc.to, body+"</body>")
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		// A burst: the CPU each message costs the nodes (and the
		// test process, which holds the clients and NATS).
		nodes0, test0 := cpu()
		start := time.Now()
		for i := range n {
			ss[i%senders].send(fmt.Sprintf("<message to='%s' type='chat'><body>%p-b%d.</body></message>", tc.jid, &tc, i))
		}
		readUntil(t, tc.to, fmt.Sprintf("%p-b%d.</body>", &tc, n-1))
		took := time.Since(start)
		nodes1, test1 := cpu()
		t.Logf("%s: %d messages; latency p50 %v p99 %v; burst %.0f msg/s; node CPU %v/msg; test process (clients, NATS) %v/msg",
			tc.name, n, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond),
			float64(n)/took.Seconds(), ((nodes1 - nodes0) / time.Duration(n)).Round(time.Microsecond),
			((test1 - test0) / time.Duration(n)).Round(time.Microsecond))
	}
}

// readUntil reads c until marker has passed, keeping only what a marker
// split between two reads needs: the clients must cost little next to
// what is measured.
func readUntil(t *testing.T, c *rawClient, marker string) {
	t.Helper()
	tail := c.buf.String()
	c.buf.Reset()
	tmp := make([]byte, 64<<10)
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !strings.Contains(tail, marker) {
		k, err := c.conn.Read(tmp)
		if err != nil {
			t.Fatalf("waiting for %q: %v", marker, err)
		}
		tail = tail[max(0, len(tail)-len(marker)):] + string(tmp[:k])
	}
}

// TestClusterGroupChat: a room with occupants on all three nodes, run by
// the node holding the group chat service's lease; when that node dies,
// another takes the service over and the persistent room, from the
// database, takes its occupants back.
func TestClusterGroupChat(t *testing.T) {
	n1, n2, n3 := threeNodes(t, "alice", "bob", "carol", "dave")
	alice := n1.connect(t, "alice@localhost/a", "pw")
	bob := n2.connect(t, "bob@localhost/b", "pw")
	carol := n3.connect(t, "carol@localhost/c", "pw")
	for _, a := range []*agent{alice, bob, carol} {
		a.send("<presence/>") // available, as clients are before they join rooms
	}
	room := "plaza@conference.localhost"
	join := func(a *agent, nick string) {
		a.t.Helper()
		a.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, nick)
		a.expect(nick+"'s own presence in the room", mucPresence(room+"/"+nick, "110"))
	}
	alice.send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	alice.expect("the new room", mucPresence(room+"/Alice", "110", "201"))
	r := alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>", room)
	if r.Attr("type") != "result" {
		t.Fatalf("room configuration: %s", r)
	}
	join(bob, "Bob")
	join(carol, "Carol")
	bob.expect("carol joining", mucPresence(room+"/Carol"))
	alice.expect("carol joining", mucPresence(room+"/Carol"))

	bob.send("<message to='%s' type='groupchat'><body>hi all</body></message>", room)
	for _, a := range []*agent{alice, bob, carol} {
		a.expect("bob's room message", isMessage(room+"/Bob", "hi all"))
	}
	carol.send("<message to='%s/Alice' type='chat'><body>psst</body></message>", room)
	alice.expect("carol's private message", isMessage(room+"/Carol", "psst"))

	// carol's node dies: the room hears she is gone.
	if err := n3.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n3.done
	awaitStanza(alice, 30*time.Second, "carol leaving the room", func(el *xmlstream.Element) bool {
		return mucPresence(room+"/Carol")(el) && el.Attr("type") == "unavailable"
	})

	// n1 started first and runs the service; it dies.
	if err := n1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n1.done
	// Until the lease moves, the room answers with an error; then the
	// persistent room is back on another node.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := bob.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room)
		if r.Attr("type") == "result" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the room did not come back: %s", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
	join(bob, "Bob")
	dave := n2.connect(t, "dave@localhost/d", "pw")
	join(dave, "Dave")
	dave.send("<message to='%s' type='groupchat'><body>still here</body></message>", room)
	bob.expect("dave's message after the move", isMessage(room+"/Dave", "still here"))
}

// TestClusterRollingRestart: each node in turn stops cleanly and starts
// again while users on the other nodes keep writing; every message
// arrives, at once or at the next login, and the group chat service
// moves off a stopping node and keeps its persistent room.
func TestClusterRollingRestart(t *testing.T) {
	n1, n2, n3 := threeNodes(t, "alice", "bob")
	nodes := []*server{n1, n2, n3}
	room := "lobby@conference.localhost"
	owner := n2.connect(t, "alice@localhost/setup", "pw")
	owner.send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	owner.expect("the new room", mucPresence(room+"/Alice", "110", "201"))
	if r := owner.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>", room); r.Attr("type") != "result" {
		t.Fatalf("room configuration: %s", r)
	}
	owner.op("close")
	for i, s := range nodes {
		// Each node in turn goes down with bob on it, and comes back.
		other := nodes[(i+1)%3]
		alice := other.connect(t, "alice@localhost/a", "pw")
		alice.send("<presence/>")
		bob := s.connect(t, "bob@localhost/b", "pw")
		bob.send("<presence/>")
		alice.send("<message to='bob@localhost' type='chat'><body>before %d</body></message>", i)
		bob.expect("the message before the restart", isMessage("alice@localhost/a", fmt.Sprintf("before %d", i)))

		s.stop()
		alice.send("<message to='bob@localhost' type='chat'><body>during %d</body></message>", i)
		alice.expectNone("an error for the message kept offline", 300*time.Millisecond, func(el *xmlstream.Element) bool {
			return el.Name.Local == "message" && el.Attr("type") == "error"
		})
		ca := s.ca
		nodes[i] = launch(t, s.dir, s.config, serverOpts{admin: true})
		nodes[i].ca = ca
		bob = nodes[i].connect(t, "bob@localhost/b", "pw")
		bob.send("<presence/>")
		bob.expect("the message sent while its node was down", isMessage("alice@localhost/a", fmt.Sprintf("during %d", i)))
		// The room is there, wherever the service runs now.
		nick := fmt.Sprintf("Bob%d", i)
		bob.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, nick)
		if p := bob.expect("the join", mucPresence(room+"/"+nick, "110")); strings.Contains(p.String(), `code="201"`) {
			t.Fatalf("the persistent room was made anew after restarting node %d: %s", i+1, p)
		}
		alice.op("close")
		bob.op("close")
	}
}

// TestClusterPEP: a publication on one node reaches a contact on another
// whose client wants the node's notifications (+notify in its entity
// capabilities, which the publisher's node learns by asking the
// contact's client across nodes).
func TestClusterPEP(t *testing.T) {
	n1, n2, _ := threeNodes(t, "alice", "bob")
	alice := n1.connect(t, "alice@localhost/a", "pw")
	bob := n2.connect(t, "bob@localhost/b", "pw", "--notify", "urn:xmpp:avatar:metadata")
	alice.send("<presence/>")
	bob.send("<presence to='alice@localhost' type='subscribe'/>")
	req := alice.expect("bob's subscription request", isPresence("bob@localhost", "subscribe"))
	alice.send("<presence to='%s' type='subscribed'/>", req.Attr("from"))
	bob.op("presence") // with entity capabilities
	bob.expect("alice's presence", isPresence("alice@localhost/a", ""))
	r := alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='xyz'><metadata xmlns='urn:xmpp:avatar:metadata'><info id='xyz' bytes='10' type='image/png'/></metadata></item></publish></pubsub></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("publish: %s", r)
	}
	bob.expect("the notification from the other node", isEvent("urn:xmpp:avatar:metadata", `id="xyz"`))
}

// TestClusterFederation: a two-node cluster serving a.localhost and a
// single server b.localhost, which knows only the second node's s2s
// address. A user on the first node writes to b: the first node opens
// its own stream, and b's dialback check lands on the second node, which
// vouches for a key the first made (they share the server secret). b's
// answer arrives at the second node and is routed to the first.
func TestClusterFederation(t *testing.T) {
	needSlixmpp(t)
	env := newClusterEnv(t)
	pn2, pb := freeLoopbackPort(t), freeLoopbackPort(t)
	toB := fmt.Sprintf("[s2s]\nroutes = { \"b.localhost\" = %q }\n", pb)
	n1 := env.nodeWith(t, "n1", serverOpts{hosts: []string{"a.localhost"}, s2s: "127.0.0.1:0", extra: toB})
	n2 := env.nodeWith(t, "n2", serverOpts{hosts: []string{"a.localhost"}, s2s: pn2, extra: toB})
	b := startServer(t, serverOpts{hosts: []string{"b.localhost"}, s2s: pb,
		extra: fmt.Sprintf("[s2s]\nroutes = { \"a.localhost\" = %q }\n", pn2)})
	n1.addUser("alice@a.localhost", "pw")
	b.addUser("bob@b.localhost", "pw")
	alice := n1.connect(t, "alice@a.localhost/phone", "pw")
	bob := b.connect(t, "bob@b.localhost/desk", "pw")
	for _, x := range []*agent{alice, bob} {
		x.send("<presence/>")
		x.expect("own presence", isPresence(x.jid, ""))
	}
	alice.send("<message to='bob@b.localhost' type='chat'><body>from node 1</body></message>")
	bob.expect("alice's message, sent by the first node", isMessage("alice@a.localhost/phone", "from node 1"))
	bob.send("<message to='alice@a.localhost/phone' type='chat'><body>to node 1 by way of node 2</body></message>")
	alice.expect("bob's answer, come in at the second node", isMessage("bob@b.localhost/desk", "to node 1 by way of node 2"))
	if !strings.Contains(n2.Stderr(), `msg="s2s: incoming stream authenticated" remote_domain=b.localhost`) {
		t.Errorf("b's stream did not come in at the second node:\n%s", n2.Stderr())
	}
}

// TestClusterUserPasswd: a user's key is held by the node of their
// session, so `parley user passwd` on another node is refused, naming
// that node, instead of giving the account a new key while the user's
// node keeps sealing under the old one; on the user's node the key is
// kept.
func TestClusterUserPasswd(t *testing.T) {
	needSlixmpp(t)
	env := newClusterEnv(t)
	n1, n2 := env.node(t, "n1"), env.node(t, "n2")
	n1.addUser("alice@localhost", "pw")
	alice := n1.connect(t, "alice@localhost/a1", "pw")
	alice.send("<presence/>")
	alice.expect("her own presence", isPresence("alice@localhost/a1", ""))
	// n2 learns of the session from the registry's copy it keeps.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := n2.parley("", "sessions", "alice@localhost")
		if strings.Contains(out, "alice@localhost/a1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 does not list alice's session on n1:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := n2.parley("", "user", "passwd", "alice@localhost", "--password", "pw2")
	if err == nil || !strings.Contains(out, "logged in on node n1") {
		t.Fatalf("parley user passwd on another node than the user's: %v\n%s", err, out)
	}
	if r := n2.slixmppLogin(t, "--jid", "alice@localhost", "--password", "pw", "--port", portOf(n2.starttls)); !r.Authenticated {
		t.Fatalf("the refused change changed the password: %+v", r)
	}
	out, err = n1.parley("", "user", "passwd", "alice@localhost", "--password", "pw2")
	if err != nil || !strings.Contains(out, "no sealed data lost") {
		t.Fatalf("parley user passwd on the user's node: %v\n%s", err, out)
	}
}

// waitLogCount waits up to 30 s for the server to have logged want n
// times.
func waitLogCount(t *testing.T, s *server, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.Stderr(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log %q %d times:\n%s", want, n, s.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterComponent: an external component (XEP-0114) connected to
// one node serves users on the others, both ways, for its domain and
// its subdomains; a second connection on another node is refused; when
// it leaves or its node dies, its domain answers with an error until it
// connects again, to any node.
func TestClusterComponent(t *testing.T) {
	needSlixmpp(t)
	env := newClusterEnv(t)
	opts := serverOpts{component: true, extra: componentConfig}
	n1, n2, n3 := env.nodeWith(t, "n1", opts), env.nodeWith(t, "n2", opts), env.nodeWith(t, "n3", opts)
	n1.addUser("bob@localhost", "pw")
	const held = `msg="cluster: service domain held" node=n2 domain=comp.localhost holder=`

	comp := dialComponent(t, n1, "comp.localhost", "s3cret-component")
	comp.expect("<handshake/>")
	waitLog(t, n2, held+"n1")
	bob := n2.connect(t, "bob@localhost/b", "pw")
	bob.send("<presence/>")
	bob.expect("his own presence", isPresence(bob.jid, ""))

	// An IQ from n2 to the component on n1, and its answer.
	bob.send("<iq type='get' id='q1' to='comp.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	got := comp.expect("</iq>")
	if !strings.Contains(got, `id="q1"`) || !strings.Contains(got, `from="bob@localhost/b"`) {
		t.Fatalf("component received %q", got)
	}
	comp.send("<iq type='result' id='q1' from='comp.localhost' to='bob@localhost/b'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='gateway' type='irc' name='IRC'/></query></iq>")
	r := bob.expect("the component's answer", func(el *xmlstream.Element) bool { return el.Name.Local == "iq" && el.Attr("id") == "q1" })
	if r.Attr("type") != "result" || r.Attr("from") != "comp.localhost" || !strings.Contains(r.String(), `type="irc"`) {
		t.Fatalf("answer from the component: %s", r)
	}

	// Messages both ways, to the domain and to a subdomain.
	bob.send("<message to='user@comp.localhost' type='chat'><body>hello gateway</body></message>")
	if got := comp.expect("hello gateway</body></message>"); !strings.Contains(got, `from="bob@localhost/b"`) {
		t.Fatalf("component received %q", got)
	}
	comp.send("<message from='user@comp.localhost/bridge' to='bob@localhost' type='chat'><body>hello human</body></message>")
	bob.expect("the component's message", isMessage("user@comp.localhost/bridge", "hello human"))
	bob.send("<message to='bot@rooms.comp.localhost' type='chat'><body>to a subdomain</body></message>")
	comp.expect("to a subdomain</body></message>")

	// The component is connected to n1: a second one on n3 is refused.
	second := dialComponent(t, n3, "comp.localhost", "s3cret-component")
	if out := second.expectClosed(); !strings.Contains(out, "<conflict") {
		t.Fatalf("second connection on another node: %q", out)
	}

	// It leaves: its domain answers with an error from every node.
	comp.send("</stream:stream>")
	comp.expectClosed()
	waitLog(t, n2, `msg="cluster: service domain released" node=n2 domain=comp.localhost`)
	bob.send("<message to='user@comp.localhost' type='chat' id='m2'><body>anyone?</body></message>")
	if e := bob.expect("an error for the absent component", func(el *xmlstream.Element) bool { return el.Attr("id") == "m2" }); errorCondition(e) != "service-unavailable" {
		t.Fatalf("absent component: %s", e)
	}

	// It comes back on n3, which then dies.
	comp = dialComponent(t, n3, "comp.localhost", "s3cret-component")
	comp.expect("<handshake/>")
	waitLog(t, n2, held+"n3")
	bob.send("<message to='user@comp.localhost' type='chat'><body>via n3</body></message>")
	comp.expect("via n3</body></message>")
	if err := n3.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n3.done
	for _, n := range []*server{n1, n2} {
		waitLogCount(t, n, `msg="cluster: node lost; its sessions are ended"`, 1)
	}
	start := time.Now()
	bob.send("<message to='user@comp.localhost' type='chat' id='m3'><body>is n3 there?</body></message>")
	if e := bob.expect("an error for the component of a dead node", func(el *xmlstream.Element) bool { return el.Attr("id") == "m3" }); errorCondition(e) != "service-unavailable" {
		t.Fatalf("component of a dead node: %s", e)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the error for a dead node's component took %v", d)
	}

	// It reconnects to n1 and is reachable from n2 again.
	comp = dialComponent(t, n1, "comp.localhost", "s3cret-component")
	comp.expect("<handshake/>")
	waitLogCount(t, n2, held+"n1", 2)
	bob.send("<message to='user@comp.localhost' type='chat'><body>back again</body></message>")
	comp.expect("back again</body></message>")
	comp.send("<message from='user@comp.localhost/bridge' to='bob@localhost/b' type='chat'><body>welcome back</body></message>")
	bob.expect("the component's message after the move", isMessage("user@comp.localhost/bridge", "welcome back"))
}

// waitSessions polls `parley sessions JID` on s (its view of the whole
// cluster) until ok accepts the listing, for up to 10 s.
func waitSessions(t *testing.T, s *server, jid string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.parley("", "sessions", jid)
		if err == nil && ok(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions of %s as %s sees them: %v\n%s", jid, s.config, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterPush: push notifications (XEP-0357) when the message comes
// through another node than the one the user's phone used: its sleeping
// session there is woken through the app server; a session of the phone
// awake on another node gets no push; enable and disable done through
// one node hold on the others, even on a node that had read the user's
// registrations before.
func TestClusterPush(t *testing.T) {
	n1, n2, n3 := threeNodes(t, "alice", "bob", "appserver")
	app := n3.connect(t, "appserver@localhost/push", "pw")
	bob := n1.connect(t, "bob@localhost/desk", "pw")
	isPush := func(el *xmlstream.Element) bool {
		return el.Name.Local == "iq" && el.Attr("type") == "set" && strings.Contains(el.String(), "urn:xmpp:push:0") &&
			el.Attr("from") == "alice@localhost"
	}
	// alice has a session on n2 (no push yet) when bob writes from n1:
	// n1 reads her registrations (none) then.
	desk := n2.connect(t, "alice@localhost/desk", "pw")
	desk.send("<presence/>")
	desk.expect("own presence", isPresence("alice@localhost/desk", ""))
	bob.send("<message to='alice@localhost' type='chat'><body>before push</body></message>")
	desk.expect("bob's first message", isMessage("bob@localhost/desk", "before push"))

	// Her phone enables push on n2 and falls asleep there.
	phone := n2.connect(t, "alice@localhost/phone", "pw", "--sm")
	phone.waitEvent("sm_enabled")
	if r := phone.iq("<iq type='set'><enable xmlns='urn:xmpp:push:0' jid='appserver@localhost/push' node='n0d3'/></iq>"); r.Attr("type") != "result" {
		t.Fatalf("push enable: %s", r)
	}
	phone.send("<presence/>")
	phone.expect("own presence", isPresence("alice@localhost/phone", ""))
	phone.op("abort")
	phone.waitEvent("disconnected")
	waitSessions(t, n1, "alice@localhost/phone", func(out string) bool { return strings.Contains(out, "available, detached") })

	// bob writes from n1: the app server is told.
	bob.send("<message to='alice@localhost' type='chat'><body>wake up</body></message>")
	desk.expect("the message on the desk", isMessage("bob@localhost/desk", "wake up"))
	n := app.expect("the push from n1", isPush)
	if !strings.Contains(n.String(), `node="n0d3"`) || strings.Contains(n.String(), "wake up") {
		t.Fatalf("notification: %s", n)
	}

	// The phone comes back awake on n3 (a new session for the same
	// resource): no push for what bob writes from n1.
	phone.op("quit")
	phone = n3.connect(t, "alice@localhost/phone", "pw")
	phone.send("<presence/>")
	phone.expect("own presence", isPresence("alice@localhost/phone", ""))
	waitSessions(t, n1, "alice@localhost/phone", func(out string) bool {
		return strings.Contains(out, "phone\tavailable\n") && strings.Contains(out, "1 sessions")
	})
	bob.send("<message to='alice@localhost' type='chat'><body>you are awake</body></message>")
	phone.expect("the message on the phone", isMessage("bob@localhost/desk", "you are awake"))
	app.expectNone("a push for a phone awake on another node", 500*time.Millisecond, isPush)

	// It disables push on n3 and leaves: no push from n1 any more.
	if r := phone.iq("<iq type='set'><disable xmlns='urn:xmpp:push:0' jid='appserver@localhost/push'/></iq>"); r.Attr("type") != "result" {
		t.Fatalf("push disable: %s", r)
	}
	phone.op("quit")
	waitSessions(t, n1, "alice@localhost/phone", func(out string) bool { return strings.Contains(out, "0 sessions") })
	bob.send("<message to='alice@localhost' type='chat'><body>after disable</body></message>")
	desk.expect("the message on the desk", isMessage("bob@localhost/desk", "after disable"))
	app.expectNone("a push after disable", 500*time.Millisecond, isPush)
}

// TestClusterAnonymousNodeLoss: the throwaway account of an anonymous
// login (XEP-0175) goes when its node dies, as it goes at the end of its
// session: a surviving node deletes it once it declares the node dead.
func TestClusterAnonymousNodeLoss(t *testing.T) {
	env := newClusterEnv(t)
	opts := serverOpts{anonymous: []string{"anon.localhost"}}
	n1, n2 := env.nodeWith(t, "n1", opts), env.nodeWith(t, "n2", opts)
	hdr := strings.Replace(header, "to='localhost'", "to='anon.localhost'", 1)
	c := dialRaw(t, n2.starttls)
	if feats := c.secureStream(hdr); !strings.Contains(feats, "<mechanism>ANONYMOUS</mechanism>") {
		t.Fatalf("ANONYMOUS not offered: %s", feats)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
	c.expect("<success")
	c.send(hdr)
	c.expect("</stream:features>")
	c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
	if got := c.expect("</iq>"); !strings.Contains(got, "@anon.localhost/") {
		t.Fatalf("anonymous bind: %q", got)
	}
	users := func() string {
		out, err := n1.parley("", "user", "list", "anon.localhost")
		if err != nil {
			t.Fatal(err, out)
		}
		return strings.TrimSpace(out)
	}
	if users() == "" {
		t.Fatal("no anonymous account while its session is bound")
	}
	if err := n2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n2.done
	killed := time.Now()
	for users() != "" {
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("anonymous account of the dead node left behind: %q", users())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the dead node's anonymous account was deleted after %v", time.Since(killed).Round(100*time.Millisecond))
}
