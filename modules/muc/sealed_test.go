package muc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// rawDump is everything the room tables hold for roomJID, as a copy of
// the database would show it.
func rawDump(t *testing.T, h *modtest.Host) string {
	t.Helper()
	ctx := context.Background()
	raw := h.Storage().MUC()
	var b strings.Builder
	r, err := raw.Room(ctx, roomJID)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(r.Config)
	affs, err := raw.Affiliations(ctx, roomJID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range affs {
		b.WriteString(a.JID + " " + a.Reason + "\n")
	}
	page, err := raw.Messages(ctx, roomJID, storage.MUCQuery{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		b.Write(m.Data)
	}
	return b.String()
}

// TestRoomSealed: the name, description, subject, password, nicknames,
// bodies and affiliation reasons of a persistent room are not in the
// database in clear; the password is not even sealed, only hashed; the
// room works as before, and the owner's form does not show the password.
func TestRoomSealed(t *testing.T) {
	f := newFixture(t)
	f.createRoom(map[string]string{"persistentroom": "1", "roomname": "NameMarker", "roomdesc": "DescMarker",
		"passwordprotectedroom": "1", "roomsecret": "PassMarker", "changesubject": "1"})
	subj := xmlstream.New(stanza.NSClient, "message", "type", "groupchat")
	sub(subj, xmlstream.New(stanza.NSClient, "subject")).AddText("SubjectMarker")
	f.send(alice, roomJID, subj)
	if out := f.join(bob, "NickMarker", pw("PassMarker")); presenceFrom(out, "NickMarker", bob) == nil {
		t.Fatalf("join with the password: %v", out)
	}
	f.send(bob, roomJID, groupchat("BodyMarker"))
	ban := xmlstream.New(NSAdmin, "query")
	item := sub(ban, xmlstream.New(NSAdmin, "item", "jid", "mallory@example.org", "affiliation", "outcast"))
	sub(item, xmlstream.New(NSAdmin, "reason")).AddText("ReasonMarker")
	if out := f.iq(alice, roomJID, "set", ban); typeOf(out, alice) != "result" {
		t.Fatalf("ban: %v", out)
	}

	dump := rawDump(t, f.h)
	for _, marker := range []string{"NameMarker", "DescMarker", "PassMarker", "SubjectMarker", "NickMarker", "BodyMarker", "ReasonMarker"} {
		if strings.Contains(dump, marker) {
			t.Errorf("%s is stored in clear", marker)
		}
	}
	// Opened with the server key, the configuration has the password
	// only as a hash.
	r, err := f.m.Store().Room(context.Background(), roomJID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Config), "PassMarker") || !strings.Contains(string(r.Config), `"passwordhash":"pbkdf2-sha256$`) {
		t.Errorf("opened configuration: %s", r.Config)
	}
	affs, err := f.m.Store().Affiliations(context.Background(), roomJID)
	if err != nil || !strings.Contains(affString(affs), "mallory@example.org outcast ReasonMarker") {
		t.Errorf("opened affiliations: %v, %v", affs, err)
	}

	// The form shows no password, and sending it back empty keeps it.
	q := xmlstream.New(NSOwner, "query")
	out := f.iq(alice, roomJID, "get", q)
	if typeOf(out, alice) != "result" || strings.Contains(out[0].String(), "PassMarker") {
		t.Fatalf("configuration form: %v", out)
	}
	f.configure(alice, map[string]string{"passwordprotectedroom": "1", "roomsecret": ""})
	if out := f.join(carol, "Carol", pw("wrong")); errorCondition(out[0]) != "not-authorized" {
		t.Errorf("wrong password after an unchanged form: %v", out)
	}

	// A restarted service (rooms reloaded from the sealed store) serves
	// the same room.
	g := startOn(t, f.h.Restart())
	if out := g.join(carol, "Carol", pw("wrong")); errorCondition(out[0]) != "not-authorized" {
		t.Errorf("wrong password after reload: %v", out)
	}
	out = g.join(carol, "Carol", pw("PassMarker"))
	if presenceFrom(out, "Carol", carol) == nil {
		t.Fatalf("right password after reload: %v", out)
	}
	var history, subject bool
	for _, el := range out {
		if b := el.Child(stanza.NSClient, "body"); b != nil && b.Text() == "BodyMarker" && strings.HasSuffix(el.Attr("from"), "/NickMarker") {
			history = true
		}
		if s := el.Child(stanza.NSClient, "subject"); s != nil && s.Text() == "SubjectMarker" {
			subject = true
		}
	}
	if !history || !subject {
		t.Errorf("after reload: history %v, subject %v: %v", history, subject, out)
	}
	// Turning protection off removes the hash.
	g.configure(alice, map[string]string{"passwordprotectedroom": "0"})
	if out := g.join("dave@example.org/x", "Dave"); presenceFrom(out, "Dave", "dave@example.org/x") == nil {
		t.Errorf("join once the password is off: %v", out)
	}
}

func affString(affs []storage.MUCAffiliation) string {
	var b strings.Builder
	for _, a := range affs {
		b.WriteString(a.JID + " " + a.Affiliation + " " + a.Reason + "\n")
	}
	return b.String()
}

// TestRoomSealedMovedRecords: a sealed record copied to another room or
// message does not open there.
func TestRoomSealedMovedRecords(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	st, err := newSealedStore(h.Storage().MUC(), h.Key("muc"), h.Logger())
	if err != nil {
		t.Fatal(err)
	}
	other := "other@" + service
	for _, rj := range []string{roomJID, other} {
		if err := st.PutRoom(ctx, storage.MUCRoom{JID: rj, Config: []byte(`{"persistent":true}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AppendMessage(ctx, roomJID, storage.MUCMessage{ID: "m1", Data: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	raw := h.Storage().MUC()
	r, _ := raw.Room(ctx, roomJID)
	if err := raw.PutRoom(ctx, storage.MUCRoom{JID: other, Config: r.Config}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Room(ctx, other); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Errorf("a configuration moved to another room: %v", err)
	}
	page, _ := raw.Messages(ctx, roomJID, storage.MUCQuery{Max: 1})
	if _, err := raw.AppendMessage(ctx, roomJID, storage.MUCMessage{ID: "m2", Data: page.Messages[0].Data}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Messages(ctx, roomJID, storage.MUCQuery{Max: 10})
	if err != nil || len(got.Messages) != 1 || got.Messages[0].ID != "m1" || string(got.Messages[0].Data) != "<message/>" {
		t.Errorf("a message moved to another id: %+v, %v; want it withheld and m1 served", got, err)
	}
}

// TestRoomClearDataSealedAtStart: a room an earlier version stored in
// clear, with a clear password, is sealed when the service starts, its
// password hashed, and it keeps working.
func TestRoomClearDataSealedAtStart(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	raw := h.Storage().MUC()
	cfg, _ := json.Marshal(config{Persistent: true, Name: "OldName", Password: "OldPass", Secret: make([]byte, 32)})
	if err := raw.PutRoom(ctx, storage.MUCRoom{JID: roomJID, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if err := raw.SetAffiliation(ctx, roomJID, storage.MUCAffiliation{JID: "alice@example.org", Affiliation: storage.AffOwner, Reason: "OldReason"}); err != nil {
		t.Fatal(err)
	}
	old := `<message xmlns="jabber:client" type="groupchat" from="` + roomJID + `/OldNick"><body>OldBody</body></message>`
	if _, err := raw.AppendMessage(ctx, roomJID, storage.MUCMessage{ID: "old1", Stamp: time.Now(), Data: []byte(old)}); err != nil {
		t.Fatal(err)
	}
	f := startOn(t, h)
	dump := rawDump(t, h)
	for _, marker := range []string{"OldName", "OldPass", "OldReason", "OldNick", "OldBody"} {
		if strings.Contains(dump, marker) {
			t.Errorf("%s still in clear after start", marker)
		}
	}
	r, _ := f.m.Store().Room(ctx, roomJID)
	if strings.Contains(string(r.Config), "OldPass") || !strings.Contains(string(r.Config), "OldName") {
		t.Errorf("opened configuration after the upgrade: %s", r.Config)
	}
	if out := f.join(bob, "Bob", pw("nope")); errorCondition(out[0]) != "not-authorized" {
		t.Errorf("wrong password: %v", out)
	}
	out := f.join(bob, "Bob", pw("OldPass"))
	var history bool
	for _, el := range out {
		if b := el.Child(stanza.NSClient, "body"); b != nil && b.Text() == "OldBody" {
			history = true
		}
	}
	if presenceFrom(out, "Bob", bob) == nil || !history {
		t.Errorf("the old password and history after sealing: %v", out)
	}
}
