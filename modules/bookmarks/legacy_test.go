package bookmarks

import (
	"errors"
	"slices"
	"testing"
	"time"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/pep"
)

const nsDiscoInfo = "http://jabber.org/protocol/disco#info"

// online binds an available session whose client wants notifications
// of nodes, answering the caps query PEP sends it (unverified answers
// count for the client that gave them).
func (e *env) online(full string, nodes ...string) *modtest.Session {
	e.t.Helper()
	s := e.h.Connect(e.ctx, full)
	p := xmlstream.New(stanza.NSClient, "presence", "from", full)
	p.AddChild(xmlstream.New("http://jabber.org/protocol/caps", "c", "hash", "sha-1", "node", "https://example.org/c", "ver", "ver-"+full))
	s.State().SetAvailable(p, 0)
	e.h.Emit(e.ctx, module.EventAvailable, s)
	for _, el := range e.h.TakeDelivered() {
		if el.Name.Local != "iq" {
			continue
		}
		q := xmlstream.New(nsDiscoInfo, "query", "node", el.FirstElement().Attr("node"))
		for _, n := range nodes {
			q.AddChild(xmlstream.New(nsDiscoInfo, "feature", "var", n+"+notify"))
		}
		res := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", el.Attr("id"), "from", el.Attr("to"), "to", el.Attr("from"))
		if !e.h.IQResult(e.ctx, res.AddChild(q)) {
			e.t.Fatalf("caps answer not taken: %s", res)
		}
	}
	e.h.TakeDelivered()
	return s
}

// events lists the notifications delivered since the last call as
// "to node item-or-retract:id", and the legacy lists they carry.
func (e *env) events() (got []string, lists []*xmlstream.Element) {
	for _, el := range e.h.TakeDelivered() {
		ev := el.Child(pep.NSEvent, "event")
		if ev == nil {
			continue
		}
		its := ev.Child(pep.NSEvent, "items")
		for it := range its.Elements() {
			got = append(got, el.Attr("to")+" "+its.Attr("node")+" "+it.Name.Local+":"+it.Attr("id"))
			if st := it.Child(NSLegacy, "storage"); st != nil {
				lists = append(lists, st)
			}
		}
	}
	slices.Sort(got)
	return got, lists
}

func (e *env) pubsub(from, typ, raw string) (*xmlstream.Element, error) {
	return e.h.IQ(e.ctx, from, "", typ, parse(e.t, `<pubsub xmlns="http://jabber.org/protocol/pubsub">`+raw+`</pubsub>`))
}

func (e *env) publishLegacy(storage string) error {
	_, err := e.pubsub(alice+"/old", "set", `<publish node="storage:bookmarks"><item id="current">`+storage+`</item></publish>`+
		`<publish-options><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value></field>`+
		`<field var="pubsub#persist_items"><value>true</value></field><field var="pubsub#access_model"><value>whitelist</value></field></x></publish-options>`)
	return err
}

// legacyItem reads the legacy PEP node as alice's client would.
func (e *env) legacyItem() *xmlstream.Element {
	e.t.Helper()
	res, err := e.pubsub(alice+"/old", "get", `<items node="storage:bookmarks"/>`)
	if err != nil {
		e.t.Fatal(err)
	}
	it := res.Child(pep.NS, "items").Child(pep.NS, "item")
	if it == nil || it.Attr("id") != "current" {
		e.t.Fatalf("legacy node: %s", res)
	}
	return it.Child(NSLegacy, "storage")
}

func TestLegacyPEPNodeIsAView(t *testing.T) {
	e := newEnv(t)
	e.online(alice+"/modern", NS)
	e.online(alice+"/old", NSLegacy)
	if _, err := e.pubsub(alice+"/old", "get", `<items node="storage:bookmarks"/>`); stanza.AsError(err).Condition != "item-not-found" {
		t.Errorf("legacy node of an account without bookmarks: %v", err)
	}

	// Publishing the whole list adds each room as an item.
	if err := e.publishLegacy(`<storage xmlns="storage:bookmarks"><conference jid="a@chat.x.org" autojoin="true"><nick>al</nick></conference>` +
		`<conference jid="b@chat.x.org" name="B"/><url name="site" url="https://x.org/"/></storage>`); err != nil {
		t.Fatal(err)
	}
	got, _ := e.items()
	if len(got) != 2 || got["a@chat.x.org"] != parse(t, `<conference xmlns="urn:xmpp:bookmarks:1" autojoin="true"><nick>al</nick></conference>`).String() {
		t.Errorf("items %v", got)
	}
	ev, lists := e.events()
	want := []string{
		"alice@x.org/modern urn:xmpp:bookmarks:1 item:a@chat.x.org",
		"alice@x.org/modern urn:xmpp:bookmarks:1 item:b@chat.x.org",
		"alice@x.org/old storage:bookmarks item:current",
	}
	if !slices.Equal(ev, want) {
		t.Errorf("notifications\n got %q\nwant %q", ev, want)
	}
	if len(lists) != 1 || lists[0].Child(NSLegacy, "url") == nil || len(slices.Collect(lists[0].Elements())) != 3 {
		t.Errorf("legacy notification: %v", lists)
	}
	// The list reads back the same through PEP and private storage.
	if a, b := e.legacyItem().String(), e.getPrivate().String(); a != b {
		t.Errorf("PEP and private storage disagree:\n%s\n%s", a, b)
	}

	// A change: one room changed, one gone, one new, the other as it
	// was. Only the differences reach XEP-0402 clients.
	if err := e.publishLegacy(`<storage xmlns="storage:bookmarks"><conference jid="a@chat.x.org" autojoin="true"><nick>al</nick></conference>` +
		`<conference jid="c@chat.x.org"/></storage>`); err != nil {
		t.Fatal(err)
	}
	ev, _ = e.events()
	want = []string{
		"alice@x.org/modern urn:xmpp:bookmarks:1 item:c@chat.x.org",
		"alice@x.org/modern urn:xmpp:bookmarks:1 retract:b@chat.x.org",
		"alice@x.org/old storage:bookmarks item:current",
	}
	if !slices.Equal(ev, want) {
		t.Errorf("notifications\n got %q\nwant %q", ev, want)
	}
	if st := e.getPrivate(); st.Child(NSLegacy, "url") != nil {
		t.Errorf("the URL dropped from the list is still kept: %s", st)
	}

	// A XEP-0402 client's change shows in the legacy node, and its
	// subscribers hear of it.
	e.publish("d@chat.x.org", `<conference xmlns="urn:xmpp:bookmarks:1" name="D"/>`)
	ev, lists = e.events()
	if !slices.Contains(ev, "alice@x.org/old storage:bookmarks item:current") || len(lists) != 1 || len(slices.Collect(lists[0].Elements())) != 3 {
		t.Errorf("after a XEP-0402 publish: %q %v", ev, lists)
	}
	if st := e.legacyItem(); len(slices.Collect(st.Elements())) != 3 {
		t.Errorf("legacy node after a XEP-0402 publish: %s", st)
	}
	// So does a private storage client's, with the list it stored.
	if err := e.setPrivate(`<storage xmlns="storage:bookmarks"><conference jid="e@chat.x.org"/><url name="u" url="https://u/"/></storage>`); err != nil {
		t.Fatal(err)
	}
	ev, lists = e.events()
	if !slices.Contains(ev, "alice@x.org/old storage:bookmarks item:current") || len(lists) != 1 ||
		lists[0].String() != parse(t, `<storage xmlns="storage:bookmarks"><url name="u" url="https://u/"/><conference jid="e@chat.x.org"/></storage>`).String() {
		t.Errorf("after a private storage set: %q %v", ev, lists)
	}
	// An unchanged private list notifies nobody.
	if err := e.setPrivate(`<storage xmlns="storage:bookmarks"><conference jid="e@chat.x.org"/><url name="u" url="https://u/"/></storage>`); err != nil {
		t.Fatal(err)
	}
	if ev, _ := e.events(); len(ev) != 0 {
		t.Errorf("an unchanged list notified %q", ev)
	}
}

func TestBadLegacyPublishChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.h.AddUser("bob@x.org")
	if err := e.publishLegacy(`<storage xmlns="storage:bookmarks"><conference jid="ok@chat.x.org"/></storage>`); err != nil {
		t.Fatal(err)
	}
	before := e.legacyItem().String()
	for name, tc := range map[string]struct{ raw, want string }{
		"not a storage": {`<publish node="storage:bookmarks"><item id="current"><conference xmlns="storage:bookmarks" jid="x@chat.x.org"/></item></publish>`, "bad-request"},
		"other ns":      {`<publish node="storage:bookmarks"><item id="current"><storage xmlns="urn:other"/></item></publish>`, "bad-request"},
		"bad jid":       {`<publish node="storage:bookmarks"><item id="current"><storage xmlns="storage:bookmarks"><conference jid="a@b@c"/></storage></item></publish>`, "bad-request"},
		"bad autojoin":  {`<publish node="storage:bookmarks"><item id="current"><storage xmlns="storage:bookmarks"><conference jid="x@chat.x.org" autojoin="yes"/></storage></item></publish>`, "bad-request"},
		"too many":      {`<publish node="storage:bookmarks"><item id="current"><storage xmlns="storage:bookmarks">` + manyConferences(MaxBookmarks+1) + `</storage></item></publish>`, "not-acceptable"},
		"two payloads":  {`<publish node="storage:bookmarks"><item id="current"><storage xmlns="storage:bookmarks"/><storage xmlns="storage:bookmarks"/></item></publish>`, "bad-request"},
		"open access": {`<publish node="storage:bookmarks"><item id="current"><storage xmlns="storage:bookmarks"/></item></publish>` +
			`<publish-options><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
			`<field var="pubsub#access_model"><value>open</value></field></x></publish-options>`, "conflict"},
		"retract": {`<retract node="storage:bookmarks"><item id="current"/></retract>`, "not-allowed"},
	} {
		_, err := e.pubsub(alice+"/old", "set", tc.raw)
		var se *stanza.Error
		if !errors.As(err, &se) || se.Condition != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
	if after := e.legacyItem().String(); after != before {
		t.Errorf("a refused publish changed the list:\n%s\n%s", before, after)
	}
	if got, _ := e.items(); len(got) != 1 {
		t.Errorf("items %v", got)
	}
	// The node is the owner's only.
	_, err := e.h.IQ(e.ctx, "bob@x.org/b", alice, "get", parse(t, `<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="storage:bookmarks"/></pubsub>`))
	if se := stanza.AsError(err); se == nil || se.Condition != "not-allowed" {
		t.Errorf("another account read the legacy node: %v", err)
	}
}

func TestLegacyPEPDataIsMigrated(t *testing.T) {
	e := newEnv(t)
	// Kept by PEP before the node became a view, next to a private list.
	st := parse(t, `<storage xmlns="storage:bookmarks"><conference jid="p@chat.x.org" autojoin="true"/><conference jid="both@chat.x.org" name="pep"/></storage>`)
	ps := e.h.Store().PubSub()
	if err := ps.CreateNode(e.ctx, alice, storage.PubSubNode{Name: NSLegacy, Config: []byte(`{"access_model":"whitelist","max_items":1,"persist_items":true}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Publish(e.ctx, alice, NSLegacy, storage.PubSubItem{ID: "current", Publisher: alice, Payload: st.Append(nil, ""), Published: time.Now()}, 1); err != nil {
		t.Fatal(err)
	}
	old := q + `<storage xmlns="storage:bookmarks"><conference jid="both@chat.x.org" name="private"/><url name="u" url="https://u/"/></storage></query>`
	if err := e.h.Store().KV().Put(e.ctx, alice, "jabber:iq:private", NSLegacy, []byte(old)); err != nil {
		t.Fatal(err)
	}
	e.h.Connect(e.ctx, alice+"/a")
	got, _ := e.items()
	if len(got) != 2 || got["both@chat.x.org"] != parse(t, `<conference xmlns="urn:xmpp:bookmarks:1" name="pep"/>`).String() {
		t.Errorf("items after the migration: %v", got)
	}
	if l := e.legacyItem(); l.Child(NSLegacy, "url") == nil || len(slices.Collect(l.Elements())) != 3 {
		t.Errorf("legacy list after the migration: %s", l)
	}
	if left, err := ps.Items(e.ctx, alice, NSLegacy, storage.PubSubQuery{}); err != nil || len(left) != 0 {
		t.Errorf("the old PEP copy is left: %v %v", left, err)
	}
}

func TestCompatFeatures(t *testing.T) {
	e := newEnv(t)
	for _, f := range []string{FeatureCompat, FeatureCompatPEP, FeatureConversion} {
		if !slices.Contains(e.h.Features(module.Account), f) {
			t.Errorf("%s not advertised", f)
		}
	}
}
