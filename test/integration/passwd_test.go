package integration

import (
	"context"
	"errors"
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
