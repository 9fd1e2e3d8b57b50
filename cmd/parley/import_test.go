package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"parley/internal/storage/storagetest"
)

const testRooms = `<rooms xmlns='urn:parley:rooms:0'>
<room jid='orchard@conference.localhost'>
<config>{"name":"The Orchard","persistent":true,"secret":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}</config>
<affiliation jid='juliet@localhost' affiliation='owner'/>
<affiliation jid='tybalt@capulet.lit' affiliation='outcast'>quarrelsome</affiliation>
<archived id='r1' stamp='2020-05-06T07:08:09.000010Z'><message xmlns='jabber:client' from='orchard@conference.localhost/Juliet' type='groupchat'><body>hello</body></message></archived>
</room>
</rooms>
`

// romeo has a node whose configuration is stricter than parley's default
// for its name: the items must not become visible to his contacts.
const testRomeo = `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='romeo' password='wherefore'>
<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:example:notes'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>10</value></field><field var='pubsub#notification_type'><value>headline</value></field></x></configure></pubsub>
<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:example:notes'><item id='n1'><note xmlns='urn:example:notes'>secret</note></item></items></pubsub>
</user></host></server-data>`

// testConfig writes a configuration with its own data directory (and so
// its own server secret) on the given store.
func testConfig(t *testing.T, store func(*testing.T) (string, string)) string {
	driver, dsn := store(t)
	t.Helper()
	dir := t.TempDir()
	cfg := "hosts = [\"localhost\", \"capulet.lit\"]\ndata_dir = \"" + filepath.ToSlash(dir) + "\"\n" +
		"[retention]\narchive = \"never\"\n[storage]\ndriver = \"" + driver + "\"\ndsn = \"" + dsn + "\"\n"
	name := filepath.Join(dir, "parley.toml")
	if err := os.WriteFile(name, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func parley(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

// readDir returns the files of dir by name.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func TestImportExportRoundTrip(t *testing.T) {
	stores := map[string]func(t *testing.T) (string, string){
		"sqlite":   func(t *testing.T) (string, string) { return "sqlite", "" },
		"postgres": func(t *testing.T) (string, string) { return "postgres", storagetest.PostgresDSN(t) },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			for _, f := range []string{"prosody.xml", "ejabberd.xml"} {
				b, err := os.ReadFile(filepath.Join("..", "..", "internal", "pie", "testdata", f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(src, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(src, "rooms.xml"), []byte(testRooms), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "romeo.xml"), []byte(testRomeo), 0o600); err != nil {
				t.Fatal(err)
			}

			cfgA := testConfig(t, open)
			out, err := parley(t, "import", "--config", cfgA, src)
			// ejabberd.xml has two invalid users: reported, the rest imported.
			if err == nil || !strings.Contains(out, "ejabberd.xml: line 8, column 1: user bad user") ||
				!strings.Contains(out, "juliet@localhost: account created, 2 roster items") ||
				!strings.Contains(out, "tybalt@capulet.lit: account created, 1 roster items, 1 offline messages, 1 blocked JIDs") ||
				!strings.Contains(out, "total: 4 users read, 4 changed, 0 unchanged, 2 invalid, 0 failed; 1 rooms read, 1 changed") {
				t.Fatalf("first import: %v\n%s", err, out)
			}
			if users, err := parley(t, "user", "list", "--config", cfgA); err != nil || strings.Contains(users, "lady@") || !strings.Contains(users, "tybalt@capulet.lit") {
				t.Errorf("accounts after the import (the invalid user must be missing): %v\n%s", err, users)
			}
			out, _ = parley(t, "import", "--config", cfgA, src)
			if strings.Count(out, ": unchanged\n") != 5 || !strings.Contains(out, "0 changed, 4 unchanged") {
				t.Fatalf("second import changed something:\n%s", out)
			}

			first := filepath.Join(t.TempDir(), "first")
			if out, err := parley(t, "export", "--config", cfgA, "--rooms", first); err != nil {
				t.Fatalf("export: %v\n%s", err, out)
			}
			files := readDir(t, first)
			if r := files["romeo@localhost.xml"]; !strings.Contains(r, "<value>whitelist</value>") || !strings.Contains(r, ">10</value>") || !strings.Contains(r, "secret") {
				t.Errorf("romeo's node lost its configuration:\n%s", r)
			}
			if len(files) != 5 {
				t.Fatalf("exported %d files: %v", len(files), files)
			}
			j := files["juliet@localhost.xml"]
			for _, want := range []string{"SCRAM-SHA-1", "<group>Lovers</group>", "Juliet Capulet", "storage:rosternotes",
				"urn:xmpp:bookmarks:1", "<value>whitelist</value>", "What man art thou?", "2010-07-10T23:09:32.123456Z", "tybalt@capulet.lit"} {
				if !strings.Contains(j, want) {
					t.Errorf("export of juliet lacks %q:\n%s", want, j)
				}
			}
			if ty := files["tybalt@capulet.lit.xml"]; !strings.Contains(ty, "a plague o") || !strings.Contains(ty, "<blocklist") {
				t.Errorf("export of tybalt:\n%s", ty)
			}

			// Into an empty server with another secret: same data out.
			cfgB := testConfig(t, open)
			if out, err := parley(t, "import", "--config", cfgB, first); err != nil {
				t.Fatalf("import of the export: %v\n%s", err, out)
			}
			second := filepath.Join(t.TempDir(), "second")
			if out, err := parley(t, "export", "--config", cfgB, "--rooms", second); err != nil {
				t.Fatalf("second export: %v\n%s", err, out)
			}
			again := readDir(t, second)
			for name, want := range files {
				if again[name] != want {
					t.Errorf("%s differs after a round trip:\n%s\n---\n%s", name, want, again[name])
				}
			}
		})
	}
}

func TestImportRefusesMalformedFile(t *testing.T) {
	cfg := testConfig(t, func(*testing.T) (string, string) { return "sqlite", "" })
	bad := filepath.Join(t.TempDir(), "bad.xml")
	if err := os.WriteFile(bad, []byte("<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>\n<user name='a' password='p'>\n<vCard xmlns='vcard-temp'></VCARD></user></host></server-data>"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := parley(t, "import", "--config", cfg, bad)
	if err == nil || !strings.Contains(err.Error(), "bad.xml: line 3, column 1") {
		t.Fatalf("error %v, output %s", err, out)
	}
	if out, _ := parley(t, "user", "list", "--config", cfg); out != "" {
		t.Errorf("accounts after a failed import: %q", out)
	}
}
