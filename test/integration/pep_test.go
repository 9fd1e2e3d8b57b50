package integration

import (
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// TestPEPForOMEMO: OMEMO keys published with access_model=open can be
// fetched by someone who is not a contact (members of a private room who
// never added each other), while presence-only nodes cannot.
func TestPEPForOMEMO(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "stranger", "friend"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/phone", "pw")
			r := alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:omemo:2:bundles'><item id='1031'><bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>BASE64</spk></bundle></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field><field var='pubsub#max_items'><value>max</value></field></x></publish-options></pubsub></iq>")
			if r.Attr("type") != "result" {
				t.Fatalf("publishing the bundle: %s", r)
			}
			r = alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='av1'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub></iq>")
			if r.Attr("type") != "result" {
				t.Fatalf("publishing avatar metadata: %s", r)
			}
			stranger := s.connect(t, "stranger@localhost/x", "pw")
			r = stranger.iq("<iq type='get' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:omemo:2:bundles'><item id='1031'/></items></pubsub></iq>")
			if r.Attr("type") != "result" || !strings.Contains(r.String(), "BASE64") {
				t.Fatalf("a non-contact fetching the OMEMO bundle: %s", r)
			}
			r = stranger.iq("<iq type='get' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub></iq>")
			if r.Attr("type") != "error" {
				t.Fatalf("a non-contact read a presence-access node: %s", r)
			}
			// A conflicting publish-option is refused.
			r = alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:omemo:2:bundles'><item id='1032'><bundle xmlns='urn:xmpp:omemo:2'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub></iq>")
			if errorCondition(r) != "conflict" || !strings.Contains(r.String(), "precondition-not-met") {
				t.Errorf("conflicting publish-options: %s", r)
			}
			// The account advertises PEP.
			r = stranger.iq("<iq type='get' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
			if !strings.Contains(r.String(), `category="pubsub"`) || !strings.Contains(r.String(), "pubsub#publish-options") {
				t.Errorf("account disco: %s", r)
			}
		})
	}
}

// TestPEPNotifications: a contact whose client announces +notify for a
// node in its entity capabilities gets the owner's publications; one that
// does not, does not (XEP-0163 §4, XEP-0115).
func TestPEPNotifications(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "bob", "carol"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := s.connect(t, "alice@localhost/r", "pw")
	bob := s.connect(t, "bob@localhost/r", "pw", "--notify", "urn:xmpp:avatar:metadata")
	carol := s.connect(t, "carol@localhost/r", "pw")
	alice.send("<presence/>")
	alice.expect("own presence", isPresence("alice@localhost/r", ""))
	// bob and carol are subscribed to alice's presence.
	for _, c := range []*agent{bob, carol} {
		c.send("<presence to='alice@localhost' type='subscribe'/>")
	}
	// A request can reach alice twice: live, and again among the waiting
	// requests the server hands over on her initial presence, when that
	// is still being handled as the request comes in (both deliveries are
	// RFC 6121 §3.1.3's). Each requester is approved once.
	approved := map[string]bool{}
	for len(approved) < 2 {
		req := alice.expect("a subscription request", func(el *xmlstream.Element) bool {
			return el.Name.Local == "presence" && el.Attr("type") == "subscribe" && !approved[el.Attr("from")]
		})
		approved[req.Attr("from")] = true
		alice.send("<presence to='%s' type='subscribed'/>", req.Attr("from"))
	}
	for _, c := range []*agent{bob, carol} {
		c.op("presence") // slixmpp adds its entity capabilities for bob
		c.expect("alice's presence", isPresence("alice@localhost/r", ""))
	}
	awaitCaps(bob)
	r := alice.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='abc'><metadata xmlns='urn:xmpp:avatar:metadata'><info id='abc' bytes='10' type='image/png'/></metadata></item></publish></pubsub></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("publish: %s", r)
	}
	isEvent := func(el *xmlstream.Element) bool {
		ev := el.Child("http://jabber.org/protocol/pubsub#event", "event")
		return el.Name.Local == "message" && ev != nil && strings.Contains(ev.String(), `id="abc"`)
	}
	bob.expect("the avatar notification", isEvent)
	carol.expectNone("a notification without +notify", 500*time.Millisecond, isEvent)
}
