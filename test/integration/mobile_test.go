package integration

import (
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// TestStreamManagementResume cuts a client's TCP connection without a
// word, sends it a message while its session waits, and checks that the
// message arrives once the client resumes (XEP-0198).
func TestStreamManagementResume(t *testing.T) {
	needSlixmpp(t)
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "starttls", true: "direct tls"}[direct]
		t.Run(name, func(t *testing.T) {
			s := startServer(t, serverOpts{})
			s.addUser("alice@localhost", "pw")
			s.addUser("bob@localhost", "pw")
			extra := []string{"--sm"}
			if direct {
				extra = append(extra, "--direct-tls")
			}
			alice := s.connectAt(t, "alice@localhost/phone", "pw", direct, extra...)
			alice.waitEvent("sm_enabled")
			alice.send("<presence/>")
			alice.expect("own presence", isPresence("alice@localhost/phone", ""))
			bob := s.connect(t, "bob@localhost/desk", "pw")

			alice.op("abort")
			alice.waitEvent("disconnected")
			bob.send("<message to='alice@localhost/phone' type='chat'><body>while you were away</body></message>")
			time.Sleep(200 * time.Millisecond)
			alice.op("reconnect")
			alice.waitEvent("session_resumed")
			alice.expect("the message sent while detached", isMessage("bob@localhost/desk", "while you were away"))
			// The resumed session works both ways.
			alice.send("<message to='bob@localhost/desk' type='chat'><body>back</body></message>")
			bob.expect("alice's message after the resumption", isMessage("alice@localhost/phone", "back"))
			alice.op("quit")
		})
	}
}

// TestUnackedMessagesAreNotLost lets a resumable session time out: the
// message it never acknowledged goes to offline storage and reaches the
// user's next session.
func TestUnackedMessagesAreNotLost(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{extra: "[limits]\nresume_timeout = \"1s\"\n"})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	alice := s.connect(t, "alice@localhost/phone", "pw", "--sm")
	alice.waitEvent("sm_enabled")
	alice.send("<presence/>")
	alice.expect("own presence", isPresence("alice@localhost/phone", ""))
	bob := s.connect(t, "bob@localhost/desk", "pw")
	alice.op("abort")
	alice.waitEvent("disconnected")
	bob.send("<message to='alice@localhost' type='chat'><body>do not lose me</body></message>")
	time.Sleep(2500 * time.Millisecond) // past the resumption timeout
	alice.op("quit")
	later := s.connect(t, "alice@localhost/laptop", "pw")
	later.send("<presence/>")
	m := later.expect("the message the lost session never acknowledged", isMessage("bob@localhost/desk", "do not lose me"))
	if m.Child("urn:xmpp:delay", "delay") == nil {
		t.Errorf("no delay stamp on the re-delivered message: %s", m)
	}
}

// TestClientStateIndication: an inactive client gets presence updates and
// chat states only when something important arrives, and only the latest.
func TestClientStateIndication(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	alice := s.connect(t, "alice@localhost/phone", "pw")
	alice.send("<presence/>")
	alice.expect("own presence", isPresence("alice@localhost/phone", ""))
	bob := s.connect(t, "bob@localhost/desk", "pw")
	alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
	time.Sleep(100 * time.Millisecond)
	for _, show := range []string{"away", "xa", "dnd"} {
		bob.send("<presence to='alice@localhost/phone'><show>%s</show></presence>", show)
	}
	bob.send("<message to='alice@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.expectNone("presence while inactive", 400*time.Millisecond, isPresence("bob@localhost/desk", ""))
	bob.send("<message to='alice@localhost/phone' type='chat'><body>wake up</body></message>")
	p := alice.expect("bob's latest presence", isPresence("bob@localhost/desk", ""))
	if sh := p.Child("jabber:client", "show"); sh == nil || sh.Text() != "dnd" {
		t.Errorf("first held presence is not the latest: %s", p)
	}
	alice.expect("the message", isMessage("bob@localhost/desk", "wake up"))
	alice.expectNone("superseded presence", 300*time.Millisecond, isPresence("bob@localhost/desk", ""))
}

// TestPushNotification: a phone whose session sleeps (detached) is woken
// through its app server, which learns neither sender nor body.
func TestPushNotification(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "bob", "appserver"} {
		s.addUser(u+"@localhost", "pw")
	}
	app := s.connect(t, "appserver@localhost/push", "pw")
	alice := s.connect(t, "alice@localhost/phone", "pw", "--sm")
	alice.waitEvent("sm_enabled")
	r := alice.iq("<iq type='set'><enable xmlns='urn:xmpp:push:0' jid='appserver@localhost/push' node='n0d3'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t</value></field></x></enable></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("push enable: %s", r)
	}
	alice.send("<presence/>")
	alice.expect("own presence", isPresence("alice@localhost/phone", ""))
	bob := s.connect(t, "bob@localhost/desk", "pw")

	// Awake: no push.
	bob.send("<message to='alice@localhost' type='chat'><body>hello awake</body></message>")
	alice.expect("the message", isMessage("bob@localhost/desk", "hello awake"))
	isPush := func(el *xmlstream.Element) bool {
		return el.Name.Local == "iq" && el.Attr("type") == "set" && strings.Contains(el.String(), "urn:xmpp:push:0")
	}
	app.expectNone("a push for an awake client", 300*time.Millisecond, isPush)

	// Asleep: the app server is told, without sender or body.
	alice.op("abort")
	alice.waitEvent("disconnected")
	time.Sleep(200 * time.Millisecond)
	bob.send("<message to='alice@localhost' type='chat'><body>secret words</body></message>")
	n := app.expect("the push notification", isPush)
	got := n.String()
	if !strings.Contains(got, `node="n0d3"`) || !strings.Contains(got, "s3cr3t") || !strings.Contains(got, "message-count") {
		t.Errorf("notification: %s", got)
	}
	if strings.Contains(got, "secret words") || strings.Contains(got, "bob@") {
		t.Errorf("the notification leaks the message or its sender: %s", got)
	}
	alice.op("quit")
}

// TestCarbons: a second device sees both sides of a conversation held on
// the first (XEP-0280), and the private hint keeps a message out.
func TestCarbons(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	phone := s.connect(t, "alice@localhost/phone", "pw")
	laptop := s.connect(t, "alice@localhost/laptop", "pw")
	for _, a := range []*agent{phone, laptop} {
		if r := a.iq("<iq type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Attr("type") != "result" {
			t.Fatalf("enable carbons: %s", r)
		}
		a.send("<presence/>")
		a.expect("own presence", isPresence(a.jid, ""))
	}
	bob := s.connect(t, "bob@localhost/desk", "pw")
	carbon := func(kind, body string) func(*xmlstream.Element) bool {
		return func(el *xmlstream.Element) bool {
			c := el.Child("urn:xmpp:carbons:2", kind)
			return el.Attr("from") == "alice@localhost" && c != nil && strings.Contains(c.String(), body)
		}
	}
	phone.send("<message to='bob@localhost/desk' type='chat'><body>sent from the phone</body></message>")
	bob.expect("the message", isMessage("alice@localhost/phone", "sent from the phone"))
	laptop.expect("a sent carbon", carbon("sent", "sent from the phone"))
	bob.send("<message to='alice@localhost/phone' type='chat'><body>reply to the phone</body></message>")
	phone.expect("the reply", isMessage("bob@localhost/desk", "reply to the phone"))
	laptop.expect("a received carbon", carbon("received", "reply to the phone"))
	phone.send("<message to='bob@localhost/desk' type='chat'><body>just here</body><private xmlns='urn:xmpp:carbons:2'/></message>")
	bob.expect("the private message", isMessage("alice@localhost/phone", "just here"))
	laptop.expectNone("a carbon of a private message", 300*time.Millisecond, carbon("sent", "just here"))
}
