package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// TestSealedAtRest plants markers over the wire as users would (a vCard
// name, a room's name, description, subject, password, messages and
// nicknames, an uploaded file's name and content), stops the server and
// searches every file of data_dir, the key file's directory and (on
// PostgreSQL) every table: none is there in clear. The key lives in
// storage.key_file outside data_dir. Started again, the server serves
// everything as before; a room password works right and fails wrong,
// over slixmpp and go-sendxmpp; uploads come back byte for byte; and
// random_resources gives every client a random resource.
func TestSealedAtRest(t *testing.T) {
	needSlixmpp(t)
	sendxmpp := needTool(t, "go-sendxmpp", "go-sendxmpp")
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) { sealedAtRest(t, driver, sendxmpp) })
	}
}

func sealedAtRest(t *testing.T, driver storeDriver, sendxmpp string) {
	var rnd [4]byte
	rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	mk := func(what string) string { return what + "Marker" + tag }
	markers := map[string]string{}
	for _, k := range []string{"VCardFN", "RoomName", "RoomDesc", "RoomSubject", "RoomBody", "SlixNick", "SendxmppNick", "SendxmppBody", "RoomPass", "UploadName", "UploadContent"} {
		markers[k] = mk(k)
	}

	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "parley.key")
	storage := "[storage]\n" + fmt.Sprintf("key_file = %q\n", keyFile) + strings.TrimPrefix(driver.toml, "[storage]\n")
	opts := serverOpts{https: true, extra: storage +
		"[privacy]\nrandom_resources = true\n" +
		"[upload]\nhost = \"upload.localhost\"\nmax_file_size = 1000000\n"}
	s := startServer(t, opts)
	dataDir := filepath.Join(s.dir, "data")
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	alice := s.connect(t, "alice@localhost/Conversations.phone", "pw")
	bob := s.connect(t, "bob@localhost/gajim.laptop", "pw")
	resource := regexp.MustCompile(`^(alice|bob)@localhost/parley-[0-9a-f]{12}$`)
	for _, a := range []*agent{alice, bob} {
		if !resource.MatchString(a.jid) {
			t.Errorf("random_resources: bound %q", a.jid)
		}
	}
	if alice.jid == bob.jid || strings.Contains(alice.jid, "Conversations") {
		t.Errorf("bound %q and %q", alice.jid, bob.jid)
	}

	// vCard.
	if r := alice.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>%s</FN></vCard></iq>", markers["VCardFN"]); r.Attr("type") != "result" {
		t.Fatalf("vCard set: %s", r)
	}

	// A persistent, password-protected room with a subject and messages.
	room := "sealed@conference.localhost"
	alice.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, markers["SlixNick"])
	alice.expect("the new room's self-presence", mucPresence(room+"/"+markers["SlixNick"], "110", "201"))
	r := alice.iq("<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomname'><value>%s</value></field>"+
		"<field var='muc#roomconfig_roomdesc'><value>%s</value></field>"+
		"<field var='muc#roomconfig_changesubject'><value>1</value></field>"+
		"<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomsecret'><value>%s</value></field></x></query></iq>",
		room, markers["RoomName"], markers["RoomDesc"], markers["RoomPass"])
	if r.Attr("type") != "result" {
		t.Fatalf("room configuration: %s", r)
	}
	// The owner's form does not show the password back.
	form := alice.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", room)
	if form.Attr("type") != "result" || strings.Contains(form.String(), markers["RoomPass"]) || !strings.Contains(form.String(), markers["RoomName"]) {
		t.Errorf("configuration form: %s", form)
	}
	alice.send("<message to='%s' type='groupchat'><subject>%s</subject></message>", room, markers["RoomSubject"])
	alice.send("<message to='%s' type='groupchat'><body>%s</body></message>", room, markers["RoomBody"])
	alice.expect("her message back", isMessage(room+"/"+markers["SlixNick"], markers["RoomBody"]))

	joinRoom := func(a *agent, nick, password string) *xmlstream.Element {
		a.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><password>%s</password></x></presence>", room, nick, password)
		return a.expect("the answer to joining", func(el *xmlstream.Element) bool {
			return el.Name.Local == "presence" && el.Attr("from") == room+"/"+nick
		})
	}
	if p := joinRoom(bob, "Bob", "wrong"); errorCondition(p) != "not-authorized" {
		t.Fatalf("join with a wrong password: %s", p)
	}
	if p := joinRoom(bob, "Bob", markers["RoomPass"]); p.Attr("type") != "" {
		t.Fatalf("join with the password: %s", p)
	}
	bob.expect("the history", isMessage(room+"/"+markers["SlixNick"], markers["RoomBody"]))

	// go-sendxmpp joins with the password too and speaks in the room.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := sendxmppCmd(ctx, t, sendxmpp, append(sendxmppArgs(s, "bob@localhost", "pw", false),
		"-c", "-a", markers["SendxmppNick"], "--muc-password", markers["RoomPass"], room)...)
	cmd.Stdin = strings.NewReader(markers["SendxmppBody"] + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp: %v\n%s", err, out)
	}
	alice.expect("go-sendxmpp's message in the room", isMessage(room+"/"+markers["SendxmppNick"], markers["SendxmppBody"]))
	// With a wrong password go-sendxmpp does not get in.
	wrong := sendxmppCmd(ctx, t, sendxmpp, append(sendxmppArgs(s, "bob@localhost", "pw", false),
		"-c", "-a", "Intruder", "--muc-password", "wrong", room)...)
	wrong.Stdin = strings.NewReader("should not arrive\n")
	wrong.CombinedOutput()
	alice.expectNone("a message from a wrong password", time.Second, isMessage(room+"/Intruder", "should not arrive"))

	// An upload over three chunks of encryption, with a marker in its
	// name and at both ends of its content.
	content := bytes.Repeat([]byte("0123456789abcdef"), 9000)
	rand.Read(content[1000:140000])
	copy(content, markers["UploadContent"])
	copy(content[len(content)-len(markers["UploadContent"]):], markers["UploadContent"])
	name := markers["UploadName"] + ".bin"
	c := uploadClient(t, s)
	resp, slot := requestSlot(t, alice, name, len(content), "application/octet-stream")
	if slot.put == "" {
		t.Fatalf("slot request: %s", resp)
	}
	if r, _ := httpDo(t, c, http.MethodPut, slot.put, content, map[string]string{"Authorization": slot.auth, "Content-Type": "application/octet-stream"}); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", r.Status)
	}
	download := func(when string) {
		t.Helper()
		r, got := httpDo(t, c, http.MethodGet, slot.get, nil, nil)
		if r.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
			t.Fatalf("%s: GET %s, %d bytes, identical %v", when, r.Status, len(got), bytes.Equal(got, content))
		}
		r, got = httpDo(t, c, http.MethodGet, slot.get, nil, map[string]string{"Range": "bytes=65530-131090"})
		if r.StatusCode != http.StatusPartialContent || !bytes.Equal(got, content[65530:131091]) {
			t.Fatalf("%s: range GET across chunks: %s, %d bytes", when, r.Status, len(got))
		}
	}
	download("before the restart")

	s.stop()
	<-s.done

	// Nothing in clear: every file of data_dir, the key's directory, and
	// on PostgreSQL every table. The account name is, which shows the
	// search reads the data at all.
	var dump []byte
	files := 0
	for _, dir := range []string{dataDir, keyDir} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for k, m := range markers {
				if bytes.Contains(b, []byte(m)) {
					t.Errorf("%s in clear in %s", k, path)
				}
			}
			dump = append(dump, b...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "server.secret")); !os.IsNotExist(err) {
		t.Errorf("a key in data_dir: %v", err)
	}
	if driver.name == "postgres" {
		tables := postgresDump(t, driver)
		for k, m := range markers {
			if strings.Contains(tables, m) || strings.Contains(tables, hex.EncodeToString([]byte(m))) {
				t.Errorf("%s in clear in the PostgreSQL tables", k)
			}
		}
		dump = append(dump, tables...)
	}
	if !bytes.Contains(dump, []byte("alice@localhost")) || files < 3 {
		t.Fatalf("the search did not read the data: %d files, account name found %v", files, bytes.Contains(dump, []byte("alice@localhost")))
	}

	// Started again on the same data and key, everything is served.
	s = launch(t, s.dir, s.config, opts)
	alice = s.connect(t, "alice@localhost/phone", "pw")
	bob = s.connect(t, "bob@localhost/laptop", "pw")
	if v := bob.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"); !strings.Contains(v.String(), markers["VCardFN"]) {
		t.Errorf("alice's vCard after the restart: %s", v)
	}
	info := bob.iq("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room)
	if !strings.Contains(info.String(), markers["RoomName"]) || !strings.Contains(info.String(), "muc_passwordprotected") {
		t.Errorf("the room's disco#info after the restart: %s", info)
	}
	if p := joinRoom(bob, "Bob", "wrong"); errorCondition(p) != "not-authorized" {
		t.Errorf("wrong password after the restart: %s", p)
	}
	if p := joinRoom(bob, "Bob", markers["RoomPass"]); p.Attr("type") != "" {
		t.Fatalf("the password after the restart: %s", p)
	}
	bob.expect("the history after the restart", isMessage(room+"/"+markers["SendxmppNick"], markers["SendxmppBody"]))
	bob.expect("the subject after the restart", func(el *xmlstream.Element) bool {
		sub := el.Child("jabber:client", "subject")
		return el.Name.Local == "message" && sub != nil && sub.Text() == markers["RoomSubject"]
	})
	c = uploadClient(t, s)
	download("after the restart")
}

// postgresDump is every row of every table of the test's schema, as
// text (bytea columns in hex).
func postgresDump(t *testing.T, driver storeDriver) string {
	t.Helper()
	m := regexp.MustCompile(`dsn = "([^"]+)"`).FindStringSubmatch(driver.toml)
	if m == nil {
		t.Fatalf("no dsn in %q", driver.toml)
	}
	db, err := sql.Open("pgx", m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatal("no tables in the test's schema")
	}
	var b strings.Builder
	for _, tb := range tables {
		rows, err := db.Query(fmt.Sprintf("SELECT row_to_json(t)::text FROM %q t", tb))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// TestKeyFileUnreadable: a key_file that exists but cannot be read stops
// the start with a message naming it, and the server makes no new key.
func TestKeyFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keydir") // a directory: it exists, it cannot be read as a key
	if err := os.Mkdir(keyFile, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "parley.toml")
	conf := fmt.Sprintf("data_dir = %q\n[storage]\nkey_file = %q\n[listen]\nc2s = \"127.0.0.1:0\"\nc2s_direct_tls = \"\"\ns2s = \"\"\n", filepath.Join(dir, "data"), keyFile)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "storage.key_file") || !strings.Contains(string(out), keyFile) {
		t.Fatalf("serve with an unreadable key_file: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "server.secret")); !os.IsNotExist(err) {
		t.Errorf("a key was made in data_dir: %v", err)
	}
}
