package pep

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/roster"
)

const (
	alice = "alice@x.org"
	bob   = "bob@x.org"
	carol = "carol@x.org" // no relation to alice
)

type env struct {
	t     *testing.T
	h     *modtest.Host
	m     *Module
	ctx   context.Context
	disco map[string][]string // full JID → features its client answers with
}

func newEnv(t *testing.T) *env {
	h := modtest.NewHost("x.org")
	// Contacts come from the roster module, as in the server.
	if err := roster.New(func() int { return 0 }).Start(h); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{alice, bob, carol} {
		h.AddUser(u)
	}
	m := New()
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, h: h, m: m, ctx: context.Background(), disco: map[string][]string{}}
	// alice and bob are mutually subscribed.
	e.roster(alice, bob, storage.SubBoth)
	e.roster(bob, alice, storage.SubBoth)
	return e
}

func (e *env) roster(owner, contact, sub string) {
	if _, err := e.h.Storage().Roster().Put(e.ctx, owner, storage.RosterItem{Contact: contact, Subscription: sub}, 0); err != nil {
		e.t.Fatal(err)
	}
}

// discoQuery builds the disco#info answer of a client with features.
func discoQuery(features []string) *xmlstream.Element {
	q := xmlstream.New(nsDiscoInfo, "query")
	q.AddChild(xmlstream.New(nsDiscoInfo, "identity", "category", "client", "type", "phone", "name", "test"))
	for _, f := range features {
		q.AddChild(xmlstream.New(nsDiscoInfo, "feature", "var", f))
	}
	return q
}

// online connects a session whose client announces caps for features
// and sends its initial presence, as the presence module would.
func (e *env) online(full string, features ...string) *modtest.Session {
	s := e.h.Connect(e.ctx, full)
	e.disco[full] = features
	p := xmlstream.New(stanza.NSClient, "presence", "from", full)
	p.AddChild(xmlstream.New(nsCaps, "c", "hash", "sha-1", "node", "https://example.org/client", "ver", verString("sha-1", discoQuery(features))))
	s.State().SetAvailable(p, 0)
	e.h.Emit(e.ctx, module.EventAvailable, s)
	return s
}

// answer plays the clients' part: it answers every caps query delivered
// so far and returns the other stanzas delivered (including the ones
// the answers caused).
func (e *env) answer() []*xmlstream.Element {
	var out []*xmlstream.Element
	for range 5 {
		got := e.h.TakeDelivered()
		if len(got) == 0 {
			break
		}
		for _, el := range got {
			if el.Name.Local != "iq" {
				out = append(out, el)
				continue
			}
			res := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", el.Attr("id"), "from", el.Attr("to"), "to", el.Attr("from"))
			q := discoQuery(e.disco[el.Attr("to")])
			q.SetAttr("node", el.FirstElement().Attr("node"))
			res.AddChild(q)
			if !e.h.IQResult(e.ctx, res) {
				e.t.Fatalf("caps answer %v was not taken", res)
			}
		}
	}
	return out
}

func (e *env) iq(from, to, typ string, payload *xmlstream.Element) (*xmlstream.Element, error) {
	return e.h.IQ(e.ctx, from, to, typ, payload)
}

func item(id, text string) *xmlstream.Element {
	it := xmlstream.New(NS, "item")
	if id != "" {
		it.SetAttr("id", id)
	}
	return it.AddChild(xmlstream.New("urn:test", "p").AddText(text))
}

func publishOptions(fields ...string) *xmlstream.Element {
	x := xmlstream.New(nsData, "x", "type", "submit")
	x.AddChild(xmlstream.New(nsData, "field", "var", "FORM_TYPE", "type", "hidden").AddChild(xmlstream.New(nsData, "value").AddText(formTypePublishOptions)))
	for i := 0; i < len(fields); i += 2 {
		x.AddChild(xmlstream.New(nsData, "field", "var", fields[i]).AddChild(xmlstream.New(nsData, "value").AddText(fields[i+1])))
	}
	return xmlstream.New(NS, "publish-options").AddChild(x)
}

func (e *env) publish(from, node string, it *xmlstream.Element, opts ...string) (*xmlstream.Element, error) {
	p := xmlstream.New(NS, "pubsub")
	p.AddChild(xmlstream.New(NS, "publish", "node", node).AddChild(it))
	if len(opts) > 0 {
		p.AddChild(publishOptions(opts...))
	}
	return e.iq(from, "", "set", p)
}

func (e *env) mustPublish(from, node string, it *xmlstream.Element, opts ...string) {
	e.t.Helper()
	if _, err := e.publish(from, node, it, opts...); err != nil {
		e.t.Fatalf("publish to %s: %v", node, err)
	}
}

func (e *env) items(from, to, node string, maxItems string, ids ...string) (*xmlstream.Element, error) {
	its := xmlstream.New(NS, "items", "node", node)
	if maxItems != "" {
		its.SetAttr("max_items", maxItems)
	}
	for _, id := range ids {
		its.AddChild(xmlstream.New(NS, "item", "id", id))
	}
	return e.iq(from, to, "get", xmlstream.New(NS, "pubsub").AddChild(its))
}

// summary renders event messages as "to: node/kind:id" lines, sorted.
func summary(els []*xmlstream.Element) []string {
	var out []string
	for _, el := range els {
		ev := el.Child(NSEvent, "event")
		if ev == nil || el.Attr("type") != "headline" {
			out = append(out, "not an event: "+el.String())
			continue
		}
		for c := range ev.Elements() {
			switch c.Name.Local {
			case "items":
				for it := range c.Elements() {
					s := el.Attr("to") + ": " + c.Attr("node") + "/" + it.Name.Local + ":" + it.Attr("id")
					if p := it.FirstElement(); p != nil {
						s += "=" + p.Text()
					}
					if el.Child(stanza.NSDelay, "delay") != nil {
						s += " (delayed)"
					}
					out = append(out, "from "+el.Attr("from")+" to "+s)
				}
			default:
				out = append(out, "from "+el.Attr("from")+" to "+el.Attr("to")+": "+c.Name.Local+" "+c.Attr("node"))
			}
		}
	}
	slices.Sort(out)
	return out
}

func condition(err error) string {
	if err == nil {
		return ""
	}
	se := stanza.AsError(err)
	s := se.Condition
	if se.Extra != nil {
		s += "+" + se.Extra.Name.Local
	}
	return s
}

func TestVerStringXEP0115Example(t *testing.T) {
	// XEP-0115 §5.2, the simple example.
	q := xmlstream.New(nsDiscoInfo, "query")
	q.AddChild(xmlstream.New(nsDiscoInfo, "identity", "category", "client", "type", "pc", "name", "Exodus 0.9.1"))
	for _, f := range []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc", "http://jabber.org/protocol/caps"} {
		q.AddChild(xmlstream.New(nsDiscoInfo, "feature", "var", f))
	}
	if got := verString("sha-1", q); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("ver = %s", got)
	}
	if got := verString("md5", q); got != "" {
		t.Errorf("unknown hash gave %q", got)
	}
}

func TestPublishNotifiesInterestedResources(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:avatar:metadata"
	e.online(alice+"/phone", node+"+notify")
	e.online(alice + "/old")                         // no +notify
	e.online(bob+"/pc", "urn:other", node+"+notify") // contact
	e.online(carol+"/pc", node+"+notify")            // not a contact
	e.answer()
	res, err := e.publish(alice+"/phone", node, item("h1", "one"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Child(NS, "publish").Child(NS, "item").Attr("id"); got != "h1" {
		t.Errorf("publish result item id %q", got)
	}
	want := []string{
		"from alice@x.org to alice@x.org/phone: urn:xmpp:avatar:metadata/item:h1=one",
		"from alice@x.org to bob@x.org/pc: urn:xmpp:avatar:metadata/item:h1=one",
	}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("notifications\n got %q\nwant %q", got, want)
	}
	// A contact whose subscription is only "to" (alice does not share her
	// presence with him) hears nothing.
	e.roster(alice, bob, storage.SubTo)
	e.mustPublish(alice+"/phone", node, item("h2", "two"))
	if got := summary(e.answer()); !slices.Equal(got, []string{"from alice@x.org to alice@x.org/phone: urn:xmpp:avatar:metadata/item:h2=two"}) {
		t.Errorf("after the subscription went: %q", got)
	}
}

func TestCapsQueriedOncePerVerAndNeverForged(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:avatar:metadata"
	e.mustPublish(alice+"/phone", node, item("h1", "one"))
	e.h.TakeDelivered()
	// Two of bob's resources with the same client: one query, and both
	// get the last item when it is answered.
	e.online(bob+"/a", node+"+notify")
	e.online(bob+"/b", node+"+notify")
	got := e.h.TakeDelivered()
	if len(got) != 1 || got[0].Name.Local != "iq" || got[0].Attr("to") != bob+"/a" {
		t.Fatalf("want one caps query to bob/a, got %v", got)
	}
	q := got[0]
	// Someone else answering for bob/a is ignored.
	forged := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", q.Attr("id"), "from", carol+"/x", "to", "x.org")
	if e.h.IQResult(e.ctx, forged) {
		t.Error("an answer from another address was taken")
	}
	e.h.Deliver(e.ctx, q) // put it back for answer()
	want := []string{
		"from alice@x.org to bob@x.org/a: urn:xmpp:avatar:metadata/item:h1=one (delayed)",
		"from alice@x.org to bob@x.org/b: urn:xmpp:avatar:metadata/item:h1=one (delayed)",
	}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("last items\n got %q\nwant %q", got, want)
	}
	// Now known: a third resource gets the last item at once, no query.
	e.online(bob+"/c", node+"+notify")
	if got := summary(e.h.TakeDelivered()); !slices.Equal(got, []string{"from alice@x.org to bob@x.org/c: urn:xmpp:avatar:metadata/item:h1=one (delayed)"}) {
		t.Errorf("with known caps: %q", got)
	}
}

func TestUnverifiedCapsAreNotShared(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:avatar:metadata"
	e.mustPublish(alice+"/phone", node, item("h1", "one"))
	e.h.TakeDelivered()
	// bob/liar announces the ver of a +notify client but answers with
	// other features: the answer holds for bob/liar alone.
	s := e.online(bob+"/liar", node+"+notify")
	e.disco[bob+"/liar"] = []string{"urn:other+notify"}
	if got := e.answer(); len(got) != 0 {
		t.Errorf("unverified answer delivered %q", summary(got))
	}
	if own, ok := s.State().Value(sessionCaps{}).(ownFeatures); !ok || !own.features["urn:other+notify"] {
		t.Errorf("session features = %+v", own)
	}
	// An honest client with that ver is asked again, not misled.
	e.online(bob+"/honest", node+"+notify")
	if got := summary(e.answer()); !slices.Equal(got, []string{"from alice@x.org to bob@x.org/honest: urn:xmpp:avatar:metadata/item:h1=one (delayed)"}) {
		t.Errorf("honest client: %q", got)
	}
}

func TestAccessModels(t *testing.T) {
	tests := []struct {
		name, node string
		opts       []string // publish options; none: the node's defaults
		from       string
		want       string // error condition, "" for success
	}{
		{"OMEMO bundle, default open, fetched by a stranger", "eu.siacs.conversations.axolotl.bundles:1234", nil, carol + "/x", ""},
		{"OMEMO 2 device list, open, stranger", "urn:xmpp:omemo:2:devices", []string{fieldAccessModel, AccessOpen}, carol + "/x", ""},
		{"open, contact", "n", []string{fieldAccessModel, AccessOpen}, bob + "/x", ""},
		{"presence default, contact", "urn:xmpp:avatar:data", nil, bob + "/x", ""},
		{"presence default, stranger", "urn:xmpp:avatar:data", nil, carol + "/x", "not-authorized+presence-subscription-required"},
		{"roster, contact", "n", []string{fieldAccessModel, AccessRoster}, bob + "/x", ""},
		{"roster, stranger", "n", []string{fieldAccessModel, AccessRoster}, carol + "/x", "not-authorized+not-in-roster-group"},
		{"whitelist, contact", "n", []string{fieldAccessModel, AccessWhitelist}, bob + "/x", "not-allowed+closed-node"},
		{"whitelist, owner", "n", []string{fieldAccessModel, AccessWhitelist}, alice + "/other", ""},
		{"bookmarks default whitelist, contact", nsBookmarks, nil, bob + "/x", "not-allowed+closed-node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustPublish(alice+"/phone", tt.node, item("current", "data"), tt.opts...)
			res, err := e.items(tt.from, alice, tt.node, "")
			if got := condition(err); got != tt.want {
				t.Fatalf("error %q, want %q", got, tt.want)
			}
			if tt.want == "" {
				it := res.Child(NS, "items").Child(NS, "item")
				if it == nil || it.Attr("id") != "current" || it.FirstElement().Text() != "data" {
					t.Errorf("items = %v", res)
				}
			}
		})
	}
}

func TestItemsErrorsAndOwnerOnlyChanges(t *testing.T) {
	e := newEnv(t)
	e.mustPublish(alice+"/phone", "n", item("1", "a"))
	calls := []struct {
		name string
		call func() error
		want string
	}{
		{"missing node", func() error { _, err := e.items(bob+"/x", alice, "nope", ""); return err }, "item-not-found"},
		{"no node name", func() error { _, err := e.items(alice+"/x", "", "", ""); return err }, "not-acceptable+nodeid-required"},
		{"publish to someone else", func() error {
			p := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "publish", "node", "n").AddChild(item("x", "y")))
			_, err := e.iq(bob+"/x", alice, "set", p)
			return err
		}, "forbidden"},
		{"two payloads", func() error {
			it := item("x", "y").AddChild(xmlstream.New("urn:test", "q"))
			_, err := e.publish(alice+"/phone", "n", it)
			return err
		}, "bad-request+invalid-payload"},
		{"subscribe someone else", func() error {
			p := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "subscribe", "node", "n", "jid", carol))
			_, err := e.iq(bob+"/x", alice, "set", p)
			return err
		}, "bad-request+invalid-jid"},
		{"configure someone else's node", func() error {
			p := xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "configure", "node", "n"))
			_, err := e.iq(bob+"/x", alice, "get", p)
			return err
		}, "forbidden"},
		{"bad access model", func() error {
			_, err := e.publish(alice+"/phone", "m", item("x", "y"), fieldAccessModel, "authorize")
			return err
		}, "feature-not-implemented+unsupported"},
	}
	for _, c := range calls {
		if got := condition(c.call()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestPublishOptionsPreconditions(t *testing.T) {
	tests := []struct {
		name  string
		first []string
		again []string
		want  string
	}{
		{"same access model", []string{fieldAccessModel, AccessOpen}, []string{fieldAccessModel, AccessOpen}, ""},
		{"other access model", []string{fieldAccessModel, AccessOpen}, []string{fieldAccessModel, AccessWhitelist}, "conflict+precondition-not-met"},
		{"max items max", []string{fieldMaxItems, "max"}, []string{fieldMaxItems, "max", fieldPersistItems, "true"}, ""},
		{"other max items", []string{fieldMaxItems, "max"}, []string{fieldMaxItems, "5"}, "conflict+precondition-not-met"},
		{"defaults then explicit default", nil, []string{fieldAccessModel, AccessPresence}, ""},
		{"persist differs", nil, []string{fieldPersistItems, "false"}, "conflict+precondition-not-met"},
		{"unknown option", nil, []string{"pubsub#item_expire", "3600"}, "conflict+precondition-not-met"},
		// Social feed clients (XEP-0472) send the payload type with
		// every publish; a node that declares none accepts it.
		{"type on an untyped node", nil, []string{"pubsub#type", "urn:xmpp:microblog:0"}, ""},
		{"other type", []string{"pubsub#type", "urn:a"}, []string{"pubsub#type", "urn:b"}, "conflict+precondition-not-met"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustPublish(alice+"/phone", "n", item("1", "a"), tt.first...)
			_, err := e.publish(alice+"/phone", "n", item("2", "b"), tt.again...)
			if got := condition(err); got != tt.want {
				t.Errorf("second publish: %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMaxItemsAndRetrieval(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.mustPublish(alice+"/phone", "n", item(fmt.Sprint(i), fmt.Sprint("v", i)), fieldMaxItems, "3")
	}
	ids := func(res *xmlstream.Element) string {
		var out []string
		for it := range res.Child(NS, "items").Elements() {
			out = append(out, it.Attr("id"))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name     string
		maxItems string
		ids      []string
		want     string
	}{
		{"all, newest first, limit kept", "", nil, "4,3,2"},
		{"max_items 1", "1", nil, "4"},
		{"max_items 2", "2", nil, "4,3"},
		{"by id, dropped one missing", "", []string{"0", "3"}, "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.items(bob+"/x", alice, "n", tt.maxItems, tt.ids...)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(res); got != tt.want {
				t.Errorf("items %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := e.items(bob+"/x", alice, "n", "lots"); condition(err) != "bad-request" {
		t.Errorf("bad max_items: %v", err)
	}
	// A publish without an id gets one.
	res, err := e.publish(alice+"/phone", "n", item("", "anon"))
	if err != nil || res.Child(NS, "publish").Child(NS, "item").Attr("id") == "" {
		t.Errorf("publish without id = %v, %v", res, err)
	}
}

func TestRetractDeleteAndConfigure(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:avatar:metadata"
	e.online(bob+"/pc", node+"+notify")
	e.answer()
	e.mustPublish(alice+"/phone", node, item("1", "a"), fieldMaxItems, "10")
	e.mustPublish(alice+"/phone", node, item("2", "b"))
	e.answer()
	retract := func(id, notify string) error {
		r := xmlstream.New(NS, "retract", "node", node)
		if notify != "" {
			r.SetAttr("notify", notify)
		}
		r.AddChild(xmlstream.New(NS, "item", "id", id))
		_, err := e.iq(alice+"/phone", "", "set", xmlstream.New(NS, "pubsub").AddChild(r))
		return err
	}
	if err := retract("1", "true"); err != nil {
		t.Fatal(err)
	}
	if got := summary(e.answer()); !slices.Equal(got, []string{"from alice@x.org to bob@x.org/pc: urn:xmpp:avatar:metadata/retract:1"}) {
		t.Errorf("retract notification %q", got)
	}
	if err := retract("1", ""); condition(err) != "item-not-found" {
		t.Errorf("second retract: %v", err)
	}

	owner := func(typ string, action *xmlstream.Element) (*xmlstream.Element, error) {
		return e.iq(alice+"/phone", "", typ, xmlstream.New(NSOwner, "pubsub").AddChild(action))
	}
	res, err := owner("get", xmlstream.New(NSOwner, "configure", "node", node))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := dataform.Parse(res.Child(NSOwner, "configure").Child(nsData, "x"))
	if f == nil || f.FormType != formTypeNodeConfig || f.Value(fieldAccessModel) != AccessPresence || f.Value(fieldMaxItems) != "10" {
		t.Errorf("configuration form %v", res)
	}
	x := publishOptions(fieldAccessModel, AccessWhitelist, fieldMaxItems, "1").Child(nsData, "x")
	x.Children[0].Elem.Children[0].Elem.Children[0].Text = formTypeNodeConfig
	if _, err := owner("set", xmlstream.New(NSOwner, "configure", "node", node).AddChild(x)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.items(bob+"/x", alice, node, ""); condition(err) != "not-allowed+closed-node" {
		t.Errorf("after configuring whitelist: %v", err)
	}
	// Whitelist: bob hears nothing more.
	e.mustPublish(alice+"/phone", node, item("3", "c"))
	if got := e.answer(); len(got) != 0 {
		t.Errorf("whitelisted node notified %q", summary(got))
	}
	res, _ = e.items(alice+"/phone", "", node, "")
	if n := len(res.Child(NS, "items").Children); n != 1 {
		t.Errorf("max_items 1 keeps %d items", n)
	}
	if _, err := owner("set", xmlstream.New(NSOwner, "delete", "node", node)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.items(alice+"/phone", "", node, ""); condition(err) != "item-not-found" {
		t.Errorf("after delete: %v", err)
	}
	if _, err := owner("set", xmlstream.New(NSOwner, "delete", "node", node)); condition(err) != "item-not-found" {
		t.Errorf("second delete: %v", err)
	}
	create := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "create", "node", "fresh"))
	if _, err := e.iq(alice+"/phone", "", "set", create); err != nil {
		t.Fatal(err)
	}
	if _, err := e.iq(alice+"/phone", "", "set", create); condition(err) != "conflict" {
		t.Errorf("second create: %v", err)
	}
}

func TestDeleteNotifiesAndWhitelistOwnerOnly(t *testing.T) {
	e := newEnv(t)
	e.online(alice+"/laptop", nsBookmarks+"+notify", "n+notify")
	e.online(bob+"/pc", nsBookmarks+"+notify", "n+notify")
	e.answer()
	e.mustPublish(alice+"/phone", nsBookmarks, item("room@muc.x.org", "bm"))
	if got := summary(e.answer()); !slices.Equal(got, []string{"from alice@x.org to alice@x.org/laptop: urn:xmpp:bookmarks:1/item:room@muc.x.org=bm"}) {
		t.Errorf("bookmarks notifications %q", got)
	}
	e.mustPublish(alice+"/phone", "n", item("1", "a"))
	e.answer()
	if _, err := e.iq(alice+"/phone", "", "set", xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "delete", "node", "n"))); err != nil {
		t.Fatal(err)
	}
	want := []string{"from alice@x.org to alice@x.org/laptop: delete n", "from alice@x.org to bob@x.org/pc: delete n"}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("delete notifications %q", got)
	}
	// Bookmarks are never sent as a last item, not even to the owner.
	e.online(alice+"/new", nsBookmarks+"+notify")
	if got := e.answer(); len(got) != 0 {
		t.Errorf("last items for bookmarks: %q", summary(got))
	}
}

func TestStorageFailureIsInternal(t *testing.T) {
	e := newEnv(t)
	e.h.Storage().FaultyPubSub().SetFail(fmt.Errorf("disk on fire"))
	_, err := e.publish(alice+"/phone", "n", item("1", "a"))
	if condition(err) != "internal-server-error" {
		t.Errorf("publish with a broken store: %v", err)
	}
	if _, ok := err.(*stanza.Error); ok {
		t.Errorf("storage error leaked as a stanza error: %v", err)
	}
}

func TestFeatures(t *testing.T) {
	e := newEnv(t)
	got := e.h.Features(module.Account)
	for _, f := range []string{NS + "#publish", NS + "#publish-options", NS + "#access-open", NS + "#last-published"} {
		if !slices.Contains(got, f) {
			t.Errorf("feature %s missing", f)
		}
	}
	_ = jid.MustParse(alice)
}
