package integration

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// TestMessageArchive: one-to-one messages are archived on both sides with
// stanza ids, paged with RSM and filtered, and offline messages are in
// the archive too (XEP-0313, XEP-0359).
func TestMessageArchive(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			for _, u := range []string{"alice", "bob", "carol"} {
				s.addUser(u+"@localhost", "pw")
			}
			alice := s.connect(t, "alice@localhost/phone", "pw")
			alice.send("<presence/>")
			alice.expect("own presence", isPresence("alice@localhost/phone", ""))
			bob := s.connect(t, "bob@localhost/desk", "pw")
			for i := range 5 {
				bob.send("<message to='alice@localhost' type='chat' id='m%d'><body>msg %d</body></message>", i, i)
			}
			var ids []string
			for i := range 5 {
				m := alice.expect("a message", isMessage("bob@localhost/desk", "msg "+string(rune('0'+i))))
				sid := m.Child("urn:xmpp:sid:0", "stanza-id")
				if sid == nil || sid.Attr("by") != "alice@localhost" || sid.Attr("id") == "" {
					t.Fatalf("delivered without a stanza-id by the archive: %s", m)
				}
				ids = append(ids, sid.Attr("id"))
			}
			// A message to offline carol: alice's archive and carol's.
			alice.send("<message to='carol@localhost' type='chat'><body>to offline carol</body></message>")

			// Last page of two, then the page before it.
			results, fin := mamQuery(t, alice, "q1", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>", "")
			if len(results) != 2 || !strings.Contains(results[1].String(), "to offline carol") {
				t.Fatalf("last page: %v", results)
			}
			first := fin.FirstElement().Child("http://jabber.org/protocol/rsm", "first").Text()
			results, _ = mamQuery(t, alice, "q2", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before>"+first+"</before></set>", "")
			if len(results) != 2 || !strings.Contains(results[0].String(), "msg 2") || !strings.Contains(results[1].String(), "msg 3") {
				t.Fatalf("previous page: %v", results)
			}
			// Filter by correspondent.
			results, fin = mamQuery(t, alice, "q3", "", "<field var='with'><value>bob@localhost</value></field>")
			if len(results) != 5 || fin.Attr("complete") != "true" {
				t.Fatalf("with=bob: %d results, fin %s", len(results), fin)
			}
			if got := results[0].Child("urn:xmpp:mam:2", "result").Attr("id"); got != ids[0] {
				t.Errorf("archive id %q differs from the delivered stanza-id %q", got, ids[0])
			}
			// Offline carol: her archive has the message too, so a client
			// that syncs with MAM is not flooded on login.
			carol := s.connect(t, "carol@localhost/new", "pw")
			results, _ = mamQuery(t, carol, "q4", "", "")
			if len(results) != 1 || !strings.Contains(results[0].String(), "to offline carol") {
				t.Fatalf("carol's archive: %v", results)
			}
			// Nobody reads someone else's archive.
			r := bob.iq("<iq type='set' to='alice@localhost'><query xmlns='urn:xmpp:mam:2' queryid='x'/></iq>")
			if r.Attr("type") != "error" {
				t.Errorf("bob queried alice's archive: %s", r)
			}
		})
	}
}

// mamQuery runs a MAM query and returns the result messages and <fin/>.
func mamQuery(t *testing.T, a *agent, queryid, rsm, fields string) ([]*xmlstream.Element, *xmlstream.Element) {
	t.Helper()
	form := ""
	if fields != "" {
		form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" + fields + "</x>"
	}
	r := a.iq("<iq type='set'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s%s</query></iq>", queryid, form, rsm)
	if r.Attr("type") != "result" {
		t.Fatalf("MAM query %s: %s", queryid, r)
	}
	fin := r.Child("urn:xmpp:mam:2", "fin")
	if fin == nil {
		t.Fatalf("MAM answer without <fin/>: %s", r)
	}
	// The results came before the answer, so they are all queued now.
	a.mu.Lock()
	defer a.mu.Unlock()
	var out, rest []*xmlstream.Element
	for _, el := range a.stanzas {
		if res := el.Child("urn:xmpp:mam:2", "result"); res != nil && res.Attr("queryid") == queryid {
			out = append(out, el)
		} else {
			rest = append(rest, el)
		}
	}
	a.stanzas = rest
	return out, fin
}

// TestArchiveMovedRowDetected is issue 10 item 9 at the protocol level:
// a row whose conversation column is changed in the database (moving a
// message into another conversation) is withheld, the count of the page
// stays honest, and the owner is told once by the server.
func TestArchiveMovedRowDetected(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	for _, u := range []string{"alice", "bob", "carol"} {
		s.addUser(u+"@localhost", "pw")
	}
	alice := s.connect(t, "alice@localhost/phone", "pw")
	for i := range 3 {
		alice.send("<message to='bob@localhost' type='chat'><body>to bob %d</body></message>", i)
	}
	alice.send("<message to='carol@localhost' type='chat'><body>to carol</body></message>")
	if results, _ := mamQuery(t, alice, "before", "", ""); len(results) != 4 {
		t.Fatalf("%d archived before the move, want 4", len(results))
	}
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "data", "parley.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The intruder moves one message to bob into the conversation with
	// carol: the peer is sealed, and the row only has blind indexes of
	// it, but the conversation with carol's index is there to copy
	// (issue 16).
	res, err := db.Exec(`UPDATE archive SET with_bare_index = (
		SELECT with_bare_index FROM archive WHERE owner = 'alice@localhost' ORDER BY seq DESC LIMIT 1)
		WHERE seq = (SELECT MIN(seq) FROM archive WHERE owner = 'alice@localhost')`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("moving a row: %v (%d rows)", err, n)
	}
	results, fin := mamQuery(t, alice, "carol", "", "<field var='with'><value>carol@localhost</value></field>")
	if len(results) != 1 || !strings.Contains(results[0].String(), "to carol") {
		t.Errorf("conversation with carol: %v", results)
	}
	if c := fin.FirstElement().Child("http://jabber.org/protocol/rsm", "count"); c == nil || c.Text() != "1" || fin.Attr("complete") != "true" {
		t.Errorf("fin %s, want count 1, complete", fin)
	}
	notice := alice.expect("a notice from the server", func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && el.Attr("from") == "localhost"
	})
	if body := notice.Child("jabber:client", "body"); body == nil || !strings.Contains(body.Text(), "1 of your stored archived messages could not be verified") {
		t.Errorf("notice %s", notice)
	}
	// Told once: the same query again brings no second notice.
	mamQuery(t, alice, "again", "", "<field var='with'><value>carol@localhost</value></field>")
	alice.expectNone("a second notice", 300*time.Millisecond, func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && el.Attr("from") == "localhost"
	})
}
