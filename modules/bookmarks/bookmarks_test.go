package bookmarks

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/pep"
	"parley/modules/private"
)

const (
	alice = "alice@x.org"
	q     = `<query xmlns="jabber:iq:private">`
)

type env struct {
	t   *testing.T
	ctx context.Context
	h   *modtest.Host
	pep *pep.Module
}

func newEnv(t *testing.T) *env {
	h := modtest.NewHost("x.org")
	h.AddUser(alice)
	p, pr := pep.New(), private.New()
	mods := []module.Module{p, pr}
	for _, m := range append(mods, New(mods)) {
		if err := m.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, ctx: context.Background(), h: h, pep: p}
}

func parse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "")
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

func (e *env) setPrivate(storage string) error {
	_, err := e.h.IQ(e.ctx, alice+"/a", "", "set", parse(e.t, q+storage+`</query>`))
	return err
}

func (e *env) getPrivate() *xmlstream.Element {
	e.t.Helper()
	res, err := e.h.IQ(e.ctx, alice+"/a", "", "get", parse(e.t, q+`<storage xmlns="storage:bookmarks"/></query>`))
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Child(NSLegacy, "storage")
}

// items returns the bookmarks node as id → payload.
func (e *env) items() (map[string]string, bool) {
	e.t.Helper()
	items, exists, err := e.pep.ItemsOf(e.ctx, jid.MustParse(alice), NS)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range items {
		out[it.ID] = it.Payload.String()
	}
	return out, exists
}

func (e *env) publish(id, payload string) {
	e.t.Helper()
	p := xmlstream.New(pep.NS, "pubsub")
	p.AddChild(xmlstream.New(pep.NS, "publish", "node", NS).AddChild(xmlstream.New(pep.NS, "item", "id", id).AddChild(parse(e.t, payload))))
	opts := `<publish-options xmlns="http://jabber.org/protocol/pubsub"><x xmlns="jabber:x:data" type="submit">` +
		`<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var="pubsub#persist_items"><value>true</value></field><field var="pubsub#max_items"><value>max</value></field>` +
		`<field var="pubsub#send_last_published_item"><value>never</value></field>` +
		`<field var="pubsub#access_model"><value>whitelist</value></field></x></publish-options>`
	p.AddChild(parse(e.t, opts))
	if _, err := e.h.IQ(e.ctx, alice+"/a", "", "set", p); err != nil {
		e.t.Fatal(err)
	}
}

func TestLegacyListBecomesItems(t *testing.T) {
	e := newEnv(t)
	err := e.setPrivate(`<storage xmlns="storage:bookmarks">` +
		`<conference jid="coven@chat.x.org" name="The Coven" autojoin="1"><nick>alice</nick><password>pw</password><state xmlns="urn:example:state" v="1"/></conference>` +
		`<conference jid="other@chat.x.org"/>` +
		`<url name="site" url="https://x.org/"/></storage>`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.items()
	want := map[string]string{
		"coven@chat.x.org": parse(t, `<conference xmlns="urn:xmpp:bookmarks:1" name="The Coven" autojoin="true"><nick>alice</nick><password>pw</password>`+
			`<extensions><state xmlns="urn:example:state" v="1"/></extensions></conference>`).String(),
		"other@chat.x.org": parse(t, `<conference xmlns="urn:xmpp:bookmarks:1"/>`).String(),
	}
	if len(got) != len(want) {
		t.Fatalf("items %v", got)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("item %s:\n got  %s\n want %s", id, got[id], w)
		}
	}
	// Read back: the same list (URL kept), extensions back in place.
	st := e.getPrivate()
	if st.Child(NSLegacy, "url") == nil {
		t.Errorf("url bookmark lost: %s", st)
	}
	var coven *xmlstream.Element
	for c := range st.Elements() {
		if c.Attr("jid") == "coven@chat.x.org" {
			coven = c
		}
	}
	if coven == nil || coven.Attr("autojoin") != "true" || coven.Attr("name") != "The Coven" ||
		coven.Child(NSLegacy, "nick").Text() != "alice" || coven.Child(NSLegacy, "password").Text() != "pw" ||
		coven.Child("urn:example:state", "state") == nil {
		t.Errorf("conference read back as %v", coven)
	}

	// A shorter list retracts what it dropped and changes what changed.
	if err := e.setPrivate(`<storage xmlns="storage:bookmarks"><conference jid="coven@chat.x.org" name="Coven"/></storage>`); err != nil {
		t.Fatal(err)
	}
	got, _ = e.items()
	if len(got) != 1 || got["coven@chat.x.org"] != parse(t, `<conference xmlns="urn:xmpp:bookmarks:1" name="Coven"/>`).String() {
		t.Errorf("items after the update %v", got)
	}
	if st := e.getPrivate(); st.Child(NSLegacy, "url") != nil {
		t.Errorf("url kept after the client dropped it: %s", st)
	}
}

func TestItemsReadAsLegacyList(t *testing.T) {
	e := newEnv(t)
	e.publish("room@chat.x.org", `<conference xmlns="urn:xmpp:bookmarks:1" name="Room" autojoin="true"><nick>al</nick><extensions><y xmlns="urn:y"/></extensions></conference>`)
	e.publish("two@chat.x.org", `<conference xmlns="urn:xmpp:bookmarks:1" autojoin="false"/>`)
	st := e.getPrivate()
	want := parse(t, `<storage xmlns="storage:bookmarks"><conference jid="room@chat.x.org" name="Room" autojoin="true"><nick>al</nick><y xmlns="urn:y"/></conference>`+
		`<conference jid="two@chat.x.org"/></storage>`).String()
	if st.String() != want {
		t.Errorf("legacy list\n got  %s\n want %s", st, want)
	}
}

func TestLegacyDataBeforeTheNodeIsKept(t *testing.T) {
	e := newEnv(t)
	// Stored before the conversion existed: straight in the KV store.
	old := q + `<storage xmlns="storage:bookmarks"><conference jid="old@chat.x.org" autojoin="true"/></storage></query>`
	if err := e.h.Store().KV().Put(e.ctx, alice, private.NS, NSLegacy, []byte(old)); err != nil {
		t.Fatal(err)
	}
	if st := e.getPrivate(); st == nil || st.FirstElement() == nil || st.FirstElement().Attr("jid") != "old@chat.x.org" {
		t.Errorf("old list not read back: %v", st)
	}
	// The first login moves it to PEP; both sides then show it.
	e.h.Connect(e.ctx, alice+"/a")
	got, exists := e.items()
	if !exists || got["old@chat.x.org"] != parse(t, `<conference xmlns="urn:xmpp:bookmarks:1" autojoin="true"/>`).String() {
		t.Errorf("items after the migration %v", got)
	}
	if st := e.getPrivate(); st == nil || st.FirstElement() == nil || st.FirstElement().Attr("jid") != "old@chat.x.org" {
		t.Errorf("list after the migration: %v", st)
	}
	if kept, _ := e.h.Store().KV().Get(e.ctx, alice, private.NS, NSLegacy); kept != nil {
		t.Errorf("the migrated conferences stay in private storage: %s", kept)
	}
	// A second login changes nothing.
	e.h.Connect(e.ctx, alice+"/b")
	if again, _ := e.items(); len(again) != 1 {
		t.Errorf("items after a second login %v", again)
	}
}

func TestBrokenLegacyDataIsNotMigrated(t *testing.T) {
	e := newEnv(t)
	old := q + `<storage xmlns="storage:bookmarks"><conference jid="a@b@c"/></storage></query>`
	if err := e.h.Store().KV().Put(e.ctx, alice, private.NS, NSLegacy, []byte(old)); err != nil {
		t.Fatal(err)
	}
	e.h.Connect(e.ctx, alice+"/a")
	if _, exists := e.items(); exists {
		t.Error("the node was created from a broken list")
	}
	if !strings.Contains(e.h.Logs(), "migrating legacy bookmarks failed") {
		t.Errorf("nothing logged: %s", e.h.Logs())
	}
	if st := e.getPrivate(); st == nil || st.FirstElement() == nil {
		t.Errorf("the broken list is lost: %v", st)
	}
}

func TestBadLegacyListsAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, storage string }{
		{"no jid", `<storage xmlns="storage:bookmarks"><conference name="x"/></storage>`},
		{"full jid", `<storage xmlns="storage:bookmarks"><conference jid="r@chat.x.org/nick"/></storage>`},
		{"invalid jid", `<storage xmlns="storage:bookmarks"><conference jid="a@b@c"/></storage>`},
		{"bad autojoin", `<storage xmlns="storage:bookmarks"><conference jid="r@chat.x.org" autojoin="yes"/></storage>`},
		{"not a storage", `<list xmlns="storage:bookmarks"/>`},
		{"two storages", `<storage xmlns="storage:bookmarks"/><storage xmlns="storage:bookmarks"/>`},
		{"too many", `<storage xmlns="storage:bookmarks">` + manyConferences(MaxBookmarks+1) + `</storage>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			err := e.setPrivate(`<storage xmlns="storage:bookmarks"><conference jid="ok@chat.x.org" autojoin="true"/>` + `</storage>`)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := e.items()
			err = e.setPrivate(tc.storage)
			var se *stanza.Error
			if !errors.As(err, &se) || (se.Condition != "bad-request" && se.Condition != "not-acceptable") {
				t.Fatalf("error %v", err)
			}
			after, _ := e.items()
			if len(after) != len(before) || after["ok@chat.x.org"] != before["ok@chat.x.org"] {
				t.Errorf("items changed by a refused list: %v", after)
			}
			if st := e.getPrivate(); st.FirstElement() == nil || st.FirstElement().Attr("jid") != "ok@chat.x.org" {
				t.Errorf("list changed by a refused set: %s", st)
			}
		})
	}
}

func manyConferences(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`<conference jid="r` + strings.Repeat("x", i%7) + strconv.Itoa(i) + `@chat.x.org"/>`)
	}
	return b.String()
}

func TestEmptyListOnFreshAccount(t *testing.T) {
	e := newEnv(t)
	if err := e.setPrivate(`<storage xmlns="storage:bookmarks"/>`); err != nil {
		t.Fatal(err)
	}
	if _, exists := e.items(); exists {
		t.Error("an empty list created the node")
	}
	if st := e.getPrivate(); st == nil || st.FirstElement() != nil {
		t.Errorf("got %v", st)
	}
}

func TestNodeIsPrivateWithManyItems(t *testing.T) {
	e := newEnv(t)
	if err := e.setPrivate(`<storage xmlns="storage:bookmarks"><conference jid="a@chat.x.org"/><conference jid="b@chat.x.org"/></storage>`); err != nil {
		t.Fatal(err)
	}
	res, err := e.h.IQ(e.ctx, alice+"/a", "", "get", parse(t, `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><configure node="urn:xmpp:bookmarks:1"/></pubsub>`))
	if err != nil {
		t.Fatal(err)
	}
	s := res.String()
	for _, want := range []string{"<value>whitelist</value>", "<value>max</value>"} {
		if !strings.Contains(s, want) {
			t.Errorf("node configuration lacks %s: %s", want, s)
		}
	}
	// A XEP-0402 client's publish with its preconditions still works.
	e.publish("c@chat.x.org", `<conference xmlns="urn:xmpp:bookmarks:1"/>`)
	got, _ := e.items()
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a@chat.x.org", "b@chat.x.org", "c@chat.x.org"}) {
		t.Errorf("items %v", ids)
	}
}

func TestFeature(t *testing.T) {
	e := newEnv(t)
	if !slices.Contains(e.h.Features(module.Account), FeatureCompat) {
		t.Errorf("%s not advertised", FeatureCompat)
	}
	if err := New(nil).Start(modtest.NewHost("x.org")); err == nil {
		t.Error("started without pep and private")
	}
}
