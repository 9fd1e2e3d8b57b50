package integration

import (
	"bufio"
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
	"parley/internal/seal"
	parleyserver "parley/internal/server"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// TestSealedAtRest follows issue 16 with real clients: messages to a user
// who is away are sealed to their mail-drop key; they log in (go-sendxmpp,
// with its own SASL) and get them; the archive's with filter works on
// sealed peers; a password change keeps the archive readable; and once the
// server is stopped, everything in data_dir plus parley's own code, short
// of the users' passwords, reads no body, no peer and no resource.
func TestSealedAtRest(t *testing.T) {
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
