package roster

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// sealedFixture starts the module for alice, bob and carol of x.org and
// returns a function that hands a presence stanza to it.
func sealedFixture(t *testing.T) (*modtest.Host, *Module, func(from, to, raw string)) {
	h := modtest.NewHost("x.org")
	for _, u := range []string{"alice@x.org", "bob@x.org", "carol@x.org"} {
		h.AddUser(u)
	}
	m := New(func() int { return 0 })
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	presence := h.PresenceHandler()
	send := func(from, to, raw string) {
		t.Helper()
		el, err := xmlstream.ParseElement([]byte(raw), stanza.NSClient)
		if err != nil {
			t.Fatal(err)
		}
		var toJID jid.JID
		if to != "" {
			toJID = jid.MustParse(to)
		}
		presence(context.Background(), jid.MustParse(from), toJID, el)
	}
	return h, m, send
}

// TestSealedRosterWhileAway follows a roster sealed under alice's key
// through her absence: contacts subscribe, are approved by pre-approval,
// probe and ask, all handled by blind index without her key; her names
// and groups survive; her next login reseals what came to the mail-drop
// and shows it all.
func TestSealedRosterWhileAway(t *testing.T) {
	ctx := context.Background()
	h, _, send := sealedFixture(t)
	h.Unlock("alice@x.org")
	phone := h.Connect(ctx, "alice@x.org/phone")
	set := xmlstream.New(NS, "query").AddChild(
		xmlstream.New(NS, "item", "jid", "bob@x.org", "name", "Bobby Marker").AddChild(xmlstream.New(NS, "group").AddText("Group Marker")))
	if _, err := h.IQ(ctx, "alice@x.org/phone", "", "set", set); err != nil {
		t.Fatal(err)
	}
	// Pre-approval of bob, then alice leaves and her key goes.
	send("alice@x.org/phone", "bob@x.org", `<presence type="subscribed" to="bob@x.org"/>`)
	before, err := h.IQ(ctx, "alice@x.org/phone", "", "get", xmlstream.New(NS, "query"))
	if err != nil {
		t.Fatal(err)
	}
	verBefore, _ := strconv.Atoi(before.Attr("ver"))
	h.Disconnect(ctx, phone)
	h.Lock("alice@x.org")
	if h.Vault().Held("alice@x.org") {
		t.Fatal("the key is still held")
	}

	bob := h.Connect(ctx, "bob@x.org/b")
	send("bob@x.org/b", "", `<presence/>`)
	send("bob@x.org/b", "alice@x.org", `<presence type="subscribe" to="alice@x.org"/>`)
	approved := false
	for _, el := range bob.Take() {
		if el.Attr("type") == "subscribed" && el.Attr("from") == "alice@x.org" {
			approved = true
		}
	}
	if !approved {
		t.Error("bob's request was not approved while alice is away, though she pre-approved it")
	}
	if c, ok, err := h.Roster().Contact(ctx, jid.MustParse("alice@x.org"), jid.MustParse("bob@x.org")); err != nil || !ok || !c.ReceivesPresence || !c.Sealed {
		t.Errorf("bob in alice's roster while she is away = %+v, %v, %v; want subscribed, name and groups sealed", c, ok, err)
	}
	if _, err := h.Roster().Contacts(ctx, jid.MustParse("alice@x.org")); err == nil {
		t.Error("the whole roster was read while alice is away")
	}
	// A session whose login did not unlock the key is told why.
	var se *stanza.Error
	if _, err := h.IQ(ctx, "alice@x.org/locked", "", "get", xmlstream.New(NS, "query")); !errors.As(err, &se) ||
		se.Type != stanza.Wait || !strings.Contains(se.Text, "sealed under your key") {
		t.Errorf("roster get without the key: %v", err)
	}
	carol := h.Connect(ctx, "carol@x.org/c")
	send("carol@x.org/c", "alice@x.org", `<presence type="subscribe" to="alice@x.org"><status>Carol Marker</status></presence>`)
	if d := h.TakeDelivered(); len(d) != 0 {
		// A request to someone is kept, not refused.
		for _, el := range d {
			if el.Attr("type") == "unsubscribed" {
				t.Errorf("carol's request was refused: %s", el)
			}
		}
	}
	carol.Take()

	// Nothing of bob's name, group or carol's request is stored in clear.
	for _, b := range rawRoster(t, h, "alice@x.org") {
		for _, marker := range []string{"Bobby Marker", "Group Marker", "Carol Marker", "carol@x.org", "bob@x.org"} {
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("%q is stored in clear", marker)
			}
		}
	}

	// Alice is back: the roster shows the change made while away with
	// her name and group intact, and carol's request is handed over.
	h.Unlock("alice@x.org")
	laptop := h.Connect(ctx, "alice@x.org/laptop")
	q, err := h.IQ(ctx, "alice@x.org/laptop", "", "get", xmlstream.New(NS, "query"))
	if err != nil {
		t.Fatal(err)
	}
	var got *xmlstream.Element
	for it := range q.Elements() {
		if it.Attr("jid") == "bob@x.org" {
			got = it
		}
	}
	// XEP-0237: the change made while away moved the version, and a
	// client at the current version gets an empty result.
	if v, _ := strconv.Atoi(q.Attr("ver")); v <= verBefore {
		t.Errorf("roster version %s after changes while away, was %d", q.Attr("ver"), verBefore)
	}
	if same, err := h.IQ(ctx, "alice@x.org/laptop", "", "get", xmlstream.New(NS, "query", "ver", q.Attr("ver"))); err != nil || same != nil {
		t.Errorf("a get at the current version = %v, %v; want an empty result", same, err)
	}
	if got == nil || got.Attr("name") != "Bobby Marker" || got.Attr("subscription") != "from" || got.Child(NS, "group") == nil || got.Child(NS, "group").Text() != "Group Marker" {
		t.Errorf("bob after alice's return: %v", got)
	}
	send("alice@x.org/laptop", "", `<presence/>`)
	handed := false
	for _, el := range laptop.Take() {
		if el.Attr("type") == "subscribe" && el.Attr("from") == "carol@x.org" {
			handed = true
		}
	}
	if !handed {
		t.Error("carol's request made while alice was away was not handed over at her login")
	}
}

// rawRoster returns every stored byte of owner's roster rows.
func rawRoster(t *testing.T, h *modtest.Host, owner string) [][]byte {
	t.Helper()
	ctx := context.Background()
	r := h.Store().Roster()
	var out [][]byte
	clear, _, err := r.Items(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range clear {
		out = append(out, []byte(it.Contact+it.Name))
	}
	sealed, _, err := r.SealedItems(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range sealed {
		out = append(out, it.Sealed, it.Blind)
	}
	ps, _ := r.PendingSealed(ctx, owner)
	for _, p := range ps {
		out = append(out, p.Sealed)
	}
	pc, _ := r.PendingIn(ctx, owner)
	for _, p := range pc {
		out = append(out, p.Stanza)
	}
	return out
}

// TestLockedBroadcastUsesRecordedReceivers: a cluster node that ends a
// dead node's session holds no key to the user's sealed roster; the
// unavailable presence still reaches the contacts subscribed to the user,
// also one approved after the session's first presence, from the
// receivers recorded in the session's state.
func TestLockedBroadcastUsesRecordedReceivers(t *testing.T) {
	ctx := context.Background()
	h, m, send := sealedFixture(t)
	h.Unlock("alice@x.org")
	phone := h.Connect(ctx, "alice@x.org/phone")
	send("alice@x.org/phone", "", `<presence/>`)
	bob := h.Connect(ctx, "bob@x.org/b")
	carol := h.Connect(ctx, "carol@x.org/c")
	send("bob@x.org/b", "", `<presence/>`)
	send("carol@x.org/c", "", `<presence/>`)
	// bob subscribes after alice's first presence and she approves; carol
	// only asks.
	send("bob@x.org/b", "alice@x.org", `<presence type="subscribe" to="alice@x.org"/>`)
	send("alice@x.org/phone", "bob@x.org", `<presence type="subscribed" to="bob@x.org"/>`)
	send("carol@x.org/c", "alice@x.org", `<presence type="subscribe" to="alice@x.org"/>`)
	bob.Take()
	carol.Take()

	h.Lock("alice@x.org")
	m.sessionEnded(ctx, phone)
	gone := func(c interface{ Take() []*xmlstream.Element }) bool {
		for _, el := range c.Take() {
			if el.Name.Local == "presence" && el.Attr("type") == "unavailable" && el.Attr("from") == "alice@x.org/phone" {
				return true
			}
		}
		return false
	}
	if !gone(bob) {
		t.Error("bob, subscribed to alice, did not hear her session end while her key is not held")
	}
	if gone(carol) {
		t.Error("carol, not subscribed, heard alice's presence")
	}
}
