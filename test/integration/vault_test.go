package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/seal"
	parleyserver "parley/internal/server"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// TestUserDataSealedAtRest follows issue 16 with real clients: messages to a user
// who is away are sealed to their mail-drop key; they log in (go-sendxmpp,
// with its own SASL) and get them; the archive's with filter works on
// sealed peers; a password change keeps the archive readable; and once the
// server is stopped, everything in data_dir plus parley's own code, short
// of the users' passwords, reads no body, no peer and no resource.
func TestUserDataSealedAtRest(t *testing.T) {
	needSlixmpp(t)
	sendxmpp := needTool(t, "go-sendxmpp", "go-sendxmpp")
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob", "carol"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/res-marker-alice", "pw")
			alice.send("<presence/>")
			alice.expect("own presence", isPresence("alice@localhost/res-marker-alice", ""))
			// Bob has never logged in: both go to his mail-drop.
			for _, body := range []string{"marker-offline-one", "marker-offline-two"} {
				alice.send("<message to='bob@localhost' type='chat'><body>%s</body></message>", body)
			}
			alice.expectNone("an error", 300*time.Millisecond, func(el *xmlstream.Element) bool { return el.Attr("type") == "error" })

			// Bob logs in with go-sendxmpp, which prints what it receives.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			cmd := sendxmppCmd(ctx, t, sendxmpp, append(sendxmppArgs(s, "bob@localhost", "pw", false), "-l")...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			sc := bufio.NewScanner(out)
			for len(seen) < 2 && sc.Scan() {
				for _, b := range []string{"marker-offline-one", "marker-offline-two"} {
					if strings.Contains(sc.Text(), b) {
						seen[b] = true
					}
				}
			}
			cancel()
			cmd.Wait()
			if len(seen) != 2 {
				t.Fatalf("go-sendxmpp as bob printed %v of the two offline messages", seen)
			}

			// The archive, sealed for bob, filtered by bare and full peer.
			bob := s.connect(t, "bob@localhost/res-marker-bob", "pw")
			for _, c := range []struct {
				with string
				n    int
			}{{"alice@localhost", 2}, {"alice@localhost/res-marker-alice", 2}, {"alice@localhost/elsewhere", 0}, {"carol@localhost", 0}} {
				results, _ := mamQuery(t, bob, "w"+c.with, "", "<field var='with'><value>"+c.with+"</value></field>")
				if len(results) != c.n {
					t.Fatalf("bob's archive with=%s: %d results, want %d", c.with, len(results), c.n)
				}
			}

			// He changes his password (XEP-0077) and logs in with the
			// new one: the archive still opens.
			if r := bob.iq("<iq type='set'><query xmlns='jabber:iq:register'><username>bob</username><password>pw2</password></query></iq>"); r.Attr("type") != "result" {
				t.Fatalf("password change: %s", r)
			}
			bob2 := s.connect(t, "bob@localhost/res-marker-bob2", "pw2")
			results, _ := mamQuery(t, bob2, "after", "", "<field var='with'><value>alice@localhost</value></field>")
			if len(results) != 2 || !strings.Contains(results[0].String(), "marker-offline-one") {
				t.Fatalf("bob's archive after a password change: %v", results)
			}

			// Carol, who never logged in, gets one more while away.
			alice.send("<message to='carol@localhost' type='chat'><body>marker-offline-three</body></message>")
			alice.expectNone("an error", 300*time.Millisecond, func(el *xmlstream.Element) bool { return el.Attr("type") == "error" })
			s.stop()

			cfg, err := config.Load(s.config)
			if err != nil {
				t.Fatal(err)
			}
			markers := []string{"marker-offline", "res-marker"}
			if driver.name == "sqlite" {
				grepDataDir(t, cfg.DataDir, markers)
			}
			attackAtRest(t, cfg, markers)
		})
	}
}

// grepDataDir searches every file under dir for the markers.
func grepDataDir(t *testing.T, dir string, markers []string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s holds %q in clear", path, m)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking %s: %v (%d files)", dir, err, files)
	}
}

// attackAtRest opens the stopped server's database with parley's own code
// and the server's secret from data_dir, as whoever copied the disk could,
// and tries every key it has: none opens an offline message, an archived
// message or an archived peer.
func attackAtRest(t *testing.T, cfg config.Config, markers []string) {
	t.Helper()
	ctx := context.Background()
	secret, err := os.ReadFile(filepath.Join(cfg.DataDir, "server.secret"))
	if err != nil {
		t.Fatal(err)
	}
	serverKey := func(purpose string) []byte {
		k, err := hkdf.Key(sha256.New, secret, nil, "parley "+purpose, 32)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	store, err := parleyserver.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	v := vault.New(store.Keys(), serverKey("blind index"), vault.Options{})
	defer v.Stop()
	sealers := map[string]*seal.Sealer{}
	for _, p := range []string{"offline messages", "archive"} {
		if sealers[p], err = seal.New(serverKey(p)); err != nil {
			t.Fatal(err)
		}
	}
	offline, archived := 0, 0
	for _, owner := range []string{"alice@localhost", "bob@localhost", "carol@localhost"} {
		// The stored verifiers are all there is of the password: used
		// as if they were the ClientKey, they unwrap nothing.
		acct, err := store.Users().Get(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range acct.Credentials {
			for _, guess := range [][]byte{c.StoredKey, c.ServerKey} {
				if err := v.UnlockClientKey(ctx, owner, c.Hash, guess); err == nil {
					t.Fatalf("the stored %s verifier of %s unwrapped its key", c.Hash, owner)
				}
			}
		}
		msgs, err := store.Offline().List(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			offline++
			tryOpen(t, ctx, v, sealers["offline messages"], owner, m.Data, markers)
		}
		page, err := store.Archive().Query(ctx, owner, storage.ArchiveQuery{Max: storage.MaxArchivePage})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			archived++
			if m.With != "" {
				t.Errorf("archived message %s of %s names its peer %q in clear", m.ID, owner, m.With)
			}
			tryOpen(t, ctx, v, sealers["archive"], owner, m.Data, markers)
		}
	}
	// Not a vacuous pass: the data is there, only closed.
	if offline == 0 || archived < 5 {
		t.Fatalf("%d offline and %d archived messages at rest; the test sent more", offline, archived)
	}
}

// tryOpen checks that blob is sealed by the vault, that the server's key
// and a vault with no user's key held do not open it, and that its bytes
// hold no marker.
func tryOpen(t *testing.T, ctx context.Context, v *vault.Vault, s *seal.Sealer, owner string, blob []byte, markers []string) {
	t.Helper()
	if !vault.IsVault(blob) {
		t.Errorf("a row of %s is not sealed for its owner (format %d)", owner, seal.Format(blob))
	}
	for _, m := range markers {
		if bytes.Contains(blob, []byte(m)) {
			t.Errorf("a row of %s holds %q", owner, m)
		}
	}
	if _, err := v.Open(ctx, owner, blob, nil); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("opening a row of %s without the password: %v, want ErrLocked", owner, err)
	}
	// Whatever additional data it was sealed with, the server's key is
	// refused by the format before any of it counts.
	if _, err := s.Open(blob, nil); err == nil {
		t.Errorf("the server's key opened a row of %s", owner)
	}
}

// TestSealedMigrationAndReset: data written before the user had a key
// (under the server's key, peer in clear) stays readable and is sealed
// after their login; a first login through one SCRAM hash makes the key
// with that wrap only, a PLAIN login adds the others; and an admin reset
// says, in the command's output, that sealed data is lost, unless the
// user is logged in, when the key is kept.
func TestSealedMigrationAndReset(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n"})
	for _, u := range []string{"admin", "alice", "dave", "erin"} {
		s.addUser(u+"@localhost", "pw")
	}
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "data", "parley.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	// Dave is as if from before sealing: no keys. (This connection does
	// not turn foreign keys on: the wraps are deleted by name.)
	for _, q := range []string{`DELETE FROM user_key_wraps WHERE owner = 'dave@localhost'`, `DELETE FROM user_keys WHERE owner = 'dave@localhost'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	alice := s.connect(t, "alice@localhost/desk", "pw")
	for _, body := range []string{"marker-legacy-one", "marker-legacy-two"} {
		alice.send("<message to='dave@localhost' type='chat'><body>%s</body></message>", body)
	}
	alice.expectNone("an error", 300*time.Millisecond, func(el *xmlstream.Element) bool { return el.Attr("type") == "error" })
	if n := count(`SELECT COUNT(*) FROM archive WHERE owner = 'dave@localhost' AND with_full = 'alice@localhost/desk' AND reseal = 1`); n != 2 {
		t.Fatalf("%d archived rows of dave under the server key, want 2", n)
	}

	// First login through SCRAM-SHA-256: the key is made, wrapped for it.
	if r := s.slixmppLogin(t, "--jid", "dave@localhost", "--password", "pw", "--port", portOf(s.starttls), "--mech", "SCRAM-SHA-256", "--no-channel-binding"); !r.Authenticated {
		t.Fatalf("dave's SCRAM login: %+v", r)
	}
	if n := count(`SELECT COUNT(*) FROM user_key_wraps WHERE owner = 'dave@localhost' AND hash = 'SHA-256'`); n != 1 || count(`SELECT COUNT(*) FROM user_key_wraps WHERE owner = 'dave@localhost'`) != 1 {
		t.Fatalf("after a SCRAM-SHA-256 login dave's key has %d wraps, want only SHA-256", count(`SELECT COUNT(*) FROM user_key_wraps WHERE owner = 'dave@localhost'`))
	}
	// The resealing runs in the background after the login: wait for
	// it (bounded), then no peer is in clear.
	deadline := time.Now().Add(20 * time.Second)
	for count(`SELECT COUNT(*) FROM archive WHERE owner = 'dave@localhost' AND (with_full <> '' OR reseal = 1)`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("dave's archive was not resealed within 20s of his login")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A PLAIN login adds the missing wraps.
	if r := s.slixmppLogin(t, "--jid", "dave@localhost", "--password", "pw", "--port", portOf(s.starttls), "--mech", "PLAIN"); !r.Authenticated {
		t.Fatalf("dave's PLAIN login: %+v", r)
	}
	if n := count(`SELECT COUNT(*) FROM user_key_wraps WHERE owner = 'dave@localhost'`); n != 3 {
		t.Fatalf("after a PLAIN login dave's key has %d wraps, want 3", n)
	}

	dave := s.connect(t, "dave@localhost/phone", "pw")
	dave.send("<presence/>")
	dave.expect("the first legacy message", isMessage("alice@localhost/desk", "marker-legacy-one"))
	dave.expect("the second legacy message", isMessage("alice@localhost/desk", "marker-legacy-two"))
	if results, _ := mamQuery(t, dave, "legacy", "", "<field var='with'><value>alice@localhost/desk</value></field>"); len(results) != 2 {
		t.Fatalf("dave's resealed archive with alice's full JID: %d results, want 2", len(results))
	}

	// An admin changes dave's password while he is logged in: his key
	// is wrapped again, nothing is lost.
	ad := s.connect(t, "admin@localhost/console", "pw")
	cmd := completed(t, "change-user-password", runCommand(t, ad, nsAdmin+"#change-user-password", map[string][]string{
		"accountjid": {"dave@localhost"}, "password": {"pw2"}}))
	if note := cmd.Child(nsCommands, "note"); note == nil || strings.Contains(note.Text(), "no longer be read") {
		t.Fatalf("change-user-password for a logged-in user: %s", cmd)
	}
	dave2 := s.connect(t, "dave@localhost/tablet", "pw2")
	if results, _ := mamQuery(t, dave2, "kept", "", "<field var='with'><value>alice@localhost</value></field>"); len(results) != 2 {
		t.Fatalf("dave's archive after an admin change while logged in: %d results, want 2", len(results))
	}

	// Erin is not logged in: both kinds of reset say what it costs.
	cmd = completed(t, "change-user-password", runCommand(t, ad, nsAdmin+"#change-user-password", map[string][]string{
		"accountjid": {"erin@localhost"}, "password": {"pw2"}}))
	if note := cmd.Child(nsCommands, "note"); note == nil || !strings.Contains(note.Text(), "can no longer be read") {
		t.Fatalf("change-user-password for a user who is away: %s", cmd)
	}
	out, err := s.parley("", "user", "passwd", "erin@localhost", "--password", "pw3")
	if err != nil || !strings.Contains(out, "sealed data lost") {
		t.Fatalf("parley user passwd: %v\n%s", err, out)
	}
	if r := s.slixmppLogin(t, "--jid", "erin@localhost", "--password", "pw3", "--port", portOf(s.starttls)); !r.Authenticated {
		t.Fatalf("erin cannot log in after the reset: %+v", r)
	}
}

// archivedBodies asks a's archive for its messages with peer and returns
// their bodies in order.
func archivedBodies(t *testing.T, a *agent, queryid, peer string) []string {
	t.Helper()
	results, _ := mamQuery(t, a, queryid, "", "<field var='with'><value>"+peer+"</value></field>")
	var out []string
	for _, r := range results {
		fwd := r.Child("urn:xmpp:mam:2", "result").Child("urn:xmpp:forward:0", "forwarded")
		if fwd == nil || fwd.Child("jabber:client", "message") == nil {
			t.Fatalf("a MAM result without a forwarded message: %s", r)
		}
		out = append(out, fwd.Child("jabber:client", "message").Child("jabber:client", "body").Text())
	}
	return out
}

// isNotice matches a message from the server whose body holds text.
func isNotice(text string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		b := el.Child("jabber:client", "body")
		return el.Name.Local == "message" && el.Attr("from") == "localhost" && b != nil && strings.Contains(b.Text(), text)
	}
}

// TestUserPasswdWhileServing is issue 16's admin reset with the server
// running: `parley user passwd` asks the server, which holds the key of a
// user who is logged in and wraps that same key under the new password,
// so the user keeps the archive from before and what arrives after; for
// a user who is away it says sealed data is lost, and what arrives after
// the reset is sealed to the new keys, not to the old ones the server
// had cached. `parley user del` ends the sessions of the account it
// deletes.
func TestUserPasswdWhileServing(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := s.connect(t, "alice@localhost/desk", "pw")
	bob := s.connect(t, "bob@localhost/desk", "pw")
	for _, a := range []*agent{alice, bob} {
		a.send("<presence/>")
		a.expect("its own presence", isPresence(a.name, ""))
	}
	noError := func(el *xmlstream.Element) bool { return el.Attr("type") == "error" }
	for _, body := range []string{"marker-before-one", "marker-before-two"} {
		bob.send("<message to='alice@localhost' type='chat'><body>%s</body></message>", body)
		alice.expect(body, isMessage("bob@localhost/desk", body))
	}
	// Carol has not logged in since the server started: hers go to her
	// mail-drop, whose public key the server now has cached.
	bob.send("<message to='carol@localhost' type='chat'><body>marker-carol-before</body></message>")
	bob.expectNone("an error", 300*time.Millisecond, noError)

	out, err := s.parley("", "user", "passwd", "alice@localhost", "--password", "pw2")
	if err != nil || !strings.Contains(out, "no sealed data lost") || strings.Contains(out, "sealed data lost:") {
		t.Fatalf("parley user passwd for a logged-in user: %v\n%s", err, out)
	}
	// Her session goes on, and what it gets now is sealed under the
	// same key.
	bob.send("<message to='alice@localhost' type='chat'><body>marker-after</body></message>")
	alice.expect("a message after the change", isMessage("bob@localhost/desk", "marker-after"))
	if r := s.slixmppLogin(t, "--jid", "alice@localhost", "--password", "pw", "--port", portOf(s.starttls)); r.Authenticated {
		t.Fatal("the old password still logs in")
	}
	alice.op("close")
	alice.waitEvent("disconnected")
	alice2 := s.connect(t, "alice@localhost/phone", "pw2")
	if got := strings.Join(archivedBodies(t, alice2, "kept", "bob@localhost"), " "); got != "marker-before-one marker-before-two marker-after" {
		t.Fatalf("alice's archive after the change: %q", got)
	}

	out, err = s.parley("", "user", "passwd", "carol@localhost", "--password", "pw2")
	if err != nil || !strings.Contains(out, "sealed data lost:") {
		t.Fatalf("parley user passwd for a user who is away: %v\n%s", err, out)
	}
	bob.send("<message to='carol@localhost' type='chat'><body>marker-carol-after</body></message>")
	bob.expectNone("an error", 300*time.Millisecond, noError)
	carol := s.connect(t, "carol@localhost/desk", "pw2")
	carol.send("<presence/>")
	carol.expect("the message sent after the reset", isMessage("bob@localhost/desk", "marker-carol-after"))
	carol.expect("the notice of the offline message lost to the reset", isNotice("1 of your stored offline messages were sealed under your key from before an admin reset your password"))
	if got := strings.Join(archivedBodies(t, carol, "reset", "bob@localhost"), " "); got != "marker-carol-after" {
		t.Fatalf("carol's archive after the reset: %q, want only what came after", got)
	}
	carol.expect("the notice of the archived message lost to the reset", isNotice("1 of your stored archived messages were sealed under your key from before an admin reset your password"))

	dave := s.connect(t, "dave@localhost/desk", "pw")
	out, err = s.parley("", "user", "del", "dave@localhost")
	if err != nil || !strings.Contains(out, "1 sessions ended") || !strings.Contains(out, "del done") {
		t.Fatalf("parley user del for a logged-in user: %v\n%s", err, out)
	}
	dave.waitEvent("disconnected")
	if r := s.slixmppLogin(t, "--jid", "dave@localhost", "--password", "pw", "--port", portOf(s.starttls)); r.Authenticated {
		t.Fatal("a deleted account still logs in")
	}
	if out, err := s.parley("", "user", "passwd", "dave@localhost", "--password", "x"); err == nil || !strings.Contains(out, "does not exist") {
		t.Fatalf("parley user passwd for a deleted account: %v\n%s", err, out)
	}

	// The logins above were served by keys still held from before (the
	// grace): at rest, the new passwords alone must open them. Alice's
	// rows are all under the key her new password unwraps; carol's
	// first is under her old key, the one after the reset under the
	// new.
	s.stop()
	if same, other := rowsUnderKey(t, s, "alice@localhost", "pw2"); same != 3 || other != 0 {
		t.Fatalf("alice's archive at rest: %d rows under the key of her new password, %d under another", same, other)
	}
	if same, other := rowsUnderKey(t, s, "carol@localhost", "pw2"); same != 1 || other != 1 {
		t.Fatalf("carol's archive at rest: %d rows under the key of her new password, %d under another; want 1 and 1", same, other)
	}
}

// rowsUnderKey unlocks owner's key at rest with password, as a login
// does, and counts the archive rows sealed under it and under another
// key. The key's identity is in each blob, so the row's additional data
// (the archive module's business) is not needed to tell them apart.
func rowsUnderKey(t *testing.T, s *server, owner, password string) (same, other int) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	store, err := parleyserver.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	v := vault.New(store.Keys(), nil, vault.Options{})
	defer v.Stop()
	acct, err := store.Users().Get(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.UnlockPassword(ctx, owner, password, acct.Credentials); err != nil || !v.Held(owner) {
		t.Fatalf("the password of %s does not unwrap its key at rest: %v", owner, err)
	}
	page, err := store.Archive().Query(ctx, owner, storage.ArchiveQuery{Max: storage.MaxArchivePage})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		_, err := v.Open(ctx, owner, m.Data, nil)
		switch {
		case errors.Is(err, seal.ErrWrongKey):
			other++
		case errors.Is(err, seal.ErrTampered):
			same++ // the right key; nil is not the row's additional data
		default:
			t.Fatalf("opening a row of %s with a wrong additional data: %v", owner, err)
		}
	}
	return same, other
}
