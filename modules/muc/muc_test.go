package muc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
	"parley/modules/internal/modtest"
)

const (
	service = "conference.example.org"
	roomJID = "room@conference.example.org"
	alice   = "alice@example.org/phone"
	bob     = "bob@example.org/laptop"
	carol   = "carol@example.org/pc"
)

type fixture struct {
	t *testing.T
	h *modtest.Host
	m *Module
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	h := modtest.NewHost("example.org")
	return startOn(t, h)
}

func startOn(t *testing.T, h *modtest.Host) *fixture {
	t.Helper()
	m := New([]string{service}, 0)
	if err := m.Start(h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return &fixture{t: t, h: h, m: m}
}

// send hands el from 'from' to 'to' to the component and returns what it
// delivered.
func (f *fixture) send(from, to string, el *xmlstream.Element) []*xmlstream.Element {
	f.t.Helper()
	el.SetAttr("from", from)
	el.SetAttr("to", to)
	if !f.h.ToComponent(context.Background(), jid.MustParse(from), jid.MustParse(to), el) {
		f.t.Fatalf("no component for %s", to)
	}
	return f.h.TakeDelivered()
}

func presence(children ...*xmlstream.Element) *xmlstream.Element {
	p := xmlstream.New(stanza.NSClient, "presence")
	for _, c := range children {
		sub(p, c)
	}
	return p
}

func mucX(children ...*xmlstream.Element) *xmlstream.Element {
	x := xmlstream.New(NS, "x")
	for _, c := range children {
		sub(x, c)
	}
	return x
}

// join enters the room and returns what was delivered.
func (f *fixture) join(full, nick string, children ...*xmlstream.Element) []*xmlstream.Element {
	f.t.Helper()
	return f.send(full, roomJID+"/"+nick, presence(mucX(children...)))
}

// createInstant creates the room with alice as owner and accepts the
// default configuration, then applies the given options.
func (f *fixture) createRoom(opts map[string]string) {
	f.t.Helper()
	f.join(alice, "Alice")
	f.configure(alice, opts)
}

func (f *fixture) configure(owner string, opts map[string]string) []*xmlstream.Element {
	f.t.Helper()
	q := xmlstream.New(NSOwner, "query")
	form := sub(q, xmlstream.New(dataform.NS, "x", "type", "submit"))
	addField(form, "FORM_TYPE", "", "", NSRoomConfig)
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		addField(form, "muc#roomconfig_"+k, "", "", opts[k])
	}
	out := f.iq(owner, roomJID, "set", q)
	if typeOf(out, owner) != "result" {
		f.t.Fatalf("configuration refused: %v", out)
	}
	return out
}

func (f *fixture) iq(from, to, typ string, payload *xmlstream.Element) []*xmlstream.Element {
	f.t.Helper()
	el := xmlstream.New(stanza.NSClient, "iq", "type", typ, "id", "q1")
	sub(el, payload)
	return f.send(from, to, el)
}

// typeOf returns the type of the IQ answer delivered to 'to'.
func typeOf(out []*xmlstream.Element, to string) string {
	for _, el := range out {
		if el.Name.Local == "iq" && el.Attr("to") == to {
			return el.Attr("type")
		}
	}
	return "(none)"
}

func errorCondition(el *xmlstream.Element) string {
	e := el.Child(el.Name.Space, "error")
	if e == nil {
		return ""
	}
	for c := range e.Elements() {
		if c.Name.Space == stanza.NSStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

// to filters stanzas addressed to a full JID.
func to(out []*xmlstream.Element, full string) []*xmlstream.Element {
	var r []*xmlstream.Element
	for _, el := range out {
		if el.Attr("to") == full {
			r = append(r, el)
		}
	}
	return r
}

func codes(el *xmlstream.Element) []string {
	x := el.Child(NSUser, "x")
	if x == nil {
		return nil
	}
	var c []string
	for s := range x.Elements() {
		if s.Name.Local == "status" {
			c = append(c, s.Attr("code"))
		}
	}
	return c
}

func item(el *xmlstream.Element) *xmlstream.Element {
	if x := el.Child(NSUser, "x"); x != nil {
		return x.Child(NSUser, "item")
	}
	return nil
}

// presenceFrom finds the presence from room/nick to 'to'.
func presenceFrom(out []*xmlstream.Element, nick, toFull string) *xmlstream.Element {
	for _, el := range out {
		if el.Name.Local == "presence" && el.Attr("from") == roomJID+"/"+nick && el.Attr("to") == toFull {
			return el
		}
	}
	return nil
}

func TestCreateLockedRoomAndConfigure(t *testing.T) {
	f := newFixture(t)
	out := f.join(alice, "Alice")
	self := presenceFrom(out, "Alice", alice)
	if self == nil {
		t.Fatalf("no self-presence: %v", out)
	}
	if c := codes(self); !slices.Contains(c, "110") || !slices.Contains(c, "201") {
		t.Errorf("self-presence codes = %v, want 110 and 201", c)
	}
	if it := item(self); it.Attr("affiliation") != "owner" || it.Attr("role") != "moderator" {
		t.Errorf("creator item = %v, want owner moderator", it)
	}
	if self.Child(NSOccupantID, "occupant-id") == nil {
		t.Error("self-presence has no occupant-id")
	}
	// Locked until configured: others cannot enter.
	out = f.join(bob, "Bob")
	if len(out) != 1 || errorCondition(out[0]) != "item-not-found" {
		t.Fatalf("joining a locked room: %v, want item-not-found", out)
	}
	// Only the owner configures.
	if got := f.iq(bob, roomJID, "get", xmlstream.New(NSOwner, "query")); typeOf(got, bob) != "error" {
		t.Errorf("config get by a non-owner: %v", got)
	}
	form := f.iq(alice, roomJID, "get", xmlstream.New(NSOwner, "query"))
	if typeOf(form, alice) != "result" || !strings.Contains(form[0].String(), "muc#roomconfig_whois") {
		t.Fatalf("config form: %v", form)
	}
	f.configure(alice, nil) // an empty form: the instant room
	out = f.join(bob, "Bob")
	if presenceFrom(out, "Bob", bob) == nil {
		t.Fatalf("bob could not join after configuration: %v", out)
	}
}

func TestOldClientGetsInstantRoom(t *testing.T) {
	f := newFixture(t)
	f.send(alice, roomJID+"/Alice", presence())
	if out := f.join(bob, "Bob"); presenceFrom(out, "Bob", bob) == nil {
		t.Fatalf("a room created without <x/> is locked: %v", out)
	}
}

func TestJoinBroadcastAndAnonymity(t *testing.T) {
	cases := []struct {
		name         string
		whois        string
		bobSeesJID   bool
		selfHasCode1 bool
	}{
		{"semi-anonymous", "moderators", false, false},
		{"non-anonymous", "anyone", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.createRoom(map[string]string{"whois": c.whois})
			out := f.join(bob, "Bob")
			// Bob first gets Alice's presence, then his own.
			if len(out) < 2 || out[0].Attr("from") != roomJID+"/Alice" {
				t.Fatalf("join order: %v", out)
			}
			aliceSeen := presenceFrom(out, "Alice", bob)
			if got := item(aliceSeen).Attr("jid") != ""; got != c.bobSeesJID {
				t.Errorf("bob sees alice's jid: %v, want %v", got, c.bobSeesJID)
			}
			// Alice is a moderator: she always sees real JIDs.
			bobToAlice := presenceFrom(out, "Bob", alice)
			if bobToAlice == nil || item(bobToAlice).Attr("jid") != bob {
				t.Errorf("alice's view of bob: %v", bobToAlice)
			}
			if slices.Contains(codes(bobToAlice), "110") {
				t.Error("alice got bob's self code 110")
			}
			self := presenceFrom(out, "Bob", bob)
			if got := slices.Contains(codes(self), "100"); got != c.selfHasCode1 {
				t.Errorf("code 100 in self-presence: %v, want %v", got, c.selfHasCode1)
			}
			if it := item(self); it.Attr("role") != "participant" || it.Attr("affiliation") != "none" {
				t.Errorf("bob's item = %v", it)
			}
			// The subject comes last, even when empty.
			last := out[len(out)-1]
			if last.Name.Local != "message" || last.Child(stanza.NSClient, "subject") == nil {
				t.Errorf("last stanza of a join is not the subject: %v", last)
			}
		})
	}
}

func TestNickConflictAndChange(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	f.join(bob, "Bob")
	out := f.join(carol, "Bob")
	if len(out) != 1 || errorCondition(out[0]) != "conflict" {
		t.Fatalf("taken nick: %v, want conflict", out)
	}
	out = f.send(bob, roomJID+"/Robert", presence())
	unavail := presenceFrom(out, "Bob", alice)
	if unavail == nil || unavail.Attr("type") != "unavailable" || !slices.Contains(codes(unavail), "303") || item(unavail).Attr("nick") != "Robert" {
		t.Fatalf("nick change unavailable: %v", unavail)
	}
	selfUnavail := presenceFrom(out, "Bob", bob)
	if c := codes(selfUnavail); !slices.Contains(c, "303") || !slices.Contains(c, "110") {
		t.Errorf("own nick change codes = %v", c)
	}
	if p := presenceFrom(out, "Robert", alice); p == nil || p.Attr("type") != "" {
		t.Errorf("no available presence for the new nick: %v", out)
	}
	// The old nick is free again.
	if out := f.join(carol, "Bob"); presenceFrom(out, "Bob", carol) == nil {
		t.Errorf("old nick still taken: %v", out)
	}
}

func groupchat(body string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "type", "groupchat", "id", "m1")
	sub(m, xmlstream.New(stanza.NSClient, "body")).AddText(body)
	return m
}

func TestGroupchatAndOccupantID(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	f.join(bob, "Bob")
	forged := groupchat("hi")
	sub(forged, xmlstream.New(NSOccupantID, "occupant-id", "id", "forged"))
	out := f.send(bob, roomJID, forged)
	if len(out) != 2 {
		t.Fatalf("broadcast went to %d sessions, want 2: %v", len(out), out)
	}
	var ids []string
	for _, el := range out {
		if el.Attr("from") != roomJID+"/Bob" || el.Attr("type") != "groupchat" {
			t.Errorf("broadcast %v", el)
		}
		var n int
		for c := range el.Elements() {
			if c.Name.Space == NSOccupantID {
				n++
				ids = append(ids, c.Attr("id"))
			}
		}
		if n != 1 {
			t.Errorf("%d occupant-ids in %v", n, el)
		}
	}
	if ids[0] == "forged" || ids[0] != ids[1] {
		t.Errorf("occupant ids %v", ids)
	}
	// Stable across a rejoin, different per user.
	f.send(bob, roomJID+"/Bob", xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
	out = f.join(bob, "Bobby")
	if got := presenceFrom(out, "Bobby", bob).Child(NSOccupantID, "occupant-id").Attr("id"); got != ids[0] {
		t.Errorf("occupant id after rejoin = %q, want %q", got, ids[0])
	}
	aliceOut := f.send(alice, roomJID, groupchat("x"))
	if aliceOut[0].Child(NSOccupantID, "occupant-id").Attr("id") == ids[0] {
		t.Error("alice and bob share an occupant id")
	}
	// Non-occupants cannot send.
	if out := f.send(carol, roomJID, groupchat("spam")); len(out) != 1 || errorCondition(out[0]) != "not-acceptable" {
		t.Errorf("message from a non-occupant: %v", out)
	}
}

func subjectMsg(s string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "type", "groupchat")
	sub(m, xmlstream.New(stanza.NSClient, "subject")).AddText(s)
	return m
}

func TestSubject(t *testing.T) {
	cases := []struct {
		name, change string
		bobMay       bool
	}{
		{"moderators only", "0", false},
		{"anyone", "1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.createRoom(map[string]string{"changesubject": c.change})
			f.join(bob, "Bob")
			out := f.send(bob, roomJID, subjectMsg("bob's topic"))
			allowed := len(out) == 2
			if allowed != c.bobMay {
				t.Fatalf("bob changing the subject: %v, want allowed %v", out, c.bobMay)
			}
			if !allowed && errorCondition(out[0]) != "forbidden" {
				t.Errorf("refusal %v, want forbidden", out)
			}
			f.send(alice, roomJID, subjectMsg("alice's topic"))
			out = f.join(carol, "Carol")
			last := out[len(out)-1]
			if last.Child(stanza.NSClient, "subject").Text() != "alice's topic" || last.Attr("from") != roomJID+"/Alice" {
				t.Errorf("subject on join = %v", last)
			}
		})
	}
}

func TestPrivateMessages(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	f.join(bob, "Bob")
	msg := xmlstream.New(stanza.NSClient, "message", "type", "chat")
	sub(msg, xmlstream.New(stanza.NSClient, "body")).AddText("psst")
	out := f.send(alice, roomJID+"/Bob", msg)
	if len(out) != 1 || out[0].Attr("to") != bob || out[0].Attr("from") != roomJID+"/Alice" || out[0].Child(NSUser, "x") == nil {
		t.Fatalf("private message: %v", out)
	}
	if out := f.send(alice, roomJID+"/Nobody", msg.Copy()); len(out) != 1 || errorCondition(out[0]) != "item-not-found" {
		t.Errorf("to a missing nick: %v", out)
	}
	if out := f.send(carol, roomJID+"/Bob", msg.Copy()); len(out) != 1 || errorCondition(out[0]) != "not-acceptable" {
		t.Errorf("from a non-occupant: %v", out)
	}
}

func TestHistory(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	for _, b := range []string{"one", "two", "three"} {
		f.send(alice, roomJID, groupchat(b))
	}
	bodies := func(out []*xmlstream.Element) []string {
		var r []string
		for _, el := range out {
			if b := el.Child(stanza.NSClient, "body"); b != nil && el.Child(stanza.NSDelay, "delay") != nil {
				r = append(r, b.Text())
			}
		}
		return r
	}
	if got := bodies(f.join(bob, "Bob")); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("full history = %v", got)
	}
	h := xmlstream.New(NS, "history", "maxstanzas", "2")
	if got := bodies(f.join(carol, "Carol", h)); !slices.Equal(got, []string{"two", "three"}) {
		t.Errorf("maxstanzas=2 history = %v", got)
	}
	f.send(carol, roomJID+"/Carol", xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
	if got := bodies(f.join(carol, "Carol", xmlstream.New(NS, "history", "maxchars", "0"))); len(got) != 0 {
		t.Errorf("maxchars=0 history = %v", got)
	}
}

func TestSelfPing(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	ping := func() *xmlstream.Element { return xmlstream.New(NSPing, "ping") }
	if out := f.iq(alice, roomJID+"/Alice", "get", ping()); typeOf(out, alice) != "result" {
		t.Errorf("self-ping of an occupant: %v", out)
	}
	out := f.iq(bob, roomJID+"/Alice", "get", ping())
	if typeOf(out, bob) != "error" || errorCondition(out[0]) != "not-acceptable" {
		t.Errorf("self-ping of a non-occupant: %v", out)
	}
}

func TestMembersOnlyPasswordMaxUsers(t *testing.T) {
	f := newFixture(t)
	f.createRoom(map[string]string{"membersonly": "1", "roomsecret": "pw", "passwordprotectedroom": "1", "maxusers": "2"})
	out := f.join(bob, "Bob", pw("pw"))
	if len(out) != 1 || errorCondition(out[0]) != "registration-required" {
		t.Fatalf("non-member join: %v", out)
	}
	for _, who := range []string{"bob@example.org", "carol@example.org"} {
		if out := f.setAff(alice, who, "member"); typeOf(out, alice) != "result" {
			t.Fatalf("making %s a member: %v", who, out)
		}
	}
	if out := f.join(bob, "Bob"); errorCondition(out[0]) != "not-authorized" {
		t.Errorf("join without password: %v", out)
	}
	if out := f.join(bob, "Bob", pw("pw")); presenceFrom(out, "Bob", bob) == nil {
		t.Fatalf("member with password: %v", out)
	}
	if out := f.join(carol, "Carol", pw("pw")); len(out) != 1 || errorCondition(out[0]) != "service-unavailable" {
		t.Errorf("join of a full room: %v", out)
	}
	// Revoking bob's membership removes him with 321.
	out = f.setAff(alice, "bob@example.org", "none")
	p := presenceFrom(out, "Bob", alice)
	if p == nil || p.Attr("type") != "unavailable" || !slices.Contains(codes(p), "321") {
		t.Errorf("membership revoked: %v", out)
	}
}

func pw(s string) *xmlstream.Element {
	p := xmlstream.New(NS, "password")
	p.AddText(s)
	return p
}

func (f *fixture) setAff(actor, who, aff string) []*xmlstream.Element {
	f.t.Helper()
	q := xmlstream.New(NSAdmin, "query")
	sub(q, xmlstream.New(NSAdmin, "item", "jid", who, "affiliation", aff))
	return f.iq(actor, roomJID, "set", q)
}

func (f *fixture) setRole(actor, nick, role string) []*xmlstream.Element {
	f.t.Helper()
	q := xmlstream.New(NSAdmin, "query")
	sub(q, xmlstream.New(NSAdmin, "item", "nick", nick, "role", role))
	return f.iq(actor, roomJID, "set", q)
}

func TestKickBanVoice(t *testing.T) {
	f := newFixture(t)
	f.createRoom(map[string]string{"moderatedroom": "1"})
	if it := item(presenceFrom(f.join(bob, "Bob"), "Bob", bob)); it.Attr("role") != "visitor" {
		t.Fatalf("bob's role in a moderated room = %v", it)
	}
	if out := f.send(bob, roomJID, groupchat("hi")); errorCondition(out[0]) != "forbidden" {
		t.Errorf("visitor speaking: %v", out)
	}
	out := f.setRole(alice, "Bob", "participant")
	if typeOf(out, alice) != "result" || item(presenceFrom(out, "Bob", bob)).Attr("role") != "participant" {
		t.Fatalf("granting voice: %v", out)
	}
	if out := f.send(bob, roomJID, groupchat("hi")); len(out) != 2 {
		t.Errorf("participant speaking: %v", out)
	}
	// A participant may not kick, nobody may kick an owner.
	if out := f.setRole(bob, "Alice", "none"); errorCondition(out[0]) != "forbidden" {
		t.Errorf("participant kicking: %v", out)
	}
	f.setAff(alice, "carol@example.org", "admin")
	f.join(carol, "Carol")
	if out := f.setRole(carol, "Alice", "none"); errorCondition(out[0]) != "not-allowed" {
		t.Errorf("admin kicking the owner: %v", out)
	}
	if out := f.setAff(carol, "alice@example.org", "none"); errorCondition(out[0]) != "not-allowed" {
		t.Errorf("admin demoting the owner: %v", out)
	}
	out = f.setRole(carol, "Bob", "none")
	kicked := presenceFrom(out, "Bob", bob)
	if kicked == nil || kicked.Attr("type") != "unavailable" || !slices.Contains(codes(kicked), "307") || !slices.Contains(codes(kicked), "110") {
		t.Fatalf("kick: %v", out)
	}
	if a := item(kicked).Child(NSUser, "actor"); a == nil || a.Attr("nick") != "Carol" {
		t.Errorf("kick actor = %v", item(kicked))
	}
	f.join(bob, "Bob")
	out = f.setAff(alice, "bob@example.org", "outcast")
	banned := presenceFrom(out, "Bob", alice)
	if banned == nil || !slices.Contains(codes(banned), "301") || item(banned).Attr("affiliation") != "outcast" {
		t.Fatalf("ban: %v", out)
	}
	if out := f.join(bob, "Bob"); errorCondition(out[0]) != "forbidden" {
		t.Errorf("banned join: %v", out)
	}
	// The last owner cannot go.
	if out := f.setAff(alice, "alice@example.org", "admin"); errorCondition(out[0]) != "conflict" {
		t.Errorf("last owner stepping down: %v", out)
	}
	// Lists: outcasts for admins only.
	q := xmlstream.New(NSAdmin, "query")
	sub(q, xmlstream.New(NSAdmin, "item", "affiliation", "outcast"))
	out = f.iq(carol, roomJID, "get", q)
	if typeOf(out, carol) != "result" || !strings.Contains(out[0].String(), "bob@example.org") {
		t.Errorf("ban list: %v", out)
	}
}

func TestMemberListForOMEMO(t *testing.T) {
	list := func(f *fixture, who string) []*xmlstream.Element {
		q := xmlstream.New(NSAdmin, "query")
		sub(q, xmlstream.New(NSAdmin, "item", "affiliation", "member"))
		return f.iq(who, roomJID, "get", q)
	}
	for _, whois := range []string{"anyone", "moderators"} {
		f := newFixture(t)
		f.createRoom(map[string]string{"membersonly": "1", "whois": whois})
		f.setAff(alice, "bob@example.org", "member")
		f.setAff(alice, "carol@example.org", "member")
		out := list(f, bob)
		if want := map[string]string{"anyone": "result", "moderators": "error"}[whois]; typeOf(out, bob) != want {
			t.Errorf("whois=%s: member list for a member: %v, want %s", whois, out, want)
		}
		if whois == "anyone" && !strings.Contains(out[0].String(), "carol@example.org") {
			t.Errorf("member list lacks carol: %v", out)
		}
	}
}

func TestInvitations(t *testing.T) {
	f := newFixture(t)
	f.createRoom(map[string]string{"membersonly": "1"})
	inv := xmlstream.New(stanza.NSClient, "message")
	x := sub(inv, xmlstream.New(NSUser, "x"))
	sub(sub(x, xmlstream.New(NSUser, "invite", "to", "bob@example.org")), xmlstream.New(NSUser, "reason")).AddText("come")
	out := f.send(alice, roomJID, inv)
	if len(out) != 1 || out[0].Attr("to") != "bob@example.org" || out[0].Attr("from") != roomJID {
		t.Fatalf("invitation: %v", out)
	}
	i := out[0].Child(NSUser, "x").Child(NSUser, "invite")
	if i == nil || i.Attr("from") == "" || childText(i, NSUser, "reason") != "come" {
		t.Errorf("invite element: %v", out[0])
	}
	// The invitee became a member of the members-only room.
	if out := f.join(bob, "Bob"); presenceFrom(out, "Bob", bob) == nil {
		t.Errorf("invitee cannot enter: %v", out)
	}
	// A plain member may not invite unless the room allows it.
	inv2 := inv.Copy()
	inv2.Child(NSUser, "x").Child(NSUser, "invite").SetAttr("to", "carol@example.org")
	if out := f.send(bob, roomJID, inv2); errorCondition(out[0]) != "forbidden" {
		t.Errorf("member inviting: %v", out)
	}
}

func TestDiscoAndPersistence(t *testing.T) {
	h := modtest.NewHost("example.org")
	f := startOn(t, h)
	f.createRoom(map[string]string{"persistentroom": "1", "roomname": "Our room", "whois": "anyone"})
	f.setAff(alice, "bob@example.org", "member")
	f.send(alice, roomJID, groupchat("kept"))
	info := f.iq(bob, roomJID, "get", xmlstream.New(NSDiscoInfo, "query"))
	s := info[0].String()
	for _, feat := range []string{"muc_persistent", "muc_public", "muc_open", "muc_nonanonymous", "muc_unsecured", "muc_unmoderated", NSOccupantID} {
		if !strings.Contains(s, `"`+feat+`"`) {
			t.Errorf("room disco#info lacks %s: %s", feat, s)
		}
	}
	items := f.iq(bob, service, "get", xmlstream.New(NSDiscoItems, "query"))
	if !strings.Contains(items[0].String(), roomJID) || !strings.Contains(items[0].String(), "Our room") {
		t.Errorf("service disco#items: %v", items)
	}
	// Everyone leaves; a new module on the same store (a restart) still
	// knows the room, its members and its history.
	f.send(alice, roomJID+"/Alice", xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
	g := startOn(t, h.Restart()) // the server again, on the same store
	out := g.join(bob, "Bob")
	if presenceFrom(out, "Bob", bob) == nil {
		t.Fatalf("member cannot enter the stored room: %v", out)
	}
	var hist bool
	for _, el := range out {
		if b := el.Child(stanza.NSClient, "body"); b != nil && b.Text() == "kept" && el.Child(NSSID, "stanza-id") != nil {
			hist = true
		}
	}
	if !hist {
		t.Errorf("stored history not replayed with its stanza-id: %v", out)
	}
	rooms, err := h.Storage().MUC().Rooms(context.Background(), service)
	if err != nil || len(rooms) != 1 {
		t.Errorf("stored rooms = %v, %v", rooms, err)
	}
	// Destroy removes it from storage and tells occupants.
	g.send(alice, roomJID+"/Alice", presence(mucX()))
	d := xmlstream.New(NSOwner, "query")
	sub(d, xmlstream.New(NSOwner, "destroy"))
	out = g.iq(alice, roomJID, "set", d)
	gone := presenceFrom(out, "Bob", bob)
	if gone == nil || gone.Attr("type") != "unavailable" || gone.Child(NSUser, "x").Child(NSUser, "destroy") == nil {
		t.Errorf("destroy: %v", out)
	}
	if _, err := h.Storage().MUC().Room(context.Background(), roomJID); err == nil {
		t.Error("destroyed room still stored")
	}
}

// TestSubjectToLaterJoiners: a subject set by an occupant allowed to
// (here a participant made moderator) reaches everyone, and a later
// joiner is told it, from the nick that set it and with a delay saying
// when (XEP-0045 §7.2.15, §8.1); a subject beside a thread is part of a
// message, not a change of the room's subject.
func TestSubjectToLaterJoiners(t *testing.T) {
	f := newFixture(t)
	set := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	f.m.now = func() time.Time { return set }
	f.createRoom(map[string]string{"persistentroom": "1"})
	f.join(bob, "Bob")
	f.setRole(alice, "Bob", "moderator")
	out := f.send(bob, roomJID, subjectMsg("bob's topic"))
	if len(out) != 2 || len(to(out, alice)) != 1 || to(out, alice)[0].Attr("from") != roomJID+"/Bob" {
		t.Fatalf("subject change broadcast: %v", out)
	}
	withThread := subjectMsg("a thread's topic")
	sub(withThread, xmlstream.New(stanza.NSClient, "thread")).AddText("t1")
	f.send(alice, roomJID, withThread)
	out = f.join(carol, "Carol")
	last := out[len(out)-1]
	if last.Child(stanza.NSClient, "subject").Text() != "bob's topic" || last.Attr("from") != roomJID+"/Bob" {
		t.Fatalf("subject on join = %v", last)
	}
	d := last.Child(stanza.NSDelay, "delay")
	if d == nil || d.Attr("stamp") != xmpptime.Format(set) || d.Attr("from") != roomJID {
		t.Errorf("subject on join carries no delay from the room at %s: %v", xmpptime.Format(set), last)
	}
	// A room without a subject still ends the join with an empty one,
	// with nothing to date.
	g := newFixture(t)
	g.createRoom(nil)
	out = g.join(bob, "Bob")
	last = out[len(out)-1]
	if s := last.Child(stanza.NSClient, "subject"); s == nil || s.Text() != "" || last.Child(stanza.NSDelay, "delay") != nil || last.Attr("from") != roomJID {
		t.Errorf("empty subject on join = %v", last)
	}
}

func errorMessage(cond string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "type", "error")
	sub(m, xmlstream.New(stanza.NSClient, "body")).AddText("hi")
	e := sub(m, xmlstream.New(stanza.NSClient, "error", "type", "cancel"))
	if cond != "" {
		sub(e, xmlstream.New(stanza.NSStanzas, cond))
	}
	return m
}

// TestKickDueToError: a session that answers room traffic with an error
// meaning it is gone leaves the room with status 333; an error that only
// refuses one stanza, or one from a stranger, changes nothing.
func TestKickDueToError(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	f.join(bob, "Bob")
	f.join(carol, "Carol")
	if out := f.send(carol, roomJID+"/Alice", errorMessage("policy-violation")); len(out) != 0 {
		t.Errorf("a refusal removed carol: %v", out)
	}
	if out := f.send("mallory@example.org/x", roomJID+"/Alice", errorMessage("service-unavailable")); len(out) != 0 {
		t.Errorf("an error from a non-occupant did something: %v", out)
	}
	out := f.send(bob, roomJID+"/Alice", errorMessage("recipient-unavailable"))
	for _, who := range []string{alice, carol, bob} {
		p := presenceFrom(out, "Bob", who)
		if p == nil || p.Attr("type") != "unavailable" || !slices.Contains(codes(p), "333") {
			t.Errorf("%s was not told bob was removed with 333: %v", who, p)
		}
	}
	if p := presenceFrom(out, "Bob", bob); p != nil && !slices.Contains(codes(p), "110") {
		t.Errorf("bob's own removal lacks 110: %v", p)
	}
	if out := f.send(alice, roomJID, groupchat("after")); len(to(out, bob)) != 0 {
		t.Errorf("bob still gets room messages: %v", out)
	}
	// An error without a readable condition counts as gone too.
	out = f.send(carol, roomJID, errorMessage(""))
	if p := presenceFrom(out, "Carol", alice); p == nil || !slices.Contains(codes(p), "333") {
		t.Errorf("carol after an unreadable error: %v", out)
	}
}

// TestPresenceErrorKick: a presence error meaning the session is gone
// removes it with 333 too; another presence error still takes it out,
// without the code.
func TestPresenceErrorKick(t *testing.T) {
	f := newFixture(t)
	f.createRoom(nil)
	f.join(bob, "Bob")
	f.join(carol, "Carol")
	perr := func(cond string) *xmlstream.Element {
		p := xmlstream.New(stanza.NSClient, "presence", "type", "error")
		sub(sub(p, xmlstream.New(stanza.NSClient, "error", "type", "cancel")), xmlstream.New(stanza.NSStanzas, cond))
		return p
	}
	out := f.send(bob, roomJID+"/Alice", perr("remote-server-not-found"))
	if p := presenceFrom(out, "Bob", alice); p == nil || p.Attr("type") != "unavailable" || !slices.Contains(codes(p), "333") {
		t.Errorf("gone presence error: %v", out)
	}
	out = f.send(carol, roomJID+"/Alice", perr("not-acceptable"))
	if p := presenceFrom(out, "Carol", alice); p == nil || p.Attr("type") != "unavailable" || slices.Contains(codes(p), "333") {
		t.Errorf("other presence error: %v", out)
	}
}
