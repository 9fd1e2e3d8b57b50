package integration

import (
	"bytes"
	"errors"
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
