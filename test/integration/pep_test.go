package integration

import (
	"strings"
	"testing"
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
