package pubsubsvc

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/roster"
)

const svc = "pubsub.x.org"

type env struct {
	t   *testing.T
	h   *modtest.Host
	ctx context.Context
	n   int
}

func newEnv(t *testing.T, o Options) *env {
	h := modtest.NewHost("x.org")
	if err := roster.New(func() int { return 0 }).Start(h); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice@x.org", "bob@x.org", "carol@x.org"} {
		h.AddUser(u)
	}
	o.Domains = []string{svc}
	if err := New(o).Start(h); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, h: h, ctx: context.Background()}
}

// iq sends an IQ with the given payload XML from a full JID to the
// service and returns the answer; what else the service sent is in out.
func (e *env) iq(from, typ, payload string) (answer *xmlstream.Element, out []*xmlstream.Element) {
	e.t.Helper()
	e.n++
	id := fmt.Sprint("q", e.n)
	raw := fmt.Sprintf(`<iq xmlns="jabber:client" type="%s" id="%s" from="%s" to="%s">%s</iq>`, typ, id, from, svc, payload)
	el, err := xmlstream.ParseElement([]byte(raw), "")
	if err != nil {
		e.t.Fatalf("bad test XML %s: %v", raw, err)
	}
	e.h.ToComponent(e.ctx, jid.MustParse(from), jid.MustParse(svc), el)
	for _, s := range e.h.TakeDelivered() {
		if s.Name.Local == "iq" && s.Attr("id") == id {
			answer = s
		} else {
			out = append(out, s)
		}
	}
	if answer == nil {
		e.t.Fatalf("no answer to %s", raw)
	}
	return answer, out
}

func (e *env) ok(from, typ, payload string) (*xmlstream.Element, []*xmlstream.Element) {
	e.t.Helper()
	a, out := e.iq(from, typ, payload)
	if a.Attr("type") != "result" {
		e.t.Fatalf("%s: %s", payload, a)
	}
	return a, out
}

func (e *env) fails(from, typ, payload, want string) {
	e.t.Helper()
	a, _ := e.iq(from, typ, payload)
	if a.Attr("type") != "error" || !strings.Contains(a.String(), want) {
		e.t.Errorf("%s from %s: %s, want an error with %s", payload, from, a, want)
	}
}

const (
	ps      = `<pubsub xmlns="http://jabber.org/protocol/pubsub">`
	owner   = `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner">`
	end     = `</pubsub>`
	aliceJ  = "alice@x.org/phone"
	bobJ    = "bob@x.org/pc"
	carolJ  = "carol@x.org/pc"
	xdata   = `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#node_config</value></field>`
	xdataSO = `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field>`
)

func field(v, val string) string {
	return fmt.Sprintf(`<field var="%s"><value>%s</value></field>`, v, val)
}

func texts(els []*xmlstream.Element) string {
	var b strings.Builder
	for _, el := range els {
		b.WriteString(el.String())
		b.WriteString("\n")
	}
	return b.String()
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t, Options{})
	e.ok(aliceJ, "set", ps+`<create node="news"/><configure>`+xdata+field("pubsub#max_items", "2")+field("pubsub#title", "News")+`</x></configure>`+end)
	e.fails(bobJ, "set", ps+`<create node="news"/>`+end, "conflict")
	e.fails("stranger@remote.example/x", "set", ps+`<create node="x"/>`+end, "forbidden")

	// bob subscribes (open), alice publishes: bob gets the payload.
	a, _ := e.ok(bobJ, "set", ps+`<subscribe node="news" jid="bob@x.org"/>`+end)
	if !strings.Contains(a.String(), `subscription="subscribed"`) || !strings.Contains(a.String(), "subid=") {
		t.Fatalf("subscribe: %s", a)
	}
	_, out := e.ok(aliceJ, "set", ps+`<publish node="news"><item id="1"><entry xmlns="http://www.w3.org/2005/Atom"><title>MARKER-ONE</title></entry></item></publish>`+end)
	if len(out) != 1 || out[0].Attr("to") != "bob@x.org" || !strings.Contains(out[0].String(), "MARKER-ONE") {
		t.Fatalf("notification: %s", texts(out))
	}
	// Stored sealed.
	raw, err := e.h.Storage().PubSubService().Items(e.ctx, svc, "news", storage.PubSubQuery{})
	if err != nil || len(raw) != 1 || bytes.Contains(raw[0].Payload, []byte("MARKER-ONE")) {
		t.Errorf("stored item: %v, %v", raw, err)
	}
	// bob may not publish (publishers model), nor configure.
	e.fails(bobJ, "set", ps+`<publish node="news"><item><x xmlns="urn:t"/></item></publish>`+end, "forbidden")
	e.fails(bobJ, "get", owner+`<configure node="news"/>`+end, "forbidden")
	// max_items 2 keeps the newest two.
	e.ok(aliceJ, "set", ps+`<publish node="news"><item id="2"><x xmlns="urn:t"/></item></publish>`+end)
	e.ok(aliceJ, "set", ps+`<publish node="news"><item id="3"><x xmlns="urn:t"/></item></publish>`+end)
	a, _ = e.ok(bobJ, "get", ps+`<items node="news"/>`+end)
	if s := a.String(); strings.Contains(s, `id="1"`) || !strings.Contains(s, `id="2"`) || !strings.Contains(s, `id="3"`) {
		t.Errorf("items after max_items: %s", s)
	}
	// deliver off: no notification.
	e.ok(bobJ, "set", ps+`<options node="news" jid="bob@x.org">`+xdataSO+field("pubsub#deliver", "false")+`</x></options>`+end)
	if _, out = e.ok(aliceJ, "set", ps+`<publish node="news"><item id="4"><x xmlns="urn:t"/></item></publish>`+end); len(out) != 0 {
		t.Errorf("notified with deliver off: %s", texts(out))
	}
	e.ok(bobJ, "set", ps+`<options node="news" jid="bob@x.org">`+xdataSO+field("pubsub#deliver", "true")+`</x></options>`+end)
	// No payloads.
	e.ok(aliceJ, "set", owner+`<configure node="news">`+xdata+field("pubsub#deliver_payloads", "0")+`</x></configure>`+end)
	if _, out = e.ok(aliceJ, "set", ps+`<publish node="news"><item id="5"><x xmlns="urn:t">PAYLOAD</x></item></publish>`+end); len(out) != 1 || strings.Contains(out[0].String(), "PAYLOAD") || !strings.Contains(out[0].String(), `id="5"`) {
		t.Errorf("notification without payload: %s", texts(out))
	}
	// Retract notifies.
	if _, out = e.ok(aliceJ, "set", ps+`<retract node="news" notify="true"><item id="5"/></retract>`+end); len(out) != 1 || !strings.Contains(out[0].String(), `<retract id="5"`) {
		t.Errorf("retract notification: %s", texts(out))
	}
	// Outcast: bob loses his subscription and access.
	e.ok(aliceJ, "set", owner+`<affiliations node="news"><affiliation jid="bob@x.org" affiliation="outcast"/></affiliations>`+end)
	e.fails(bobJ, "get", ps+`<items node="news"/>`+end, "forbidden")
	e.fails(aliceJ, "set", owner+`<affiliations node="news"><affiliation jid="alice@x.org" affiliation="none"/></affiliations>`+end, "not-acceptable")
	// A publisher may publish.
	e.ok(aliceJ, "set", owner+`<affiliations node="news"><affiliation jid="carol@x.org" affiliation="publisher"/></affiliations>`+end)
	e.ok(carolJ, "set", ps+`<publish node="news"><item id="c"><x xmlns="urn:t"/></item></publish>`+end)
	a, _ = e.ok(carolJ, "get", ps+`<affiliations/>`+end)
	if !strings.Contains(a.String(), `affiliation="publisher"`) {
		t.Errorf("carol's affiliations: %s", a)
	}
	// Purge, then delete with a redirect told to subscribers.
	e.ok(carolJ, "set", ps+`<subscribe node="news" jid="carol@x.org"/>`+end)
	e.ok(aliceJ, "set", owner+`<purge node="news"/>`+end)
	a, _ = e.ok(carolJ, "get", ps+`<items node="news"/>`+end)
	if strings.Contains(a.String(), "<item ") {
		t.Errorf("items after purge: %s", a)
	}
	_, out = e.ok(aliceJ, "set", owner+`<delete node="news"><redirect uri="xmpp:pubsub.x.org?;node=other"/></delete>`+end)
	if len(out) != 1 || !strings.Contains(out[0].String(), `<redirect uri="xmpp:pubsub.x.org?;node=other"`) {
		t.Errorf("delete notification: %s", texts(out))
	}
	e.fails(aliceJ, "get", ps+`<items node="news"/>`+end, "item-not-found")
}

func TestAuthorizeFlow(t *testing.T) {
	e := newEnv(t, Options{})
	e.ok(aliceJ, "set", ps+`<create node="club"/><configure>`+xdata+field("pubsub#access_model", "authorize")+`</x></configure>`+end)
	e.ok(aliceJ, "set", ps+`<publish node="club"><item id="1"><x xmlns="urn:t">SECRET</x></item></publish>`+end)
	a, out := e.ok(bobJ, "set", ps+`<subscribe node="club" jid="bob@x.org"/>`+end)
	if !strings.Contains(a.String(), `subscription="pending"`) {
		t.Fatalf("subscribe to authorize: %s", a)
	}
	if len(out) != 1 || out[0].Attr("to") != "alice@x.org" || !strings.Contains(out[0].String(), "subscribe_authorization") {
		t.Fatalf("authorization request: %s", texts(out))
	}
	e.fails(bobJ, "get", ps+`<items node="club"/>`+end, "not-subscribed")
	form, _ := xmlstream.ParseElement([]byte(out[0].String()), "")
	subid := ""
	for f := range form.Child("jabber:x:data", "x").Elements() {
		if f.Attr("var") == "pubsub#subid" {
			subid = f.Child("jabber:x:data", "value").Text()
		}
	}
	answer := fmt.Sprintf(`<message xmlns="jabber:client" from="%s" to="%s"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#subscribe_authorization</value></field><field var="pubsub#subid"><value>%s</value></field><field var="pubsub#node"><value>club</value></field><field var="pubsub#subscriber_jid"><value>bob@x.org</value></field><field var="pubsub#allow"><value>true</value></field></x></message>`, aliceJ, svc, subid)
	// bob cannot approve himself.
	forged := strings.Replace(answer, `from="`+aliceJ, `from="`+bobJ, 1)
	for _, m := range []string{forged, answer} {
		el, _ := xmlstream.ParseElement([]byte(m), "")
		e.h.ToComponent(e.ctx, jid.MustParse(el.Attr("from")), jid.MustParse(svc), el)
		if m == forged {
			if got := e.h.TakeDelivered(); len(got) != 0 {
				t.Errorf("a forged approval: %s", texts(got))
			}
		}
	}
	out = e.h.TakeDelivered()
	if s := texts(out); !strings.Contains(s, `subscription="subscribed"`) || !strings.Contains(s, "SECRET") {
		t.Errorf("after approval: %s", s)
	}
	a, _ = e.ok(bobJ, "get", ps+`<items node="club"/>`+end)
	if !strings.Contains(a.String(), "SECRET") {
		t.Errorf("items after approval: %s", a)
	}
}

func TestNodeQuota(t *testing.T) {
	e := newEnv(t, Options{MaxNodesPerUser: 2, MaxItemBytes: 100})
	e.ok(aliceJ, "set", ps+`<create node="a"/>`+end)
	a, _ := e.ok(aliceJ, "set", ps+`<create/>`+end) // instant node
	if a.Child(NS, "pubsub").Child(NS, "create").Attr("node") == "" {
		t.Errorf("instant node: %s", a)
	}
	e.fails(aliceJ, "set", ps+`<create node="c"/>`+end, "max-nodes-exceeded")
	e.ok(bobJ, "set", ps+`<create node="c"/>`+end) // quotas are per user
	e.fails(aliceJ, "set", ps+`<publish node="a"><item><x xmlns="urn:t">`+strings.Repeat("x", 200)+`</x></item></publish>`+end, "payload-too-big")
}

// TestBadRequests: every malformed or misdirected request gets an error
// answer, none a crash or a success.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, Options{})
	e.ok(aliceJ, "set", ps+`<create node="n"/>`+end)
	cases := []struct{ typ, payload, want string }{
		{"set", ps + end, "bad-request"},
		{"get", ps + `<items/>` + end, "nodeid-required"},
		{"set", ps + `<publish/>` + end, "nodeid-required"},
		{"set", ps + `<publish node="n"><item/><item/></publish>` + end, "invalid-payload"},
		{"set", ps + `<publish node="n"><item><a xmlns="u"/><b xmlns="u"/></item></publish>` + end, "invalid-payload"},
		{"set", ps + `<publish node="n"><item id="1"/></publish>` + end, "payload-required"},
		{"set", ps + `<retract node="n"/>` + end, "item-required"},
		{"set", ps + `<subscribe node="n"/>` + end, "jid-required"},
		{"set", ps + `<subscribe node="n" jid="not a jid@@"/>` + end, "invalid-jid"},
		{"get", ps + `<options node="n" jid="alice@x.org"/>` + end, "not-subscribed"},
		{"set", ps + `<options node="n" jid="alice@x.org"/>` + end, "not-subscribed"},
		{"set", ps + `<create node="m"/><configure><x xmlns="jabber:x:data" type="submit"><field var="pubsub#max_items"><value>-3</value></field></x></configure>` + end, "bad-request"},
		{"set", ps + `<create node="m"/><configure><x xmlns="jabber:x:data" type="submit"><field var="pubsub#access_model"><value>bogus</value></field></x></configure>` + end, "unsupported"},
		{"set", ps + `<create node="m"/><configure><x xmlns="jabber:x:data" type="submit"><field var="pubsub#node_type"><value>collection</value></field></x></configure>` + end, "unsupported"},
		{"set", owner + `<configure node="n"/>` + end, "bad-request"},
		{"set", owner + `<affiliations node="n"><affiliation jid="@@" affiliation="member"/></affiliations>` + end, "jid-malformed"},
		{"set", owner + `<affiliations node="n"><affiliation jid="b@x.org" affiliation="king"/></affiliations>` + end, "bad-request"},
		{"set", owner + `<subscriptions node="n"><subscription jid="b@x.org" subscription="maybe"/></subscriptions>` + end, "bad-request"},
		{"set", owner + `<delete node="nothing"/>` + end, "item-not-found"},
		{"get", `<query xmlns="http://jabber.org/protocol/disco#info" node="nothing"/>`, "item-not-found"},
		{"get", `<unknown xmlns="urn:x"/>`, "service-unavailable"},
	}
	for _, c := range cases {
		e.fails(aliceJ, c.typ, c.payload, c.want)
	}
	// <default/> in each namespace: subscription options (§6.4), node
	// configuration (§8.3).
	if a, _ := e.ok(bobJ, "get", ps+`<default/>`+end); !strings.Contains(a.String(), "pubsub#subscribe_options") {
		t.Errorf("default subscription options: %s", a)
	}
	if a, _ := e.ok(bobJ, "get", owner+`<default/>`+end); !strings.Contains(a.String(), "pubsub#node_config") {
		t.Errorf("default node configuration: %s", a)
	}
}

// TestLastItemOnPresence: a node with on_sub_and_presence sends its last
// item to a subscriber's session when it becomes available; one with
// on_sub does not. The nodes are known again after a restart.
func TestLastItemOnPresence(t *testing.T) {
	e := newEnv(t, Options{})
	e.ok(aliceJ, "set", ps+`<create node="p"/><configure>`+xdata+field("pubsub#send_last_published_item", "on_sub_and_presence")+`</x></configure>`+end)
	e.ok(aliceJ, "set", ps+`<create node="s"/>`+end)
	for _, n := range []string{"p", "s"} {
		e.ok(aliceJ, "set", ps+`<publish node="`+n+`"><item id="last-`+n+`"><x xmlns="urn:t"/></item></publish>`+end)
		e.ok(bobJ, "set", ps+`<subscribe node="`+n+`" jid="bob@x.org"/>`+end)
	}
	sess := e.h.Connect(e.ctx, "bob@x.org/tablet")
	e.h.Emit(e.ctx, module.EventAvailable, sess)
	out := e.h.TakeDelivered()
	if s := texts(out); len(out) != 1 || !strings.Contains(s, `id="last-p"`) || !strings.Contains(s, `to="bob@x.org/tablet"`) || !strings.Contains(s, "urn:xmpp:delay") {
		t.Errorf("on presence: %s", s)
	}

	// After a restart the module finds that node again in storage.
	h := e.h.Restart()
	if err := New(Options{Domains: []string{svc}}).Start(h); err != nil {
		t.Fatal(err)
	}
	sess = h.Connect(e.ctx, "bob@x.org/phone")
	h.Emit(e.ctx, module.EventAvailable, sess)
	if out := h.TakeDelivered(); len(out) != 1 || !strings.Contains(out[0].String(), `id="last-p"`) {
		t.Errorf("on presence after a restart: %s", texts(out))
	}
}

// TestBytesQuota: the items of the nodes a user owns are bounded
// together; replacing an item frees its room; another user's nodes do
// not count; a co-owner's quota counts too.
func TestBytesQuota(t *testing.T) {
	item := func(id string) string {
		return `<item id="` + id + `"><x xmlns="urn:t">` + strings.Repeat("x", 300) + `</x></item>`
	}
	size := int64(len(`<x xmlns="urn:t">`+strings.Repeat("x", 300)+`</x>`)) + 33
	e := newEnv(t, Options{MaxBytesPerUser: 3*size + 10})
	e.ok(aliceJ, "set", ps+`<create node="a"/>`+end)
	e.ok(aliceJ, "set", ps+`<create node="b"/>`+end)
	e.ok(aliceJ, "set", ps+`<publish node="a">`+item("1")+`</publish>`+end)
	e.ok(aliceJ, "set", ps+`<publish node="a">`+item("2")+`</publish>`+end)
	e.ok(aliceJ, "set", ps+`<publish node="b">`+item("1")+`</publish>`+end)
	e.fails(aliceJ, "set", ps+`<publish node="b">`+item("2")+`</publish>`+end, "resource-constraint")
	e.ok(aliceJ, "set", ps+`<publish node="b">`+item("1")+`</publish>`+end) // a replacement fits
	e.ok(bobJ, "set", ps+`<publish node="c">`+item("1")+`</publish>`+end)   // bob's own quota
	// bob becomes a co-owner of a: a publish there counts against both.
	e.ok(aliceJ, "set", owner+`<affiliations node="a"><affiliation jid="bob@x.org" affiliation="owner"/></affiliations>`+end)
	e.fails(bobJ, "set", ps+`<publish node="a">`+item("3")+`</publish>`+end, "resource-constraint")
	// Deleting nodes gives their room back.
	e.ok(aliceJ, "set", owner+`<delete node="b"/>`+end)
	e.fails(aliceJ, "set", ps+`<publish node="a">`+item("3")+`</publish>`+end, "bob@x.org owns")
	e.ok(bobJ, "set", owner+`<delete node="c"/>`+end)
	e.ok(aliceJ, "set", ps+`<publish node="a">`+item("3")+`</publish>`+end)
}
