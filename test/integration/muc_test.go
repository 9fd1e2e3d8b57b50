package integration

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

func mucPresence(from string, codes ...string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		if el.Name.Local != "presence" || el.Attr("from") != from {
			return false
		}
		x := el.Child("http://jabber.org/protocol/muc#user", "x")
		if x == nil {
			return false
		}
		for _, c := range codes {
			if !strings.Contains(x.String(), `code="`+c+`"`) {
				return false
			}
		}
		return true
	}
}

// TestMUC: a members-only, non-anonymous room as activists use it with
// OMEMO, driven by slixmpp clients (XEP-0045, XEP-0421, XEP-0410).
func TestMUC(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob", "mallory"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/r", "pw")
			bob := s.connect(t, "bob@localhost/r", "pw")
			mallory := s.connect(t, "mallory@localhost/r", "pw")
			room := "meetup@conference.localhost"

			// The service is listed by the server and answers disco.
			items := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
			if !strings.Contains(items.String(), "conference.localhost") {
				t.Fatalf("server disco#items: %s", items)
			}
			// Create, then configure: persistent, members-only, non-anonymous.
			alice.send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			alice.expect("the new room's self-presence", mucPresence(room+"/Alice", "110", "201"))
			r := alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
				"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
				"<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
				"<field var='muc#roomconfig_membersonly'><value>1</value></field>"+
				"<field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>", room)
			if r.Attr("type") != "result" {
				t.Fatalf("room configuration: %s", r)
			}
			// Not a member: refused.
			bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			e := bob.expect("the refusal", func(el *xmlstream.Element) bool {
				return el.Name.Local == "presence" && el.Attr("type") == "error"
			})
			if errorCondition(e) != "registration-required" {
				t.Errorf("non-member join: %s", e)
			}
			// Made a member, bob gets in and sees alice's real JID.
			r = alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='bob@localhost' affiliation='member'/></query></iq>", room)
			if r.Attr("type") != "result" {
				t.Fatalf("granting membership: %s", r)
			}
			bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			p := bob.expect("alice's presence in the room", mucPresence(room+"/Alice"))
			if !strings.Contains(p.String(), `jid="alice@localhost/r"`) || p.Child("urn:xmpp:occupant-id:0", "occupant-id") == nil {
				t.Errorf("non-anonymous room presence: %s", p)
			}
			bob.expect("own presence in the room", mucPresence(room+"/Bob", "110"))
			// Members can read the member list (to fetch OMEMO keys).
			r = bob.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>", room)
			if r.Attr("type") != "result" || !strings.Contains(r.String(), "bob@localhost") {
				t.Errorf("member list for a member: %s", r)
			}
			// Group chat reaches everyone, with an occupant id.
			alice.send("<message to='%s' type='groupchat'><body>welcome</body></message>", room)
			m := bob.expect("the room message", isMessage(room+"/Alice", "welcome"))
			if m.Child("urn:xmpp:occupant-id:0", "occupant-id") == nil {
				t.Errorf("room message without occupant-id: %s", m)
			}
			alice.expect("her own message back", isMessage(room+"/Alice", "welcome"))
			// A private message between occupants.
			bob.send("<message to='%s/Alice' type='chat'><body>psst</body></message>", room)
			alice.expect("the private message", isMessage(room+"/Bob", "psst"))
			// Self-ping (XEP-0410).
			if r := bob.iq("<iq type='get' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>", room); r.Attr("type") != "result" {
				t.Errorf("self-ping: %s", r)
			}
			// An outsider cannot post.
			mallory.send("<message to='%s' type='groupchat' id='mx'><body>spam</body></message>", room)
			if e := mallory.expect("the refusal", func(el *xmlstream.Element) bool { return el.Attr("id") == "mx" }); errorCondition(e) == "" {
				t.Errorf("outsider's groupchat: %s", e)
			}
			bob.expectNone("the outsider's message", 200*time.Millisecond, isMessage(room, "spam"))
			// Kick: bob is removed with status 307.
			r = alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Bob' role='none'><reason>bye</reason></item></query></iq>", room)
			if r.Attr("type") != "result" {
				t.Fatalf("kick: %s", r)
			}
			bob.expect("his kick", mucPresence(room+"/Bob", "307", "110"))
			// History on join: bob rejoins and gets the earlier message.
			bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/></x></presence>", room)
			h := bob.expect("the history", isMessage(room+"/Alice", "welcome"))
			if h.Child("urn:xmpp:delay", "delay") == nil {
				t.Errorf("history without delay: %s", h)
			}
		})
	}
}

const (
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsMAM      = "urn:xmpp:mam:2"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsModerate = "urn:xmpp:message-moderate:1"
	nsRetract  = "urn:xmpp:message-retract:1"
)

// mucItem matches a presence from room/nick whose muc#user item has the
// affiliation and role given ("" for any), with every status code given.
func mucItem(from, aff, role string, codes ...string) func(*xmlstream.Element) bool {
	base := mucPresence(from, codes...)
	return func(el *xmlstream.Element) bool {
		if !base(el) {
			return false
		}
		it := el.Child(nsMUCUser, "x").Child(nsMUCUser, "item")
		return it != nil && (aff == "" || it.Attr("affiliation") == aff) && (role == "" || it.Attr("role") == role)
	}
}

// mucEnter joins room as nick and waits for the self-presence.
func mucEnter(t *testing.T, a *agent, room, nick string) *xmlstream.Element {
	t.Helper()
	a.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>", room, nick)
	return a.expect(nick+"'s self-presence", mucPresence(room+"/"+nick, "110"))
}

// mucCreate makes room with owner as its creator and submits the given
// muc#roomconfig fields (name without the prefix -> value).
func mucCreate(t *testing.T, owner *agent, room, nick string, fields ...string) {
	t.Helper()
	owner.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, nick)
	owner.expect("the new room's self-presence", mucPresence(room+"/"+nick, "110", "201"))
	mucConfigure(t, owner, room, fields...)
}

func mucConfigure(t *testing.T, owner *agent, room string, fields ...string) {
	t.Helper()
	var form strings.Builder
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&form, "<field var='muc#roomconfig_%s'><value>%s</value></field>", fields[i], fields[i+1])
	}
	r := owner.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>%s</x></query></iq>", room, form.String())
	if r.Attr("type") != "result" {
		t.Fatalf("room configuration: %s", r)
	}
}

func mucAdmin(t *testing.T, a *agent, room, item string) *xmlstream.Element {
	t.Helper()
	return a.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'>%s</query></iq>", room, item)
}

// TestMUCAffiliationsAndRoles walks one occupant through every
// affiliation and another through every role change, checking what each
// occupant sees (XEP-0045 §8, §9, §10).
func TestMUCAffiliationsAndRoles(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob", "carol"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/r", "pw")
			bob := s.connect(t, "bob@localhost/r", "pw")
			carol := s.connect(t, "carol@localhost/r", "pw")
			room := "ranks@conference.localhost"
			mucCreate(t, alice, room, "Alice", "persistentroom", "1")
			mucEnter(t, bob, room, "Bob")
			mucEnter(t, carol, room, "Carol")

			// Affiliations: each change reaches bob (with 110) and carol.
			for _, step := range []struct{ aff, role string }{
				{"member", "participant"}, {"admin", "moderator"}, {"owner", "moderator"}, {"none", "participant"},
			} {
				if r := mucAdmin(t, alice, room, "<item jid='bob@localhost' affiliation='"+step.aff+"'/>"); r.Attr("type") != "result" {
					t.Fatalf("affiliation %s: %s", step.aff, r)
				}
				bob.expect("his own "+step.aff+" presence", mucItem(room+"/Bob", step.aff, step.role, "110"))
				carol.expect("bob as "+step.aff, mucItem(room+"/Bob", step.aff, step.role))
			}
			// The member list follows.
			mucAdmin(t, alice, room, "<item jid='bob@localhost' affiliation='member'/>")
			bob.expect("member again", mucItem(room+"/Bob", "member", "participant", "110"))
			r := alice.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>", room)
			if !strings.Contains(r.String(), "bob@localhost") {
				t.Errorf("member list: %s", r)
			}
			// A participant cannot change affiliations.
			if r := mucAdmin(t, carol, room, "<item jid='bob@localhost' affiliation='none'/>"); errorCondition(r) != "forbidden" {
				t.Errorf("participant changing an affiliation: %s", r)
			}

			// Roles: moderator granted and revoked by the owner.
			mucAdmin(t, alice, room, "<item nick='Carol' role='moderator'/>")
			carol.expect("her moderator role", mucItem(room+"/Carol", "none", "moderator", "110"))
			bob.expect("carol as moderator", mucItem(room+"/Carol", "none", "moderator"))
			mucAdmin(t, alice, room, "<item nick='Carol' role='participant'/>")
			carol.expect("back to participant", mucItem(room+"/Carol", "none", "participant", "110"))
			// Voice in a moderated room.
			mucConfigure(t, alice, room, "moderatedroom", "1")
			mucAdmin(t, alice, room, "<item nick='Carol' role='visitor'/>")
			carol.expect("her voice revoked", mucItem(room+"/Carol", "none", "visitor", "110"))
			carol.send("<message to='%s' type='groupchat' id='mute'><body>can I?</body></message>", room)
			if e := carol.expect("the refusal", func(el *xmlstream.Element) bool { return el.Attr("id") == "mute" && el.Attr("type") == "error" }); errorCondition(e) != "forbidden" {
				t.Errorf("visitor speaking: %s", e)
			}
			mucAdmin(t, alice, room, "<item nick='Carol' role='participant'/>")
			carol.expect("her voice back", mucItem(room+"/Carol", "none", "participant", "110"))
			bob.expect("carol with voice", mucItem(room+"/Carol", "none", "participant"))
			// Kick: 307 for everyone, 110 for carol, with the actor.
			mucAdmin(t, alice, room, "<item nick='Carol' role='none'><reason>out</reason></item>")
			k := carol.expect("her kick", mucPresence(room+"/Carol", "307", "110"))
			if k.Attr("type") != "unavailable" || !strings.Contains(k.String(), `nick="Alice"`) {
				t.Errorf("kick presence: %s", k)
			}
			bob.expect("carol kicked", mucPresence(room+"/Carol", "307"))
			// Ban: 301, and the outcast cannot come back until unbanned.
			mucAdmin(t, alice, room, "<item jid='bob@localhost' affiliation='outcast'><reason>spam</reason></item>")
			bob.expect("his ban", mucItem(room+"/Bob", "outcast", "none", "301", "110"))
			alice.expect("bob banned", mucItem(room+"/Bob", "outcast", "none", "301"))
			bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			if e := bob.expect("the refusal", isPresence(room+"/Bob", "error")); errorCondition(e) != "forbidden" {
				t.Errorf("banned join: %s", e)
			}
			mucAdmin(t, alice, room, "<item jid='bob@localhost' affiliation='none'/>")
			mucEnter(t, bob, room, "Bob")
		})
	}
}

// TestMUCMembersOnlyAndNickChange: admission to a members-only room,
// losing membership (321), and a nickname change (303).
func TestMUCMembersOnlyAndNickChange(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/r", "pw")
			bob := s.connect(t, "bob@localhost/r", "pw")
			room := "club@conference.localhost"
			mucCreate(t, alice, room, "Alice", "membersonly", "1")
			bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			if e := bob.expect("the refusal", isPresence(room+"/Bob", "error")); errorCondition(e) != "registration-required" {
				t.Errorf("non-member join: %s", e)
			}
			mucAdmin(t, alice, room, "<item jid='bob@localhost' affiliation='member'/>")
			p := mucEnter(t, bob, room, "Bob")
			if it := p.Child(nsMUCUser, "x").Child(nsMUCUser, "item"); it.Attr("affiliation") != "member" {
				t.Errorf("member's self-presence: %s", p)
			}
			// Nick change: unavailable with 303 and the new nick, then the
			// new nick.
			bob.send("<presence to='%s/Robert'/>", room)
			old := alice.expect("the old nick leaving", mucPresence(room+"/Bob", "303"))
			if old.Attr("type") != "unavailable" || !strings.Contains(old.String(), `nick="Robert"`) {
				t.Errorf("303 presence: %s", old)
			}
			bob.expect("his own 303", mucPresence(room+"/Bob", "303", "110"))
			bob.expect("his new nick", mucPresence(room+"/Robert", "110"))
			alice.expect("the new nick", mucPresence(room+"/Robert"))
			// A taken nick is refused.
			bob.send("<presence to='%s/Alice'/>", room)
			if e := bob.expect("the conflict", isPresence(room+"/Alice", "error")); errorCondition(e) != "conflict" {
				t.Errorf("taking a used nick: %s", e)
			}
			// Losing membership removes him (321).
			mucAdmin(t, alice, room, "<item jid='bob@localhost' affiliation='none'/>")
			bob.expect("his removal", mucPresence(room+"/Robert", "321", "110"))
		})
	}
}

// mamResults collects the archive results of one query until its fin.
func mamResults(t *testing.T, a *agent, room, queryID, form, set string) (bodies []string, ids []string, fin *xmlstream.Element) {
	t.Helper()
	r := a.iq("<iq type='set' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s%s</query></iq>", room, queryID, form, set)
	if r.Attr("type") != "result" {
		t.Fatalf("archive query %s: %s", queryID, r)
	}
	fin = r.Child(nsMAM, "fin")
	if fin == nil {
		t.Fatalf("archive answer without fin: %s", r)
	}
	// The results came before the answer: every one is queued already.
	a.mu.Lock()
	defer a.mu.Unlock()
	var rest []*xmlstream.Element
	for _, el := range a.stanzas {
		res := el.Child(nsMAM, "result")
		if el.Name.Local != "message" || res == nil || res.Attr("queryid") != queryID {
			rest = append(rest, el)
			continue
		}
		m := res.Child("urn:xmpp:forward:0", "forwarded").Child("jabber:client", "message")
		ids = append(ids, res.Attr("id"))
		switch {
		case m.Child(nsRetract, "retracted") != nil:
			bodies = append(bodies, "(retracted)")
		case m.Child("jabber:client", "body") != nil:
			bodies = append(bodies, m.Child("jabber:client", "body").Text())
		}
	}
	a.stanzas = rest
	return bodies, ids, fin
}

func rsmValue(fin *xmlstream.Element, name string) string {
	if c := fin.Child(nsRSM, "set").Child(nsRSM, name); c != nil {
		return c.Text()
	}
	return ""
}

// TestMUCArchiveAndModeration: a persistent room archives what is said
// with stanza ids, pages through it with RSM, and a moderator retracts
// a message (XEP-0313 on the room, XEP-0359, XEP-0425).
func TestMUCArchiveAndModeration(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob", "mallory"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/r", "pw")
			bob := s.connect(t, "bob@localhost/r", "pw")
			mallory := s.connect(t, "mallory@localhost/r", "pw")
			room := "log@conference.localhost"
			mucCreate(t, alice, room, "Alice", "persistentroom", "1")
			info := bob.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room)
			for _, f := range []string{nsMAM, nsMAM + "#extended", nsModerate, "urn:xmpp:sid:0"} {
				if !strings.Contains(info.String(), `"`+f+`"`) {
					t.Errorf("room disco#info lacks %s: %s", f, info)
				}
			}
			mucEnter(t, bob, room, "Bob")
			// An outsider cannot read the archive.
			if r := mallory.iq("<iq type='set' to='%s'><query xmlns='urn:xmpp:mam:2'/></iq>", room); errorCondition(r) != "forbidden" {
				t.Errorf("outsider's archive query: %s", r)
			}
			var sent []string
			for i := range 5 {
				body := fmt.Sprintf("line %d", i)
				bob.send("<message to='%s' type='groupchat'><body>%s</body></message>", room, body)
				m := alice.expect(body, isMessage(room+"/Bob", body))
				sid := m.Child("urn:xmpp:sid:0", "stanza-id")
				if sid == nil || sid.Attr("by") != room {
					t.Fatalf("broadcast without the room's stanza-id: %s", m)
				}
				sent = append(sent, sid.Attr("id"))
				bob.expect("own "+body, isMessage(room+"/Bob", body))
			}
			// Paging forwards two at a time.
			var got []string
			after := ""
			for page := 0; page < 4; page++ {
				set := "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max>"
				if after != "" {
					set += "<after>" + after + "</after>"
				}
				set += "</set>"
				bodies, ids, fin := mamResults(t, bob, room, fmt.Sprintf("p%d", page), "", set)
				got = append(got, bodies...)
				if rsmValue(fin, "count") != "5" {
					t.Errorf("page %d count: %s", page, fin)
				}
				if fin.Attr("complete") == "true" {
					break
				}
				if len(ids) == 0 || rsmValue(fin, "last") != ids[len(ids)-1] {
					t.Fatalf("page %d: ids %v, fin %s", page, ids, fin)
				}
				after = rsmValue(fin, "last")
			}
			want := []string{"line 0", "line 1", "line 2", "line 3", "line 4"}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("paged archive = %v, want %v", got, want)
			}
			// The last page, and a filter on ids.
			if bodies, _, _ := mamResults(t, bob, room, "last", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>"); strings.Join(bodies, "|") != "line 3|line 4" {
				t.Errorf("last page = %v", bodies)
			}
			form := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>" +
				"<field var='ids'><value>" + sent[1] + "</value><value>" + sent[3] + "</value></field></x>"
			if bodies, _, _ := mamResults(t, bob, room, "ids", form, ""); strings.Join(bodies, "|") != "line 1|line 3" {
				t.Errorf("ids filter = %v", bodies)
			}
			form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>" +
				"<field var='after-id'><value>" + sent[2] + "</value></field></x>"
			if bodies, _, fin := mamResults(t, bob, room, "afterid", form, ""); strings.Join(bodies, "|") != "line 3|line 4" || rsmValue(fin, "count") != "2" {
				t.Errorf("after-id filter = %v", bodies)
			}
			if r := bob.iq("<iq type='set' to='%s'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query></iq>", room); errorCondition(r) != "item-not-found" {
				t.Errorf("unknown RSM id: %s", r)
			}

			// Moderation: bob may not, alice may.
			if r := bob.iq("<iq type='set' to='%s'><moderate xmlns='urn:xmpp:message-moderate:1' id='%s'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>", room, sent[2]); errorCondition(r) != "forbidden" {
				t.Errorf("participant moderating: %s", r)
			}
			if r := alice.iq("<iq type='set' to='%s'><moderate xmlns='urn:xmpp:message-moderate:1' id='unknown'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>", room); errorCondition(r) != "item-not-found" {
				t.Errorf("moderating an unknown id: %s", r)
			}
			r := alice.iq("<iq type='set' to='%s'><moderate xmlns='urn:xmpp:message-moderate:1' id='%s'><retract xmlns='urn:xmpp:message-retract:1'/><reason>off topic</reason></moderate></iq>", room, sent[2])
			if r.Attr("type") != "result" {
				t.Fatalf("moderation: %s", r)
			}
			ann := bob.expect("the retraction", func(el *xmlstream.Element) bool {
				rt := el.Child(nsRetract, "retract")
				return el.Name.Local == "message" && el.Attr("from") == room && rt != nil && rt.Attr("id") == sent[2]
			})
			if m := ann.Child(nsRetract, "retract").Child(nsModerate, "moderated"); m == nil || m.Attr("by") != room+"/Alice" {
				t.Errorf("retraction announcement: %s", ann)
			}
			if bodies, _, _ := mamResults(t, bob, room, "after", "", ""); strings.Join(bodies, "|") != "line 0|line 1|(retracted)|line 3|line 4" {
				t.Errorf("archive after moderation = %v", bodies)
			}
		})
	}
}

// TestMUCRoomAvatar: an owner sets the room's vCard with a photo; anyone
// reads it, disco#info carries its hash (XEP-0486).
func TestMUCRoomAvatar(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/r", "pw")
			bob := s.connect(t, "bob@localhost/r", "pw")
			room := "pics@conference.localhost"
			mucCreate(t, alice, room, "Alice", "persistentroom", "1")
			mucEnter(t, bob, room, "Bob")
			img := []byte("\x89PNG\r\n\x1a\n a tiny test image")
			sum := sha1.Sum(img)
			hash := hex.EncodeToString(sum[:])
			vcard := "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + base64.StdEncoding.EncodeToString(img) + "</BINVAL></PHOTO></vCard>"
			if r := bob.iq("<iq type='set' to='%s'>%s</iq>", room, vcard); errorCondition(r) != "forbidden" {
				t.Errorf("participant setting the avatar: %s", r)
			}
			if r := alice.iq("<iq type='set' to='%s'>%s</iq>", room, vcard); r.Attr("type") != "result" {
				t.Fatalf("owner setting the avatar: %s", r)
			}
			bob.expect("the configuration change", func(el *xmlstream.Element) bool {
				return el.Name.Local == "message" && el.Attr("from") == room && strings.Contains(el.String(), `code="104"`)
			})
			bob.expect("the avatar presence", func(el *xmlstream.Element) bool {
				x := el.Child("vcard-temp:x:update", "x")
				return el.Name.Local == "presence" && el.Attr("from") == room && x != nil && strings.Contains(x.String(), hash)
			})
			info := bob.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room)
			if !strings.Contains(info.String(), "muc#roominfo_avatarhash") || !strings.Contains(info.String(), hash) {
				t.Errorf("disco#info without the avatar hash %s: %s", hash, info)
			}
			got := bob.iq("<iq type='get' to='%s'><vCard xmlns='vcard-temp'/></iq>", room)
			if got.Attr("type") != "result" || !strings.Contains(got.String(), base64.StdEncoding.EncodeToString(img)) {
				t.Errorf("vCard get: %s", got)
			}
			// A newcomer learns it on entering.
			bob.send("<presence to='%s/Bob' type='unavailable'/>", room)
			bob.expect("leaving", mucPresence(room+"/Bob", "110"))
			bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			bob.expect("the avatar presence on joining", func(el *xmlstream.Element) bool {
				return el.Name.Local == "presence" && el.Attr("from") == room && el.Child("vcard-temp:x:update", "x") != nil
			})
		})
	}
}

// TestMUCVoiceRequest: a visitor asks for voice, the moderator approves
// with the muc#request form, and the room makes the visitor a
// participant (XEP-0045 §7.13, §8.6).
func TestMUCVoiceRequest(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/r", "pw")
			bob := s.connect(t, "bob@localhost/r", "pw")
			room := "stage@conference.localhost"
			mucCreate(t, alice, room, "Alice", "moderatedroom", "1")
			p := mucEnter(t, bob, room, "Bob")
			if !mucItem(room+"/Bob", "none", "visitor")(p) {
				t.Fatalf("bob's role in a moderated room: %s", p)
			}
			bob.send("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"+
				"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"+
				"<field var='muc#role' type='list-single'><value>participant</value></field></x></message>", room)
			req := alice.expect("the voice request", func(el *xmlstream.Element) bool {
				return el.Name.Local == "message" && el.Attr("from") == room && strings.Contains(el.String(), "muc#request_allow")
			})
			if !strings.Contains(req.String(), ">Bob<") {
				t.Errorf("voice request without the nick: %s", req)
			}
			alice.send("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"+
				"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"+
				"<field var='muc#role'><value>participant</value></field>"+
				"<field var='muc#roomnick'><value>Bob</value></field>"+
				"<field var='muc#request_allow'><value>true</value></field></x></message>", room)
			bob.expect("his voice", mucItem(room+"/Bob", "none", "participant", "110"))
			alice.expect("bob with voice", mucItem(room+"/Bob", "none", "participant"))
			bob.send("<message to='%s' type='groupchat'><body>thank you</body></message>", room)
			alice.expect("bob speaking", isMessage(room+"/Bob", "thank you"))
		})
	}
}
