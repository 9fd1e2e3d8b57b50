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
