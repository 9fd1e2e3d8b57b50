package router

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/storage"
	"parley/internal/storage/sqlite"
	"parley/internal/xmlstream"
)

type fakeSession struct {
	j        jid.JID
	mu       sync.Mutex
	got      []*xmlstream.Element
	replaced bool
	st       session.State
}

func (f *fakeSession) JID() jid.JID { return f.j }
func (f *fakeSession) Deliver(el *xmlstream.Element) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, el)
}
func (f *fakeSession) Replace()              { f.replaced = true }
func (f *fakeSession) State() *session.State { return &f.st }

func (f *fakeSession) take() []*xmlstream.Element {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.got
	f.got = nil
	return g
}

func newRouter(t *testing.T) (*Router, *module.Registry) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, u := range []string{"alice@example.org", "bob@example.org"} {
		if err := store.Users().Create(context.Background(), storage.Account{JID: u}); err != nil {
			t.Fatal(err)
		}
	}
	reg := module.NewRegistry()
	return New([]string{"example.org"}, reg, store, slog.New(slog.NewTextHandler(io.Discard, nil))), reg
}

func newSession(s string) *fakeSession {
	f := &fakeSession{j: jid.MustParse(s)}
	f.st.SetAvailable(xmlstream.New("jabber:client", "presence"), 0)
	return f
}

func msg(from, to string) *xmlstream.Element {
	m := xmlstream.New("jabber:client", "message", "from", from, "type", "chat", "id", "m1")
	if to != "" {
		m.SetAttr("to", to)
	}
	m.AddChild(xmlstream.New("jabber:client", "body").AddText("hi"))
	return m
}

func errorCondition(el *xmlstream.Element) string {
	if el.Attr("type") != "error" {
		return ""
	}
	e := el.Child(el.Name.Space, "error")
	if e == nil || e.FirstElement() == nil {
		return "?"
	}
	return e.FirstElement().Name.Local
}

func TestRouting(t *testing.T) {
	r, reg := newRouter(t)
	ctx := context.Background()
	alice := newSession("alice@example.org/phone")
	bob1 := newSession("bob@example.org/desk")
	bob2 := newSession("bob@example.org/laptop")
	for _, s := range []*fakeSession{alice, bob1, bob2} {
		if old := r.Bind(ctx, s); old != nil {
			t.Fatal("unexpected replacement")
		}
	}
	reg.HandleIQ(module.Server, "get", xmlstream.Name{Space: "urn:test", Local: "q"}, func(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
		return xmlstream.New("urn:test", "q", "from", iq.From.String()), nil
	})

	t.Run("full JID", func(t *testing.T) {
		r.Route(ctx, msg("alice@example.org/phone", "bob@example.org/laptop"))
		if len(bob2.take()) != 1 || len(bob1.take()) != 0 {
			t.Fatal("message to a full JID not delivered to exactly that resource")
		}
	})
	t.Run("bare JID", func(t *testing.T) {
		r.Route(ctx, msg("alice@example.org/phone", "bob@example.org"))
		if len(bob1.take()) != 1 || len(bob2.take()) != 1 {
			t.Fatal("message to a bare JID not delivered to every resource")
		}
	})
	t.Run("negative priority and unavailable sessions get nothing via the bare JID", func(t *testing.T) {
		bob2.st.SetAvailable(xmlstream.New("jabber:client", "presence"), -1)
		r.Route(ctx, msg("alice@example.org/phone", "bob@example.org"))
		if len(bob1.take()) != 1 || len(bob2.take()) != 0 {
			t.Fatal("a negative-priority session got a message sent to the bare JID")
		}
		bob2.st.SetAvailable(xmlstream.New("jabber:client", "presence"), 0)
	})
	t.Run("groupchat to a bare JID is refused", func(t *testing.T) {
		m := msg("alice@example.org/phone", "bob@example.org")
		m.SetAttr("type", "groupchat")
		r.Route(ctx, m)
		got := alice.take()
		if len(got) != 1 || errorCondition(got[0]) != "service-unavailable" || len(bob1.take()) != 0 {
			t.Fatalf("groupchat to a bare JID: %v", got)
		}
	})
	t.Run("offline full JID falls back to bare", func(t *testing.T) {
		r.Route(ctx, msg("alice@example.org/phone", "bob@example.org/gone"))
		if len(bob1.take()) != 1 {
			t.Fatal("message to an unavailable resource not treated as to the bare JID")
		}
		bob2.take()
	})
	t.Run("unknown user", func(t *testing.T) {
		r.Route(ctx, msg("alice@example.org/phone", "nobody@example.org"))
		got := alice.take()
		if len(got) != 1 || errorCondition(got[0]) != "service-unavailable" {
			t.Fatalf("got %v", got)
		}
		if got[0].Attr("from") != "nobody@example.org" || got[0].Attr("to") != "alice@example.org/phone" {
			t.Errorf("error addressed from %q to %q", got[0].Attr("from"), got[0].Attr("to"))
		}
	})
	t.Run("malformed to", func(t *testing.T) {
		r.Route(ctx, msg("alice@example.org/phone", "a@b@c"))
		got := alice.take()
		if len(got) != 1 || errorCondition(got[0]) != "jid-malformed" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("remote domain", func(t *testing.T) {
		r.Route(ctx, msg("alice@example.org/phone", "x@elsewhere.example"))
		got := alice.take()
		if len(got) != 1 || errorCondition(got[0]) != "remote-server-not-found" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("errors are never bounced", func(t *testing.T) {
		m := msg("alice@example.org/phone", "nobody@example.org")
		m.SetAttr("type", "error")
		r.Route(ctx, m)
		if got := alice.take(); len(got) != 0 {
			t.Fatalf("an error stanza was answered: %v", got)
		}
	})
	t.Run("IQ to the server", func(t *testing.T) {
		iq := xmlstream.New("jabber:client", "iq", "from", "alice@example.org/phone", "to", "example.org", "type", "get", "id", "i1")
		iq.AddChild(xmlstream.New("urn:test", "q"))
		r.Route(ctx, iq)
		got := alice.take()
		if len(got) != 1 || got[0].Attr("type") != "result" || got[0].Attr("id") != "i1" || got[0].Child("urn:test", "q") == nil {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("unknown IQ", func(t *testing.T) {
		for _, to := range []string{"example.org", "", "bob@example.org", "nobody@example.org", "bob@example.org/gone"} {
			iq := xmlstream.New("jabber:client", "iq", "from", "alice@example.org/phone", "type", "get", "id", "i2")
			if to != "" {
				iq.SetAttr("to", to)
			}
			iq.AddChild(xmlstream.New("urn:unknown", "q"))
			r.Route(ctx, iq)
			got := alice.take()
			if len(got) != 1 || errorCondition(got[0]) != "service-unavailable" {
				t.Fatalf("to %q: got %v", to, got)
			}
		}
	})
	t.Run("IQ to a full JID is routed", func(t *testing.T) {
		iq := xmlstream.New("jabber:client", "iq", "from", "alice@example.org/phone", "to", "bob@example.org/desk", "type", "get", "id", "i3")
		iq.AddChild(xmlstream.New("urn:unknown", "q"))
		r.Route(ctx, iq)
		if len(bob1.take()) != 1 {
			t.Fatal("IQ to a full JID not delivered")
		}
	})
	t.Run("conflict and unbind", func(t *testing.T) {
		newBob := newSession("bob@example.org/desk")
		if old := r.Bind(ctx, newBob); old != bob1 {
			t.Fatal("the replaced session was not returned")
		}
		r.Unbind(ctx, bob1) // the old one goes away later: must not remove its successor
		if !r.ResourceInUse(jid.MustParse("bob@example.org/desk")) {
			t.Fatal("unbinding a replaced session removed its successor")
		}
		r.Unbind(ctx, newBob)
		if r.ResourceInUse(jid.MustParse("bob@example.org/desk")) {
			t.Fatal("session still bound after Unbind")
		}
	})
}

func TestComponentRouting(t *testing.T) {
	r, reg := newRouter(t)
	ctx := context.Background()
	var got []string
	reg.AddComponent(module.Component{Domain: "conference.example.org"}, func(_ context.Context, from, to jid.JID, el *xmlstream.Element) {
		got = append(got, from.String()+">"+to.String())
	})
	r.Route(ctx, msg("alice@example.org/phone", "room@conference.example.org/nick"))
	r.Route(ctx, msg("alice@example.org/phone", "conference.example.org"))
	if len(got) != 2 || got[0] != "alice@example.org/phone>room@conference.example.org/nick" {
		t.Fatalf("component got %v", got)
	}
}

type fakeRemote struct {
	mu   sync.Mutex
	sent []*xmlstream.Element
}

func (f *fakeRemote) Send(_ context.Context, from, to jid.JID, el *xmlstream.Element) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, el)
}

func (f *fakeRemote) take() []*xmlstream.Element {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	return s
}

// TestRemote: stanzas for other domains go to the Remote, answers to a
// remote sender too, and nothing is relayed between two remote domains.
func TestRemote(t *testing.T) {
	r, _ := newRouter(t)
	ctx := context.Background()
	alice := newSession("alice@example.org/phone")
	r.Bind(ctx, alice)
	rem := &fakeRemote{}

	r.Route(ctx, msg("alice@example.org/phone", "bob@other.example"))
	if got := alice.take(); len(got) != 1 || errorCondition(got[0]) != "remote-server-not-found" {
		t.Fatalf("without federation: %v", got)
	}

	r.SetRemote(rem)
	r.Route(ctx, msg("alice@example.org/phone", "bob@other.example"))
	if got := rem.take(); len(got) != 1 || got[0].Attr("to") != "bob@other.example" {
		t.Fatalf("to a remote account: %v", got)
	}
	if got := alice.take(); len(got) != 0 {
		t.Fatalf("the sender got %v", got)
	}

	// A remote sender's IQ to an unknown local account: the error goes
	// back through the Remote.
	iq := xmlstream.New("jabber:client", "iq", "from", "bob@other.example/x", "to", "nobody@example.org", "type", "get", "id", "q1")
	iq.AddChild(xmlstream.New("urn:test", "q"))
	r.Route(ctx, iq)
	got := rem.take()
	if len(got) != 1 || errorCondition(got[0]) != "service-unavailable" || got[0].Attr("to") != "bob@other.example/x" {
		t.Fatalf("error for a remote sender: %v", got)
	}

	// A remote sender's stanza for a third domain is never relayed, nor
	// is an error in the third domain's name sent to another server.
	r.Route(ctx, msg("bob@other.example/x", "carol@third.example"))
	for _, el := range rem.take() {
		t.Errorf("sent to another server in the name of a remote domain: %s", el)
	}

	// A message to a local account from a remote one is delivered as usual.
	r.Route(ctx, msg("bob@other.example/x", "alice@example.org/phone"))
	if got := alice.take(); len(got) != 1 {
		t.Fatalf("inbound remote message: %v", got)
	}
}

// fullSession is a recipient whose output stays full: it never makes room.
type fullSession struct {
	*fakeSession
	waited chan time.Time // the deadline of each wait
}

func (f *fullSession) DeliverPaced(ctx context.Context, el *xmlstream.Element, done func(bool)) error {
	f.Deliver(el)
	return nil
}

func (f *fullSession) WaitRoom(_ context.Context, deadline time.Time) error {
	f.waited <- deadline
	return session.ErrNoRoom
}

// A recipient that does not read makes its sender wait, then tells the
// sender to try later; it is neither cut off nor fed anyway. Without the
// sender's mark (the server's own stanzas) nothing waits.
func TestBackPressureOnSlowRecipient(t *testing.T) {
	r, _ := newRouter(t)
	alice := newSession("alice@example.org/a")
	bob := &fullSession{fakeSession: newSession("bob@example.org/b"), waited: make(chan time.Time, 10)}
	r.Bind(context.Background(), alice)
	r.Bind(context.Background(), bob)
	ctx := session.SenderMayWait(context.Background(), 3*time.Second)
	for _, to := range []string{"bob@example.org/b", "bob@example.org"} {
		r.Route(ctx, msg("alice@example.org/a", to))
		select {
		case d := <-bob.waited:
			if w := time.Until(d); w < time.Second || w > 3*time.Second {
				t.Errorf("to %s: waited with a deadline %v away, want about 3s", to, w)
			}
		default:
			t.Fatalf("to %s: the sender did not wait for the recipient", to)
		}
		if got := bob.take(); len(got) != 0 {
			t.Fatalf("to %s: delivered to a recipient that had no room", to)
		}
		got := alice.take()
		if len(got) != 1 || errorCondition(got[0]) != "resource-constraint" || got[0].Child("jabber:client", "error").Attr("type") != "wait" {
			t.Fatalf("to %s: the sender got %v, want a wait/resource-constraint error", to, got)
		}
	}
	r.Route(context.Background(), msg("alice@example.org/a", "bob@example.org/b"))
	if len(bob.waited) != 0 || len(bob.take()) != 1 {
		t.Fatal("a stanza without a waiting sender waited, or was not delivered")
	}
}

// An error for a stanza a service sent goes back to the service, as it
// would to a client: an external component waits for it.
func TestBounceReachesComponent(t *testing.T) {
	r, reg := newRouter(t)
	var got []*xmlstream.Element
	reg.AddComponent(module.Component{Domain: "irc.example.org", Subdomains: true}, func(_ context.Context, _, _ jid.JID, el *xmlstream.Element) {
		got = append(got, el)
	})
	r.Route(context.Background(), msg("#chan@gw.irc.example.org/nick", "nobody@example.org"))
	if len(got) != 1 || errorCondition(got[0]) != "service-unavailable" || got[0].Attr("to") != "#chan@gw.irc.example.org/nick" {
		t.Fatalf("the component got %v", got)
	}
}
