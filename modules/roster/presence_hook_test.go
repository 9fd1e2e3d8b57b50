package roster

import (
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// TestOutboundPresenceHook checks that the hooks decorate a session's
// presence once, before any copy: contacts, the account's own resources,
// the stored presence that answers later probes, and directed presence
// all carry the decoration.
func TestOutboundPresenceHook(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("x.org")
	h.AddUser("alice@x.org")
	h.AddUser("bob@x.org")
	m := New(func() int { return 0 })
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{"alice@x.org", "bob@x.org"}, {"bob@x.org", "alice@x.org"}} {
		if _, err := h.Store().Roster().Put(ctx, p[0], storage.RosterItem{Contact: p[1], Subscription: storage.SubBoth}, 0); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	h.OnOutboundPresence(func(_ context.Context, from jid.JID, el *xmlstream.Element) {
		calls++
		if from.String() != el.Attr("from") {
			t.Errorf("hook from %s, stanza from %q", from, el.Attr("from"))
		}
		el.AddChild(xmlstream.New("urn:test", "mark", "type", el.Attr("type")))
	})
	marked := func(el *xmlstream.Element) bool { return el.Child("urn:test", "mark") != nil }
	presence := h.PresenceHandler()
	send := func(from, to, raw string) {
		t.Helper()
		el, err := xmlstream.ParseElement([]byte(raw), "jabber:client")
		if err != nil {
			t.Fatal(err)
		}
		var toJID jid.JID
		if to != "" {
			toJID = jid.MustParse(to)
		}
		presence(ctx, jid.MustParse(from), toJID, el)
	}

	bob := h.Connect(ctx, "bob@x.org/b")
	send("bob@x.org/b", "", `<presence/>`)
	phone := h.Connect(ctx, "alice@x.org/phone")
	send("alice@x.org/phone", "", `<presence/>`)
	calls = 0
	bob.Take()
	phone.Take()

	laptop := h.Connect(ctx, "alice@x.org/laptop")
	send("alice@x.org/laptop", "", `<presence><show>away</show></presence>`)
	if calls != 1 {
		t.Errorf("hook ran %d times for one broadcast", calls)
	}
	for name, s := range map[string]*modtest.Session{"contact": bob, "own other resource": phone, "sender": laptop} {
		found := false
		for _, el := range s.Take() {
			if el.Name.Local == "presence" && el.Attr("from") == "alice@x.org/laptop" {
				found = true
				if !marked(el) {
					t.Errorf("%s got an undecorated presence: %s", name, el)
				}
			}
		}
		if !found {
			t.Errorf("%s got no presence", name)
		}
	}
	if p := laptop.State().Presence(); p == nil || !marked(p) {
		t.Errorf("stored presence not decorated: %v", p)
	}

	calls = 0
	send("alice@x.org/laptop", "room@conference.y.org/alice", `<presence to="room@conference.y.org/alice"/>`)
	if d := h.TakeDelivered(); calls != 1 || len(d) != 1 || !marked(d[0]) {
		t.Errorf("directed presence: %d hook calls, delivered %v", calls, d)
	}

	// Unavailable presence is decorated once too; a second one, sent
	// while already unavailable, goes nowhere and is left alone.
	calls = 0
	send("alice@x.org/laptop", "", `<presence type="unavailable"/>`)
	send("alice@x.org/laptop", "", `<presence type="unavailable"/>`)
	if calls != 1 {
		t.Errorf("hook ran %d times for unavailable presence", calls)
	}
	for _, el := range bob.Take() {
		if el.Attr("type") == "unavailable" && !marked(el) {
			t.Errorf("contact got an undecorated unavailable presence: %s", el)
		}
	}
	// Subscriptions and probes are not the session's presence.
	calls = 0
	send("alice@x.org/phone", "carol@x.org", `<presence type="subscribe" to="carol@x.org"/>`)
	send("alice@x.org/phone", "bob@x.org", `<presence type="probe" to="bob@x.org"/>`)
	if calls != 0 {
		t.Errorf("hook ran %d times for subscription and probe", calls)
	}
}
