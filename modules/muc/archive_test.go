package muc

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"parley/internal/dataform"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/mamquery"
	"parley/modules/internal/modtest"
)

// mamQuery builds a room archive query: form fields as var, value pairs
// (ids may repeat), then RSM elements.
func mamQuery(fields []string, rsm ...*xmlstream.Element) *xmlstream.Element {
	q := xmlstream.New(NSMAM, "query", "queryid", "qid")
	if len(fields) > 0 {
		x := sub(q, xmlstream.New(dataform.NS, "x", "type", "submit"))
		addField(x, "FORM_TYPE", "hidden", "", NSMAM)
		// A var named again adds a value to the same field, as ids needs.
		var order []string
		vals := map[string][]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			if _, ok := vals[fields[i]]; !ok {
				order = append(order, fields[i])
			}
			vals[fields[i]] = append(vals[fields[i]], fields[i+1])
		}
		for _, v := range order {
			addField(x, v, "", "", vals[v]...)
		}
	}
	if len(rsm) > 0 {
		set := sub(q, xmlstream.New(mamquery.NSRSM, "set"))
		for _, e := range rsm {
			sub(set, e)
		}
	}
	return q
}

func rsm(name, text string) *xmlstream.Element {
	e := xmlstream.New(mamquery.NSRSM, name)
	e.AddText(text)
	return e
}

// answer is a query's outcome as a client sees it.
type answer struct {
	bodies []string // in result order; "(tombstone)" for a retracted one
	ids    []string // result ids
	jids   []string // real JIDs the results carry
	fin    *xmlstream.Element
	iq     *xmlstream.Element
}

func (a answer) rsmText(name string) string {
	if a.fin == nil {
		return ""
	}
	return childText(a.fin.Child(mamquery.NSRSM, "set"), mamquery.NSRSM, name)
}

func (f *fixture) ask(from string, q *xmlstream.Element) answer {
	f.t.Helper()
	var a answer
	qid := q.Attr("queryid")
	for _, el := range f.iq(from, roomJID, "set", q) {
		switch el.Name.Local {
		case "iq":
			a.iq = el
			a.fin = el.Child(NSMAM, "fin")
		case "message":
			if a.iq != nil {
				f.t.Errorf("a result after the fin: %v", el)
			}
			res := el.Child(NSMAM, "result")
			if res == nil || el.Attr("from") != roomJID || el.Attr("to") != from || res.Attr("queryid") != qid {
				f.t.Fatalf("bad result message %v", el)
			}
			fwd := res.Child(stanza.NSForward, "forwarded")
			if fwd.Child(stanza.NSDelay, "delay") == nil {
				f.t.Errorf("result without delay: %v", el)
			}
			m := fwd.Child(stanza.NSClient, "message")
			if m.Attr("type") != "groupchat" || !strings.HasPrefix(m.Attr("from"), roomJID+"/") {
				f.t.Errorf("forwarded message %v", m)
			}
			a.ids = append(a.ids, res.Attr("id"))
			if isTombstone(m) {
				a.bodies = append(a.bodies, "(tombstone)")
			} else {
				a.bodies = append(a.bodies, childText(m, stanza.NSClient, "body"))
			}
			if x := m.Child(NSUser, "x"); x != nil {
				a.jids = append(a.jids, x.Child(NSUser, "item").Attr("jid"))
			}
		}
	}
	return a
}

// archivedRoom is a persistent room where alice (owner) and bob talked.
func archivedRoom(t *testing.T, opts map[string]string, bodies ...string) *fixture {
	f := newFixture(t)
	if opts == nil {
		opts = map[string]string{}
	}
	opts["persistentroom"] = "1"
	f.createRoom(opts)
	f.join(bob, "Bob")
	for i, b := range bodies {
		from := alice
		if i%2 == 1 {
			from = bob
		}
		f.send(from, roomJID, groupchat(b))
	}
	return f
}

func TestArchiveStanzaIDsAndWhatIsKept(t *testing.T) {
	f := archivedRoom(t, nil)
	out := f.send(bob, roomJID, groupchat("hello"))
	var ids []string
	for _, el := range out {
		sid := el.Child(NSSID, "stanza-id")
		if sid == nil || sid.Attr("by") != roomJID || el.Child(NSUser, "x") != nil {
			t.Fatalf("broadcast %v: want one stanza-id by the room and no real JID", el)
		}
		ids = append(ids, sid.Attr("id"))
	}
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("stanza ids %v", ids)
	}
	// A chat state has no body: relayed without an id, not kept.
	cs := xmlstream.New(stanza.NSClient, "message", "type", "groupchat")
	sub(cs, xmlstream.New("http://jabber.org/protocol/chatstates", "composing"))
	for _, el := range f.send(bob, roomJID, cs) {
		if el.Child(NSSID, "stanza-id") != nil {
			t.Errorf("chat state got a stanza-id: %v", el)
		}
	}
	// A forged real JID does not pass.
	forged := groupchat("forged")
	sub(sub(forged, xmlstream.New(NSUser, "x")), xmlstream.New(NSUser, "item", "jid", "boss@example.org"))
	for _, el := range f.send(bob, roomJID, forged) {
		if el.Child(NSUser, "x") != nil {
			t.Errorf("forged muc#user x relayed: %v", el)
		}
	}
	a := f.ask(alice, mamQuery(nil))
	if !slices.Equal(a.bodies, []string{"hello", "forged"}) || a.ids[0] != ids[0] {
		t.Errorf("archive = %v %v, want hello and forged, first %s", a.bodies, a.ids, ids[0])
	}
	// The owner (a moderator) sees the senders' real JIDs, bob does not
	// in a semi-anonymous room.
	if !slices.Equal(a.jids, []string{bob, bob}) {
		t.Errorf("real JIDs for the owner = %v", a.jids)
	}
	if b := f.ask(bob, mamQuery(nil)); len(b.jids) != 0 || len(b.bodies) != 2 {
		t.Errorf("a participant sees %v with JIDs %v", b.bodies, b.jids)
	}
}

func TestArchivePagingAndFilters(t *testing.T) {
	var bodies []string
	for i := range 7 {
		bodies = append(bodies, "m"+strconv.Itoa(i))
	}
	f := archivedRoom(t, nil, bodies...)
	all := f.ask(bob, mamQuery(nil))
	if !slices.Equal(all.bodies, bodies) || all.fin.Attr("complete") != "true" || all.rsmText("count") != "7" || all.fin.Attr("queryid") != "qid" {
		t.Fatalf("whole archive = %v, fin %v", all.bodies, all.fin)
	}
	id := all.ids
	// Forward paging.
	p1 := f.ask(bob, mamQuery(nil, rsm("max", "3")))
	if !slices.Equal(p1.bodies, bodies[:3]) || p1.fin.Attr("complete") != "false" || p1.rsmText("first") != id[0] || p1.rsmText("last") != id[2] || p1.rsmText("count") != "7" {
		t.Errorf("page 1 = %v, fin %v", p1.bodies, p1.fin)
	}
	p2 := f.ask(bob, mamQuery(nil, rsm("max", "3"), rsm("after", p1.rsmText("last"))))
	if !slices.Equal(p2.bodies, bodies[3:6]) {
		t.Errorf("page 2 = %v", p2.bodies)
	}
	p3 := f.ask(bob, mamQuery(nil, rsm("max", "3"), rsm("after", p2.rsmText("last"))))
	if !slices.Equal(p3.bodies, bodies[6:]) || p3.fin.Attr("complete") != "true" {
		t.Errorf("page 3 = %v, fin %v", p3.bodies, p3.fin)
	}
	// Backward paging: the last page, then before it.
	last := f.ask(bob, mamQuery(nil, rsm("max", "2"), rsm("before", "")))
	if !slices.Equal(last.bodies, bodies[5:]) {
		t.Errorf("last page = %v", last.bodies)
	}
	prev := f.ask(bob, mamQuery(nil, rsm("max", "2"), rsm("before", last.rsmText("first"))))
	if !slices.Equal(prev.bodies, bodies[3:5]) {
		t.Errorf("page before the last = %v", prev.bodies)
	}
	// Filters.
	cases := []struct {
		name   string
		q      *xmlstream.Element
		want   []string
		count  string
		flipOK bool
	}{
		{"after-id", mamQuery([]string{"after-id", id[4]}), bodies[5:], "2", false},
		{"before-id", mamQuery([]string{"before-id", id[2]}), bodies[:2], "2", false},
		{"ids", mamQuery([]string{"ids", id[6], "ids", id[1], "ids", "nope"}), []string{"m1", "m6"}, "2", false},
		{"start in the future", mamQuery([]string{"start", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}), nil, "0", false},
		{"end in the past", mamQuery([]string{"end", "2001-01-01T00:00:00Z"}), nil, "0", false},
		{"count only", mamQuery(nil, rsm("max", "0")), nil, "7", false},
	}
	for _, c := range cases {
		a := f.ask(bob, c.q)
		if a.iq.Attr("type") != "result" || !slices.Equal(a.bodies, c.want) || a.rsmText("count") != c.count {
			t.Errorf("%s: %v count %s (%v), want %v count %s", c.name, a.bodies, a.rsmText("count"), a.iq, c.want, c.count)
		}
	}
	flip := mamQuery(nil, rsm("max", "2"))
	sub(flip, xmlstream.New(NSMAM, "flip-page"))
	if a := f.ask(bob, flip); !slices.Equal(a.bodies, []string{"m1", "m0"}) {
		t.Errorf("flipped page = %v", a.bodies)
	}
	// The search form.
	form := f.iq(bob, roomJID, "get", xmlstream.New(NSMAM, "query"))
	if typeOf(form, bob) != "result" || !strings.Contains(form[0].String(), `var="after-id"`) || strings.Contains(form[0].String(), `var="with"`) {
		t.Errorf("search form = %v", form)
	}
}

func TestArchiveBadQueries(t *testing.T) {
	f := archivedRoom(t, nil, "one")
	withX := func(typ string, fields ...string) *xmlstream.Element {
		q := xmlstream.New(NSMAM, "query")
		x := sub(q, xmlstream.New(dataform.NS, "x", "type", typ))
		for i := 0; i+1 < len(fields); i += 2 {
			addField(x, fields[i], "", "", fields[i+1])
		}
		return q
	}
	node := mamQuery(nil)
	node.SetAttr("node", "x")
	cases := []struct {
		name string
		q    *xmlstream.Element
		want string
	}{
		{"wrong FORM_TYPE", withX("submit", "FORM_TYPE", "urn:xmpp:mam:1"), "bad-request"},
		{"form not submitted", withX("form"), "bad-request"},
		{"bad date", mamQuery([]string{"start", "yesterday"}), "bad-request"},
		{"two values", mamQuery([]string{"start", "2020-01-01T00:00:00Z", "start", "2021-01-01T00:00:00Z"}), "bad-request"},
		{"with filter", mamQuery([]string{"with", "bob@example.org"}), "feature-not-implemented"},
		{"unknown field", mamQuery([]string{"colour", "red"}), "feature-not-implemented"},
		{"negative max", mamQuery(nil, rsm("max", "-1")), "bad-request"},
		{"max not a number", mamQuery(nil, rsm("max", "ten")), "bad-request"},
		{"empty after", mamQuery(nil, rsm("after", "")), "bad-request"},
		{"index", mamQuery(nil, rsm("index", "3")), "feature-not-implemented"},
		{"unknown after", mamQuery(nil, rsm("after", "nope")), "item-not-found"},
		{"unknown after-id", mamQuery([]string{"after-id", "nope"}), "item-not-found"},
		{"a node", node, "item-not-found"},
	}
	for _, c := range cases {
		a := f.ask(bob, c.q)
		if a.iq == nil || errorCondition(a.iq) != c.want || len(a.bodies) != 0 {
			t.Errorf("%s: %v, want %s", c.name, a.iq, c.want)
		}
	}
	tooMany := mamQuery(nil)
	x := sub(tooMany, xmlstream.New(dataform.NS, "x", "type", "submit"))
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = "x"
	}
	addField(x, "ids", "", "", ids...)
	if a := f.ask(bob, tooMany); errorCondition(a.iq) != "policy-violation" {
		t.Errorf("too many ids: %v", a.iq)
	}
}

func TestArchiveAccessAndAdvertising(t *testing.T) {
	f := archivedRoom(t, nil, "one")
	// An outsider of an open room may not read it.
	if a := f.ask(carol, mamQuery(nil)); errorCondition(a.iq) != "forbidden" {
		t.Errorf("outsider's query: %v", a.iq)
	}
	info := f.iq(carol, roomJID, "get", xmlstream.New(NSDiscoInfo, "query"))[0].String()
	for _, feat := range []string{NSMAM, NSMAMExtended, NSSID, NSModerate, NSModerate0, NSVCard} {
		if !strings.Contains(info, `"`+feat+`"`) {
			t.Errorf("archiving room lacks %s: %s", feat, info)
		}
	}
	// Members-only: members may read without being in the room, others
	// may not.
	f.setAff(alice, "carol@example.org", "member")
	f.configure(alice, map[string]string{"membersonly": "1"})
	if a := f.ask(carol, mamQuery(nil)); a.iq.Attr("type") != "result" || len(a.bodies) != 1 {
		t.Errorf("member's query: %v", a.iq)
	}
	f.setAff(alice, "carol@example.org", "none")
	if a := f.ask(carol, mamQuery(nil)); errorCondition(a.iq) != "forbidden" {
		t.Errorf("non-member's query of a members-only room: %v", a.iq)
	}
	// Archiving off: 171, nothing kept, nothing advertised.
	out := f.configure(alice, map[string]string{"enablearchiving": "0"})
	var told bool
	for _, el := range to(out, alice) {
		if el.Name.Local == "message" && slices.Contains(codes(el), "171") {
			told = true
		}
	}
	if !told {
		t.Errorf("no 171 when archiving stops: %v", out)
	}
	for _, el := range f.send(alice, roomJID, groupchat("unkept")) {
		if el.Child(NSSID, "stanza-id") != nil {
			t.Errorf("stanza-id without an archive: %v", el)
		}
	}
	info = f.iq(alice, roomJID, "get", xmlstream.New(NSDiscoInfo, "query"))[0].String()
	if strings.Contains(info, NSMAM) || strings.Contains(info, NSModerate) {
		t.Errorf("non-archiving room advertises the archive: %s", info)
	}
	if a := f.ask(alice, mamQuery(nil)); errorCondition(a.iq) != "service-unavailable" {
		t.Errorf("query of a non-archiving room: %v", a.iq)
	}
	// A temporary room never archives.
	g := newFixture(t)
	g.createRoom(nil)
	if a := g.ask(alice, mamQuery(nil)); errorCondition(a.iq) != "service-unavailable" {
		t.Errorf("query of a temporary room: %v", a.iq)
	}
}

func TestArchiveRetention(t *testing.T) {
	h := modtest.NewHost("example.org")
	m := New([]string{service}, time.Hour)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	m.now = func() time.Time { return time.Unix(0, now.Load()) }
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, h: h, m: m}
	f.createRoom(map[string]string{"persistentroom": "1"})
	f.send(alice, roomJID, groupchat("old"))
	now.Add(int64(2 * time.Hour))
	f.send(alice, roomJID, groupchat("new"))
	h.RunJobs(t.Context())
	if a := f.ask(alice, mamQuery(nil)); !slices.Equal(a.bodies, []string{"new"}) {
		t.Errorf("after retention: %v", a.bodies)
	}
}

func moderate(id, reason string) *xmlstream.Element {
	m := xmlstream.New(NSModerate, "moderate", "id", id)
	sub(m, xmlstream.New(NSRetract, "retract"))
	if reason != "" {
		sub(m, xmlstream.New(NSModerate, "reason")).AddText(reason)
	}
	return m
}

func TestModeration(t *testing.T) {
	f := archivedRoom(t, nil, "fine", "spam", "also spam")
	ids := f.ask(alice, mamQuery(nil)).ids
	// Only moderators; only known ids; only retraction.
	if out := f.iq(bob, roomJID, "set", moderate(ids[0], "")); errorCondition(out[0]) != "forbidden" {
		t.Errorf("participant moderating: %v", out)
	}
	if out := f.iq(carol, roomJID, "set", moderate(ids[0], "")); errorCondition(out[0]) != "forbidden" {
		t.Errorf("outsider moderating: %v", out)
	}
	if out := f.iq(alice, roomJID, "set", moderate("nope", "")); errorCondition(out[0]) != "item-not-found" {
		t.Errorf("unknown stanza-id: %v", out)
	}
	if out := f.iq(alice, roomJID, "set", moderate("", "")); errorCondition(out[0]) != "bad-request" {
		t.Errorf("no stanza-id: %v", out)
	}
	if out := f.iq(alice, roomJID, "set", xmlstream.New(NSModerate, "moderate", "id", ids[1])); errorCondition(out[0]) != "feature-not-implemented" {
		t.Errorf("moderation without retract: %v", out)
	}
	// The :1 request.
	out := f.iq(alice, roomJID, "set", moderate(ids[1], "spam"))
	if typeOf(out, alice) != "result" {
		t.Fatalf("moderation: %v", out)
	}
	var announced int
	for _, el := range out {
		if el.Name.Local != "message" {
			continue
		}
		r := el.Child(NSRetract, "retract")
		mod := r.Child(NSModerate, "moderated")
		a0 := el.Child(NSFasten, "apply-to")
		if el.Attr("from") != roomJID || el.Attr("type") != "groupchat" || r.Attr("id") != ids[1] || mod.Attr("by") != roomJID+"/Alice" ||
			mod.Child(NSOccupantID, "occupant-id") == nil || childText(r, NSRetract, "reason") != "spam" ||
			a0 == nil || a0.Attr("id") != ids[1] || a0.Child(NSModerate0, "moderated") == nil {
			t.Errorf("announcement %v", el)
		}
		announced++
	}
	if announced != 2 {
		t.Errorf("announcement reached %d sessions, want 2: %v", announced, out)
	}
	// The :0 request (apply-to).
	applyTo := xmlstream.New(NSFasten, "apply-to", "id", ids[2])
	sub(sub(applyTo, xmlstream.New(NSModerate0, "moderate")), xmlstream.New(NSRetract0, "retract"))
	if out := f.iq(alice, roomJID, "set", applyTo); typeOf(out, alice) != "result" {
		t.Fatalf(":0 moderation: %v", out)
	}
	bad := xmlstream.New(NSFasten, "apply-to", "id", ids[0])
	sub(bad, xmlstream.New("urn:example", "like"))
	if out := f.iq(alice, roomJID, "set", bad); errorCondition(out[0]) != "feature-not-implemented" {
		t.Errorf("apply-to without moderation: %v", out)
	}
	// The archive keeps tombstones with no trace of the content.
	a := f.ask(bob, mamQuery(nil))
	if !slices.Equal(a.bodies, []string{"fine", "(tombstone)", "(tombstone)"}) {
		t.Errorf("archive after moderation = %v", a.bodies)
	}
	page, _ := f.m.Store().Messages(context.Background(), roomJID, storageQuery(ids[1]))
	if s := string(page.Messages[0].Data); strings.Contains(s, "<body") || !strings.Contains(s, NSOccupantID) {
		t.Errorf("tombstone keeps the content: %s", s)
	}
	// Retracting again changes nothing and tells nobody.
	if out := f.iq(alice, roomJID, "set", moderate(ids[1], "")); len(out) != 1 || typeOf(out, alice) != "result" {
		t.Errorf("second retraction: %v", out)
	}
	// The history forgets them.
	var hist []string
	for _, el := range f.join(carol, "Carol") {
		if el.Child(stanza.NSDelay, "delay") != nil {
			hist = append(hist, childText(el, stanza.NSClient, "body"))
		}
	}
	if !slices.Equal(hist, []string{"fine"}) {
		t.Errorf("history after moderation = %v", hist)
	}
}

func TestModerationSurvivesRestart(t *testing.T) {
	h := modtest.NewHost("example.org")
	f := startOn(t, h)
	f.createRoom(map[string]string{"persistentroom": "1"})
	f.send(alice, roomJID, groupchat("keep"))
	f.send(alice, roomJID, groupchat("drop"))
	ids := f.ask(alice, mamQuery(nil)).ids
	f.iq(alice, roomJID, "set", moderate(ids[1], ""))
	f.send(alice, roomJID+"/Alice", xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
	g := startOn(t, h.Restart())
	var hist []string
	for _, el := range g.join(alice, "Alice") {
		if el.Child(stanza.NSDelay, "delay") != nil {
			hist = append(hist, childText(el, stanza.NSClient, "body"))
			if el.Child(NSUser, "x") != nil {
				t.Errorf("history carries the archived real JID: %v", el)
			}
		}
	}
	if !slices.Equal(hist, []string{"keep"}) {
		t.Errorf("history after a restart = %v", hist)
	}
}

func vcard(photo string) *xmlstream.Element {
	v := xmlstream.New(NSVCard, "vCard")
	if photo != "" {
		p := sub(v, xmlstream.New(NSVCard, "PHOTO"))
		sub(p, xmlstream.New(NSVCard, "TYPE")).AddText("image/png")
		sub(p, xmlstream.New(NSVCard, "BINVAL")).AddText(photo)
	}
	return v
}

func roomInfoField(f *fixture, from, v string) []string {
	f.t.Helper()
	info := f.iq(from, roomJID, "get", xmlstream.New(NSDiscoInfo, "query"))[0]
	x := info.Child(NSDiscoInfo, "query").Child(dataform.NS, "x")
	vals := formValues(x)
	return vals[v]
}

func TestRoomAvatar(t *testing.T) {
	h := modtest.NewHost("example.org")
	f := startOn(t, h)
	f.createRoom(map[string]string{"persistentroom": "1"})
	f.join(bob, "Bob")
	img := []byte("\x89PNG not really")
	b64 := base64.StdEncoding.EncodeToString(img)
	sum := sha1.Sum(img)
	hash := hex.EncodeToString(sum[:])
	if got := roomInfoField(f, carol, "muc#roominfo_avatarhash"); got != nil {
		t.Errorf("avatar hash without an avatar: %v", got)
	}
	if out := f.iq(bob, roomJID, "set", vcard(b64)); errorCondition(out[0]) != "forbidden" {
		t.Errorf("participant setting the vCard: %v", out)
	}
	if out := f.iq(alice, roomJID, "set", vcard("not base64!")); errorCondition(out[0]) != "bad-request" {
		t.Errorf("bad BINVAL: %v", out)
	}
	huge := base64.StdEncoding.EncodeToString(make([]byte, maxVCardBytes))
	if out := f.iq(alice, roomJID, "set", vcard(huge)); errorCondition(out[0]) != "policy-violation" {
		t.Errorf("oversized vCard: %v", out)
	}
	out := f.iq(alice, roomJID, "set", vcard(b64[:10]+"\n"+b64[10:]))
	if typeOf(out, alice) != "result" {
		t.Fatalf("owner setting the vCard: %v", out)
	}
	var told, announced bool
	for _, el := range to(out, bob) {
		if el.Name.Local == "message" && slices.Contains(codes(el), "104") {
			told = true
		}
		if el.Name.Local == "presence" && el.Attr("from") == roomJID && childText(el.Child(NSVCardUpdate, "x"), NSVCardUpdate, "photo") == hash {
			announced = true
		}
	}
	if !told || !announced {
		t.Errorf("occupants not told of the avatar (104 %v, presence %v): %v", told, announced, out)
	}
	if got := roomInfoField(f, carol, "muc#roominfo_avatarhash"); !slices.Equal(got, []string{hash}) {
		t.Errorf("avatar hash = %v, want %s", got, hash)
	}
	// Anyone reads it.
	got := f.iq(carol, roomJID, "get", xmlstream.New(NSVCard, "vCard"))
	if typeOf(got, carol) != "result" || !strings.Contains(got[0].String(), "image/png") {
		t.Errorf("vCard get: %v", got)
	}
	// A newcomer learns the hash on joining.
	var joined bool
	for _, el := range f.join(carol, "Carol") {
		if el.Name.Local == "presence" && el.Attr("from") == roomJID && el.Child(NSVCardUpdate, "x") != nil {
			joined = true
		}
	}
	if !joined {
		t.Error("no avatar presence on join")
	}
	// It survives a restart.
	for _, who := range []struct{ full, nick string }{{alice, "Alice"}, {bob, "Bob"}, {carol, "Carol"}} {
		f.send(who.full, roomJID+"/"+who.nick, xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
	}
	g := startOn(t, h.Restart())
	if got := roomInfoField(g, carol, "muc#roominfo_avatarhash"); !slices.Equal(got, []string{hash}) {
		t.Errorf("avatar hash after a restart = %v", got)
	}
	// An empty vCard removes it.
	g.join(alice, "Alice")
	if out := g.iq(alice, roomJID, "set", vcard("")); typeOf(out, alice) != "result" {
		t.Fatalf("removing the avatar: %v", out)
	}
	if got := roomInfoField(g, carol, "muc#roominfo_avatarhash"); got != nil {
		t.Errorf("avatar hash after removal: %v", got)
	}
	if got := g.iq(carol, roomJID, "get", xmlstream.New(NSVCard, "vCard")); typeOf(got, carol) != "result" || got[0].Child(NSVCard, "vCard").FirstElement() != nil {
		t.Errorf("vCard after removal: %v", got)
	}
}

// voiceForm is a muc#request form; allow "" leaves muc#request_allow out.
func voiceForm(nick, allow string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "id", "v1")
	x := sub(m, xmlstream.New(dataform.NS, "x", "type", "submit"))
	addField(x, "FORM_TYPE", "", "", NSRequest)
	addField(x, "muc#role", "", "", roleParticipant)
	if nick != "" {
		addField(x, "muc#roomnick", "", "", nick)
	}
	if allow != "" {
		addField(x, "muc#request_allow", "", "", allow)
	}
	return m
}

func TestVoiceRequestApproval(t *testing.T) {
	f := newFixture(t)
	f.createRoom(map[string]string{"moderatedroom": "1"})
	f.join(bob, "Bob")
	f.join(carol, "Carol")
	// Bob asks; the moderator gets the form.
	out := f.send(bob, roomJID, voiceForm("", ""))
	if len(out) != 1 || out[0].Attr("to") != alice || formValues(out[0].Child(dataform.NS, "x"))["muc#roomnick"][0] != "Bob" {
		t.Fatalf("the request reaching the moderator: %v", out)
	}
	// A visitor cannot approve, even itself.
	if out := f.send(carol, roomJID, voiceForm("Carol", "true")); len(out) != 1 || out[0].Attr("to") != alice {
		t.Errorf("a visitor's approval was not taken as a request: %v", out)
	}
	// Bad answers.
	if out := f.send(alice, roomJID, voiceForm("Bob", "maybe")); len(out) != 1 || errorCondition(out[0]) != "bad-request" {
		t.Errorf("non-boolean answer: %v", out)
	}
	if out := f.send(alice, roomJID, voiceForm("Nobody", "true")); len(out) != 1 || errorCondition(out[0]) != "item-not-found" {
		t.Errorf("answer for an unknown nick: %v", out)
	}
	// Refusal changes nothing.
	if out := f.send(alice, roomJID, voiceForm("Bob", "false")); len(out) != 0 {
		t.Errorf("refusal: %v", out)
	}
	// Approval: bob becomes a participant, and everyone sees it.
	out = f.send(alice, roomJID, voiceForm("Bob", "true"))
	for _, who := range []string{alice, bob, carol} {
		p := presenceFrom(out, "Bob", who)
		if p == nil || item(p).Attr("role") != roleParticipant {
			t.Errorf("%s did not see bob's voice: %v", who, out)
		}
	}
	if !slices.Contains(codes(presenceFrom(out, "Bob", bob)), "110") {
		t.Errorf("bob's own presence lacks 110")
	}
	if out := f.send(bob, roomJID, groupchat("thanks")); len(out) != 3 {
		t.Errorf("bob speaking after approval: %v", out)
	}
	// A second approval has nothing to do.
	if out := f.send(alice, roomJID, voiceForm("Bob", "1")); len(out) != 0 {
		t.Errorf("second approval: %v", out)
	}
}

func storageQuery(id string) storage.MUCQuery { return storage.MUCQuery{IDs: []string{id}, Max: 1} }
