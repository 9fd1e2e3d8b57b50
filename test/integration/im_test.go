package integration

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

const presenceNS = "jabber:client"

// TestIM runs the instant-messaging checks of RFC 6121 with slixmpp
// clients against the SQLite store and, when it is there, PostgreSQL.
func TestIM(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{hosts: []string{"localhost", "second.localhost"}, extra: driver.toml +
				"[limits]\nmax_offline_messages = 3\nmax_roster_items = 5\n[log]\nlevel = \"debug\"\n"})
			for _, u := range []string{"alice@localhost", "bob@localhost", "carol@localhost", "dave@localhost", "erin@second.localhost"} {
				s.addUser(u, "pw-"+strings.Split(u, "@")[0])
			}
			t.Run("roster", func(t *testing.T) { testRoster(t, s) })
			t.Run("subscription and presence", func(t *testing.T) { testSubscription(t, s) })
			t.Run("messages", func(t *testing.T) { testMessages(t, s) })
			t.Run("offline", func(t *testing.T) { testOffline(t, s) })
			t.Run("virtual hosts", func(t *testing.T) { testVirtualHosts(t, s) })
			t.Run("everyday XEPs", func(t *testing.T) { testEverydayXEPs(t, s) })
			t.Run("blocking", func(t *testing.T) { testBlocking(t, s) })
		})
	}
}

func testRoster(t *testing.T, s *server) {
	a1 := s.connect(t, "alice@localhost/one", "pw-alice")
	a2 := s.connect(t, "alice@localhost/two", "pw-alice")
	for _, a := range []*agent{a1, a2} {
		r := a.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		if r.Attr("type") != "result" {
			t.Fatalf("roster get: %s", r)
		}
	}
	r := a1.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'><group>Friends</group><group>Work</group></item></query></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("roster set: %s", r)
	}
	// Both resources asked for the roster, so both get the push.
	for _, a := range []*agent{a1, a2} {
		p := a.expect("a roster push", isRosterPush("dave@localhost", "none"))
		it := p.FirstElement().FirstElement()
		if it.Attr("name") != "Dave" || len(it.Children) != 2 {
			t.Errorf("push item %s", it)
		}
	}
	r = a1.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	q := r.Child("jabber:iq:roster", "query")
	if q == nil || q.Attr("ver") == "" || q.Child("jabber:iq:roster", "item") == nil {
		t.Fatalf("roster after set: %s", r)
	}
	// Roster versioning: the current version gets an empty result.
	r = a1.iq("<iq type='get'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", q.Attr("ver"))
	if r.Attr("type") != "result" || r.FirstElement() != nil {
		t.Errorf("roster get with the current version: %s", r)
	}
	// Errors.
	for _, c := range []struct{ xml, cond string }{
		{"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/><item jid='y@localhost'/></query></iq>", "bad-request"},
		{"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='x@localhost'><group>g</group><group>g</group></item></query></iq>", "bad-request"},
		{"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='x@@localhost'/></query></iq>", "jid-malformed"},
		{"<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>", "forbidden"},
		{"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='nobody@localhost' subscription='remove'/></query></iq>", "item-not-found"},
	} {
		if got := errorCondition(a1.iq("%s", c.xml)); got != c.cond {
			t.Errorf("%s: got %q, want %q", c.xml, got, c.cond)
		}
	}
	// The size limit (5 items) gives a clear error.
	for i := range 4 {
		a1.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='filler%d@localhost'/></query></iq>", i)
	}
	r = a1.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='onetoomany@localhost'/></query></iq>")
	if errorCondition(r) != "not-allowed" || !strings.Contains(r.String(), "roster is full") {
		t.Errorf("roster over its limit: %s", r)
	}
	// Remove, pushed as subscription='remove'.
	for i := range 4 {
		a1.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='filler%d@localhost' subscription='remove'/></query></iq>", i)
	}
	a1.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' subscription='remove'/></query></iq>")
	a2.expect("a removal push", isRosterPush("dave@localhost", "remove"))
}

func testSubscription(t *testing.T, s *server) {
	alice := s.connect(t, "alice@localhost/sub", "pw-alice")
	bob := s.connect(t, "bob@localhost/sub", "pw-bob")
	for _, a := range []*agent{alice, bob} {
		a.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		a.send("<presence/>")
		a.expect("its own presence back", isPresence(a.jid, ""))
	}
	// alice asks bob; bob sees the request and approves.
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	alice.expect("a pending-out push", func(el *xmlstream.Element) bool {
		return isRosterPush("bob@localhost", "none")(el) && el.FirstElement().FirstElement().Attr("ask") == "subscribe"
	})
	req := bob.expect("the subscription request", isPresence("alice@localhost", "subscribe"))
	if req.Attr("from") != "alice@localhost" {
		t.Errorf("request from %q, want the bare JID", req.Attr("from"))
	}
	bob.send("<presence to='alice@localhost' type='subscribed'/>")
	bob.expect("bob's roster push (from)", isRosterPush("alice@localhost", "from"))
	alice.expect("the approval", isPresence("bob@localhost", "subscribed"))
	alice.expect("alice's roster push (to)", isRosterPush("bob@localhost", "to"))
	alice.expect("bob's presence after approval", isPresence("bob@localhost/sub", ""))

	// bob's presence changes reach alice; alice's do not reach bob.
	bob.send("<presence><show>away</show></presence>")
	p := alice.expect("bob's away", isPresence("bob@localhost/sub", ""))
	if sh := p.Child(presenceNS, "show"); sh == nil || sh.Text() != "away" {
		t.Errorf("presence %s", p)
	}
	alice.send("<presence><show>dnd</show></presence>")
	bob.expectNone("alice's presence (bob is not subscribed)", 300*time.Millisecond, isPresence("alice@localhost/sub", ""))

	// Pre-approval: alice approves carol before carol asks; carol, who is
	// offline, has a request from bob waiting for her next login.
	alice.send("<presence to='carol@localhost' type='subscribed'/>")
	alice.expect("the pre-approval push", func(el *xmlstream.Element) bool {
		return isRosterPush("carol@localhost", "none")(el) && el.FirstElement().FirstElement().Attr("approved") == "true"
	})
	bob.send("<presence to='carol@localhost' type='subscribe'/>")
	carol := s.connect(t, "carol@localhost/late", "pw-carol")
	carol.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	carol.send("<presence/>")
	carol.expect("the request kept while she was offline", isPresence("bob@localhost", "subscribe"))
	carol.send("<presence to='alice@localhost' type='subscribe'/>")
	carol.expect("the automatic approval", isPresence("alice@localhost", "subscribed"))
	carol.expect("alice's presence", isPresence("alice@localhost/sub", ""))
	alice.expect("alice's push (from)", isRosterPush("carol@localhost", "from"))

	// An abrupt disconnection is broadcast as unavailable.
	bob.op("abort")
	alice.expect("bob's unavailable after his connection was cut", isPresence("bob@localhost/sub", "unavailable"))

	// Probes at login: bob comes back and alice sees him; a new bob
	// session receives alice's... no: bob is not subscribed to alice.
	bob2 := s.connect(t, "bob@localhost/back", "pw-bob")
	bob2.send("<presence/>")
	alice.expect("bob's new session", isPresence("bob@localhost/back", ""))

	// Unsubscribe: alice cancels her subscription to bob.
	alice.send("<presence to='bob@localhost' type='unsubscribe'/>")
	alice.expect("alice's push (none)", isRosterPush("bob@localhost", "none"))
	bob2.expect("the unsubscribe", isPresence("alice@localhost", "unsubscribe"))
	bob2.send("<presence><show>chat</show></presence>")
	alice.expectNone("bob's presence after unsubscribing", 300*time.Millisecond, isPresence("bob@localhost/back", ""))
}

func testMessages(t *testing.T, s *server) {
	alice := s.connect(t, "alice@localhost/m", "pw-alice")
	b1 := s.connect(t, "bob@localhost/high", "pw-bob")
	b2 := s.connect(t, "bob@localhost/low", "pw-bob")
	b3 := s.connect(t, "bob@localhost/negative", "pw-bob")
	for i, b := range []*agent{b1, b2, b3} {
		b.send("<presence><priority>%d</priority></presence>", []int{5, 0, -1}[i])
		b.expect("its own presence", isPresence(b.jid, ""))
	}

	alice.send("<message to='bob@localhost' type='chat'><body>to the bare JID</body></message>")
	b1.expect("the message to the bare JID", isMessage("alice@localhost/m", "to the bare JID"))
	b2.expect("the message to the bare JID", isMessage("alice@localhost/m", "to the bare JID"))
	b3.expectNone("a message on a negative-priority resource", 300*time.Millisecond, isMessage("alice@localhost", "to the bare JID"))

	alice.send("<message to='bob@localhost/negative' type='chat'><body>to the full JID</body></message>")
	b3.expect("the message to the full JID", isMessage("alice@localhost/m", "to the full JID"))
	b1.expectNone("someone else's full-JID message", 200*time.Millisecond, isMessage("alice@localhost", "to the full JID"))

	alice.send("<message to='nobody@localhost' type='chat' id='x1'><body>hello?</body></message>")
	if e := alice.expect("an error for an unknown user", func(el *xmlstream.Element) bool { return el.Attr("id") == "x1" }); errorCondition(e) != "service-unavailable" {
		t.Errorf("unknown user: %s", e)
	}
	alice.send("<message to='bad@@localhost' id='x2'><body>x</body></message>")
	if e := alice.expect("an error for a malformed JID", func(el *xmlstream.Element) bool { return el.Attr("id") == "x2" }); errorCondition(e) != "jid-malformed" {
		t.Errorf("malformed to: %s", e)
	}
	alice.send("<message to='x@remote.example' id='x3'><body>x</body></message>")
	if e := alice.expect("an error for a remote domain", func(el *xmlstream.Element) bool { return el.Attr("id") == "x3" }); errorCondition(e) != "remote-server-not-found" {
		t.Errorf("remote: %s", e)
	}
	// IQs to a full JID are routed and the answer comes back.
	r := alice.iq("<iq type='get' to='bob@localhost/high'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r.Attr("type") != "result" || r.Attr("from") != "bob@localhost/high" {
		t.Errorf("ping to a client: %s", r)
	}
	r = alice.iq("<iq type='get' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>")
	if errorCondition(r) != "service-unavailable" {
		t.Errorf("IQ to an absent resource: %s", r)
	}
}

func testOffline(t *testing.T, s *server) {
	alice := s.connect(t, "alice@localhost/o", "pw-alice")
	for i := range 3 {
		alice.send("<message to='dave@localhost' type='chat' id='o%d'><body>offline %d</body></message>", i, i)
	}
	alice.send("<message to='dave@localhost' type='chat' id='o3'><body>one too many</body></message>")
	e := alice.expect("the mailbox-full error", func(el *xmlstream.Element) bool { return el.Attr("id") == "o3" })
	if errorCondition(e) != "resource-constraint" {
		t.Errorf("over the offline cap: %s", e)
	}
	alice.expectNone("errors for the kept messages", 200*time.Millisecond, func(el *xmlstream.Element) bool {
		return el.Attr("type") == "error" && strings.HasPrefix(el.Attr("id"), "o") && el.Attr("id") != "o3"
	})
	dave := s.connect(t, "dave@localhost/phone", "pw-dave")
	dave.send("<presence/>")
	for i := range 3 {
		m := dave.expect("an offline message", isMessage("alice@localhost/o", "offline "+string(rune('0'+i))))
		if m.Child("urn:xmpp:delay", "delay") == nil {
			t.Errorf("offline message without a delay stamp: %s", m)
		}
	}
	// They were handed over once: a second session does not get them again.
	dave2 := s.connect(t, "dave@localhost/tablet", "pw-dave")
	dave2.send("<presence/>")
	dave2.expectNone("offline messages twice", 300*time.Millisecond, isMessage("alice@localhost/o", "offline 0"))
}

func testVirtualHosts(t *testing.T, s *server) {
	alice := s.connect(t, "alice@localhost/v", "pw-alice")
	erin := s.connect(t, "erin@second.localhost/v", "pw-erin")
	erin.send("<presence/>")
	erin.expect("own presence", isPresence("erin@second.localhost/v", ""))
	alice.send("<message to='erin@second.localhost' type='chat'><body>across hosts</body></message>")
	erin.expect("a message from the other host", isMessage("alice@localhost/v", "across hosts"))
	r := erin.iq("<iq type='get' to='second.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r.Attr("type") != "result" {
		t.Errorf("disco on the second host: %s", r)
	}
}

func TestFloodIsLimited(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"mallory", "bob", "carol"} {
		s.addUser(u+"@localhost", "pw")
	}
	bob := s.connect(t, "bob@localhost/r", "pw")
	bob.send("<presence/>")
	bob.expect("own presence", isPresence("bob@localhost/r", ""))
	mallory := s.connect(t, "mallory@localhost/r", "pw")
	carol := s.connect(t, "carol@localhost/r", "pw")
	for i := range 300 {
		mallory.send("<message to='bob@localhost' id='f%d'><body>flood %d</body></message>", i, i)
	}
	e := mallory.expect("a policy-violation error", func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && errorCondition(el) == "policy-violation"
	})
	if !strings.Contains(e.String(), "slow down") {
		t.Errorf("flood error without a clear text: %s", e)
	}
	// Others go on as before.
	carol.send("<message to='bob@localhost'><body>still here</body></message>")
	bob.expect("carol's message during the flood", isMessage("carol@localhost/r", "still here"))
}

func TestInBandRegistration(t *testing.T) {
	s := startServer(t, serverOpts{extra: "[registration]\nopen = true\nper_address_per_hour = 2\n"})
	register := func(user string) string {
		c := dialRaw(t, s.starttls)
		c.startTLS(&tls.Config{InsecureSkipVerify: true})
		c.send(header)
		feats := c.expect("</stream:features>")
		if !strings.Contains(feats, "http://jabber.org/features/iq-register") {
			t.Fatalf("registration not advertised: %s", feats)
		}
		c.send("<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>")
		if got := c.expect("</iq>"); !strings.Contains(got, "<password") {
			t.Fatalf("registration form: %s", got)
		}
		c.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>" + user + "</username><password>secret</password></query></iq>")
		return c.expectIQ("s")
	}
	if got := register("newbie"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration: %s", got)
	}
	if got := register("newbie"); !strings.Contains(got, "<conflict") {
		t.Errorf("taken name: %s", got)
	}
	// Two registrations per hour from this address: the third is refused.
	if got := register("third"); !strings.Contains(got, "<resource-constraint") {
		t.Errorf("over the per-address limit: %s", got)
	}
	// The new account logs in and can change its password.
	c := dialRaw(t, s.starttls)
	c.login("newbie@localhost", "secret", "r")
	c.send("<iq type='set' id='p'><query xmlns='jabber:iq:register'><username>newbie</username><password>changed</password></query></iq>")
	if got := c.expectIQ("p"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("password change: %s", got)
	}
	c2 := dialRaw(t, s.starttls)
	c2.login("newbie@localhost", "changed", "r2")
}

func TestRegistrationClosedByDefault(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := dialRaw(t, s.starttls)
	c.startTLS(&tls.Config{InsecureSkipVerify: true})
	c.send(header)
	if feats := c.expect("</stream:features>"); strings.Contains(feats, "iq-register") {
		t.Errorf("registration advertised while closed: %s", feats)
	}
	c.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>x</username><password>y</password></query></iq>")
	// Only an invite (XEP-0401) opens it.
	if got := c.expectIQ("s"); !strings.Contains(got, "<not-allowed") {
		t.Errorf("registration attempt while closed: %s", got)
	}
	if out, err := s.parley("", "user", "list"); err != nil || strings.Contains(out, "x@localhost") {
		t.Errorf("an account was made while registration is closed: %v %s", err, out)
	}
}

func testEverydayXEPs(t *testing.T, s *server) {
	alice := s.connect(t, "alice@localhost/x", "pw-alice")
	bob := s.connect(t, "bob@localhost/x", "pw-bob")
	ok := func(what string, r *xmlstream.Element) *xmlstream.Element {
		t.Helper()
		if r.Attr("type") != "result" {
			t.Fatalf("%s: %s", what, r)
		}
		return r
	}
	// vCard (XEP-0054): set own, read it back, others can read it too.
	ok("vcard set", alice.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice Example</FN></vCard></iq>"))
	for _, a := range []*agent{alice, bob} {
		r := ok("vcard get", a.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"))
		if !strings.Contains(r.String(), "Alice Example") {
			t.Errorf("vcard as seen by %s: %s", a.name, r)
		}
	}
	if c := errorCondition(bob.iq("<iq type='set' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>")); c != "forbidden" {
		t.Errorf("setting someone else's vcard: %q", c)
	}
	// Private XML storage (XEP-0049).
	ok("private set", alice.iq("<iq type='set'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><color>green</color></prefs></query></iq>"))
	r := ok("private get", alice.iq("<iq type='get'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>"))
	if !strings.Contains(r.String(), "green") {
		t.Errorf("private get: %s", r)
	}
	if c := errorCondition(bob.iq("<iq type='get' to='alice@localhost'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>")); c != "forbidden" {
		t.Errorf("reading someone else's private storage: %q", c)
	}
	// Software version (XEP-0092) and entity time (XEP-0202).
	r = ok("version", alice.iq("<iq type='get' to='localhost'><query xmlns='jabber:iq:version'/></iq>"))
	if !strings.Contains(r.String(), "parley") || strings.Contains(r.String(), "<os") {
		t.Errorf("version: %s", r)
	}
	r = ok("time", alice.iq("<iq type='get' to='localhost'><time xmlns='urn:xmpp:time'/></iq>"))
	if !strings.Contains(r.String(), "<tzo>+00:00</tzo>") || !strings.Contains(r.String(), "<utc>") {
		t.Errorf("time: %s", r)
	}
	// Last activity (XEP-0012): the server's uptime; a stranger may not
	// ask about a user.
	ok("server last", alice.iq("<iq type='get' to='localhost'><query xmlns='jabber:iq:last'/></iq>"))
	if c := errorCondition(bob.iq("<iq type='get' to='dave@localhost'><query xmlns='jabber:iq:last'/></iq>")); c != "forbidden" {
		t.Errorf("last activity of a non-contact: %q", c)
	}
	// Disco on the server lists what is loaded, and an account answers too.
	r = ok("disco", alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
	for _, f := range []string{"jabber:iq:version", "urn:xmpp:time", "jabber:iq:last", "urn:xmpp:ping", "msgoffline", "jabber:iq:register"} {
		if !strings.Contains(r.String(), `var="`+f+`"`) {
			t.Errorf("server disco lacks %s", f)
		}
	}
	r = ok("account disco", bob.iq("<iq type='get' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
	for _, f := range []string{"vcard-temp", "urn:xmpp:blocking", `category="account"`} {
		if !strings.Contains(r.String(), f) {
			t.Errorf("account disco lacks %s: %s", f, r)
		}
	}
}

func testBlocking(t *testing.T, s *server) {
	// carol and alice subscribed to each other's presence earlier? Make
	// sure: carol subscribes to alice, alice approves.
	alice := s.connect(t, "alice@localhost/b", "pw-alice")
	carol := s.connect(t, "carol@localhost/b", "pw-carol")
	for _, a := range []*agent{alice, carol} {
		a.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		a.send("<presence/>")
		a.expect("own presence", isPresence(a.jid, ""))
	}
	// carol is subscribed to alice (since the subscription test).
	carol.expect("alice's presence before the block", isPresence("alice@localhost/b", ""))
	r := alice.iq("<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if r.Attr("type") != "result" {
		t.Fatalf("blocklist: %s", r)
	}
	if r := alice.iq("<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='carol@localhost'/></block></iq>"); r.Attr("type") != "result" {
		t.Fatalf("block: %s", r)
	}
	// Inbound: carol's message is refused, alice never sees it.
	carol.send("<message to='alice@localhost' id='b1'><body>are you there</body></message>")
	if e := carol.expect("the refusal", func(el *xmlstream.Element) bool { return el.Attr("id") == "b1" }); errorCondition(e) != "service-unavailable" {
		t.Errorf("message to someone who blocked you: %s", e)
	}
	alice.expectNone("the blocked contact's message", 200*time.Millisecond, isMessage("carol@localhost", "are you there"))
	// Outbound: alice cannot write to carol either, and is told why.
	alice.send("<message to='carol@localhost' id='b2'><body>hi</body></message>")
	e := alice.expect("the blocked error", func(el *xmlstream.Element) bool { return el.Attr("id") == "b2" })
	if errorCondition(e) != "not-acceptable" || !strings.Contains(e.String(), "urn:xmpp:blocking:errors") {
		t.Errorf("message to a blocked contact: %s", e)
	}
	// Presence does not cross either, also between local users.
	alice.send("<presence><show>away</show></presence>")
	alice.expect("own presence", isPresence(alice.jid, ""))
	carol.expectNone("presence of someone who blocked you", 300*time.Millisecond, isPresence("alice@localhost/b", ""))
	carol.send("<presence to='alice@localhost/b'/>")
	alice.expectNone("directed presence from a blocked contact", 300*time.Millisecond, isPresence("carol@localhost/b", ""))
	// Unblock: messages flow again.
	alice.iq("<iq type='set'><unblock xmlns='urn:xmpp:blocking'><item jid='carol@localhost'/></unblock></iq>")
	carol.send("<message to='alice@localhost'><body>now?</body></message>")
	alice.expect("the message after unblocking", isMessage("carol@localhost/b", "now?"))
}
