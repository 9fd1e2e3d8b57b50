package roster

import (
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// The roster module handles each session's presence on that session's
// own goroutine, so a subscription approval can be handled while the
// other side is going available. These tests put the approval at the
// worst moment: right after the broadcast of the initial presence has
// read the roster. Whatever the interleaving, the subscriber must end
// up with the contact's presence (RFC 6121 §3.1.5, §4.2.2).

// storeWith replaces a store's roster.
type storeWith struct {
	storage.Store
	roster storage.Roster
}

func (s storeWith) Roster() storage.Roster { return s.roster }

// rosterHook runs afterItems once, after the next Items call for
// owner has taken its snapshot and before it returns.
type rosterHook struct {
	storage.Roster
	owner      string
	afterItems func()
}

func (r *rosterHook) Items(ctx context.Context, owner string) ([]storage.RosterItem, int64, error) {
	items, ver, err := r.Roster.Items(ctx, owner)
	if f := r.afterItems; f != nil && owner == r.owner {
		r.afterItems = nil
		f()
	}
	return items, ver, err
}

type hostWith struct {
	*modtest.Host
	store storage.Store
}

func (h hostWith) Store() storage.Store { return h.store }

func newRaceHost(t *testing.T) (*modtest.Host, *rosterHook, func(from, to, raw string)) {
	t.Helper()
	h := modtest.NewHost("x.org")
	h.AddUser("alice@x.org")
	h.AddUser("bob@x.org")
	hook := &rosterHook{Roster: h.Store().Roster()}
	m := New(func() int { return 0 })
	if err := m.Start(hostWith{Host: h, store: storeWith{Store: h.Store(), roster: hook}}); err != nil {
		t.Fatal(err)
	}
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
		presence(context.Background(), jid.MustParse(from), toJID, el)
	}
	return h, hook, send
}

func gotPresenceFrom(s *modtest.Session, from string) bool {
	for _, el := range s.Take() {
		if el.Name.Local == "presence" && el.Attr("from") == from && el.Attr("type") == "" {
			return true
		}
	}
	return false
}

// TestApprovalWhileSubscriberGoesAvailable: bob asked for alice's
// presence and sends his initial presence; alice approves just after
// bob's broadcast read his roster (where alice is still pending).
func TestApprovalWhileSubscriberGoesAvailable(t *testing.T) {
	h, hook, send := newRaceHost(t)
	alice := h.Connect(context.Background(), "alice@x.org/r")
	send("alice@x.org/r", "", `<presence/>`)
	bob := h.Connect(context.Background(), "bob@x.org/r")
	send("bob@x.org/r", "alice@x.org", `<presence to="alice@x.org" type="subscribe"/>`)
	alice.Take()

	hook.owner = "bob@x.org"
	hook.afterItems = func() {
		send("alice@x.org/r", "bob@x.org", `<presence to="bob@x.org" type="subscribed"/>`)
	}
	send("bob@x.org/r", "", `<presence/>`)
	if hook.afterItems != nil {
		t.Fatal("bob's initial presence did not read his roster")
	}
	if !gotPresenceFrom(bob, "alice@x.org/r") {
		t.Error("bob, now subscribed to alice, never got her presence")
	}
}

// TestApprovalWhileOtherResourceGoesAvailable: alice's phone approves
// bob's request while her laptop's initial presence is being broadcast
// (its broadcast read the roster before bob was a subscriber).
func TestApprovalWhileOtherResourceGoesAvailable(t *testing.T) {
	h, hook, send := newRaceHost(t)
	ctx := context.Background()
	bob := h.Connect(ctx, "bob@x.org/r")
	send("bob@x.org/r", "", `<presence/>`)
	h.Connect(ctx, "alice@x.org/phone")
	h.Connect(ctx, "alice@x.org/laptop")
	send("bob@x.org/r", "alice@x.org", `<presence to="alice@x.org" type="subscribe"/>`)
	bob.Take()

	hook.owner = "alice@x.org"
	hook.afterItems = func() {
		send("alice@x.org/phone", "bob@x.org", `<presence to="bob@x.org" type="subscribed"/>`)
	}
	send("alice@x.org/laptop", "", `<presence/>`)
	if hook.afterItems != nil {
		t.Fatal("alice's initial presence did not read her roster")
	}
	if !gotPresenceFrom(bob, "alice@x.org/laptop") {
		t.Error("bob, now subscribed to alice, never got her laptop's presence")
	}
}
