package integration

import (
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// online connects jid and sends initial presence.
func online(t *testing.T, s *server, jid string) *agent {
	t.Helper()
	a := s.connect(t, jid, "pw")
	a.send("<presence/>")
	a.expect("its own presence back", isPresence(a.jid, ""))
	return a
}

func hasBody(body string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		b := el.Child("jabber:client", "body")
		return el.Name.Local == "message" && b != nil && b.Text() == body
	}
}

// TestBlockStrangers: a stranger's messages and repeated subscription
// requests are dropped; a contact's messages, the first request, an
// OMEMO device list fetch, a room's private message and the server's own
// notice get through; the per-user command turns it off.
func TestBlockStrangers(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{extra: "[privacy]\nblock_strangers = true\n"})
	for _, u := range []string{"alice", "bob", "carol"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := online(t, s, "alice@localhost")
	bob := online(t, s, "bob@localhost")
	carol := online(t, s, "carol@localhost")

	if r := alice.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>"); r.Attr("type") != "result" {
		t.Fatalf("roster add: %s", r)
	}
	// OMEMO publishes its device list open to anyone.
	if r := alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='eu.siacs.conversations.axolotl.devicelist'>" +
		"<item id='current'><list xmlns='eu.siacs.conversations.axolotl'><device id='4242'/></list></item></publish>" +
		"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub></iq>"); r.Attr("type") != "result" {
		t.Fatalf("device list publish: %s", r)
	}

	bob.send("<message type='chat' to='alice@localhost'><body>buy cheap pills</body></message>")
	carol.send("<message type='chat' to='alice@localhost'><body>hi from a contact</body></message>")
	alice.expect("the contact's message", hasBody("hi from a contact"))
	alice.expectNone("the stranger's message", time.Second, hasBody("buy cheap pills"))

	r := bob.iq("<iq type='get' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='eu.siacs.conversations.axolotl.devicelist'/></pubsub></iq>")
	if r.Attr("type") != "result" || !strings.Contains(r.String(), "4242") {
		t.Fatalf("a stranger's OMEMO device list fetch: %s", r)
	}

	bob.send("<presence type='subscribe' to='alice@localhost'/>")
	alice.expect("the stranger's first subscription request", isPresence("bob@localhost", "subscribe"))
	bob.send("<presence type='subscribe' to='alice@localhost'/>")
	alice.expectNone("a repeated subscription request", time.Second, isPresence("bob@localhost", "subscribe"))

	if out, err := s.parley("", "notify", "--message", "from the server", "alice@localhost"); err != nil {
		t.Fatalf("notify: %v\n%s", err, out)
	}
	alice.expect("the server's notice", hasBody("from the server"))

	// A private message from a room alice is in.
	room := "lobby@conference.localhost"
	alice.send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	alice.expect("the room's creation", mucPresence(room+"/Alice", "110", "201"))
	if r := alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", room); r.Attr("type") != "result" {
		t.Fatalf("instant room: %s", r)
	}
	bob.send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	bob.expect("bob's self-presence", mucPresence(room+"/Bob", "110"))
	bob.send("<message type='chat' to='%s/Alice'><body>psst, in the room</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>", room)
	alice.expect("the room's private message", hasBody("psst, in the room"))

	// Alice turns it off for herself.
	cmd := alice.iq("<iq type='set' to='localhost'><command xmlns='%s' node='urn:parley:privacy#block-strangers' action='execute'/></iq>", nsCommands)
	c := cmd.Child(nsCommands, "command")
	if c == nil || !strings.Contains(cmd.String(), "block_strangers") {
		t.Fatalf("the block-strangers command: %s", cmd)
	}
	done := alice.iq("<iq type='set' to='localhost'><command xmlns='%s' node='urn:parley:privacy#block-strangers' sessionid='%s' action='complete'>"+
		"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:parley:privacy</value></field><field var='block_strangers'><value>0</value></field></x></command></iq>",
		nsCommands, c.Attr("sessionid"))
	completed(t, "block-strangers off", done)
	bob.send("<message type='chat' to='alice@localhost'><body>hello again</body></message>")
	alice.expect("the stranger's message once allowed", hasBody("hello again"))
}

// TestRequireE2EE: enforce refuses plain one-to-one chat with the
// reason, lets encrypted ones, the server's and admins' through; warn
// delivers and reminds the sender once.
func TestRequireE2EE(t *testing.T) {
	needSlixmpp(t)
	t.Run("enforce", func(t *testing.T) {
		s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n", extra: "[privacy]\nrequire_e2ee = \"enforce\"\n"})
		for _, u := range []string{"alice", "bob", "admin"} {
			s.addUser(u+"@localhost", "pw")
		}
		alice := online(t, s, "alice@localhost")
		bob := online(t, s, "bob@localhost")
		ad := online(t, s, "admin@localhost")
		alice.send("<message type='chat' to='bob@localhost' id='plain1'><body>plain text</body></message>")
		e := alice.expect("the refusal", func(el *xmlstream.Element) bool {
			return el.Name.Local == "message" && el.Attr("type") == "error" && el.Attr("id") == "plain1"
		})
		if !strings.Contains(e.String(), "policy-violation") || !strings.Contains(e.String(), "end-to-end encryption") {
			t.Fatalf("the refusal lacks policy-violation and its reason: %s", e)
		}
		bob.expectNone("the plain message", time.Second, hasBody("plain text"))

		alice.send("<message type='chat' to='bob@localhost'><body>I sent you an OMEMO encrypted message</body>" +
			"<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><iv>AAAA</iv></header><payload>AAAA</payload></encrypted></message>")
		bob.expect("the encrypted message", hasBody("I sent you an OMEMO encrypted message"))
		ad.send("<message type='chat' to='bob@localhost'><body>admin notice</body></message>")
		bob.expect("the admin's notice", hasBody("admin notice"))
		if out, err := s.parley("", "notify", "--message", "server notice", "bob@localhost"); err != nil {
			t.Fatalf("notify: %v\n%s", err, out)
		}
		bob.expect("the server's notice", hasBody("server notice"))
	})
	t.Run("warn", func(t *testing.T) {
		s := startServer(t, serverOpts{extra: "[privacy]\nrequire_e2ee = \"warn\"\n"})
		s.addUser("alice@localhost", "pw")
		s.addUser("bob@localhost", "pw")
		alice := online(t, s, "alice@localhost")
		bob := online(t, s, "bob@localhost")
		isWarning := func(el *xmlstream.Element) bool {
			b := el.Child("jabber:client", "body")
			return el.Name.Local == "message" && el.Attr("from") == "localhost" && b != nil && strings.Contains(b.Text(), "not end-to-end encrypted")
		}
		alice.send("<message type='chat' to='bob@localhost'><body>first</body></message>")
		bob.expect("the plain message", hasBody("first"))
		alice.expect("the warning", isWarning)
		alice.send("<message type='chat' to='bob@localhost'><body>second</body></message>")
		bob.expect("the second plain message", hasBody("second"))
		alice.expectNone("a second warning the same day", time.Second, isWarning)
	})
}

// TestContactAddressesAndSpamReports: XEP-0157 addresses in the server's
// disco#info, and a XEP-0377 report inside a block request delivered to
// the admins.
func TestContactAddressesAndSpamReports(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n",
		extra: "[contact]\nabuse = [\"xmpp:abuse@localhost\", \"mailto:abuse@example.org\"]\nsupport = [\"https://example.org/help\"]\n"})
	s.addUser("admin@localhost", "pw")
	s.addUser("alice@localhost", "pw")
	ad := online(t, s, "admin@localhost")
	alice := online(t, s, "alice@localhost")

	info := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	x := info.Child("http://jabber.org/protocol/disco#info", "query").Child("jabber:x:data", "x")
	if x == nil || !strings.Contains(x.String(), "http://jabber.org/network/serverinfo") {
		t.Fatalf("no serverinfo form in disco#info: %s", info)
	}
	if v := formValues(info.Child("http://jabber.org/protocol/disco#info", "query"), "abuse-addresses"); strings.Join(v, " ") != "xmpp:abuse@localhost mailto:abuse@example.org" {
		t.Fatalf("abuse-addresses %v: %s", v, x)
	}
	if v := formValues(info.Child("http://jabber.org/protocol/disco#info", "query"), "support-addresses"); strings.Join(v, " ") != "https://example.org/help" {
		t.Fatalf("support-addresses %v: %s", v, x)
	}
	if !strings.Contains(info.String(), "urn:xmpp:reporting:1") {
		t.Fatalf("spam reporting not advertised: %s", info)
	}

	r := alice.iq("<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='spammer@example.net'>" +
		"<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'><text>sells pills</text></report></item></block></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("block with a report: %s", r)
	}
	m := ad.expect("the spam report", func(el *xmlstream.Element) bool {
		b := el.Child("jabber:client", "body")
		return el.Name.Local == "message" && el.Attr("from") == "localhost" && b != nil && strings.Contains(b.Text(), "spammer@example.net")
	})
	if b := m.Child("jabber:client", "body").Text(); !strings.Contains(b, "alice@localhost") || !strings.Contains(b, "sells pills") {
		t.Fatalf("the report lacks the reporter or the text: %s", m)
	}
}
