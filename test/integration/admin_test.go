package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"parley/internal/xmlstream"
)

// TestNotifyServerStopped: without a running server, notify says so and
// exits with status 1 rather than hang or pretend.
func TestNotifyServerStopped(t *testing.T) {
	s := startServer(t, serverOpts{})
	s.stop()
	out, err := s.parley("disk 91% full\n", "notify", "admin@localhost")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("notify with the server stopped: err %v, want exit status 1; output:\n%s", err, out)
	}
	if !strings.Contains(out, "no parley server is running") {
		t.Fatalf("notify with the server stopped said %q, want it to say no server is running", out)
	}
}

// TestNotify: a message from the host's own JID, text from standard
// input or --message, and an attachment that downloads as sent.
func TestNotify(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{https: true, top: "admins = [\"admin@localhost\"]\n", extra: "[upload]\nhost = \"upload.localhost\"\n"})
	s.addUser("admin@localhost", "pw")
	a := s.connect(t, "admin@localhost", "pw")
	a.send("<presence/>")
	a.expect("its own presence back", isPresence(a.jid, ""))

	sock := filepath.Join(s.dir, "data", "control.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, want a socket with 0600", fi.Mode())
	}

	if out, err := s.parley("disk 91% full\n", "notify", "admin@localhost"); err != nil {
		t.Fatalf("notify: %v\n%s", err, out)
	}
	m := a.expect("the notice from stdin", isMessage("localhost", "disk 91% full"))
	if m.Attr("from") != "localhost" || m.Attr("type") != "chat" {
		t.Fatalf("notice from %q type %q, want from the bare domain, type chat: %s", m.Attr("from"), m.Attr("type"), m)
	}
	if out, err := s.parley("", "notify", "--type", "headline", "--message", "canary", "admin@localhost"); err != nil {
		t.Fatalf("notify --message: %v\n%s", err, out)
	}
	if m := a.expect("the headline", isMessage("localhost", "canary")); m.Attr("type") != "headline" {
		t.Fatalf("want type headline: %s", m)
	}

	photo := bytes.Repeat([]byte("\x89PNG canary photo "), 500)
	file := filepath.Join(t.TempDir(), "canary.png")
	if err := os.WriteFile(file, photo, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.parley("", "notify", "--message", "USB stick inserted", "--attach", file, "admin@localhost"); err != nil {
		t.Fatalf("notify --attach: %v\n%s", err, out)
	}
	a.expect("the text before the attachment", isMessage("localhost", "USB stick inserted"))
	m = a.expect("the attachment", func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && el.Child("jabber:x:oob", "x") != nil
	})
	url := m.Child("jabber:x:oob", "x").Child("jabber:x:oob", "url").Text()
	if body := m.Child("jabber:client", "body").Text(); body != url || !strings.HasPrefix(url, "https://upload.localhost") {
		t.Fatalf("attachment body %q and oob url %q: want the same https URL", body, url)
	}
	resp, got := httpDo(t, uploadClient(t, s), "GET", url, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, photo) {
		t.Fatalf("GET %s: %d, %d bytes; want 200 and the %d bytes sent", url, resp.StatusCode, len(got), len(photo))
	}

	// A bad address is refused before anything is sent.
	if out, err := s.parley("", "notify", "--message", "x", "admin@localhost", "not@@valid"); err == nil {
		t.Fatalf("notify to an invalid JID succeeded:\n%s", out)
	}
}

// TestSessionsKickAnnounceDisable drives the session commands against a
// running server, and a disabled account's login.
func TestSessionsKickAnnounceDisable(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	a := s.connect(t, "alice@localhost", "pw")
	b := s.connect(t, "bob@localhost", "pw")
	for _, x := range []*agent{a, b} {
		x.send("<presence/>")
		x.expect("its own presence back", isPresence(x.jid, ""))
	}

	out, err := s.parley("", "sessions")
	if err != nil || !strings.Contains(out, a.jid+"\tavailable") || !strings.Contains(out, b.jid) || !strings.Contains(out, "2 sessions") {
		t.Fatalf("sessions: %v\n%s", err, out)
	}
	out, err = s.parley("", "sessions", "bob@localhost")
	if err != nil || strings.Contains(out, a.jid) || !strings.Contains(out, "1 sessions") {
		t.Fatalf("sessions bob@localhost: %v\n%s", err, out)
	}

	if out, err := s.parley("", "announce", "--online", "maintenance at 22:00"); err != nil || !strings.Contains(out, "announced to 2 sessions") {
		t.Fatalf("announce: %v\n%s", err, out)
	}
	a.expect("the announcement", isMessage("localhost", "maintenance at 22:00"))
	b.expect("the announcement", isMessage("localhost", "maintenance at 22:00"))

	if out, err := s.parley("", "kick", "bob@localhost"); err != nil || !strings.Contains(out, "1 sessions ended") {
		t.Fatalf("kick: %v\n%s", err, out)
	}
	b.waitEvent("disconnected")
	if out, _ := s.parley("", "sessions"); strings.Contains(out, b.jid) {
		t.Fatalf("bob still listed after kick:\n%s", out)
	}

	// Disabled: the session ends and the password no longer logs in.
	if out, err := s.parley("", "user", "disable", "alice@localhost"); err != nil || !strings.Contains(out, "1 sessions ended") {
		t.Fatalf("user disable: %v\n%s", err, out)
	}
	a.waitEvent("disconnected")
	if r := s.slixmppLogin(t, "--jid", "alice@localhost", "--password", "pw", "--port", portOf(s.starttls), "--mech", "SCRAM-SHA-256", "--no-channel-binding"); r.Authenticated || !strings.Contains(fmt.Sprint(r.Failure), "account-disabled") {
		t.Fatalf("a disabled account: %+v, want refused with account-disabled", r)
	}
	if out, err := s.parley("", "user", "enable", "alice@localhost"); err != nil {
		t.Fatalf("user enable: %v\n%s", err, out)
	}
	if r := s.slixmppLogin(t, "--jid", "alice@localhost", "--password", "pw", "--port", portOf(s.starttls)); !r.Authenticated {
		t.Fatalf("an enabled account could not log in: %+v", r)
	}
}

func portOf(addr string) string { _, p := hostPort(addr); return p }
