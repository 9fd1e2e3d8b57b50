package pubsub

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/storage/sqlite"
	"parley/internal/xmlstream"
)

// A configuration stored by PEP before the engine (flat JSON) reads as a
// state with no affiliations or subscriptions, and its new options keep
// what such nodes did.
func TestLegacyConfigDecodes(t *testing.T) {
	st, err := DecodeState([]byte(`{"access_model":"open","max_items":1,"persist_items":true,"send_last_published_item":"on_sub","notify_retract":true,"notify_delete":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.AccessModel != AccessOpen || st.MaxItems != 1 || st.NoPayloads || st.NoNotifications || st.Publishers() != PublishPublishers || len(st.Subscriptions) != 0 {
		t.Errorf("decoded %+v", st)
	}
	st.SetAffiliation(jid.MustParse("a@x/r"), Owner)
	st2, err := DecodeState(st.Encode())
	if err != nil || st2.Affiliation(jid.MustParse("a@x")) != Owner {
		t.Errorf("round trip: %+v, %v", st2, err)
	}
}

func TestSubscriptions(t *testing.T) {
	var st State
	bob, bobPhone := jid.MustParse("bob@x"), jid.MustParse("bob@x/phone")
	s1, err := st.Subscribe(bob, Subscribed, 2)
	if err != nil || s1.SubID == "" {
		t.Fatal(s1, err)
	}
	if again, _ := st.Subscribe(bob, Subscribed, 2); again.SubID != s1.SubID {
		t.Errorf("a second subscribe made another subscription: %+v", again)
	}
	if _, err := st.Subscribe(bobPhone, Pending, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Subscribe(jid.MustParse("carol@x"), Subscribed, 2); stanza.AsError(err).Condition != "resource-constraint" {
		t.Errorf("past the limit: %v", err)
	}
	if n := len(st.Of(bob)); n != 2 {
		t.Errorf("bob's subscriptions: %d", n)
	}
	if st.Unsubscribe(bob, "wrong-subid") || !st.Unsubscribe(bob, s1.SubID) || st.Unsubscribe(bob, "") {
		t.Errorf("unsubscribe by subid")
	}
	x, _ := xmlstream.ParseElement([]byte(`<x xmlns="jabber:x:data" type="submit"><field var="pubsub#digest"><value>1</value></field></x>`), "")
	sub := Subscription{}
	if se := ApplyOptions(&sub, x); se == nil {
		t.Errorf("digest accepted")
	}
	x, _ = xmlstream.ParseElement([]byte(`<x xmlns="jabber:x:data" type="submit"><field var="pubsub#deliver"><value>false</value></field></x>`), "")
	if se := ApplyOptions(&sub, x); se != nil || !sub.NoDeliver {
		t.Errorf("deliver false: %v %+v", se, sub)
	}
}

type roster map[string]module.Contact

func (r roster) Contact(_ context.Context, owner, contact jid.JID) (module.Contact, bool, error) {
	c, ok := r[owner.String()+" "+contact.String()]
	return c, ok, nil
}
func (r roster) Contacts(context.Context, jid.JID) ([]module.Contact, error) { return nil, nil }

func TestMayAccess(t *testing.T) {
	owner, friend, stranger := jid.MustParse("o@x"), jid.MustParse("f@x"), jid.MustParse("s@x")
	r := roster{"o@x f@x": {JID: friend, ReceivesPresence: true, Groups: []string{"g"}}}
	cases := []struct {
		model, aff string
		who        jid.JID
		sub        string
		want       string
	}{
		{AccessOpen, None, stranger, "", ""},
		{AccessOpen, Outcast, stranger, "", "forbidden"},
		{AccessPresence, None, friend, "", ""},
		{AccessPresence, None, stranger, "", "not-authorized"},
		{AccessWhitelist, None, friend, "", "not-allowed"},
		{AccessWhitelist, Member, stranger, "", ""},
		{AccessAuthorize, None, stranger, Pending, "not-authorized"},
		{AccessAuthorize, None, stranger, Subscribed, ""},
	}
	for _, c := range cases {
		st := State{Config: Config{AccessModel: c.model}}
		st.SetAffiliation(owner, Owner)
		st.SetAffiliation(c.who, c.aff)
		if c.sub != "" {
			st.Subscribe(c.who, c.sub, 0)
		}
		se, err := MayAccess(context.Background(), r, []jid.JID{owner}, c.who, st)
		got := ""
		if se != nil {
			got = se.Condition
		}
		if err != nil || got != c.want {
			t.Errorf("%s/%s/%s: %q, %v; want %q", c.model, c.aff, c.sub, got, err, c.want)
		}
	}
}

func TestSealed(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.OpenMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := bytes.Repeat([]byte{7}, 32)
	raw := db.PubSubService()
	ps, err := Sealed(raw, key, "service")
	if err != nil {
		t.Fatal(err)
	}
	const svc = "pubsub.x"
	if err := ps.CreateNode(ctx, svc, storage.PubSubNode{Name: "n", Config: []byte(`{"title":"SECRET-TITLE"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Publish(ctx, svc, "n", storage.PubSubItem{ID: "1", Publisher: "a@x", Payload: []byte("<p>SECRET-ITEM</p>")}, 0); err != nil {
		t.Fatal(err)
	}
	n, _ := raw.Node(ctx, svc, "n")
	its, _ := raw.Items(ctx, svc, "n", storage.PubSubQuery{})
	if bytes.Contains(n.Config, []byte("SECRET")) || bytes.Contains(its[0].Payload, []byte("SECRET")) || len(its[0].Payload) != len("<p>SECRET-ITEM</p>")+SealOverhead {
		t.Errorf("stored: %q %q", n.Config, its[0].Payload)
	}
	if got, err := ps.Items(ctx, svc, "n", storage.PubSubQuery{}); err != nil || string(got[0].Payload) != "<p>SECRET-ITEM</p>" {
		t.Errorf("opened: %v %v", got, err)
	}
	if l, err := ps.LastItems(ctx, svc); err != nil || string(l[0].Item.Payload) != "<p>SECRET-ITEM</p>" {
		t.Errorf("last: %v %v", l, err)
	}
	// Another door or another key does not open it.
	other, _ := Sealed(raw, key, "pep")
	if _, err := other.Items(ctx, svc, "n", storage.PubSubQuery{}); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("opened under another kind: %v", err)
	}
	wrong, _ := Sealed(raw, bytes.Repeat([]byte{8}, 32), "service")
	if _, err := wrong.Node(ctx, svc, "n"); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("opened under another key: %v", err)
	}
	// Clear rows from before sealing are read as they are.
	if err := raw.CreateNode(ctx, svc, storage.PubSubNode{Name: "old", Config: []byte(`{"title":"old"}`)}); err != nil {
		t.Fatal(err)
	}
	if n, err := ps.Node(ctx, svc, "old"); err != nil || string(n.Config) != `{"title":"old"}` {
		t.Errorf("a clear row: %q %v", n.Config, err)
	}
}

func TestMeetsPayloadType(t *testing.T) {
	form := func(v string) *dataform.Form {
		x, _ := xmlstream.ParseElement([]byte(`<x xmlns="jabber:x:data" type="submit"><field var="pubsub#type"><value>`+v+`</value></field></x>`), "")
		f, _ := dataform.Parse(x)
		return f
	}
	if !(Config{}).Meets(form("urn:xmpp:microblog:0"), 10) {
		t.Errorf("a node without a type refused a typed publish")
	}
	c := Config{Type: "urn:xmpp:microblog:0"}
	if !c.Meets(form("urn:xmpp:microblog:0"), 10) || c.Meets(form("urn:other"), 10) {
		t.Errorf("a typed node's preconditions")
	}
}
