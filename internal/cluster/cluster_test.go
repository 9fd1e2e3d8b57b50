package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// natsURL starts an embedded NATS server with JetStream on a free
// loopback port, for this test only.
func natsURL(t *testing.T) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

type fakeSession struct {
	full     jid.JID
	st       session.State
	got      chan *xmlstream.Element
	replaced chan struct{}
	ended    chan string
}

func newSession(t *testing.T, s string) *fakeSession {
	t.Helper()
	return &fakeSession{full: jid.MustParse(s), got: make(chan *xmlstream.Element, 16),
		replaced: make(chan struct{}, 1), ended: make(chan string, 1)}
}

func (f *fakeSession) JID() jid.JID                  { return f.full }
func (f *fakeSession) Deliver(el *xmlstream.Element) { f.got <- el }
func (f *fakeSession) Replace()                      { f.replaced <- struct{}{} }
func (f *fakeSession) End(text string)               { f.ended <- text }
func (f *fakeSession) State() *session.State         { return &f.st }

// fakeRouter is the local routing core of one test node.
type fakeRouter struct {
	mu       sync.Mutex
	local    map[jid.JID]session.Session
	ended    chan session.Session
	bounced  chan *xmlstream.Element
	results  chan *xmlstream.Element
	service  chan *xmlstream.Element
	cl       *Cluster
	nodeName string
}

func (r *fakeRouter) Local(full jid.JID) session.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.local[full]
}
func (r *fakeRouter) EndRemote(_ context.Context, s session.Session) { r.ended <- s }
func (r *fakeRouter) Unclaimed(_ context.Context, el *xmlstream.Element) {
	r.results <- el
}
func (r *fakeRouter) Bounce(_ context.Context, el *xmlstream.Element)  { r.bounced <- el }
func (r *fakeRouter) Service(_ context.Context, el *xmlstream.Element) { r.service <- el }

func (r *fakeRouter) bind(t *testing.T, s session.Session) {
	t.Helper()
	r.mu.Lock()
	r.local[s.JID()] = s
	r.mu.Unlock()
	r.cl.Bound(context.Background(), s)
}

func (r *fakeRouter) unbind(s session.Session) {
	r.mu.Lock()
	delete(r.local, s.JID())
	r.mu.Unlock()
	r.cl.Unbound(context.Background(), s)
}

// startNode joins a test node to the cluster with short timers.
func startNode(t *testing.T, url, prefix, name string) *fakeRouter {
	t.Helper()
	r, err := tryNode(t, url, prefix, name, "k1")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryNode(t *testing.T, url, prefix, name, secretID string) (*fakeRouter, error) {
	t.Helper()
	r := &fakeRouter{local: map[jid.JID]session.Session{}, ended: make(chan session.Session, 16),
		bounced: make(chan *xmlstream.Element, 16), results: make(chan *xmlstream.Element, 16),
		service: make(chan *xmlstream.Element, 16), nodeName: name}
	cl, err := Start(context.Background(), Config{
		URL: url, Node: name, Prefix: prefix, Router: r,
		Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		HeartbeatEvery: 200 * time.Millisecond, DeadAfter: time.Second, RequestTimeout: time.Second,
		SecretID: secretID,
	})
	if err != nil {
		return nil, err
	}
	r.cl = cl
	cl.EndStale(context.Background())
	t.Cleanup(func() { _ = cl.Stop(context.Background()) })
	return r, nil
}

func TestAnotherSecretIsRefused(t *testing.T) {
	url := natsURL(t)
	startNode(t, url, "t5", "a")
	_, err := tryNode(t, url, "t5", "b", "k2")
	if err == nil || !strings.Contains(err.Error(), "copy the server key") {
		t.Fatalf("a node with another secret joined: %v", err)
	}
	if _, err := tryNode(t, url, "t5", "c", "k1"); err != nil {
		t.Fatalf("a node with the same secret was refused: %v", err)
	}
}

// kill stops a node the way a crash does: its heartbeat stops and it
// says goodbye to no one.
func kill(r *fakeRouter) {
	r.cl.cancel()
	r.cl.wg.Wait()
	r.cl.nc.Close()
}

// eventually waits, bounded, for cond: the other node learns of a
// change through its watcher.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func recv[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type carbonsKey struct{}
type capsKey struct{}

func TestSessionsReplicateAndStanzasCross(t *testing.T) {
	url := natsURL(t)
	a := startNode(t, url, "t1", "a")
	b := startNode(t, url, "t1", "b")
	alice := newSession(t, "alice@example.org/phone")
	a.bind(t, alice)
	bare := alice.full.Bare()

	eventually(t, "b to see alice's session", func() bool { return len(b.cl.Sessions(bare)) == 1 })
	if avail, _ := b.cl.Sessions(bare)[0].State().Available(); avail {
		t.Fatal("a session that sent no presence is seen available")
	}
	pres := xmlstream.New(stanza.NSClient, "presence", "from", alice.full.String())
	pres.AddChild(xmlstream.New(stanza.NSClient, "priority").AddText("5"))
	alice.st.SetAvailable(pres, 5)
	alice.st.SetValue(carbonsKey{}, true)
	alice.st.SetValue(capsKey{}, struct{ x int }{1}) // not a bool or string: stays here
	eventually(t, "b to see alice available with carbons on", func() bool {
		s := b.cl.Session(alice.full)
		if s == nil {
			return false
		}
		on, _ := s.State().Value(carbonsKey{}).(bool)
		avail, prio := s.State().Available()
		return avail && prio == 5 && on
	})
	rs := b.cl.Session(alice.full)
	if p := rs.State().Presence(); p == nil || p.Child(stanza.NSClient, "priority").Text() != "5" {
		t.Fatalf("replicated presence = %v", p)
	}
	if v := rs.State().Value(capsKey{}); v != nil {
		t.Fatalf("a struct value was replicated: %v", v)
	}
	if got := b.cl.SessionsPerNode(); got["a"] != 1 || got["b"] != 0 {
		t.Fatalf("SessionsPerNode on b = %v", got)
	}

	// Fire and forget, then acknowledged.
	msg := xmlstream.New(stanza.NSClient, "message", "from", "bob@example.org/pc", "to", alice.full.String())
	msg.AddChild(xmlstream.New(stanza.NSClient, "body").AddText("hi <there> & you"))
	rs.Deliver(msg)
	if got := recv(t, alice.got, "the delivered message"); got.Child(stanza.NSClient, "body").Text() != "hi <there> & you" {
		t.Fatalf("got %s", got)
	}
	if err := rs.(*remote).DeliverAcked(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	recv(t, alice.got, "the acknowledged message")

	// An admin kick crosses too.
	rs.(session.Ender).End("bye")
	if got := recv(t, alice.ended, "the kick"); got != "bye" {
		t.Fatalf("kick text = %q", got)
	}

	// Gone from a: the registry forgets it, and a stanza still on its
	// way finds no one (an IQ request is answered with an error).
	a.unbind(alice)
	eventually(t, "b to forget alice", func() bool { return b.cl.Session(alice.full) == nil })
	if err := rs.(*remote).DeliverAcked(context.Background(), msg); !errors.Is(err, ErrGone) {
		t.Fatalf("DeliverAcked to a gone session: %v", err)
	}
	iq := xmlstream.New(stanza.NSClient, "iq", "type", "get", "id", "1", "from", "bob@example.org/pc", "to", alice.full.String())
	iq.AddChild(xmlstream.New("urn:xmpp:ping", "ping"))
	rs.Deliver(iq)
	if got := recv(t, a.bounced, "the bounced IQ"); got.Attr("id") != "1" {
		t.Fatalf("bounced %s", got)
	}

	// An IQ result no module of b claimed is offered to a.
	res := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", "q1", "from", "bob@example.org/pc", "to", "example.org")
	b.cl.IQResult(context.Background(), res)
	if got := recv(t, a.results, "the IQ result on a"); got.Attr("id") != "q1" {
		t.Fatalf("got %s", got)
	}
	select {
	case el := <-b.results:
		t.Fatalf("b was offered its own IQ result %s", el)
	default:
	}
}

func TestBindingAgainElsewhereReplaces(t *testing.T) {
	url := natsURL(t)
	a := startNode(t, url, "t2", "a")
	b := startNode(t, url, "t2", "b")
	first := newSession(t, "alice@example.org/phone")
	a.bind(t, first)
	eventually(t, "b to see the first session", func() bool { return b.cl.Session(first.full) != nil })
	second := newSession(t, "alice@example.org/phone")
	b.bind(t, second)
	recv(t, first.replaced, "the replaced session's conflict")
	// The replaced session unbinds after; the new binding must stay.
	a.unbind(first)
	eventually(t, "a to see the session on b", func() bool {
		s := a.cl.Session(first.full)
		return s != nil && s.(*remote).node == "b"
	})
	sessions, _ := b.cl.buckets()
	if _, err := sessions.Get(context.Background(), key(first.full)); err != nil {
		t.Fatalf("the new binding left the registry: %v", err)
	}
}

func TestDeadNodeSessionsEnd(t *testing.T) {
	url := natsURL(t)
	a := startNode(t, url, "t3", "a")
	b := startNode(t, url, "t3", "b")
	c := startNode(t, url, "t3", "c")
	alice := newSession(t, "alice@example.org/phone")
	alice.st.SetAvailable(xmlstream.New(stanza.NSClient, "presence"), 0)
	alice.st.AddDirected(jid.MustParse("room@conference.example.org/alice"))
	c.bind(t, alice)
	eventually(t, "a and b to see alice", func() bool {
		return a.cl.Session(alice.full) != nil && b.cl.Session(alice.full) != nil
	})
	rs := a.cl.Session(alice.full)

	// c dies: no goodbye, its heartbeat stops.
	kill(c)
	start := time.Now()

	// a, the smallest surviving name, ends the session once; b only
	// forgets it.
	ended := recv(t, a.ended, "alice's session to end on a")
	if !ended.JID().Equal(alice.full) {
		t.Fatalf("ended %s", ended.JID())
	}
	if avail, _ := ended.State().Available(); !avail {
		t.Fatal("the ended session lost its replicated presence")
	}
	if !ended.State().DirectedTo(jid.MustParse("room@conference.example.org")) {
		t.Fatal("the ended session lost its directed presence: its rooms would keep it")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the loss took %v to notice", d)
	}
	eventually(t, "b to forget alice", func() bool { return b.cl.Session(alice.full) == nil })
	select {
	case s := <-b.ended:
		t.Fatalf("b ended %s too", s.JID())
	case <-time.After(500 * time.Millisecond):
	}
	if err := rs.(*remote).DeliverAcked(context.Background(), xmlstream.New(stanza.NSClient, "message")); !errors.Is(err, ErrGone) {
		t.Fatalf("DeliverAcked to a dead node: %v", err)
	}
	if got := a.cl.SessionsPerNode(); len(got) != 2 || got["c"] != 0 {
		t.Fatalf("SessionsPerNode after the loss = %v", got)
	}
}

func TestRestartEndsItsOldSessions(t *testing.T) {
	url := natsURL(t)
	a := startNode(t, url, "t4", "a")
	c := startNode(t, url, "t4", "c")
	alice := newSession(t, "alice@example.org/phone")
	c.bind(t, alice)
	eventually(t, "a to see alice", func() bool { return a.cl.Session(alice.full) != nil })
	kill(c)
	// c comes back before anyone judged it dead: it ends its old
	// session itself.
	c2 := startNode(t, url, "t4", "c")
	if got := recv(t, c2.ended, "the old session to end on the new c"); !got.JID().Equal(alice.full) {
		t.Fatalf("ended %s", got.JID())
	}
	eventually(t, "a to forget the old session", func() bool { return a.cl.Session(alice.full) == nil })
}

func TestFrames(t *testing.T) {
	for _, tc := range []struct {
		op      byte
		addr    string
		payload string
	}{{opDeliver, "a@b/c", "<message/>"}, {opEnd, "x@y/z", ""}, {opIQResult, "", "<iq/>"}} {
		op, addr, payload, err := unframe(frame(tc.op, tc.addr, []byte(tc.payload)))
		if err != nil || op != tc.op || addr != tc.addr || string(payload) != tc.payload {
			t.Errorf("round trip of %+v: %c %q %q %v", tc, op, addr, payload, err)
		}
	}
	for _, bad := range [][]byte{nil, {'d'}, {'d', 50, 'a'}, {'d', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, _, _, err := unframe(bad); err == nil {
			t.Errorf("unframe(%v) accepted", bad)
		}
	}
}

func TestServiceLease(t *testing.T) {
	url := natsURL(t)
	a := startNode(t, url, "t6", "a")
	b := startNode(t, url, "t6", "b")
	const muc = "conference.example.org"
	a.cl.Claim(context.Background(), []string{muc})
	b.cl.Claim(context.Background(), []string{muc})
	if got := a.cl.Leases()[muc]; got != "a" {
		t.Fatalf("the first claim went to %q", got)
	}
	if a.cl.Component(muc) != nil {
		t.Fatal("the holder forwards its own service")
	}
	eventually(t, "b to know a holds the lease", func() bool { return b.cl.Leases()[muc] == "a" })
	fwd := b.cl.Component(muc)
	if fwd == nil {
		t.Fatal("b does not forward to the holder")
	}
	el := xmlstream.New(stanza.NSClient, "presence", "from", "bob@example.org/pc", "to", muc+"/room/bob")
	fwd(context.Background(), jid.JID{}, jid.JID{}, el)
	if got := recv(t, a.service, "the forwarded presence"); got.Attr("to") != muc+"/room/bob" {
		t.Fatalf("forwarded %s", got)
	}

	// a dies: b takes the service over.
	kill(a)
	eventually(t, "b to take the lease over", func() bool { return b.cl.Leases()[muc] == "b" })
	if b.cl.Component(muc) != nil {
		t.Fatal("the new holder forwards its own service")
	}
	// A node starting now finds b running it.
	c := startNode(t, url, "t6", "c")
	c.cl.Claim(context.Background(), []string{muc})
	if got := c.cl.Leases()[muc]; got != "b" {
		t.Fatalf("a node joining later sees the lease at %q", got)
	}
	// b stops cleanly: c takes over at once, and counts b gone.
	if err := b.cl.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c to take the lease over after a clean stop", func() bool { return c.cl.Leases()[muc] == "c" })
	eventually(t, "c to count b gone", func() bool { _, ok := c.cl.SessionsPerNode()["b"]; return !ok })
}

// TestNATSRestart: NATS restarts (its in-memory buckets are gone); the
// nodes reconnect, write their sessions and leases again, and see each
// other's.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	opts := &natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	url := ns.ClientURL()
	a := startNode(t, url, "t7", "a")
	b := startNode(t, url, "t7", "b")
	alice := newSession(t, "alice@example.org/phone")
	a.bind(t, alice)
	eventually(t, "b to see alice", func() bool { return b.cl.Session(alice.full) != nil })

	port := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()
	opts2 := *opts
	opts2.Port = port
	ns2, err := natsserver.NewServer(&opts2)
	if err != nil {
		t.Fatal(err)
	}
	go ns2.Start()
	t.Cleanup(ns2.Shutdown)
	if !ns2.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not restart")
	}
	eventually(t, "a to reconnect", a.cl.nc.IsConnected)
	bob := newSession(t, "bob@example.org/pc")
	b.bind(t, bob)
	eventually(t, "a to see bob, bound after the restart", func() bool { return a.cl.Session(bob.full) != nil })
	eventually(t, "b to see alice again", func() bool { return b.cl.Session(alice.full) != nil })
	if err := b.cl.Session(alice.full).(*remote).DeliverAcked(context.Background(), xmlstream.New(stanza.NSClient, "message")); err != nil {
		t.Fatalf("delivering after the restart: %v", err)
	}
	recv(t, alice.got, "the message after the restart")
}

// TestComponentLease: the node an external component connects to holds
// its domain; the others forward the domain and its subdomains to it, a
// second node cannot announce it while the holder lives, and when the
// component leaves or its node dies nobody forwards (the local handler
// answers as for a component not connected) until it is announced again.
func TestComponentLease(t *testing.T) {
	ctx := context.Background()
	url := natsURL(t)
	a := startNode(t, url, "t8", "a")
	b := startNode(t, url, "t8", "b")
	const gw = "irc.example.org"
	for _, n := range []*fakeRouter{a, b} {
		n.cl.ServeComponents(ctx, []string{gw})
	}
	if b.cl.Component(gw) != nil {
		t.Fatal("b forwards a component nobody announced")
	}
	if err := a.cl.Announce(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if a.cl.Component(gw) != nil {
		t.Fatal("the holder forwards its own component")
	}
	eventually(t, "b to forward the subdomain to a", func() bool { return b.cl.Component("chan.irc.example.org") != nil })
	el := xmlstream.New(stanza.NSClient, "message", "from", "bob@example.org/pc", "to", "#x@chan.irc.example.org")
	b.cl.Component("chan.irc.example.org")(ctx, jid.JID{}, jid.JID{}, el)
	if got := recv(t, a.service, "the forwarded message"); got.Attr("to") != "#x@chan.irc.example.org" {
		t.Fatalf("forwarded %s", got)
	}
	if err := b.cl.Announce(ctx, gw); !errors.Is(err, ErrComponentElsewhere) {
		t.Fatalf("a second announcement while a lives: %v", err)
	}

	a.cl.Withdraw(ctx, gw)
	eventually(t, "b to stop forwarding after the withdrawal", func() bool { return b.cl.Component(gw) == nil })
	if err := a.cl.Announce(ctx, gw); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to forward again", func() bool { return b.cl.Component(gw) != nil })
	kill(a)
	eventually(t, "b to stop forwarding to the dead node", func() bool { return b.cl.Component(gw) == nil })
	if got := b.cl.Leases()[gw]; got != "a" {
		t.Fatalf("b took the component's domain over by itself: %q", got)
	}
	if err := b.cl.Announce(ctx, gw); err != nil {
		t.Fatalf("the component reconnecting to b: %v", err)
	}
	if b.cl.Component(gw) != nil || b.cl.Leases()[gw] != "b" {
		t.Fatal("b does not hold the component's domain after its announcement")
	}
}
