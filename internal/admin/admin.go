// Package admin holds what the admin tools share, whichever way an admin
// reaches them: the local control socket (parley sessions, kick,
// announce, notify) or ad-hoc commands over XMPP (XEP-0133).
package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// nsOOB is XEP-0066 out-of-band data, which clients read to show a file
// inline.
const nsOOB = "jabber:x:oob"

// Notice is a message from the server (from is a host's bare domain);
// with url it carries the URL as XEP-0066 data too, and the body must
// then equal it for clients to show the file inline.
func Notice(from, to, typ, body, url string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "from", from, "to", to, "type", typ, "id", newID())
	m.AddChild(xmlstream.New(stanza.NSClient, "body").AddText(body))
	if url != "" {
		x := xmlstream.New(nsOOB, "x")
		x.AddChild(xmlstream.New(nsOOB, "url").AddText(url))
		m.AddChild(x)
	}
	return m
}

func newID() string {
	b := make([]byte, 9)
	rand.Read(b) // never fails (crypto/rand)
	return "parley-" + hex.EncodeToString(b)
}

// Matching returns the sessions target names: all of them for a zero
// JID, an account's for a bare JID, one for a full JID; sorted by JID.
func Matching(all []session.Session, target jid.JID) []session.Session {
	var out []session.Session
	for _, s := range all {
		j := s.JID()
		switch {
		case target.IsZero(),
			target.IsBare() && j.Bare().Equal(target),
			j.Equal(target):
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b session.Session) int {
		return strings.Compare(a.JID().String(), b.JID().String())
	})
	return out
}

// Kick ends the sessions target names (see Matching) and returns how
// many it ended.
func Kick(all []session.Session, target jid.JID, text string) int {
	n := 0
	for _, s := range Matching(all, target) {
		if session.End(s, text) {
			n++
		}
	}
	return n
}

// Announce sends text from the host of each session to every session in
// all, one message per session so that every device shows it; it
// returns how many were sent.
func Announce(ctx context.Context, all []session.Session, route func(context.Context, *xmlstream.Element), text string) int {
	for _, s := range all {
		route(ctx, Notice(s.JID().Domain(), s.JID().String(), "normal", text, ""))
	}
	return len(all)
}

// KeyHeldElsewhere refuses a password change that would give bare a new
// key while another cluster node holds its current one: that node is
// where the user's sessions are, and it would go on sealing under the
// old key, unreadable after. held says whether this node holds the key;
// nil when the change may go ahead here.
func KeyHeldElsewhere(held bool, all []session.Session, bare jid.JID) error {
	if held {
		return nil
	}
	for _, s := range Matching(all, bare) {
		if n, ok := s.(interface{ Node() string }); ok {
			return fmt.Errorf("%s is logged in on node %s, which holds the key of the account: change the password there, so that no sealed data is lost", bare, n.Node())
		}
	}
	return nil
}
