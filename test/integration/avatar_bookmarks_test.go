package integration

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"image"
	"image/png"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

const (
	nsPubSub        = "http://jabber.org/protocol/pubsub"
	nsAvatarData    = "urn:xmpp:avatar:data"
	nsAvatarMeta    = "urn:xmpp:avatar:metadata"
	nsVCardUpdate   = "vcard-temp:x:update"
	publishOptsMaxW = "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>" +
		"<field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>"
)

// testPNG is a real w×h PNG and its SHA-1 in hex.
func testPNG(t *testing.T, w, h int) (data []byte, id string) {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(b.Bytes())
	return b.Bytes(), hex.EncodeToString(sum[:])
}

// befriend makes a and b subscribed to each other's presence; both have
// sent their initial presence when it returns.
func befriend(t *testing.T, a, b *agent) {
	t.Helper()
	a.send("<presence/>")
	b.send("<presence/>")
	for _, pair := range [][2]*agent{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		from.send("<presence to='%s' type='subscribe'/>", bare(to.jid))
		req := to.expect("a subscription request", isPresence(bare(from.jid), "subscribe"))
		to.send("<presence to='%s' type='subscribed'/>", req.Attr("from"))
		from.expect("the approval", isPresence(bare(to.jid), "subscribed"))
	}
}

func bare(full string) string { return strings.SplitN(full, "/", 2)[0] }

// photoHash is the hash in a presence's vcard-temp:x:update, and whether
// there is one.
func photoHash(el *xmlstream.Element) (string, bool) {
	x := el.Child(nsVCardUpdate, "x")
	if x == nil || x.Child(nsVCardUpdate, "photo") == nil {
		return "", false
	}
	return x.Child(nsVCardUpdate, "photo").Text(), true
}

// TestAvatarConversion: avatars published through PEP show in the vCard
// and the other way round (XEP-0398), and the hash rides on presence.
func TestAvatarConversion(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob", "carol"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/phone", "pw")
			bob := s.connect(t, "bob@localhost/desk", "pw")
			befriend(t, alice, bob)

			r := alice.iq("<iq type='get' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
			for _, f := range []string{"urn:xmpp:pep-vcard-conversion:0", "urn:xmpp:bookmarks:1#compat",
				"urn:xmpp:bookmarks:1#compat-pep", "urn:xmpp:bookmarks-conversion:0"} {
				if !strings.Contains(r.String(), `var="`+f+`"`) {
					t.Errorf("account disco lacks %s: %s", f, r)
				}
			}
			// A second device of alice's: the router never filters what
			// an account sends to itself, so it sees the hash only if the
			// presence was stamped before it was copied.
			laptop := s.connect(t, "alice@localhost/laptop", "pw")
			laptop.send("<presence/>")
			alice.expect("the laptop's presence", isPresence("alice@localhost/laptop", ""))

			// No avatar yet: alice's presence says so with an empty photo.
			alice.send("<presence><status>no avatar</status></presence>")
			p := bob.expect("alice's presence", func(el *xmlstream.Element) bool {
				return isPresence("alice@localhost/phone", "")(el) && strings.Contains(el.String(), "no avatar")
			})
			if h, ok := photoHash(p); !ok || h != "" {
				t.Errorf("presence without avatar: %s", p)
			}

			// PEP → vCard.
			img, id := testPNG(t, 3, 2)
			b64 := base64.StdEncoding.EncodeToString(img)
			r = alice.iq("<iq type='set'><pubsub xmlns='%s'><publish node='%s'><item id='%s'><data xmlns='%s'>%s</data></item></publish></pubsub></iq>", nsPubSub, nsAvatarData, id, nsAvatarData, b64)
			if r.Attr("type") != "result" {
				t.Fatalf("publishing avatar data: %s", r)
			}
			r = alice.iq("<iq type='set'><pubsub xmlns='%s'><publish node='%s'><item id='%s'><metadata xmlns='%s'><info id='%s' bytes='%d' type='image/png' width='3' height='2'/></metadata></item></publish></pubsub></iq>",
				nsPubSub, nsAvatarMeta, id, nsAvatarMeta, id, len(img))
			if r.Attr("type") != "result" {
				t.Fatalf("publishing avatar metadata: %s", r)
			}
			for _, who := range []*agent{alice, bob} {
				r = who.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
				ph := r.Child("vcard-temp", "vCard")
				if ph != nil {
					ph = ph.Child("vcard-temp", "PHOTO")
				}
				if ph == nil || ph.Child("vcard-temp", "TYPE").Text() != "image/png" || ph.Child("vcard-temp", "BINVAL").Text() != b64 {
					t.Fatalf("%s reading alice's vCard: %s", who.name, r)
				}
			}
			// The hash rides on alice's next presence, broadcast and directed.
			alice.send("<presence><status>with avatar</status></presence>")
			p = bob.expect("alice's presence with her avatar", func(el *xmlstream.Element) bool {
				return isPresence("alice@localhost/phone", "")(el) && strings.Contains(el.String(), "with avatar")
			})
			if h, _ := photoHash(p); h != id {
				t.Errorf("presence hash %q, want %q: %s", h, id, p)
			}
			p = laptop.expect("alice's phone's presence with her avatar", func(el *xmlstream.Element) bool {
				return isPresence("alice@localhost/phone", "")(el) && strings.Contains(el.String(), "with avatar")
			})
			if h, _ := photoHash(p); h != id {
				t.Errorf("hash in the presence of alice's other resource %q, want %q: %s", h, id, p)
			}
			// The probe answer a new device gets is the stamped presence.
			tablet := s.connect(t, "alice@localhost/tablet", "pw")
			tablet.send("<presence/>")
			p = tablet.expect("alice's phone's presence at login", func(el *xmlstream.Element) bool {
				return isPresence("alice@localhost/phone", "")(el) && strings.Contains(el.String(), "with avatar")
			})
			if h, _ := photoHash(p); h != id {
				t.Errorf("hash in the presence a new resource got %q, want %q: %s", h, id, p)
			}
			carol := s.connect(t, "carol@localhost/x", "pw")
			alice.send("<presence to='carol@localhost/x'><x xmlns='vcard-temp:x:update'/></presence>")
			p = carol.expect("alice's directed presence", isPresence("alice@localhost/phone", ""))
			if h, _ := photoHash(p); h != id {
				t.Errorf("directed presence hash %q, want %q: %s", h, id, p)
			}
			// A client's empty photo is left alone.
			alice.send("<presence to='carol@localhost/x'><x xmlns='vcard-temp:x:update'><photo/></x></presence>")
			p = carol.expect("alice's presence with an empty photo", isPresence("alice@localhost/phone", ""))
			if h, ok := photoHash(p); !ok || h != "" {
				t.Errorf("client's empty photo replaced: %s", p)
			}

			// vCard → PEP: bob sets a photo, alice (a contact) reads his avatar.
			img2, id2 := testPNG(t, 5, 4)
			b64b := base64.StdEncoding.EncodeToString(img2)
			r = bob.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>Bob</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>", b64b)
			if r.Attr("type") != "result" {
				t.Fatalf("bob setting his vCard: %s", r)
			}
			r = alice.iq("<iq type='get' to='bob@localhost'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", nsPubSub, nsAvatarMeta)
			if r.Attr("type") != "result" {
				t.Fatalf("alice reading bob's avatar metadata: %s", r)
			}
			for _, want := range []string{`id="` + id2 + `"`, `type="image/png"`, `width="5"`, `height="4"`} {
				if !strings.Contains(r.String(), want) {
					t.Errorf("bob's metadata lacks %s: %s", want, r)
				}
			}
			r = alice.iq("<iq type='get' to='bob@localhost'><pubsub xmlns='%s'><items node='%s'><item id='%s'/></items></pubsub></iq>", nsPubSub, nsAvatarData, id2)
			if r.Attr("type") != "result" || !strings.Contains(r.String(), b64b) {
				t.Fatalf("alice reading bob's avatar data: %s", r)
			}
			// Not for strangers: the avatar nodes keep XEP-0084's presence access.
			r = carol.iq("<iq type='get' to='bob@localhost'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", nsPubSub, nsAvatarData)
			if r.Attr("type") != "error" {
				t.Errorf("a stranger read bob's avatar data: %s", r)
			}

			// A photo that is not base64 is refused and nothing changes.
			r = bob.iq("<iq type='set'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>@@@</BINVAL></PHOTO></vCard></iq>")
			if errorCondition(r) != "bad-request" {
				t.Errorf("malformed BINVAL: %s", r)
			}
			r = bob.iq("<iq type='get'><vCard xmlns='vcard-temp'/></iq>")
			if !strings.Contains(r.String(), b64b) {
				t.Errorf("bob's vCard changed by a refused set: %s", r)
			}

			// Empty metadata disables alice's avatar and removes the photo.
			r = alice.iq("<iq type='set'><pubsub xmlns='%s'><publish node='%s'><item id='off'><metadata xmlns='%s'/></item></publish></pubsub></iq>", nsPubSub, nsAvatarMeta, nsAvatarMeta)
			if r.Attr("type") != "result" {
				t.Fatalf("disabling the avatar: %s", r)
			}
			r = bob.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
			if strings.Contains(r.String(), "PHOTO") {
				t.Errorf("photo kept after the avatar was disabled: %s", r)
			}
			if !s.alive() {
				t.Fatalf("server died:\n%s", s.Stderr())
			}
		})
	}
}

// TestBookmarksCompat: bookmarks stored in private XML storage
// (XEP-0048/0049) and as XEP-0402 PEP items are one list.
func TestBookmarksCompat(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			s.addUser("alice@localhost", "pw")
			legacy := s.connect(t, "alice@localhost/old", "pw")
			modern := s.connect(t, "alice@localhost/new", "pw", "--notify", "urn:xmpp:bookmarks:1")
			modern.op("presence")
			legacy.send("<presence/>")

			// Legacy → PEP.
			r := legacy.iq("<iq type='set'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>" +
				"<conference jid='coven@chat.localhost' name='The Coven' autojoin='true'><nick>alice</nick><password>secret</password></conference>" +
				"<url name='Site' url='https://localhost/'/></storage></query></iq>")
			if r.Attr("type") != "result" {
				t.Fatalf("storing legacy bookmarks: %s", r)
			}
			r = modern.iq("<iq type='get'><pubsub xmlns='%s'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", nsPubSub)
			items := r.Child(nsPubSub, "pubsub")
			if items != nil {
				items = items.Child(nsPubSub, "items")
			}
			if items == nil {
				t.Fatalf("reading PEP bookmarks: %s", r)
			}
			it := items.Child(nsPubSub, "item")
			conf := it.Child("urn:xmpp:bookmarks:1", "conference")
			if it.Attr("id") != "coven@chat.localhost" || conf == nil || conf.Attr("name") != "The Coven" || conf.Attr("autojoin") != "true" ||
				conf.Child("urn:xmpp:bookmarks:1", "nick").Text() != "alice" || conf.Child("urn:xmpp:bookmarks:1", "password").Text() != "secret" {
				t.Fatalf("PEP bookmark: %s", r)
			}
			// PEP → legacy.
			r = modern.iq("<iq type='set'><pubsub xmlns='%s'><publish node='urn:xmpp:bookmarks:1'><item id='orchard@chat.localhost'>"+
				"<conference xmlns='urn:xmpp:bookmarks:1' name='Orchard' autojoin='1'><nick>al</nick><extensions><pos xmlns='urn:example:pos' n='2'/></extensions></conference>"+
				"</item></publish>%s</pubsub></iq>", nsPubSub, publishOptsMaxW)
			if r.Attr("type") != "result" {
				t.Fatalf("publishing a PEP bookmark with XEP-0402's options: %s", r)
			}
			r = legacy.iq("<iq type='get'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
			out := r.String()
			for _, want := range []string{`jid="coven@chat.localhost"`, `jid="orchard@chat.localhost"`, `name="Orchard"`, `<nick>al</nick>`,
				`<pos xmlns="urn:example:pos" n="2"`, `url="https://localhost/"`, `<password>secret</password>`} {
				if !strings.Contains(out, want) {
					t.Errorf("legacy list lacks %s: %s", want, out)
				}
			}
			// A legacy client dropping a room retracts it, and the
			// XEP-0402 client is told.
			r = legacy.iq("<iq type='set'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>" +
				"<conference jid='orchard@chat.localhost' name='Orchard' autojoin='true'><nick>al</nick><pos xmlns='urn:example:pos' n='2'/></conference></storage></query></iq>")
			if r.Attr("type") != "result" {
				t.Fatalf("updating legacy bookmarks: %s", r)
			}
			modern.expect("the retraction of coven", func(el *xmlstream.Element) bool {
				return el.Name.Local == "message" && strings.Contains(el.String(), `<retract id="coven@chat.localhost"`)
			})
			r = modern.iq("<iq type='get'><pubsub xmlns='%s'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", nsPubSub)
			if strings.Contains(r.String(), "coven@") || !strings.Contains(r.String(), "orchard@") || !strings.Contains(r.String(), `<pos xmlns="urn:example:pos" n="2"`) {
				t.Errorf("PEP bookmarks after the legacy update: %s", r)
			}
			// Invalid lists are refused and change nothing.
			for _, bad := range []string{
				"<storage xmlns='storage:bookmarks'><conference name='no jid'/></storage>",
				"<storage xmlns='storage:bookmarks'><conference jid='r@chat.localhost' autojoin='maybe'/></storage>",
			} {
				r = legacy.iq("<iq type='set'><query xmlns='jabber:iq:private'>%s</query></iq>", bad)
				if errorCondition(r) != "bad-request" {
					t.Errorf("invalid list %s: %s", bad, r)
				}
			}
			r = modern.iq("<iq type='get'><pubsub xmlns='%s'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", nsPubSub)
			if !strings.Contains(r.String(), "orchard@") {
				t.Errorf("PEP bookmarks changed by a refused list: %s", r)
			}
			if !s.alive() {
				t.Fatalf("server died:\n%s", s.Stderr())
			}
		})
	}
}

// awaitCaps waits until the server has asked a client with --notify for
// its features (XEP-0115 §6.3). From then on the server knows the
// session is waiting for its caps and keeps what is published for it
// until the client answers, so the test may publish at once. Only the
// server's query counts: a client's other resources ask it too (slixmpp
// does, on their presence), from their full JIDs.
func awaitCaps(a *agent) {
	a.t.Helper()
	_, server, _ := strings.Cut(bare(a.jid), "@")
	a.expect("the server's caps query", func(el *xmlstream.Element) bool {
		return el.Name.Local == "iq" && el.Attr("type") == "get" && el.Attr("from") == server &&
			el.Child("http://jabber.org/protocol/disco#info", "query") != nil
	})
}

// isEvent matches a PEP notification of node containing s.
func isEvent(node, s string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && strings.Contains(el.String(), `node="`+node+`"`) && strings.Contains(el.String(), s)
	}
}

// TestLegacyPEPBookmarks: the legacy PEP node 'storage:bookmarks'
// (XEP-0048 via PEP, XEP-0411) is one more view of the XEP-0402 items.
func TestLegacyPEPBookmarks(t *testing.T) {
	needSlixmpp(t)
	const legacyOpts = "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>"
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			s.addUser("alice@localhost", "pw")
			s.addUser("bob@localhost", "pw")
			old := s.connect(t, "alice@localhost/old", "pw", "--notify", "storage:bookmarks")
			modern := s.connect(t, "alice@localhost/new", "pw", "--notify", "urn:xmpp:bookmarks:1")
			old.op("presence")
			awaitCaps(old)
			modern.op("presence")
			awaitCaps(modern)

			// Legacy PEP → XEP-0402.
			r := old.iq("<iq type='set'><pubsub xmlns='%s'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'>"+
				"<conference jid='coven@chat.localhost' name='The Coven' autojoin='true'><nick>alice</nick></conference>"+
				"<conference jid='orchard@chat.localhost' name='Orchard'/></storage></item></publish>%s</pubsub></iq>", nsPubSub, legacyOpts)
			if r.Attr("type") != "result" {
				t.Fatalf("publishing legacy PEP bookmarks: %s", r)
			}
			modern.expect("the coven item", isEvent("urn:xmpp:bookmarks:1", `<item id="coven@chat.localhost"`))
			modern.expect("the orchard item", isEvent("urn:xmpp:bookmarks:1", `<item id="orchard@chat.localhost"`))
			old.expect("the legacy node's notification", isEvent("storage:bookmarks", `jid="orchard@chat.localhost"`))
			r = modern.iq("<iq type='get'><pubsub xmlns='%s'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", nsPubSub)
			out := r.String()
			for _, want := range []string{`<item id="coven@chat.localhost"><conference xmlns="urn:xmpp:bookmarks:1" name="The Coven" autojoin="true"><nick>alice</nick>`,
				`<item id="orchard@chat.localhost"><conference xmlns="urn:xmpp:bookmarks:1" name="Orchard"`} {
				if !strings.Contains(out, want) {
					t.Errorf("XEP-0402 bookmarks lack %s: %s", want, out)
				}
			}

			// XEP-0402 → legacy PEP: the legacy client is told, and reads
			// the whole list.
			r = modern.iq("<iq type='set'><pubsub xmlns='%s'><publish node='urn:xmpp:bookmarks:1'><item id='tower@chat.localhost'>"+
				"<conference xmlns='urn:xmpp:bookmarks:1' name='Tower'/></item></publish>%s</pubsub></iq>", nsPubSub, publishOptsMaxW)
			if r.Attr("type") != "result" {
				t.Fatalf("publishing a XEP-0402 bookmark: %s", r)
			}
			ev := old.expect("the legacy list with the tower", isEvent("storage:bookmarks", `jid="tower@chat.localhost"`))
			if !strings.Contains(ev.String(), `jid="coven@chat.localhost"`) || !strings.Contains(ev.String(), `<item id="current">`) {
				t.Errorf("legacy notification: %s", ev)
			}
			r = old.iq("<iq type='get'><pubsub xmlns='%s'><items node='storage:bookmarks'/></pubsub></iq>", nsPubSub)
			out = r.String()
			for _, want := range []string{`<item id="current"><storage xmlns="storage:bookmarks">`, `jid="coven@chat.localhost"`, `<nick>alice</nick>`,
				`jid="orchard@chat.localhost"`, `jid="tower@chat.localhost" name="Tower"`} {
				if !strings.Contains(out, want) {
					t.Errorf("legacy PEP list lacks %s: %s", want, out)
				}
			}

			// A legacy list without a room retracts it, and only it.
			r = old.iq("<iq type='set'><pubsub xmlns='%s'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'>"+
				"<conference jid='coven@chat.localhost' name='The Coven' autojoin='true'><nick>alice</nick></conference>"+
				"<conference jid='tower@chat.localhost' name='Tower'/></storage></item></publish>%s</pubsub></iq>", nsPubSub, legacyOpts)
			if r.Attr("type") != "result" {
				t.Fatalf("republishing legacy PEP bookmarks: %s", r)
			}
			modern.expect("the retraction of orchard", isEvent("urn:xmpp:bookmarks:1", `<retract id="orchard@chat.localhost"`))
			modern.expectNone("a notification for an unchanged room", 300*time.Millisecond, isEvent("urn:xmpp:bookmarks:1", `<item id="coven@chat.localhost"`))

			// Private storage reads the same list.
			r = old.iq("<iq type='get'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
			if out := r.String(); !strings.Contains(out, `jid="coven@chat.localhost"`) || !strings.Contains(out, `jid="tower@chat.localhost"`) || strings.Contains(out, "orchard@") {
				t.Errorf("private storage after the legacy PEP publish: %s", out)
			}

			// Bad lists are refused and change nothing; the node is
			// alice's only.
			for _, bad := range []string{
				"<storage xmlns='storage:bookmarks'><conference jid='r@chat.localhost/nick'/></storage>",
				"<list xmlns='storage:bookmarks'/>",
			} {
				r = old.iq("<iq type='set'><pubsub xmlns='%s'><publish node='storage:bookmarks'><item id='current'>%s</item></publish></pubsub></iq>", nsPubSub, bad)
				if errorCondition(r) != "bad-request" {
					t.Errorf("bad list %s: %s", bad, r)
				}
			}
			r = modern.iq("<iq type='get'><pubsub xmlns='%s'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", nsPubSub)
			if out := r.String(); !strings.Contains(out, "coven@") || !strings.Contains(out, "tower@") {
				t.Errorf("XEP-0402 bookmarks after refused lists: %s", out)
			}
			bob := s.connect(t, "bob@localhost/b", "pw")
			r = bob.iq("<iq type='get' to='alice@localhost'><pubsub xmlns='%s'><items node='storage:bookmarks'/></pubsub></iq>", nsPubSub)
			if r.Attr("type") != "error" || strings.Contains(r.String(), "coven@") {
				t.Errorf("bob read alice's legacy bookmarks: %s", r)
			}
			if !s.alive() {
				t.Fatalf("server died:\n%s", s.Stderr())
			}
		})
	}
}
