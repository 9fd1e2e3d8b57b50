package mam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
	"parley/modules/internal/mamquery"
	"parley/modules/internal/modtest"
	"parley/modules/roster"
)

const (
	alice    = "alice@example.com"
	alicePh  = "alice@example.com/phone"
	aliceLap = "alice@example.com/laptop"
	bob      = "bob@example.com"
	bobPh    = "bob@example.com/phone"
	carolPC  = "carol@remote.example/pc"
)

var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

// clock is a fake time that moves one second each time it is read, so
// every archived message has its own, known timestamp.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(time.Second)
	return t
}

type fixture struct {
	h     *modtest.Host
	m     *Module
	clock *clock
	sess  *modtest.Session // alice/phone
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	h := modtest.NewHost("example.com")
	// Contacts come from the roster module, as in the server.
	if err := roster.New(func() int { return 0 }).Start(h); err != nil {
		t.Fatal(err)
	}
	h.AddUser(alice)
	h.AddUser(bob)
	m := New(0)
	c := &clock{t: t0}
	m.now = c.now
	if err := m.Start(h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// A failing store is retried; the tests need not wait a minute.
	// (Set before any entry is queued, which orders it before the
	// writer reads it.)
	m.writer.retry = []time.Duration{time.Millisecond}
	t.Cleanup(func() {
		if err := m.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &fixture{h: h, m: m, clock: c, sess: h.Connect(t.Context(), alicePh)}
}

func chat(body string, extra ...*xmlstream.Element) *xmlstream.Element {
	el := xmlstream.New(stanza.NSClient, "message", "type", "chat", "id", "c1")
	if body != "" {
		el.AddChild(xmlstream.New(stanza.NSClient, "body").AddText(body))
	}
	for _, e := range extra {
		el.AddChild(e)
	}
	return el
}

// send runs the message hooks the way the router does: outbound when the
// sender is local, then inbound on the same element when the recipient
// is, and returns the element as it would be delivered.
func (f *fixture) send(t *testing.T, from, to string, el *xmlstream.Element) *xmlstream.Element {
	t.Helper()
	fj, tj := jid.MustParse(from), jid.MustParse(to)
	el.SetAttr("from", from)
	el.SetAttr("to", to)
	if f.h.IsLocal(fj.Domain()) {
		f.h.Message(t.Context(), module.MessageEvent{From: fj, To: tj, Stanza: el, Outbound: true})
	}
	if f.h.IsLocal(tj.Domain()) {
		f.h.Message(t.Context(), module.MessageEvent{From: fj, To: tj, Stanza: el})
	}
	f.m.writer.sync(t.Context()) // archiving is asynchronous
	return el
}

func (f *fixture) stored(owner string) []storage.ArchiveMessage {
	f.m.writer.sync(context.Background())
	return f.h.Storage().FaultyArchive().Stored(owner)
}

func storedIDs(ms []storage.ArchiveMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func stanzaIDs(el *xmlstream.Element) []string {
	var out []string
	for c := range el.Elements() {
		if c.Name.Space == NSSID && c.Name.Local == "stanza-id" {
			out = append(out, c.Attr("by")+"="+c.Attr("id"))
		}
	}
	return out
}

// field builds a form field with values.
func field(name string, values ...string) *xmlstream.Element {
	f := xmlstream.New(dataform.NS, "field", "var", name)
	for _, v := range values {
		f.AddChild(xmlstream.New(dataform.NS, "value").AddText(v))
	}
	return f
}

// mamQuery builds a query with an optional form (fields after FORM_TYPE)
// and RSM elements.
func mamQuery(fields []*xmlstream.Element, rsm ...*xmlstream.Element) *xmlstream.Element {
	q := xmlstream.New(NS, "query", "queryid", "q1")
	if fields != nil {
		x := xmlstream.New(dataform.NS, "x", "type", "submit").AddChild(field("FORM_TYPE", NS))
		for _, f := range fields {
			x.AddChild(f)
		}
		q.AddChild(x)
	}
	if rsm != nil {
		set := xmlstream.New(NSRSM, "set")
		for _, r := range rsm {
			set.AddChild(r)
		}
		q.AddChild(set)
	}
	return q
}

func rsmEl(name, text string) *xmlstream.Element {
	return xmlstream.New(NSRSM, name).AddText(text)
}

type answer struct {
	bodies   []string // bodies of the forwarded messages, in order
	ids      []string // result ids
	complete string
	first    string
	last     string
	count    string
	notices  []string // bodies of messages from the server (withheld records)
}

// ask sends a query from alice/phone and collects what reached her.
func (f *fixture) ask(t *testing.T, q *xmlstream.Element) (answer, error) {
	t.Helper()
	fin, err := f.h.IQ(t.Context(), alicePh, "", "set", q)
	got := f.sess.Take()
	if err != nil {
		if len(got) > 0 {
			t.Errorf("results were sent for a failed query: %d", len(got))
		}
		return answer{}, err
	}
	var a answer
	for _, msg := range got {
		if msg.Attr("from") == "example.com" && msg.Child(NS, "result") == nil {
			a.notices = append(a.notices, msg.Child(stanza.NSClient, "body").Text())
			continue
		}
		if msg.Attr("to") != alicePh || msg.Attr("from") != alice {
			t.Errorf("result message addressed from %q to %q", msg.Attr("from"), msg.Attr("to"))
		}
		r := msg.Child(NS, "result")
		if r == nil || r.Attr("queryid") != q.Attr("queryid") {
			t.Fatalf("delivered %s, want a result of query %q", msg, q.Attr("queryid"))
		}
		fwd := r.Child(stanza.NSForward, "forwarded")
		if fwd == nil || fwd.Child(stanza.NSDelay, "delay") == nil || fwd.Child(stanza.NSClient, "message") == nil {
			t.Fatalf("result without forwarded delay and message: %s", msg)
		}
		a.ids = append(a.ids, r.Attr("id"))
		a.bodies = append(a.bodies, fwd.Child(stanza.NSClient, "message").Child(stanza.NSClient, "body").Text())
	}
	if fin == nil || fin.Name != (xmlstream.Name{Space: NS, Local: "fin"}) {
		t.Fatalf("IQ result %v, want <fin/>", fin)
	}
	if fin.Attr("queryid") != q.Attr("queryid") {
		t.Errorf("fin queryid %q", fin.Attr("queryid"))
	}
	a.complete = fin.Attr("complete")
	set := fin.Child(NSRSM, "set")
	if set == nil {
		t.Fatalf("fin without RSM set: %s", fin)
	}
	if c := set.Child(NSRSM, "first"); c != nil {
		a.first = c.Text()
	}
	if c := set.Child(NSRSM, "last"); c != nil {
		a.last = c.Text()
	}
	if c := set.Child(NSRSM, "count"); c != nil {
		a.count = c.Text()
	}
	return a, nil
}

func mustAsk(t *testing.T, f *fixture, q *xmlstream.Element) answer {
	t.Helper()
	a, err := f.ask(t, q)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return a
}

func wantCondition(t *testing.T, what string, err error, cond string) {
	t.Helper()
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != cond {
		t.Errorf("%s: err = %v, want %s", what, err, cond)
	}
}

func TestStartRegisters(t *testing.T) {
	f := newFixture(t)
	for _, feat := range []string{NS, NSExtended, NSSID} {
		if !slices.Contains(f.h.Features(module.Account), feat) {
			t.Errorf("feature %s not advertised on accounts", feat)
		}
	}
	for _, k := range []struct{ typ, name string }{{"set", "query"}, {"get", "query"}, {"get", "prefs"}, {"set", "prefs"}, {"get", "metadata"}} {
		if !f.h.HasIQ(module.Account, k.typ, xmlstream.Name{Space: NS, Local: k.name}) {
			t.Errorf("no %s handler for %s", k.typ, k.name)
		}
	}
	if err := New(-time.Second).Start(modtest.NewHost("example.com")); err == nil {
		t.Error("Start with a negative retention succeeded")
	}
}

func TestArchivesBothSidesWithStanzaID(t *testing.T) {
	f := newFixture(t)
	el := f.send(t, alicePh, bob, chat("hello bob"))
	out, in := f.stored(alice), f.stored(bob)
	if len(out) != 1 || len(in) != 1 {
		t.Fatalf("archived %d for alice and %d for bob, want 1 each", len(out), len(in))
	}
	if !out[0].Outgoing || out[0].With != bob || in[0].Outgoing || in[0].With != alicePh {
		t.Errorf("alice's entry %+v, bob's %+v", out[0], in[0])
	}
	if out[0].ID == in[0].ID || len(in[0].ID) < 16 {
		t.Errorf("ids %q and %q: want distinct, unguessable ids", out[0].ID, in[0].ID)
	}
	// Only the recipient's server stamps the delivered stanza.
	if got := stanzaIDs(el); !slices.Equal(got, []string{bob + "=" + in[0].ID}) {
		t.Errorf("delivered stanza ids %v, want bob's archive id", got)
	}
	if !out[0].Stamp.Equal(t0) {
		t.Errorf("stamp %v, want %v", out[0].Stamp, t0)
	}

	// From outside: only the local recipient archives.
	el = f.send(t, carolPC, alice, chat("from afar"))
	if n := len(f.stored(alice)); n != 2 {
		t.Errorf("alice has %d messages after one from a remote contact, want 2", n)
	}
	if ids := stanzaIDs(el); len(ids) != 1 || !strings.HasPrefix(ids[0], alice+"=") {
		t.Errorf("stanza ids %v", ids)
	}
}

func TestMessageToOneselfArchivedOnce(t *testing.T) {
	f := newFixture(t)
	el := f.send(t, alicePh, alice, chat("note to self"))
	got := f.stored(alice)
	if len(got) != 1 || got[0].Outgoing || got[0].With != alicePh {
		t.Fatalf("archive after a message to oneself: %+v", got)
	}
	if ids := stanzaIDs(el); !slices.Equal(ids, []string{alice + "=" + got[0].ID}) {
		t.Errorf("stanza ids %v", ids)
	}
}

func TestWhatIsArchived(t *testing.T) {
	hint := func(name string) *xmlstream.Element { return xmlstream.New(stanza.NSHints, name) }
	tests := []struct {
		name string
		el   *xmlstream.Element
		want bool
	}{
		{"body", chat("hi"), true},
		{"chat state only", chat("", xmlstream.New("http://jabber.org/protocol/chatstates", "composing")), false},
		{"receipt only", chat("", xmlstream.New("urn:xmpp:receipts", "received", "id", "x")), false},
		{"body with no-store", chat("hi", hint("no-store")), false},
		{"body with no-permanent-store", chat("hi", hint("no-permanent-store")), false},
		{"store hint without body", chat("", hint("store")), true},
		{"OMEMO (legacy)", chat("", xmlstream.New(nsOMEMO, "encrypted")), true},
		{"OMEMO 2", chat("", xmlstream.New(nsOMEMO2, "encrypted")), true},
		{"body in another namespace", chat("", xmlstream.New("urn:example", "body").AddText("x")), false},
		{"normal type", xmlstream.New(stanza.NSClient, "message").AddChild(xmlstream.New(stanza.NSClient, "body").AddText("x")), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			el := f.send(t, alicePh, bob, tc.el)
			na, nb := len(f.stored(alice)), len(f.stored(bob))
			if tc.want != (na == 1) || tc.want != (nb == 1) {
				t.Errorf("archived alice=%d bob=%d, want archived=%v", na, nb, tc.want)
			}
			if got := len(stanzaIDs(el)) == 1; got != tc.want {
				t.Errorf("stanza id added = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSpoofedStanzaIDsRemoved(t *testing.T) {
	for _, body := range []string{"with body", ""} {
		f := newFixture(t)
		el := chat(body,
			xmlstream.New(NSSID, "stanza-id", "id", "fake1", "by", bob),
			xmlstream.New(NSSID, "stanza-id", "id", "fake2", "by", "BOB@Example.com"),
			xmlstream.New(NSSID, "stanza-id", "id", "theirs", "by", "carol@remote.example"),
		)
		f.send(t, carolPC, bob, el)
		got := stanzaIDs(el)
		want := []string{"carol@remote.example=theirs"}
		if body != "" {
			want = append(want, bob+"="+f.stored(bob)[0].ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("body %q: stanza ids %v, want %v", body, got, want)
		}
	}
}

func TestQueryReturnsEverythingInOrder(t *testing.T) {
	f := newFixture(t)
	for i := range 3 {
		f.send(t, alicePh, bob, chat(fmt.Sprint("out ", i)))
		f.send(t, bobPh, alice, chat(fmt.Sprint("in ", i)))
	}
	other := f.h.Connect(t.Context(), aliceLap)
	a := mustAsk(t, f, mamQuery(nil))
	want := []string{"out 0", "in 0", "out 1", "in 1", "out 2", "in 2"}
	if !slices.Equal(a.bodies, want) {
		t.Errorf("bodies %v, want %v", a.bodies, want)
	}
	ids := storedIDs(f.stored(alice))
	if !slices.Equal(a.ids, ids) || a.first != ids[0] || a.last != ids[5] || a.count != "6" || a.complete != "true" {
		t.Errorf("answer %+v, stored ids %v", a, ids)
	}
	if got := other.Take(); len(got) != 0 {
		t.Errorf("another resource got %d results", len(got))
	}
}

func TestForwardedMessage(t *testing.T) {
	f := newFixture(t)
	f.send(t, bobPh, alice, chat("<b>hi</b> & bye"))
	if _, err := f.h.IQ(t.Context(), alicePh, alice, "set", mamQuery(nil)); err != nil {
		t.Fatal(err)
	}
	got := f.sess.Take()
	if len(got) != 1 {
		t.Fatalf("%d results", len(got))
	}
	r := got[0].Child(NS, "result")
	fwd := r.Child(stanza.NSForward, "forwarded")
	// bob's archive took t0, alice's the next tick.
	if stamp := fwd.Child(stanza.NSDelay, "delay").Attr("stamp"); stamp != "2025-06-01T10:00:01.000000Z" {
		t.Errorf("delay stamp %q", stamp)
	}
	orig := fwd.Child(stanza.NSClient, "message")
	if orig.Attr("from") != bobPh || orig.Attr("to") != alice || orig.Attr("type") != "chat" {
		t.Errorf("forwarded message %s", orig)
	}
	if orig.Child(stanza.NSClient, "body").Text() != "<b>hi</b> & bye" {
		t.Errorf("body %q", orig.Child(stanza.NSClient, "body").Text())
	}
	if ids := stanzaIDs(orig); !slices.Equal(ids, []string{alice + "=" + r.Attr("id")}) {
		t.Errorf("archived copy's stanza ids %v, want the archive id", ids)
	}
}

// archiveSix fills alice's archive with messages m0..m5 one second apart
// from t0: even ones with bob/phone, m1 and m3 with bob's bare JID
// (outgoing), m5 with carol.
func archiveSix(t *testing.T, f *fixture) []string {
	t.Helper()
	for i := range 6 {
		switch {
		case i == 5:
			f.send(t, carolPC, alice, chat(fmt.Sprint("m", i)))
		case i%2 == 0:
			f.send(t, bobPh, alice, chat(fmt.Sprint("m", i)))
		default:
			f.send(t, alicePh, bob, chat(fmt.Sprint("m", i)))
		}
	}
	// bob's archive took clock ticks too: alice's stamps are t0, t0+2s...
	// for the messages bob sent and received; read them back.
	return storedIDs(f.stored(alice))
}

func bodies(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, fmt.Sprint("m", i))
	}
	return out
}

func TestQueryFilters(t *testing.T) {
	f := newFixture(t)
	ids := archiveSix(t, f)
	stamps := map[int]time.Time{}
	for i, m := range f.stored(alice) {
		stamps[i] = m.Stamp
	}
	ts := func(i int) string { return stamps[i].Format(time.RFC3339Nano) }
	tests := []struct {
		name   string
		fields []*xmlstream.Element
		want   []string
	}{
		{"no form", nil, bodies(0, 1, 2, 3, 4, 5)},
		{"empty form", []*xmlstream.Element{}, bodies(0, 1, 2, 3, 4, 5)},
		{"with bare", []*xmlstream.Element{field("with", bob)}, bodies(0, 1, 2, 3, 4)},
		{"with full", []*xmlstream.Element{field("with", bobPh)}, bodies(0, 2, 4)},
		{"with unnormalised", []*xmlstream.Element{field("with", "BOB@EXAMPLE.COM")}, bodies(0, 1, 2, 3, 4)},
		{"with remote", []*xmlstream.Element{field("with", "carol@remote.example")}, bodies(5)},
		{"start", []*xmlstream.Element{field("start", ts(3))}, bodies(3, 4, 5)},
		{"end", []*xmlstream.Element{field("end", ts(1))}, bodies(0, 1)},
		{"start and end with offset", []*xmlstream.Element{
			field("start", stamps[1].In(time.FixedZone("", 2*3600)).Format(time.RFC3339)),
			field("end", stamps[2].Format("2006-01-02T15:04:05.000Z")),
		}, bodies(1, 2)},
		{"after-id", []*xmlstream.Element{field("after-id", ids[3])}, bodies(4, 5)},
		{"before-id", []*xmlstream.Element{field("before-id", ids[2])}, bodies(0, 1)},
		{"ids", []*xmlstream.Element{field("ids", ids[4], ids[1], "unknown")}, bodies(1, 4)},
		{"empty values ignored", []*xmlstream.Element{field("with", ""), field("start", ""), field("ids")}, bodies(0, 1, 2, 3, 4, 5)},
		{"combined", []*xmlstream.Element{field("with", bob), field("after-id", ids[0]), field("end", ts(3))}, bodies(1, 2, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := mustAsk(t, f, mamQuery(tc.fields))
			if !slices.Equal(a.bodies, tc.want) || a.count != fmt.Sprint(len(tc.want)) || a.complete != "true" {
				t.Errorf("bodies %v count %s complete %s, want %v", a.bodies, a.count, a.complete, tc.want)
			}
		})
	}
}

func TestPaging(t *testing.T) {
	f := newFixture(t)
	ids := archiveSix(t, f)
	// Forwards, two at a time.
	var seen []string
	after := ""
	for page := 0; ; page++ {
		rsm := []*xmlstream.Element{rsmEl("max", "2")}
		if after != "" {
			rsm = append(rsm, rsmEl("after", after))
		}
		a := mustAsk(t, f, mamQuery(nil, rsm...))
		seen = append(seen, a.bodies...)
		if a.count != "6" || a.first != a.ids[0] || a.last != a.ids[len(a.ids)-1] {
			t.Errorf("page %d: %+v", page, a)
		}
		if want := map[bool]string{true: "true", false: "false"}[page == 2]; a.complete != want {
			t.Errorf("page %d complete=%s, want %s", page, a.complete, want)
		}
		if a.complete == "true" || page > 5 {
			break
		}
		after = a.last
	}
	if !slices.Equal(seen, bodies(0, 1, 2, 3, 4, 5)) {
		t.Errorf("forward paging saw %v", seen)
	}

	// Backwards from the end with an empty <before/>, as clients fetch
	// the latest history first.
	a := mustAsk(t, f, mamQuery(nil, rsmEl("max", "4"), xmlstream.New(NSRSM, "before")))
	if !slices.Equal(a.bodies, bodies(2, 3, 4, 5)) || a.complete != "false" || a.first != ids[2] {
		t.Errorf("last page %+v", a)
	}
	a = mustAsk(t, f, mamQuery(nil, rsmEl("max", "4"), rsmEl("before", a.first)))
	if !slices.Equal(a.bodies, bodies(0, 1)) || a.complete != "true" {
		t.Errorf("page before %+v", a)
	}

	// Filters and paging together; flip-page reverses the page only.
	q := mamQuery([]*xmlstream.Element{field("with", bob)}, rsmEl("max", "2"), xmlstream.New(NSRSM, "before"))
	q.AddChild(xmlstream.New(NS, "flip-page"))
	a = mustAsk(t, f, q)
	if !slices.Equal(a.bodies, bodies(4, 3)) || a.count != "5" || a.first != ids[4] || a.last != ids[3] || a.complete != "false" {
		t.Errorf("flipped last page %+v", a)
	}

	// max 0 only counts; a max above the cap is capped.
	a = mustAsk(t, f, mamQuery(nil, rsmEl("max", "0")))
	if len(a.bodies) != 0 || a.count != "6" || a.first != "" || a.complete != "false" {
		t.Errorf("max 0: %+v", a)
	}
	a = mustAsk(t, f, mamQuery(nil, rsmEl("max", "100000")))
	if len(a.bodies) != 6 || a.complete != "true" {
		t.Errorf("huge max: %+v", a)
	}
}

func TestDefaultAndMaxPage(t *testing.T) {
	f := newFixture(t)
	for i := range MaxPage + 10 {
		f.send(t, bobPh, alice, chat(fmt.Sprint(i)))
	}
	a := mustAsk(t, f, mamQuery(nil))
	if len(a.bodies) != DefaultPage || a.complete != "false" || a.count != fmt.Sprint(MaxPage+10) {
		t.Errorf("no max: %d results, complete %s, count %s", len(a.bodies), a.complete, a.count)
	}
	a = mustAsk(t, f, mamQuery(nil, rsmEl("max", fmt.Sprint(MaxPage+5))))
	if len(a.bodies) != MaxPage || a.complete != "false" {
		t.Errorf("max above the cap: %d results", len(a.bodies))
	}
}

func TestQueryErrors(t *testing.T) {
	f := newFixture(t)
	archiveSix(t, f)
	withNode := mamQuery(nil)
	withNode.SetAttr("node", "urn:xmpp:mucsub:nodes:messages")
	badType := mamQuery([]*xmlstream.Element{})
	badType.Child(dataform.NS, "x").SetAttr("type", "cancel")
	tests := []struct {
		name string
		q    *xmlstream.Element
		cond string
	}{
		{"unknown after-id", mamQuery([]*xmlstream.Element{field("after-id", "nope")}), "item-not-found"},
		{"unknown before-id", mamQuery([]*xmlstream.Element{field("before-id", "nope")}), "item-not-found"},
		{"unknown RSM after", mamQuery(nil, rsmEl("after", "nope")), "item-not-found"},
		{"unknown RSM before", mamQuery(nil, rsmEl("before", "nope")), "item-not-found"},
		{"empty RSM after", mamQuery(nil, xmlstream.New(NSRSM, "after")), "bad-request"},
		{"bad with", mamQuery([]*xmlstream.Element{field("with", "a@b@c")}), "jid-malformed"},
		{"bad start", mamQuery([]*xmlstream.Element{field("start", "yesterday")}), "bad-request"},
		{"two values", mamQuery([]*xmlstream.Element{field("with", bob, alice)}), "bad-request"},
		{"wrong FORM_TYPE", xmlstream.New(NS, "query").AddChild(xmlstream.New(dataform.NS, "x", "type", "submit").AddChild(field("FORM_TYPE", "urn:xmpp:mam:1"))), "bad-request"},
		{"form not submitted", badType, "bad-request"},
		{"unknown field", mamQuery([]*xmlstream.Element{field("{urn:xmpp:fulltext:0}fulltext", "x")}), "feature-not-implemented"},
		{"RSM index", mamQuery(nil, rsmEl("index", "3")), "feature-not-implemented"},
		{"negative max", mamQuery(nil, rsmEl("max", "-1")), "bad-request"},
		{"non-numeric max", mamQuery(nil, rsmEl("max", "ten")), "bad-request"},
		{"node", withNode, "item-not-found"},
		{"stored id too long", mamQuery(nil, rsmEl("after", strings.Repeat("x", 300))), "bad-request"},
	}
	for _, tc := range tests {
		_, err := f.ask(t, tc.q)
		wantCondition(t, tc.name, err, tc.cond)
	}
	// Nobody reads someone else's archive.
	for _, p := range []struct{ typ, name string }{{"set", "query"}, {"get", "query"}, {"get", "prefs"}, {"set", "prefs"}, {"get", "metadata"}} {
		payload := xmlstream.New(NS, p.name, "default", "always")
		_, err := f.h.IQ(t.Context(), bobPh, alice, p.typ, payload)
		wantCondition(t, p.typ+" "+p.name+" of another account", err, "forbidden")
	}
	if got := f.sess.Take(); len(got) != 0 {
		t.Errorf("alice received %d stanzas from bob's attempts", len(got))
	}
}

func TestStorageFailure(t *testing.T) {
	f := newFixture(t)
	archiveSix(t, f)
	f.h.Storage().FaultyArchive().SetFail(errors.New("disk on fire"))
	_, err := f.ask(t, mamQuery(nil))
	var se *stanza.Error
	if err == nil || errors.As(err, &se) {
		t.Errorf("query on a broken store: err = %v, want a plain (internal) error", err)
	}
	// Archiving is asynchronous (writer.go), so the stanza id is given
	// before the write fails; what matters is that the failure is logged
	// without content.
	f.send(t, bobPh, alice, chat("lost?"))
	// The writer logs the failed batch on its own goroutine.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(f.h.Logs(), "archiving a batch failed") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(f.h.Logs(), "archiving a batch failed") || strings.Contains(f.h.Logs(), "lost?") {
		t.Errorf("log after a failed append: %s", f.h.Logs())
	}
	// Nothing is given up: once the store works again the entry is in.
	f.h.Storage().FaultyArchive().SetFail(nil)
	deadline := time.Now().Add(20 * time.Second)
	for len(f.stored(alice)) != 7 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(f.stored(alice)); n != 7 {
		t.Errorf("after recovery the archive holds %d messages, want 7", n)
	}
}

func TestForm(t *testing.T) {
	f := newFixture(t)
	res, err := f.h.IQ(t.Context(), alicePh, "", "get", xmlstream.New(NS, "query"))
	if err != nil {
		t.Fatal(err)
	}
	x := res.Child(dataform.NS, "x")
	if res.Name.Space != NS || x == nil || x.Attr("type") != "form" {
		t.Fatalf("form answer %s", res)
	}
	var vars []string
	for fl := range x.Elements() {
		vars = append(vars, fl.Attr("var"))
		if fl.Attr("var") == "FORM_TYPE" && (fl.Attr("type") != "hidden" || fl.Child(dataform.NS, "value").Text() != NS) {
			t.Errorf("FORM_TYPE field %s", fl)
		}
	}
	if want := []string{"FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"}; !slices.Equal(vars, want) {
		t.Errorf("fields %v, want %v", vars, want)
	}
}

func TestMetadata(t *testing.T) {
	f := newFixture(t)
	get := func() *xmlstream.Element {
		res, err := f.h.IQ(t.Context(), alicePh, "", "get", xmlstream.New(NS, "metadata"))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := get(); res.Name.Local != "metadata" || res.FirstElement() != nil {
		t.Errorf("metadata of an empty archive: %s", res)
	}
	ids := archiveSix(t, f)
	stored := f.stored(alice)
	res := get()
	start, end := res.Child(NS, "start"), res.Child(NS, "end")
	if start == nil || end == nil || start.Attr("id") != ids[0] || end.Attr("id") != ids[5] ||
		start.Attr("timestamp") != stored[0].Stamp.Format(xmpptime.Layout) || end.Attr("timestamp") != stored[5].Stamp.Format(xmpptime.Layout) {
		t.Errorf("metadata %s, ids %v", res, ids)
	}
}

func prefsEl(def string, always, never []string) *xmlstream.Element {
	el := xmlstream.New(NS, "prefs", "default", def)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", always}, {"never", never}} {
		list := xmlstream.New(NS, l.name)
		for _, j := range l.jids {
			list.AddChild(xmlstream.New(NS, "jid").AddText(j))
		}
		el.AddChild(list)
	}
	return el
}

func readPrefs(el *xmlstream.Element) string {
	var parts []string
	parts = append(parts, el.Attr("default"))
	for _, name := range []string{"always", "never"} {
		var jids []string
		if l := el.Child(NS, name); l != nil {
			for j := range l.Elements() {
				jids = append(jids, j.Text())
			}
		}
		parts = append(parts, name+"="+strings.Join(jids, ","))
	}
	return strings.Join(parts, " ")
}

func TestPrefsGetSet(t *testing.T) {
	f := newFixture(t)
	res, err := f.h.IQ(t.Context(), alicePh, "", "get", xmlstream.New(NS, "prefs"))
	if err != nil || readPrefs(res) != "always always= never=" {
		t.Fatalf("default prefs %v, %v", res, err)
	}
	set := prefsEl("roster", []string{"Carol@Remote.Example", bob, bob}, []string{"dave@example.com/x"})
	res, err = f.h.IQ(t.Context(), alicePh, "", "set", set)
	want := "roster always=bob@example.com,carol@remote.example never=dave@example.com/x"
	if err != nil || readPrefs(res) != want {
		t.Fatalf("set prefs answered %v, %v; want %s", res, err, want)
	}
	res, err = f.h.IQ(t.Context(), aliceLap, alice, "get", xmlstream.New(NS, "prefs"))
	if err != nil || readPrefs(res) != want {
		t.Errorf("prefs read back %v, %v; want %s", res, err, want)
	}
	for _, tc := range []struct {
		name string
		el   *xmlstream.Element
		cond string
	}{
		{"no default", xmlstream.New(NS, "prefs"), "bad-request"},
		{"bad default", prefsEl("sometimes", nil, nil), "bad-request"},
		{"bad JID", prefsEl("always", []string{"a@b@c"}, nil), "jid-malformed"},
	} {
		_, err := f.h.IQ(t.Context(), alicePh, "", "set", tc.el)
		wantCondition(t, tc.name, err, tc.cond)
	}
	res, _ = f.h.IQ(t.Context(), alicePh, "", "get", xmlstream.New(NS, "prefs"))
	if readPrefs(res) != want {
		t.Errorf("failed sets changed the prefs to %s", readPrefs(res))
	}
	// The JIDs are not stored in clear (sealed under a server key).
	for _, ns := range []string{NS, NS + "#sealed"} {
		entries, err := f.h.Store().KV().List(t.Context(), alice, ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.Contains(e.Key+string(e.Value), "carol@remote.example") {
				t.Errorf("the preferences are stored in clear in %s", ns)
			}
		}
	}
}

func TestPrefsDecideArchiving(t *testing.T) {
	tests := []struct {
		name          string
		def           string
		always, never []string
		roster        []string
		// whether a message between alice and each of these is archived
		want map[string]bool
	}{
		{"default always", "always", nil, nil, nil,
			map[string]bool{bobPh: true, carolPC: true}},
		{"default never", "never", nil, nil, nil,
			map[string]bool{bobPh: false, carolPC: false}},
		{"never with always list", "never", []string{bob}, nil, nil,
			map[string]bool{bobPh: true, carolPC: false}},
		{"always with never list of a full JID", "always", nil, []string{carolPC}, nil,
			map[string]bool{bobPh: true, carolPC: false, "carol@remote.example/other": true}},
		{"never wins over always", "always", []string{bob}, []string{bob}, nil,
			map[string]bool{bobPh: false}},
		{"roster", "roster", nil, nil, []string{bob},
			map[string]bool{bobPh: true, carolPC: false}},
		{"roster with always list", "roster", []string{"carol@remote.example"}, nil, nil,
			map[string]bool{bobPh: false, carolPC: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for peer, want := range tc.want {
				for _, outbound := range []bool{false, true} {
					f := newFixture(t)
					for _, c := range tc.roster {
						if _, err := f.h.Store().Roster().Put(t.Context(), alice, storage.RosterItem{Contact: c, Subscription: storage.SubBoth}, 0); err != nil {
							t.Fatal(err)
						}
					}
					if _, err := f.h.IQ(t.Context(), alicePh, "", "set", prefsEl(tc.def, tc.always, tc.never)); err != nil {
						t.Fatal(err)
					}
					from, to := peer, alice
					if outbound {
						from, to = alicePh, peer
					}
					if !f.h.IsLocal(jid.MustParse(from).Domain()) && outbound {
						continue
					}
					el := f.send(t, from, to, chat("x"))
					got := len(f.stored(alice)) == 1
					if got != want {
						t.Errorf("%s → %s archived = %v, want %v", from, to, got, want)
					}
					if !outbound && (len(stanzaIDs(el)) == 1) != want {
						t.Errorf("%s → %s: stanza ids %v", from, to, stanzaIDs(el))
					}
				}
			}
		})
	}
}

func TestSealedAtRest(t *testing.T) {
	f := newFixture(t)
	f.send(t, bobPh, alice, chat("the secret plan"))
	for _, m := range f.stored(alice) {
		if bytes.Contains(m.Data, []byte("secret plan")) || bytes.Contains(m.Data, []byte(bob)) {
			t.Errorf("stored data holds plaintext: %q", m.Data)
		}
	}
}

func TestTamperedMessagesSkipped(t *testing.T) {
	f := newFixture(t)
	ids := archiveSix(t, f)
	fa := f.h.Storage().FaultyArchive()
	stored := f.stored(alice)
	flipped := slices.Clone(stored[1].Data)
	flipped[len(flipped)/2] ^= 1
	fa.SetData(alice, ids[1], flipped)
	// Rows that swap contents do not open either: the id is sealed in.
	fa.SetData(alice, ids[3], stored[4].Data)
	fa.SetData(alice, ids[4], stored[3].Data)
	// Nor does a row copied from another account.
	f.send(t, bobPh, alice, chat("m6"))
	bobsOwn := f.stored(bob)
	fa.SetData(alice, storedIDs(f.stored(alice))[6], bobsOwn[len(bobsOwn)-1].Data)

	a := mustAsk(t, f, mamQuery(nil))
	if !slices.Equal(a.bodies, bodies(0, 2, 5)) {
		t.Errorf("bodies %v, want the untouched m0 m2 m5", a.bodies)
	}
	// The page still spans the damaged rows, so paging moves past them.
	// The count leaves the withheld rows out, as the results do.
	if a.first != ids[0] || a.count != "3" || a.complete != "true" {
		t.Errorf("answer %+v", a)
	}
	// The owner is told, once, by the server.
	if len(a.notices) != 1 || !strings.Contains(a.notices[0], "4 of your stored archived messages could not be verified") {
		t.Errorf("notices %q", a.notices)
	}
	if again := mustAsk(t, f, mamQuery(nil)); len(again.notices) != 0 {
		t.Errorf("told again: %q", again.notices)
	}
	logs := f.h.Logs()
	if !strings.Contains(logs, "altered or damaged") || !strings.Contains(logs, "count=4") {
		t.Errorf("tampering not reported: %s", logs)
	}
	for _, secret := range []string{"m1", "m3", "m4", "m6", bobPh} {
		if strings.Contains(logs, secret) {
			t.Errorf("log mentions %q: %s", secret, logs)
		}
	}
}

// TestWrongKeyIsNotTampering: rows sealed under another key (the server
// secret was replaced) are withheld with one clear log line about the key,
// and the owner is told they could not be read, not that they were
// altered.
func TestWrongKeyIsNotTampering(t *testing.T) {
	f := newFixture(t)
	ids := archiveSix(t, f)
	other, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	owner := jid.MustParse(alice)
	fa := f.h.Storage().FaultyArchive()
	for _, am := range f.stored(alice)[:2] {
		fa.SetData(alice, am.ID, other.Seal([]byte("<message/>"), additionalData(owner, am)))
	}
	a := mustAsk(t, f, mamQuery(nil))
	if len(a.bodies) != 4 || a.count != "4" || a.first != ids[0] {
		t.Errorf("answer %+v", a)
	}
	if len(a.notices) != 1 || !strings.Contains(a.notices[0], "2 of your stored archived messages could not be read because the server's key changed") {
		t.Errorf("notices %q", a.notices)
	}
	logs := f.h.Logs()
	if !strings.Contains(logs, "the server key") || strings.Contains(logs, "altered or damaged") {
		t.Errorf("logs: %s", logs)
	}
}

func TestSealBindsEveryColumn(t *testing.T) {
	f := newFixture(t)
	owner := jid.MustParse(alice)
	am := storage.ArchiveMessage{ID: "id1", With: bobPh, Stamp: t0, Outgoing: true}
	am.Data = f.m.seal(owner, am, []byte("<message/>"))
	if plain, err := f.m.open(owner, am); err != nil || string(plain) != "<message/>" {
		t.Fatalf("open = %q, %v", plain, err)
	}
	changes := map[string]func(*storage.ArchiveMessage){
		"id":        func(m *storage.ArchiveMessage) { m.ID = "id2" },
		"with":      func(m *storage.ArchiveMessage) { m.With = "mallory@example.com" },
		"direction": func(m *storage.ArchiveMessage) { m.Outgoing = false },
		"stamp":     func(m *storage.ArchiveMessage) { m.Stamp = m.Stamp.Add(time.Microsecond) },
		"truncated": func(m *storage.ArchiveMessage) { m.Data = m.Data[:10] },
		"version":   func(m *storage.ArchiveMessage) { m.Data = append([]byte{1}, m.Data[1:]...) },
	}
	for name, change := range changes {
		c := am
		c.Data = slices.Clone(am.Data)
		change(&c)
		if _, err := f.m.open(owner, c); err == nil {
			t.Errorf("a change of %s went unnoticed", name)
		}
	}
	if _, err := f.m.open(jid.MustParse(bob), am); err == nil {
		t.Error("a message moved to another owner opened")
	}
}

func TestRetention(t *testing.T) {
	f := newFixture(t)
	f.m.retention = time.Hour
	archiveSix(t, f)
	n := len(f.stored(alice))
	f.clock.t = t0.Add(time.Hour + 3*time.Second) // keeps what is younger than an hour: the messages from t0+3s on
	f.m.expire(t.Context())
	left := f.stored(alice)
	if len(left) == 0 || len(left) >= n {
		t.Fatalf("retention left %d of %d messages", len(left), n)
	}
	for _, m := range left {
		if m.Stamp.Before(t0.Add(3 * time.Second)) {
			t.Errorf("message stamped %v survived retention", m.Stamp)
		}
	}
	if !strings.Contains(f.h.Logs(), "expired archived messages deleted") {
		t.Errorf("logs: %s", f.h.Logs())
	}
}

func TestRetentionJobRunsAndStops(t *testing.T) {
	h := modtest.NewHost("example.com")
	h.AddUser(alice)
	m := New(time.Hour)
	m.now = func() time.Time { return t0 }
	a := h.Storage().FaultyArchive()
	if _, err := a.Append(t.Context(), alice, storage.ArchiveMessage{ID: "old", With: bob, Stamp: t0.Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(t.Context(), alice, storage.ArchiveMessage{ID: "new", With: bob, Stamp: t0}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	// The host owns the job: it runs every tenth of the retention.
	jobs := h.Jobs()
	if len(jobs) != 1 || jobs[0].Period != 6*time.Minute {
		t.Fatalf("periodic jobs: %+v", jobs)
	}
	h.RunJobs(t.Context())
	if got := storedIDs(a.Stored(alice)); !slices.Equal(got, []string{"new"}) {
		t.Errorf("after a run the archive holds %v", got)
	}
	// With retention 0 nothing is scheduled.
	h0 := modtest.NewHost("example.com")
	if err := New(0).Start(h0); err != nil {
		t.Fatal(err)
	}
	if len(h0.Jobs()) != 0 {
		t.Errorf("retention 0 scheduled %d jobs", len(h0.Jobs()))
	}
}

// A page is capped by bytes as well as by count, says it is incomplete,
// and its cursors let the client page on, forwards and backwards,
// through every message exactly once.
func TestPageCappedByBytes(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("x", 200_000)
	const n = 12
	for i := range n {
		f.send(t, bobPh, alice, chat(fmt.Sprintf("%02d%s", i, big)))
	}
	perPage := mamquery.MaxPageBytes / 200_000
	var seen []string
	after := ""
	for range n {
		rsm := []*xmlstream.Element{rsmEl("max", "50")}
		if after != "" {
			rsm = append(rsm, rsmEl("after", after))
		}
		a := mustAsk(t, f, mamQuery(nil, rsm...))
		if len(a.bodies) > perPage || len(a.bodies) == 0 {
			t.Fatalf("a page of %d messages of 200 KB, want 1 to %d", len(a.bodies), perPage)
		}
		for _, b := range a.bodies {
			seen = append(seen, b[:2])
		}
		if a.last != a.ids[len(a.ids)-1] || a.count != fmt.Sprint(n) {
			t.Fatalf("page %+v: last or count wrong", a.ids)
		}
		if a.complete == "true" {
			break
		}
		after = a.last
	}
	if len(seen) != n || seen[0] != "00" || seen[n-1] != fmt.Sprintf("%02d", n-1) {
		t.Fatalf("paging forwards saw %v", seen)
	}
	// Backwards from the end: the newest messages first.
	a := mustAsk(t, f, mamQuery(nil, rsmEl("max", "50"), rsmEl("before", "")))
	if a.complete != "false" || len(a.bodies) > perPage || a.bodies[len(a.bodies)-1][:2] != fmt.Sprintf("%02d", n-1) || a.first != a.ids[0] {
		t.Fatalf("last page: %d messages, complete %s", len(a.bodies), a.complete)
	}
}
