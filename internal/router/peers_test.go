package router

import (
	"context"
	"errors"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/xmlstream"
)

// remoteSession is a session on another node; gone makes its node
// refuse what it is sent.
type remoteSession struct {
	*fakeSession
	gone bool
}

func (r *remoteSession) DeliverAcked(_ context.Context, el *xmlstream.Element) error {
	if r.gone {
		return errors.New("gone")
	}
	r.Deliver(el)
	return nil
}

type fakePeers struct {
	sessions []Session
	bound    []Session
	service  map[string]module.ComponentHandler
}

func (p *fakePeers) Session(full jid.JID) Session {
	for _, s := range p.sessions {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}
func (p *fakePeers) Sessions(bare jid.JID) []Session {
	var out []Session
	for _, s := range p.sessions {
		if s.JID().Bare().Equal(bare) {
			out = append(out, s)
		}
	}
	return out
}
func (p *fakePeers) All() []Session                                  { return p.sessions }
func (p *fakePeers) Bound(_ context.Context, s Session)              { p.bound = append(p.bound, s) }
func (p *fakePeers) Unbound(context.Context, Session)                {}
func (p *fakePeers) IQResult(context.Context, *xmlstream.Element)    {}
func (p *fakePeers) Component(domain string) module.ComponentHandler { return p.service[domain] }

// TestPeers: the RFC 6121 rules over sessions on this node and others.
func TestPeers(t *testing.T) {
	ctx := context.Background()
	r, reg := newRouter(t)
	var offline []*xmlstream.Element
	reg.SetOfflineHandler(func(_ context.Context, _ jid.JID, el *xmlstream.Element) (bool, error) {
		offline = append(offline, el)
		return true, nil
	})
	far := &remoteSession{fakeSession: newSession("bob@example.org/far")}
	p := &fakePeers{sessions: []Session{far}}
	r.SetPeers(p)
	alice := newSession("alice@example.org/here")
	r.Bind(ctx, alice)
	if len(p.bound) != 1 || p.bound[0] != alice {
		t.Fatalf("the cluster was not told of the bound session: %v", p.bound)
	}
	if got := len(r.AllSessions()); got != 2 {
		t.Fatalf("AllSessions = %d sessions, want 2", got)
	}

	// A bare-JID message reaches the resource on the other node.
	r.Route(ctx, msg("alice@example.org/here", "bob@example.org"))
	if len(far.take()) != 1 || len(offline) != 0 {
		t.Fatalf("bare JID: far got nothing, or offline got %d", len(offline))
	}
	// Its node does not take it: offline storage, for the bare JID and
	// for the full JID alike.
	far.gone = true
	r.Route(ctx, msg("alice@example.org/here", "bob@example.org"))
	r.Route(ctx, msg("alice@example.org/here", "bob@example.org/far"))
	if len(offline) != 2 || len(far.take()) != 0 {
		t.Fatalf("a message the other node refused: %d kept offline", len(offline))
	}
	// A resource of negative priority on the other node gets no
	// bare-JID message (RFC 6121 §8.5.2.1.1); the one here does.
	far.gone = false
	far.st.SetAvailable(xmlstream.New("jabber:client", "presence"), -1)
	bob := newSession("bob@example.org/here")
	r.Bind(ctx, bob)
	r.Route(ctx, msg("alice@example.org/here", "bob@example.org"))
	if len(bob.take()) != 1 || len(far.take()) != 0 {
		t.Fatal("negative priority on the other node got a bare-JID message")
	}

	// A service another node runs gets its stanzas there.
	var forwarded []*xmlstream.Element
	reg.AddComponent(module.Component{Domain: "conference.example.org"}, func(context.Context, jid.JID, jid.JID, *xmlstream.Element) {
		t.Error("the local service handled a stanza for the service another node runs")
	})
	p.service = map[string]module.ComponentHandler{"conference.example.org": func(_ context.Context, _, _ jid.JID, el *xmlstream.Element) {
		forwarded = append(forwarded, el)
	}}
	r.Route(ctx, msg("alice@example.org/here", "room@conference.example.org"))
	if len(forwarded) != 1 {
		t.Fatalf("forwarded %d stanzas to the service's node", len(forwarded))
	}
}
