package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// TestTypedClientConfiguresRoomAndSetsSubject: slixmpp's typed MUC and
// data form handling configures a room (every list field offers options
// and holds one of them, maxusers is picked among the offered limits,
// booleans are booleans) and changes the subject, which the occupant
// present sees and a later joiner is told (XEP-0045 §8.1, §10.2).
func TestTypedClientConfiguresRoomAndSetsSubject(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"owner", "member", "late"} {
		s.addUser(u+"@localhost", "pw")
	}
	_, port := hostPort(s.starttls)
	_, here, _, _ := runtime.Caller(0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(filepath.Dir(here), "clients", "muc_typed.py"),
		"--owner", "owner@localhost/r", "--member", "member@localhost/r", "--late", "late@localhost/r",
		"--password", "pw", "--room", "typed@conference.localhost", "--port", port, "--cafile", s.cafile(),
		"--maxusers", "20", "--subject", "Typed topic")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("muc_typed.py: %v\n%s", err, stderr.String())
	}
	var r struct {
		FormRejected         string `json:"form_rejected"`
		Failure              string `json:"failure"`
		MaxUsersAfter        string `json:"maxusers_after"`
		PersistentAfter      bool   `json:"persistent_after"`
		MemberSawSubjectFrom string `json:"member_saw_subject_from"`
		LateSubject          string `json:"late_subject"`
		LateSubjectFrom      string `json:"late_subject_from"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("muc_typed.py printed %q: %v\n%s", out, err, stderr.String())
	}
	if r.FormRejected != "" {
		t.Fatalf("the typed client rejected the configuration form: %s", r.FormRejected)
	}
	if r.Failure != "" {
		t.Fatalf("typed client: %s\n%s", r.Failure, stderr.String())
	}
	if r.MaxUsersAfter != "20" || !r.PersistentAfter {
		t.Errorf("configuration after submit: maxusers %q persistent %v", r.MaxUsersAfter, r.PersistentAfter)
	}
	if r.MemberSawSubjectFrom != "typed@conference.localhost/Owner" {
		t.Errorf("subject change seen by the member from %q", r.MemberSawSubjectFrom)
	}
	if r.LateSubject != "Typed topic" || r.LateSubjectFrom != "typed@conference.localhost/Owner" {
		t.Errorf("subject told to a later joiner: %q from %q", r.LateSubject, r.LateSubjectFrom)
	}
}

// TestMUCKickDueToError: an occupant whose client answers room traffic
// with an error meaning it is gone is removed, and everyone is told with
// status 333; an error that only refuses one message keeps it in.
func TestMUCKickDueToError(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "bob", "carol"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := s.connect(t, "alice@localhost/r", "pw")
	bob := s.connect(t, "bob@localhost/r", "pw")
	carol := s.connect(t, "carol@localhost/r", "pw")
	room := "errors@conference.localhost"
	alice.send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	alice.expect("the room's creation", mucPresence(room+"/Alice", "110", "201"))
	if r := alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", room); r.Attr("type") != "result" {
		t.Fatalf("instant room: %s", r)
	}
	for _, j := range []struct {
		a    *agent
		nick string
	}{{bob, "Bob"}, {carol, "Carol"}} {
		j.a.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, j.nick)
		j.a.expect(j.nick+"'s self-presence", mucPresence(room+"/"+j.nick, "110"))
	}
	errMsg := func(cond string) string {
		return "<message type='error' to='" + room + "/Alice'><body>hi</body><error type='cancel'><" + cond +
			" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
	}
	// Carol's client refuses one message by policy: she stays.
	carol.send("%s", errMsg("policy-violation"))
	alice.expectNone("carol leaving over a refused message", 2*time.Second, mucPresence(room+"/Carol", "333"))
	// Bob's answer says his session is gone: he is removed with 333.
	bob.send("%s", errMsg("recipient-unavailable"))
	p := alice.expect("bob's removal", mucPresence(room+"/Bob", "333"))
	if p.Attr("type") != "unavailable" {
		t.Errorf("removal presence: %s", p)
	}
	// Out of the room, bob no longer gets its messages; carol still does.
	alice.send("<message type='groupchat' to='%s'><body>still here?</body></message>", room)
	carol.expect("the message after bob's removal", func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && strings.Contains(el.String(), "still here?")
	})
	bob.expectNone("room traffic after removal", 2*time.Second, func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && strings.Contains(el.String(), "still here?")
	})
}

// TestBlockingAdvertisedOnServer: XEP-0191 §3.1 has clients ask their
// server, not their account, whether blocking is supported.
func TestBlockingAdvertisedOnServer(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	alice := s.connect(t, "alice@localhost/r", "pw")
	info := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(info.String(), `var="urn:xmpp:blocking"`) {
		t.Errorf("server disco#info lacks urn:xmpp:blocking: %s", info)
	}
}

// TestPEPExplicitSubscription: a stranger subscribes with <subscribe/>
// to an open PEP node (XEP-0163 §4.3.3, XEP-0060 §6.1) and gets the next
// publication although its client announces no +notify; a presence-only
// node refuses it; the owner lists the subscription; <unsubscribe/> ends
// it.
func TestPEPExplicitSubscription(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "stranger"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := s.connect(t, "alice@localhost/phone", "pw")
	stranger := s.connect(t, "stranger@localhost/x", "pw")
	stranger.op("presence")
	publish := func(node, id, text, access string) {
		t.Helper()
		opts := ""
		if access != "" {
			opts = "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
				"<field var='pubsub#access_model'><value>" + access + "</value></field></x></publish-options>"
		}
		r := alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='%s'><status xmlns='urn:example:status'>%s</status></item></publish>%s</pubsub></iq>", node, id, text, opts)
		if r.Attr("type") != "result" {
			t.Fatalf("publishing to %s: %s", node, r)
		}
	}
	publish("urn:example:status", "1", "first", "open")
	publish("urn:example:private", "1", "secret", "")
	r := stranger.iq("<iq type='set' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:example:private' jid='stranger@localhost'/></pubsub></iq>")
	if errorCondition(r) != "not-authorized" || !strings.Contains(r.String(), "presence-subscription-required") {
		t.Errorf("subscribing to a presence-only node: %s", r)
	}
	r = stranger.iq("<iq type='set' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:example:status' jid='stranger@localhost'/></pubsub></iq>")
	if r.Attr("type") != "result" || !strings.Contains(r.String(), `subscription="subscribed"`) {
		t.Fatalf("subscribing to an open node: %s", r)
	}
	isItem := func(text string) func(*xmlstream.Element) bool {
		return func(el *xmlstream.Element) bool {
			return el.Name.Local == "message" && el.Child("http://jabber.org/protocol/pubsub#event", "event") != nil && strings.Contains(el.String(), text)
		}
	}
	stranger.expect("the last item on subscribing", isItem("first"))
	publish("urn:example:status", "2", "second", "")
	stranger.expect("the notification of the next item", isItem("second"))
	r = alice.iq("<iq type='get'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><subscriptions node='urn:example:status'/></pubsub></iq>")
	if !strings.Contains(r.String(), `jid="stranger@localhost"`) {
		t.Errorf("owner's subscription list: %s", r)
	}
	r = stranger.iq("<iq type='set' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='urn:example:status' jid='stranger@localhost'/></pubsub></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("unsubscribing: %s", r)
	}
	publish("urn:example:status", "3", "third", "")
	stranger.expectNone("notifications after unsubscribing", 2*time.Second, isItem("third"))
}
