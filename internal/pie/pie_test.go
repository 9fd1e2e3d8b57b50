package pie

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"parley/internal/storage"
)

func readFile(t *testing.T, name string) *File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func TestReadProsody(t *testing.T) {
	f := readFile(t, "prosody.xml")
	if len(f.Invalid) != 0 || len(f.Users) != 2 {
		t.Fatalf("users %d, invalid %v", len(f.Users), f.Invalid)
	}
	u := f.Users[0]
	if u.JID != "juliet@localhost" {
		t.Errorf("JID %q (the name is normalised)", u.JID)
	}
	if len(u.Credentials) != 1 || u.Credentials[0].Hash != "SHA-1" || u.Credentials[0].Iterations != 10000 ||
		len(u.Credentials[0].StoredKey) != 20 || string(u.Credentials[0].Salt) != "fd4f16b7-f1a7-4e93-a716-0d7619f8eb48" {
		t.Errorf("credentials %+v", u.Credentials)
	}
	want := []storage.RosterItem{
		{Contact: "romeo@montague.lit", Name: "Romeo", Groups: []string{"Friends", "Lovers"}, Subscription: "both"},
		{Contact: "nurse@capulet.lit", Subscription: "none", Ask: true},
	}
	if !reflect.DeepEqual(u.Roster, want) {
		t.Errorf("roster %+v", u.Roster)
	}
	if !reflect.DeepEqual(u.Pending, []string{"tybalt@capulet.lit"}) {
		t.Errorf("pending %v", u.Pending)
	}
	if u.VCard == nil || u.VCard.Child(NSVCard, "FN").Text() != "Juliet Capulet" {
		t.Errorf("vCard %v", u.VCard)
	}
	if len(u.Private) != 2 || u.Private[0].Name.Space != "storage:rosternotes" {
		t.Errorf("private %v", u.Private)
	}
	if len(u.PEP) != 1 || u.PEP[0].Name != "urn:xmpp:bookmarks:1" || u.PEP[0].Config == nil ||
		len(u.PEP[0].Items) != 1 || u.PEP[0].Items[0].ID != "orchard@chat.capulet.lit" {
		t.Errorf("pep %+v", u.PEP)
	}
	if len(u.Archive) != 2 || u.Archive[1].ID != "5d398-28273-f7382" ||
		!u.Archive[1].Stamp.Equal(time.Date(2010, 7, 10, 23, 9, 32, 123456000, time.UTC)) ||
		u.Archive[0].Message.Attr("from") != "romeo@montague.lit/orchard" {
		t.Errorf("archive %+v", u.Archive)
	}
	if n := f.Users[1]; n.JID != "nurse@localhost" || n.Password != "s3cr&t" {
		t.Errorf("second user %+v", n)
	}
	if f.Users[0].Line != 1 || f.Users[0].Column != 59 {
		t.Errorf("position %d:%d", f.Users[0].Line, f.Users[0].Column)
	}
}

func TestReadEjabberd(t *testing.T) {
	f := readFile(t, "ejabberd.xml")
	if len(f.Users) != 1 {
		t.Fatalf("users %+v", f.Users)
	}
	u := f.Users[0]
	if u.JID != "tybalt@capulet.lit" || u.Password != "sword" || u.Line != 3 {
		t.Errorf("user %s %q line %d", u.JID, u.Password, u.Line)
	}
	if len(u.Offline) != 1 || u.Offline[0].Name.Space != NSClient {
		t.Errorf("offline %v", u.Offline)
	}
	// Only the rule that denies everything is a block.
	if !reflect.DeepEqual(u.Blocked, []string{"romeo@montague.lit"}) {
		t.Errorf("blocked %v", u.Blocked)
	}
	if len(f.Invalid) != 2 {
		t.Fatalf("invalid %v", f.Invalid)
	}
	if e := f.Invalid[0]; e.Line != 8 || !strings.Contains(e.Error(), "bad user") {
		t.Errorf("first invalid: %v", e)
	}
	if e := f.Invalid[1]; e.Line != 9 || !strings.Contains(e.Error(), "stored-key is 3 bytes, not 32") {
		t.Errorf("second invalid: %v", e)
	}
}

func TestReadIncludes(t *testing.T) {
	f := readFile(t, "main.xml")
	if !reflect.DeepEqual(f.Includes, []string{"ejabberd.xml"}) || len(f.Users) != 0 {
		t.Errorf("%+v", f)
	}
}

func TestMalformedNamesThePlace(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='h'>\n<user name='a' password='p'>\n<vCard xmlns='vcard-temp'></vcard>\n</user></host></server-data>", "line 3, column 1"},
		{"<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='h'>\n<user name='a' password='p'/>", "line 3, column 30: the file ends inside <host/>"},
		{"<foo/>", "line 1, column 1"},
		{"<server-data xmlns='urn:xmpp:pie:0'>\n  <host jid='no/domain'></host></server-data>", "line 2, column 3"},
		{"<server-data xmlns='urn:xmpp:pie:0'></server-data>junk", "content after"},
	} {
		_, err := Read([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	for _, name := range []string{"prosody.xml", "ejabberd.xml"} {
		for _, u := range readFile(t, name).Users {
			var buf bytes.Buffer
			if err := Write(&buf, u); err != nil {
				t.Fatal(err)
			}
			f, err := Read(buf.Bytes())
			if err != nil || len(f.Users) != 1 || len(f.Invalid) != 0 {
				t.Fatalf("%s: reading back: %v %+v\n%s", u.JID, err, f, buf.String())
			}
			got := f.Users[0]
			got.Line, got.Column, u.Line, u.Column = 0, 0, 0, 0
			var again bytes.Buffer
			if err := Write(&again, got); err != nil {
				t.Fatal(err)
			}
			if again.String() != buf.String() {
				t.Errorf("%s: not the same after a round trip:\n%s\n%s", u.JID, buf.String(), again.String())
			}
			if !reflect.DeepEqual(got.Roster, u.Roster) || !reflect.DeepEqual(got.Credentials, u.Credentials) || got.Password != u.Password {
				t.Errorf("%s: account or roster changed: %+v", u.JID, got)
			}
		}
	}
}

func TestRoomsRoundTrip(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "rooms.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !IsRooms(data) {
		t.Fatal("not recognised as a rooms file")
	}
	rooms, err := ReadRooms(data)
	if err != nil || len(rooms) != 1 || len(rooms[0].Affiliations) != 2 || rooms[0].Affiliations[1].Reason != "quarrelsome" || len(rooms[0].Archive) != 1 {
		t.Fatalf("%v %+v", err, rooms)
	}
	var buf bytes.Buffer
	if err := WriteRooms(&buf, rooms); err != nil {
		t.Fatal(err)
	}
	back, err := ReadRooms(buf.Bytes())
	if err != nil || !reflect.DeepEqual(back, rooms) {
		t.Errorf("%v\n%+v\n%+v", err, back, rooms)
	}
	if _, err := ReadRooms([]byte("<rooms xmlns='urn:parley:rooms:0'>\n<room jid='r@c.localhost'><config>{nope</config></room></rooms>")); err == nil || !strings.Contains(err.Error(), "line 2, column 1") {
		t.Errorf("broken configuration: %v", err)
	}
}
