package roster

import (
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/storage"
	"parley/modules/internal/modtest"
)

// TestRosterAPI: what other modules learn of a roster through the host,
// for every subscription state of RFC 6121 §2.1.2.1.
func TestRosterAPI(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("x.org")
	h.AddUser("alice@x.org")
	if h.Roster() != (module.NoRoster{}) {
		t.Fatal("a host without the roster module has a roster")
	}
	if err := New(func() int { return 0 }).Start(h); err != nil {
		t.Fatal(err)
	}
	alice := jid.MustParse("alice@x.org")
	for _, it := range []storage.RosterItem{
		{Contact: "none@x.org", Subscription: storage.SubNone, Ask: true},
		{Contact: "to@x.org", Subscription: storage.SubTo, Name: "To", Groups: []string{"Work"}},
		{Contact: "from@x.org", Subscription: storage.SubFrom},
		{Contact: "both@x.org", Subscription: storage.SubBoth, Groups: []string{"Friends", "Work"}},
	} {
		if _, err := h.Store().Roster().Put(ctx, "alice@x.org", it, 0); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][2]bool{ // receives, sends
		"none@x.org": {false, false}, "to@x.org": {false, true},
		"from@x.org": {true, false}, "both@x.org": {true, true},
	}
	r := h.Roster()
	for contact, w := range want {
		c, ok, err := r.Contact(ctx, alice, jid.MustParse(contact+"/res"))
		if err != nil || !ok {
			t.Fatalf("Contact(%s) = %v, %v", contact, ok, err)
		}
		if c.JID.String() != contact || c.ReceivesPresence != w[0] || c.SendsPresence != w[1] {
			t.Errorf("Contact(%s) = %+v, want receives %v sends %v", contact, c, w[0], w[1])
		}
	}
	if c, _, _ := r.Contact(ctx, alice, jid.MustParse("both@x.org")); !c.InGroup("Friends") || c.InGroup("Family") {
		t.Errorf("groups of both@x.org: %v", c.Groups)
	}
	if _, ok, err := r.Contact(ctx, alice, jid.MustParse("stranger@x.org")); ok || err != nil {
		t.Errorf("a stranger is a contact: %v %v", ok, err)
	}
	all, err := r.Contacts(ctx, alice)
	if err != nil || len(all) != len(want) {
		t.Fatalf("Contacts = %d, %v", len(all), err)
	}
	for _, c := range all {
		if w := want[c.JID.String()]; c.ReceivesPresence != w[0] || c.SendsPresence != w[1] {
			t.Errorf("Contacts: %+v", c)
		}
	}
}
