package integration

import (
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
