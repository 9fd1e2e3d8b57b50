package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

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
	// The disabled flag is stored: on both drivers.
	for _, d := range storeDrivers(t) {
		t.Run(d.name, func(t *testing.T) { testSessionsKickAnnounceDisable(t, d.toml) })
	}
}

func testSessionsKickAnnounceDisable(t *testing.T, storage string) {
	s := startServer(t, serverOpts{extra: storage})
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

const (
	nsCommands = "http://jabber.org/protocol/commands"
	nsAdmin    = "http://jabber.org/protocol/admin"
)

// runCommand executes an ad-hoc command on localhost and, when it shows
// a form, submits fields (var -> values); it returns the last answer.
func runCommand(t *testing.T, a *agent, node string, fields map[string][]string) *xmlstream.Element {
	t.Helper()
	r := a.iq("<iq type='set' to='localhost'><command xmlns='%s' node='%s' action='execute'/></iq>", nsCommands, node)
	cmd := r.Child(nsCommands, "command")
	if r.Attr("type") != "result" || cmd == nil || cmd.Attr("status") != "executing" {
		return r
	}
	var x strings.Builder
	fmt.Fprintf(&x, "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field>", nsAdmin)
	for v, vals := range fields {
		fmt.Fprintf(&x, "<field var='%s'>", v)
		for _, val := range vals {
			fmt.Fprintf(&x, "<value>%s</value>", val)
		}
		x.WriteString("</field>")
	}
	x.WriteString("</x>")
	return a.iq("<iq type='set' to='localhost'><command xmlns='%s' node='%s' sessionid='%s' action='complete'>%s</command></iq>",
		nsCommands, node, cmd.Attr("sessionid"), x.String())
}

func completed(t *testing.T, what string, r *xmlstream.Element) *xmlstream.Element {
	t.Helper()
	cmd := r.Child(nsCommands, "command")
	if r.Attr("type") != "result" || cmd == nil || cmd.Attr("status") != "completed" {
		t.Fatalf("%s: want a completed command, got %s", what, r)
	}
	return cmd
}

func formValues(cmd *xmlstream.Element, v string) []string {
	x := cmd.Child("jabber:x:data", "x")
	if x == nil {
		return nil
	}
	var out []string
	for f := range x.Elements() {
		if f.Attr("var") == v {
			for val := range f.Elements() {
				out = append(out, val.Text())
			}
		}
	}
	return out
}

// TestAdminCommands runs the XEP-0133 set as an admin, and checks that a
// user neither sees nor runs them.
func TestAdminCommands(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n"})
	s.addUser("admin@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	ad := s.connect(t, "admin@localhost", "pw")
	bob := s.connect(t, "bob@localhost", "pw")
	for _, x := range []*agent{ad, bob} {
		x.send("<presence/>")
		x.expect("its own presence back", isPresence(x.jid, ""))
	}

	items := ad.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='%s'/></iq>", nsCommands)
	if !strings.Contains(items.String(), nsAdmin+"#add-user") || !strings.Contains(items.String(), nsAdmin+"#announce") {
		t.Fatalf("the admin's command list lacks the admin commands: %s", items)
	}
	items = bob.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='%s'/></iq>", nsCommands)
	if items.Attr("type") != "result" || strings.Contains(items.String(), nsAdmin) {
		t.Fatalf("a user's command list shows admin commands: %s", items)
	}
	info := bob.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(info.String(), nsCommands) {
		t.Fatalf("disco#info does not advertise %s: %s", nsCommands, info)
	}

	// A user is refused every admin command, with or without a session.
	for _, node := range []string{"add-user", "delete-user", "disable-user", "reenable-user", "change-user-password",
		"end-user-session", "get-registered-users-num", "get-registered-users-list", "get-online-users-num",
		"get-online-users-list", "announce"} {
		r := bob.iq("<iq type='set' to='localhost'><command xmlns='%s' node='%s#%s' action='execute'/></iq>", nsCommands, nsAdmin, node)
		if r.Attr("type") != "error" || r.Child("jabber:client", "error").Child("urn:ietf:params:xml:ns:xmpp-stanzas", "forbidden") == nil {
			t.Fatalf("bob ran %s: %s", node, r)
		}
	}

	completed(t, "add-user", runCommand(t, ad, nsAdmin+"#add-user", map[string][]string{
		"accountjid": {"carol@localhost"}, "password": {"secret1"}, "password-verify": {"secret1"}}))
	if r := s.slixmppLogin(t, "--jid", "carol@localhost", "--password", "secret1", "--port", portOf(s.starttls)); !r.Authenticated {
		t.Fatalf("the added user cannot log in: %+v", r)
	}
	if r := runCommand(t, ad, nsAdmin+"#add-user", map[string][]string{
		"accountjid": {"carol@localhost"}, "password": {"x"}, "password-verify": {"x"}}); r.Attr("type") != "error" || !strings.Contains(r.String(), "conflict") {
		t.Fatalf("adding an existing user: %s", r)
	}
	completed(t, "change-user-password", runCommand(t, ad, nsAdmin+"#change-user-password", map[string][]string{
		"accountjid": {"carol@localhost"}, "password": {"secret2"}}))
	if r := s.slixmppLogin(t, "--jid", "carol@localhost", "--password", "secret2", "--port", portOf(s.starttls)); !r.Authenticated {
		t.Fatalf("the new password does not log in: %+v", r)
	}

	cmd := completed(t, "get-registered-users-num", runCommand(t, ad, nsAdmin+"#get-registered-users-num", nil))
	if v := formValues(cmd, "registeredusersnum"); len(v) != 1 || v[0] != "3" {
		t.Fatalf("registeredusersnum %v, want 3: %s", v, cmd)
	}
	cmd = completed(t, "get-registered-users-list", runCommand(t, ad, nsAdmin+"#get-registered-users-list", map[string][]string{"max_items": {"none"}}))
	if v := formValues(cmd, "registereduserjids"); strings.Join(v, " ") != "admin@localhost bob@localhost carol@localhost" {
		t.Fatalf("registereduserjids %v: %s", v, cmd)
	}
	cmd = completed(t, "get-online-users-num", runCommand(t, ad, nsAdmin+"#get-online-users-num", nil))
	if v := formValues(cmd, "onlineusersnum"); len(v) != 1 || v[0] != "2" {
		t.Fatalf("onlineusersnum %v, want 2: %s", v, cmd)
	}
	cmd = completed(t, "get-online-users-list", runCommand(t, ad, nsAdmin+"#get-online-users-list", map[string][]string{"max_items": {"25"}}))
	if v := formValues(cmd, "onlineuserjids"); strings.Join(v, " ") != "admin@localhost bob@localhost" {
		t.Fatalf("onlineuserjids %v: %s", v, cmd)
	}

	completed(t, "announce", runCommand(t, ad, nsAdmin+"#announce", map[string][]string{"announcement": {"server upgrade tonight"}}))
	bob.expect("the announcement", isMessage("localhost", "server upgrade tonight"))

	completed(t, "disable-user", runCommand(t, ad, nsAdmin+"#disable-user", map[string][]string{"accountjids": {"bob@localhost"}}))
	bob.waitEvent("disconnected")
	if r := s.slixmppLogin(t, "--jid", "bob@localhost", "--password", "pw", "--port", portOf(s.starttls), "--mech", "SCRAM-SHA-256", "--no-channel-binding"); r.Authenticated || !strings.Contains(fmt.Sprint(r.Failure), "account-disabled") {
		t.Fatalf("disabled bob: %+v, want account-disabled", r)
	}
	completed(t, "reenable-user", runCommand(t, ad, nsAdmin+"#reenable-user", map[string][]string{"accountjids": {"bob@localhost"}}))
	bob2 := s.connect(t, "bob@localhost", "pw")
	completed(t, "end-user-session", runCommand(t, ad, nsAdmin+"#end-user-session", map[string][]string{"accountjids": {"bob@localhost"}}))
	bob2.waitEvent("disconnected")

	completed(t, "delete-user", runCommand(t, ad, nsAdmin+"#delete-user", map[string][]string{"accountjids": {"carol@localhost"}}))
	if out, _ := s.parley("", "user", "list"); strings.Contains(out, "carol") {
		t.Fatalf("carol still listed after delete-user:\n%s", out)
	}

	// A form is answered once, and only by whom it was shown to.
	r := ad.iq("<iq type='set' to='localhost'><command xmlns='%s' node='%s#announce' sessionid='forged' action='complete'/></iq>", nsCommands, nsAdmin)
	if r.Attr("type") != "error" || !strings.Contains(r.String(), "bad-sessionid") {
		t.Fatalf("a forged sessionid: %s", r)
	}
}

// TestWelcomeAndMOTD: the welcome once, at an account's first login; the
// message of the day at every login until deleted; both set by an admin
// only.
func TestWelcomeAndMOTD(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n", extra: "[registration]\nwelcome = \"Welcome to localhost!\"\n"})
	s.addUser("admin@localhost", "pw")
	s.addUser("dave@localhost", "pw")
	login := func(j string) *agent {
		a := s.connect(t, j, "pw")
		a.send("<presence/>")
		a.expect("its own presence back", isPresence(a.jid, ""))
		return a
	}
	ad := login("admin@localhost")
	ad.expect("the welcome", isMessage("localhost", "Welcome to localhost!"))

	d := login("dave@localhost")
	if r := runCommand(t, d, nsAdmin+"#set-motd", map[string][]string{"motd": {"spam"}}); r.Attr("type") != "error" || !strings.Contains(r.String(), "forbidden") {
		t.Fatalf("a user set the MOTD: %s", r)
	}
	d.expect("the welcome", isMessage("localhost", "Welcome to localhost!"))
	d.op("close")
	d.waitEvent("disconnected")

	completed(t, "set-motd", runCommand(t, ad, nsAdmin+"#set-motd", map[string][]string{"motd": {"Maintenance on Sunday"}}))
	d = login("dave@localhost")
	d.expect("the MOTD", isMessage("localhost", "Maintenance on Sunday"))
	d.expectNone("a second welcome", time.Second, isMessage("localhost", "Welcome to localhost!"))
	d.op("close")
	d.waitEvent("disconnected")

	cmd := ad.iq("<iq type='set' to='localhost'><command xmlns='%s' node='%s#edit-motd' action='execute'/></iq>", nsCommands, nsAdmin)
	if !strings.Contains(cmd.String(), "Maintenance on Sunday") {
		t.Fatalf("edit-motd does not show the current MOTD: %s", cmd)
	}
	completed(t, "delete-motd", runCommand(t, ad, nsAdmin+"#delete-motd", nil))
	d = login("dave@localhost")
	d.expectNone("the deleted MOTD", time.Second, isMessage("localhost", "Maintenance on Sunday"))

	// The welcome an admin sets greets accounts created afterwards.
	completed(t, "set-welcome", runCommand(t, ad, nsAdmin+"#set-welcome", map[string][]string{"welcome": {"Hello from the admins"}}))
	s.addUser("erin@localhost", "pw")
	login("erin@localhost").expect("the edited welcome", isMessage("localhost", "Hello from the admins"))
}

// registerRaw registers user in band on a raw connection and returns the
// answer to the set.
func registerRaw(t *testing.T, s *server, user string) string {
	t.Helper()
	c := dialRaw(t, s.starttls)
	c.startTLS(&tls.Config{InsecureSkipVerify: true})
	c.send(header)
	c.expect("</stream:features>")
	c.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>" + user + "</username><password>secret</password></query></iq>")
	return c.expectIQ("s")
}

// TestRegistrationPolicy: max_accounts caps in-band registration, and
// notify_admins tells the admins of each new account.
func TestRegistrationPolicy(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n",
		extra: "[registration]\nopen = true\nper_address_per_hour = 0\nmax_accounts = 2\nnotify_admins = true\n"})
	s.addUser("admin@localhost", "pw")
	ad := online(t, s, "admin@localhost")
	if got := registerRaw(t, s, "newbie"); !strings.Contains(got, `type="result"`) {
		t.Fatalf("registration under the cap: %s", got)
	}
	ad.expect("the new-account notice", hasBody("New account registered: newbie@localhost"))
	got := registerRaw(t, s, "spammer")
	if !strings.Contains(got, "<resource-constraint") || !strings.Contains(got, "all the accounts") {
		t.Fatalf("registration over max_accounts: %s", got)
	}
	ad.expectNone("a notice for the refused account", time.Second, hasBody("New account registered: spammer@localhost"))
	// Admins are not capped.
	if out, err := s.parley("", "user", "add", "friend@localhost", "--password", "pw"); err != nil {
		t.Fatalf("admin add over the cap: %v\n%s", err, out)
	}
}

// TestExpireInactive: an account nobody logs in to is deleted after
// expire_inactive; one that logs in stays. (The warning's timing is
// checked with a fake clock in modules/inactive.)
func TestExpireInactive(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{extra: "[registration]\nexpire_inactive = \"8s\"\nwarn_inactive = \"4s\"\n"})
	s.addUser("idle@localhost", "pw")
	s.addUser("busy@localhost", "pw")
	busy := online(t, s, "busy@localhost")
	deadline := time.Now().Add(40 * time.Second)
	for {
		out, err := s.parley("", "user", "list")
		if err != nil {
			t.Fatalf("user list: %v\n%s", err, out)
		}
		if !strings.Contains(out, "idle@localhost") {
			if !strings.Contains(out, "busy@localhost") {
				t.Fatalf("the account online was deleted too:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle@localhost not deleted 40s after creation with expire_inactive = 8s:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	busy.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
}

type adhocResult struct {
	Items  []string            `json:"items"`
	Status string              `json:"status"`
	Note   string              `json:"note"`
	Values map[string][]string `json:"values"`
	Error  string              `json:"error"`
}

// slixmppCommand runs clients/adhoc.py, slixmpp's own XEP-0050 client.
func (s *server) slixmppCommand(t *testing.T, jid, password, node string, fields ...string) adhocResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, here, _, _ := runtime.Caller(0)
	args := []string{filepath.Join(filepath.Dir(here), "clients", "adhoc.py"), "--jid", jid, "--password", password,
		"--port", portOf(s.starttls), "--cafile", s.cafile(), "--node", node}
	for _, f := range fields {
		args = append(args, "--field", f)
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("adhoc.py: %v\nstderr:\n%s", err, stderr.String())
	}
	var r adhocResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("adhoc.py printed %q: %v\nstderr:\n%s", out, err, stderr.String())
	}
	return r
}

// TestAdminCommandsSlixmpp drives the admin commands with slixmpp's
// XEP-0050 plugin: what a real client's command UI does.
func TestAdminCommandsSlixmpp(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{top: "admins = [\"admin@localhost\"]\n"})
	s.addUser("admin@localhost", "pw")
	s.addUser("bob@localhost", "pw")

	r := s.slixmppCommand(t, "admin@localhost", "pw", nsAdmin+"#add-user",
		"accountjid=carol@localhost", "password=pw3", "password-verify=pw3")
	if r.Error != "" || r.Status != "completed" || !slices.Contains(r.Items, nsAdmin+"#delete-user") {
		t.Fatalf("add-user as the admin: %+v", r)
	}
	r = s.slixmppCommand(t, "admin@localhost", "pw", nsAdmin+"#get-registered-users-num")
	if r.Status != "completed" || strings.Join(r.Values["registeredusersnum"], "") != "3" {
		t.Fatalf("get-registered-users-num: %+v", r)
	}
	r = s.slixmppCommand(t, "bob@localhost", "pw", nsAdmin+"#add-user", "accountjid=evil@localhost", "password=x", "password-verify=x")
	if r.Error != "forbidden" || slices.ContainsFunc(r.Items, func(n string) bool { return strings.HasPrefix(n, nsAdmin) }) {
		t.Fatalf("add-user as a user: %+v, want forbidden and no admin command listed", r)
	}
	if out, _ := s.parley("", "user", "list"); strings.Contains(out, "evil") || !strings.Contains(out, "carol@localhost") {
		t.Fatalf("accounts after the commands:\n%s", out)
	}
}

// TestNotifyRemote: parley notify to a user of a real Prosody arrives
// over server-to-server from the host's own JID, and an attachment as
// its URL with out-of-band data (XEP-0066).
func TestNotifyRemote(t *testing.T) {
	needSlixmpp(t)
	pr := startProsody(t)
	a := startServer(t, serverOpts{hosts: []string{"a.localhost"}, s2s: "127.0.0.1:0", https: true, cafile: pr.aCrt,
		extra: pr.parleyTOML() + "[upload]\nhost = \"upload.a.localhost\"\n"})
	carol := pr.connect(t)
	carol.send("<presence/>")
	if out, err := a.parley("", "notify", "--message", "disk 91% full", "carol@p.localhost"); err != nil {
		t.Fatalf("notify: %v\n%s", err, out)
	}
	carol.expect("the notice through Prosody, from the host", isMessage("a.localhost", "disk 91% full"))

	photo := filepath.Join(t.TempDir(), "canary.jpg")
	if err := os.WriteFile(photo, []byte("\xff\xd8\xff\xe0 not much of a photo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := a.parley("", "notify", "--message", "USB canary", "--attach", photo, "carol@p.localhost"); err != nil {
		t.Fatalf("notify --attach: %v\n%s", err, out)
	}
	carol.expect("the text", isMessage("a.localhost", "USB canary"))
	m := carol.expect("the attachment", func(el *xmlstream.Element) bool {
		return el.Name.Local == "message" && el.Attr("from") == "a.localhost" && el.Child("jabber:x:oob", "x") != nil
	})
	url := m.Child("jabber:x:oob", "x").Child("jabber:x:oob", "url").Text()
	body := m.Child("jabber:client", "body").Text()
	if !strings.HasPrefix(url, "https://upload.a.localhost:"+portOf(a.https)+"/") || !strings.HasSuffix(url, "/canary.jpg") || body != url {
		t.Fatalf("the attachment's message: url %q, body %q\n%s", url, body, m)
	}
	if log := a.Stderr(); !strings.Contains(log, `msg="s2s: outgoing stream ready" remote_domain=p.localhost`) {
		t.Errorf("no outgoing stream to prosody in the log:\n%s", log)
	}
}
