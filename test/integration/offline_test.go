package integration

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"parley/internal/xmlstream"
)

// TestOfflineStorageIsSealed checks what seed 003 asks for: an operator
// or intruder with the database can neither read offline messages nor
// alter one unnoticed.
func TestOfflineStorageIsSealed(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	s.addUser("dave@localhost", "pw")
	alice := s.connect(t, "alice@localhost/r", "pw")
	for _, body := range []string{"first", "Please send the money to account 3428953", "third"} {
		alice.send("<message to='dave@localhost' type='chat'><body>%s</body></message>", body)
	}
	alice.expectNone("an error", 500*time.Millisecond, func(el *xmlstream.Element) bool { return el.Attr("type") == "error" })

	db, err := sql.Open("sqlite", filepath.Join(s.dir, "data", "parley.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, data FROM offline_messages WHERE owner = 'dave@localhost' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	var first, second []byte
	for rows.Next() {
		var id int64
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("money")) || bytes.Contains(data, []byte("alice")) {
			t.Errorf("offline row %d is readable at rest: %q", id, data)
		}
		ids = append(ids, id)
		switch len(ids) {
		case 1:
			first = data
		case 2:
			second = data
		}
	}
	rows.Close()
	if len(ids) != 3 {
		t.Fatalf("%d offline rows, want 3", len(ids))
	}
	// The intruder flips one byte of the second message.
	second[len(second)/2] ^= 1
	if _, err := db.Exec("UPDATE offline_messages SET data = ? WHERE id = ?", second, ids[1]); err != nil {
		t.Fatal(err)
	}

	// And copies the first row over the third: a sealed record that
	// opened anywhere would deliver "first" twice.
	if _, err := db.Exec("UPDATE offline_messages SET data = ? WHERE id = ?", first, ids[2]); err != nil {
		t.Fatal(err)
	}

	dave := s.connect(t, "dave@localhost/r", "pw")
	dave.send("<presence/>")
	dave.expect("the first message", isMessage("alice@localhost/r", "first"))
	// The server tells dave, once, that two messages were withheld.
	notice := dave.expect("a notice from the server", func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && el.Attr("from") == "localhost"
	})
	if body := notice.Child("jabber:client", "body"); body == nil || !strings.Contains(body.Text(), "2 of your stored offline messages could not be verified") {
		t.Errorf("notice %s", notice)
	}
	dave.expectNone("the altered or copied message", 300*time.Millisecond, func(el *xmlstream.Element) bool {
		return strings.Contains(el.String(), "money") || isMessage("alice@localhost/r", "first")(el) || isMessage("alice@localhost/r", "third")(el)
	})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.Stderr(), "altered or damaged") {
		if time.Now().After(deadline) {
			t.Fatalf("the tampering was not reported in the log:\n%s", s.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
