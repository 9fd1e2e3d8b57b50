package integration

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/sasl"
	"parley/internal/sealstore"
	"parley/internal/storage"
	"parley/internal/storage/backend"
	"parley/internal/storage/sqlite"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// Markers planted over the wire that must not be found in data_dir.
var sealedMarkers = []string{
	"zq7contact",     // a roster contact's JID
	"Zq7RosterName",  // a roster name
	"Zq7BobName",     // another, on an item changed while its owner was away
	"Zq7Group",       // a roster group
	"zq7blocked",     // a blocked JID
	"Zq7PrivateText", // private XML
	"Zq7Bookmark",    // a bookmark's name
	"zq7room",        // a bookmark's room (the item id)
}

// TestSealedRosterAtRest: alice's roster, block list, private XML and
// bookmarks are sealed under her key. While she is away (the server
// restarted, so her key is gone) contacts subscribe, are approved by her
// pre-approval, unsubscribe, and a blocked account's message (sent with
// go-sendxmpp) is stopped; at her next login everything is there, names
// and groups intact. Then no marker is found in any file of data_dir, and
// parley's own code with everything in data_dir but her password cannot
// read her roster.
func TestSealedRosterAtRest(t *testing.T) {
	needSlixmpp(t)
	sendxmpp := needTool(t, "go-sendxmpp", "go-sendxmpp")
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) { sealedRosterAtRest(t, sendxmpp, driver) })
	}
}

func sealedRosterAtRest(t *testing.T, sendxmpp string, driver storeDriver) {
	s := startServer(t, serverOpts{extra: driver.toml})
	for _, u := range []string{"alice", "bob", "carol", "dave", "mallory"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := online(t, s, "alice@localhost")
	bob := online(t, s, "bob@localhost")
	ok := func(what string, r *xmlstream.Element) {
		t.Helper()
		if r.Attr("type") != "result" {
			t.Fatalf("%s: %s", what, r)
		}
	}
	ok("roster add", alice.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='zq7contact@elsewhere.example' name='Zq7RosterName'><group>Zq7Group</group></item></query></iq>"))
	ok("roster add", alice.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Zq7BobName'><group>Zq7Group</group></item></query></iq>"))
	bob.send("<presence type='subscribe' to='alice@localhost'/>")
	alice.expect("bob's request", isPresence("bob@localhost", "subscribe"))
	alice.send("<presence type='subscribed' to='bob@localhost'/>")
	bob.expect("alice's approval", isPresence("alice@localhost", "subscribed"))
	alice.send("<presence type='subscribed' to='dave@localhost'/>") // pre-approval
	// Her stanzas are handled in order: the roster read after them sees both.
	if r := alice.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>").String(); !strings.Contains(r, `jid="bob@localhost" subscription="from" name="Zq7BobName"`) ||
		!strings.Contains(r, `approved="true"`) {
		t.Fatalf("alice's roster before she leaves: %s", r)
	}
	ok("block", alice.iq("<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='zq7blocked@elsewhere.example'/><item jid='mallory@localhost'/></block></iq>"))
	ok("private XML", alice.iq("<iq type='set'><query xmlns='jabber:iq:private'><notes xmlns='urn:zq7:notes'>Zq7PrivateText</notes></query></iq>"))
	ok("bookmark", alice.iq("<iq type='set'><pubsub xmlns='%s'><publish node='urn:xmpp:bookmarks:1'><item id='zq7room@conference.localhost'>"+
		"<conference xmlns='urn:xmpp:bookmarks:1' name='Zq7Bookmark' autojoin='true'><nick>al</nick></conference></item></publish>%s</pubsub></iq>", nsPubSub, publishOptsMaxW))

	// Alice logs out; the restart wipes every key from memory.
	alice.op("close")
	bob.expect("alice's unavailable presence", isPresence("alice@localhost", "unavailable"))
	bob.op("close")
	s.stop()
	s = launch(t, s.dir, s.config, serverOpts{extra: driver.toml})

	dave := online(t, s, "dave@localhost")
	dave.send("<presence type='subscribe' to='alice@localhost'/>")
	dave.expect("approval by alice's pre-approval while she is away", isPresence("alice@localhost", "subscribed"))
	// Dave may see her presence now, by her sealed roster's index; she is
	// away, so a probe brings nothing.
	dave.send("<presence type='probe' to='alice@localhost'/>")
	dave.expectNone("presence of someone away", 500*time.Millisecond, isPresence("alice@localhost/", ""))
	carol := online(t, s, "carol@localhost")
	carol.send("<presence type='subscribe' to='alice@localhost'/>")
	carol.expectNone("a refusal of a request to an account that exists", time.Second, isPresence("alice@localhost", "unsubscribed"))
	bob = online(t, s, "bob@localhost")
	bob.send("<presence type='unsubscribe' to='alice@localhost'/>")
	bob.send("<message type='chat' to='alice@localhost'><body>from bob while away</body></message>")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := sendxmppCmd(ctx, t, sendxmpp, append(sendxmppArgs(s, "mallory@localhost", "pw", false), "alice@localhost")...)
	cmd.Stdin = strings.NewReader("from mallory while away\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("go-sendxmpp as the blocked account: %v\n%s", err, out)
	}
	// The roster answers a round trip once bob's presence went through.
	ok("bob's roster", bob.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"))

	// Alice is back.
	alice = online(t, s, "alice@localhost")
	dave.expect("alice's presence, to the contact approved while she was away", isPresence("alice@localhost/", ""))
	dave.send("<presence type='probe' to='alice@localhost'/>")
	dave.expect("the answer to a probe", isPresence("alice@localhost/", ""))
	alice.expect("carol's request made while she was away", isPresence("carol@localhost", "subscribe"))
	alice.expect("bob's offline message", isMessage("bob@localhost", "from bob while away"))
	alice.expectNone("the blocked account's message", time.Second, isMessage("mallory@localhost", "from mallory while away"))
	roster := alice.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>").String()
	for _, want := range []string{
		`jid="zq7contact@elsewhere.example"`, `name="Zq7RosterName"`, `<group>Zq7Group</group>`,
		`jid="bob@localhost" subscription="none" name="Zq7BobName"`, `jid="dave@localhost" subscription="from"`,
	} {
		if !strings.Contains(roster, want) {
			t.Errorf("alice's roster after her return lacks %s: %s", want, roster)
		}
	}
	blocked := alice.iq("<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>").String()
	if !strings.Contains(blocked, "zq7blocked@elsewhere.example") || !strings.Contains(blocked, "mallory@localhost") {
		t.Errorf("block list: %s", blocked)
	}
	if p := alice.iq("<iq type='get'><query xmlns='jabber:iq:private'><notes xmlns='urn:zq7:notes'/></query></iq>").String(); !strings.Contains(p, "Zq7PrivateText") {
		t.Errorf("private XML: %s", p)
	}
	if b := alice.iq("<iq type='get'><pubsub xmlns='%s'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", nsPubSub).String(); !strings.Contains(b, `id="zq7room@conference.localhost"`) || !strings.Contains(b, "Zq7Bookmark") {
		t.Errorf("bookmarks: %s", b)
	}
	for _, a := range []*agent{alice, bob, carol, dave} {
		a.op("close")
	}
	s.stop()

	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	if driver.name == "sqlite" {
		grepDataDir(t, cfg.DataDir, sealedMarkers)
	}
	cannotReadWithoutPassword(t, cfg)

	// An admin's export cannot read what is sealed: it says so.
	out, err := s.parley("", "export", "--user", "alice@localhost", t.TempDir())
	if err != nil || !strings.Contains(out, "sealed under the user's key, left out: roster, subscription requests, private XML, items of urn:xmpp:bookmarks:1, block list") {
		t.Errorf("export of alice: %v\n%s", err, out)
	}
}

// cannotReadWithoutPassword opens the database with parley's own code
// and everything in data_dir (the server secret, hence the blind index
// key): alice's roster, block list and private XML stay shut. With her
// password the same code reads them, so it is the key that is missing.
func cannotReadWithoutPassword(t *testing.T, cfg config.Config) {
	t.Helper()
	ctx := context.Background()
	secret, err := os.ReadFile(filepath.Join(cfg.DataDir, "server.secret"))
	if err != nil {
		t.Fatal(err)
	}
	blindKey, err := hkdf.Key(sha256.New, secret, nil, "parley blind index", 32)
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(ctx, cfg.Storage.Driver, cfg.Storage.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v := vault.New(st.Keys(), blindKey, vault.Options{})
	defer v.Stop()
	r := sealstore.NewRoster(st.Roster(), v)
	blocks := sealstore.NewKV(st.KV(), v, "urn:xmpp:blocking")
	private := sealstore.NewKV(st.KV(), v, "jabber:iq:private")
	const alice = "alice@localhost"
	shut := func(when string) {
		t.Helper()
		if items, _, err := r.Items(ctx, alice); !errors.Is(err, vault.ErrLocked) {
			t.Errorf("%s: the roster was read (%d items, %v)", when, len(items), err)
		}
		if _, err := blocks.List(ctx, alice); !errors.Is(err, vault.ErrLocked) {
			t.Errorf("%s: the block list was read (%v)", when, err)
		}
		if _, err := private.Get(ctx, alice, "urn:zq7:notes"); !errors.Is(err, vault.ErrLocked) {
			t.Errorf("%s: private XML was read (%v)", when, err)
		}
	}
	shut("without the password")
	a, err := st.Users().Get(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.UnlockPassword(ctx, alice, "not her password", a.Credentials); err == nil {
		t.Error("a wrong password unlocked the key")
	}
	shut("with a wrong password")
	// What the blind index gives away: someone who guesses a JID and has
	// the server secret can confirm it is a contact (README).
	if it, err := r.State(ctx, alice, "zq7contact@elsewhere.example"); err != nil || it.Subscription != storage.SubNone {
		t.Errorf("state by blind index: %+v, %v", it, err)
	}
	if err := v.UnlockPassword(ctx, alice, "pw", a.Credentials); err != nil {
		t.Fatal(err)
	}
	items, _, err := r.Items(ctx, alice)
	found := false
	for _, it := range items {
		found = found || it.Name == "Zq7RosterName"
	}
	if err != nil || !found {
		t.Errorf("with the password the roster does not open: %+v, %v", items, err)
	}
}

// TestSealedRosterMigration: data stored in clear before sealing (an
// account without keys, as an upgraded server has it) keeps working and is sealed at the owner's
// next login; afterwards no file of data_dir holds it in clear.
func TestSealedRosterMigration(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("bob@localhost", "pw")
	s.stop()
	dataDir := filepath.Join(s.dir, "data")
	writeLegacyOlga(t, dataDir)
	if n := countMarkers(t, dataDir, sealedMarkers); n == 0 {
		t.Fatal("the imported data is not in clear before the first login: the test would prove nothing")
	}

	// Before olga's first login the clear rows work: bob, subscribed to
	// her, gets her presence once she is online, and her block list is
	// read for enforcement.
	s = launch(t, s.dir, s.config, serverOpts{})
	bob := online(t, s, "bob@localhost")
	olga := online(t, s, "olga@localhost")
	bob.expect("olga's presence through the migrated roster", isPresence("olga@localhost/", ""))
	roster := olga.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>").String()
	for _, want := range []string{`name="Zq7RosterName"`, `<group>Zq7Group</group>`, `name="Zq7BobName"`} {
		if !strings.Contains(roster, want) {
			t.Errorf("olga's roster lacks %s: %s", want, roster)
		}
	}
	if b := olga.iq("<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>").String(); !strings.Contains(b, "zq7blocked@elsewhere.example") {
		t.Errorf("block list: %s", b)
	}
	if p := olga.iq("<iq type='get'><query xmlns='jabber:iq:private'><notes xmlns='urn:zq7:notes'/></query></iq>").String(); !strings.Contains(p, "Zq7PrivateText") {
		t.Errorf("private XML: %s", p)
	}
	olga.op("close")
	bob.op("close")
	s.stop()
	grepDataDir(t, dataDir, sealedMarkers)
}

// countMarkers counts the markers found in the files under dir.
func countMarkers(t *testing.T, dir string, markers []string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, m := range markers {
			if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(m))) {
				n++
			}
		}
		return nil
	})
	return n
}

// writeLegacyOlga writes, with parley's storage code, what a server from
// before sealing kept for olga: an account without keys, and her roster,
// a pending request, block list and private XML in clear.
func writeLegacyOlga(t *testing.T, dataDir string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const olga = "olga@localhost"
	var creds []storage.Credential
	for _, h := range sasl.Hashes {
		c, err := sasl.NewCredentials(h, "pw", 4096)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, storage.Credential{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.Users().Create(ctx, storage.Account{JID: olga, Credentials: creds}))
	_, err = st.Roster().Put(ctx, olga, storage.RosterItem{Contact: "zq7contact@elsewhere.example", Name: "Zq7RosterName", Groups: []string{"Zq7Group"}, Subscription: storage.SubNone}, 0)
	must(err)
	_, err = st.Roster().Put(ctx, olga, storage.RosterItem{Contact: "bob@localhost", Name: "Zq7BobName", Subscription: storage.SubFrom}, 0)
	must(err)
	must(st.KV().Put(ctx, olga, "urn:xmpp:blocking", "zq7blocked@elsewhere.example", nil))
	must(st.KV().Put(ctx, olga, "jabber:iq:private", "urn:zq7:notes",
		[]byte(`<query xmlns="jabber:iq:private"><notes xmlns="urn:zq7:notes">Zq7PrivateText</notes></query>`)))
}
