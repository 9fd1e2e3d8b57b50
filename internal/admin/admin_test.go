package admin

import (
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/xmlstream"
)

// fakeSession is a bound session; with node set it is held by another
// cluster node, as the cluster's remote sessions are.
type fakeSession struct {
	jid   jid.JID
	state session.State
}

func (s *fakeSession) JID() jid.JID               { return s.jid }
func (s *fakeSession) Deliver(*xmlstream.Element) {}
func (s *fakeSession) Replace()                   {}
func (s *fakeSession) State() *session.State      { return &s.state }
func (r *remoteSession) Node() string             { return r.node }

type remoteSession struct {
	fakeSession
	node string
}

func TestKeyHeldElsewhere(t *testing.T) {
	alice := jid.MustParse("alice@example.org")
	here := &fakeSession{jid: jid.MustParse("alice@example.org/desk")}
	there := &remoteSession{fakeSession{jid: jid.MustParse("alice@example.org/phone")}, "n2"}
	bob := &remoteSession{fakeSession{jid: jid.MustParse("bob@example.org/phone")}, "n3"}
	for _, c := range []struct {
		held bool
		all  []session.Session
		want string
	}{
		{false, []session.Session{here, bob}, ""},
		{false, []session.Session{here, there, bob}, "node n2"},
		{true, []session.Session{here, there}, ""},
		{false, nil, ""},
	} {
		err := KeyHeldElsewhere(c.held, c.all, alice)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("KeyHeldElsewhere(held=%v, %d sessions) = %v, want %q", c.held, len(c.all), err, c.want)
		}
	}
}
