package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// migrateResult is what clients/migrate.py reports.
type migrateResult struct {
	Authenticated bool   `json:"authenticated"`
	Mech          string `json:"mech"`
	Error         string `json:"error"`
	Roster        map[string]struct {
		Name         string   `json:"name"`
		Groups       []string `json:"groups"`
		Subscription string   `json:"subscription"`
	} `json:"roster"`
	VCardFN       string `json:"vcard_fn"`
	PrivateColour string `json:"private_colour"`
	Archive       []struct {
		Body string `json:"body"`
		To   string `json:"to"`
	} `json:"archive"`
}

func runMigratePy(t *testing.T, args ...string) migrateResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "clients", "migrate.py")
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("migrate.py: %v\nstderr:\n%s", err, stderr.String())
	}
	var r migrateResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("migrate.py printed %q: %v\nstderr:\n%s", out, err, stderr.String())
	}
	return r
}

// TestMigrateFromProsody moves accounts from a real Prosody with its SQL
// store (SQLite) to parley the way the README tells an admin to: data
// made by a client on Prosody, prosody-migrator to XEP-0227, parley
// import, and the user logs in to parley with the old password (SCRAM-
// SHA-1, which is all Prosody keeps, and PLAIN) and finds everything.
func TestMigrateFromProsody(t *testing.T) {
	needSlixmpp(t)
	prosody, err := exec.LookPath("prosody")
	mustHave(t, "Prosody", err == nil, "apt-get install prosody")
	prosodyctl, err := exec.LookPath("prosodyctl")
	mustHave(t, "prosodyctl", err == nil, "apt-get install prosody")
	migrator, err := exec.LookPath("prosody-migrator")
	mustHave(t, "prosody-migrator", err == nil, "it ships with Debian's prosody package")
	src, err := os.ReadFile(migrator)
	if err != nil {
		t.Fatal(err)
	}
	// The migrator is a Lua script; its first line names the interpreter.
	first, _, _ := strings.Cut(string(src), "\n")
	interp := strings.Fields(strings.TrimPrefix(first, "#!"))
	if len(interp) > 0 && filepath.Base(interp[0]) == "env" {
		interp = interp[1:]
	}
	mustHave(t, "the migrator's Lua interpreter", len(interp) == 1, "unexpected first line "+first)
	dbi := exec.Command(interp[0], "-e", `require "DBI"; assert(require "dbd.sqlite3")`).Run()
	mustHave(t, "LuaDBI for SQLite", dbi == nil, "apt-get install lua-dbi-sqlite3")

	dir := t.TempDir()
	port := freeLoopbackPort(t)
	_, portNum := hostPort(port)
	db := filepath.Join(dir, "prosody.sqlite")
	logFile := filepath.Join(dir, "prosody.log")
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	cfg := fmt.Sprintf(`
run_as_root = true
daemonize = false
pidfile = %q
data_path = %q
plugin_paths = {}
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { %s }
s2s_ports = {}
c2s_direct_tls_ports = {}
s2s_direct_tls_ports = {}
component_ports = {}
http_ports = {}
https_ports = {}
modules_enabled = { "saslauth", "disco", "roster", "ping", "vcard", "private", "mam" }
archive_expires_after = "never"
authentication = "internal_hashed"
storage = "sql"
sql = { driver = "SQLite3", database = %q }
c2s_require_encryption = false
log = { { levels = { min = "info" }, to = "file", filename = %q } }
VirtualHost "p.localhost"
`, filepath.Join(dir, "prosody.pid"), dir, portNum, db, logFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range [][2]string{{"alice", "wonder land"}, {"bob", "builder"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, prosodyctl, "--config", cfgPath, "register", u[0], "p.localhost", u[1]).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("prosodyctl register %s: %v\n%s", u[0], err, out)
		}
	}

	var out bytes.Buffer
	cmd := exec.Command(prosody, "--config", cfgPath, "-F")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stopProsody := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stopProsody()
		if t.Failed() {
			l, _ := os.ReadFile(logFile)
			t.Logf("prosody output:\n%s\nprosody log:\n%s", out.String(), l)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", port, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("prosody exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosody does not listen on %s", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
	filled := runMigratePy(t, "fill", "--jid", "alice@p.localhost/old", "--password", "wonder land", "--port", portNum, "--contact", "bob@p.localhost")
	if !filled.Authenticated || filled.Error != "" {
		t.Fatalf("filling the Prosody account: %+v", filled)
	}
	stopProsody()

	// prosody-migrator writes XEP-0227 files into Prosody's data
	// directory, and as root it first becomes the prosody user; a copy
	// pointed at the test's directory, staying the test's user, runs the
	// same migration code.
	exportDir := filepath.Join(dir, "xep0227")
	if err := os.MkdirAll(exportDir, 0o700); err != nil {
		t.Fatal(err)
	}
	script := string(src)
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, "CFG_DATADIR=") {
			script = strings.Replace(script, line, fmt.Sprintf("CFG_DATADIR=%q;", exportDir), 1)
		}
	}
	script = strings.Replace(script, "startup.switch_user();", "", 1)
	migratorCopy := filepath.Join(dir, "prosody-migrator.lua")
	if err := os.WriteFile(migratorCopy, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	migCfg := filepath.Join(dir, "migrator.cfg.lua")
	if err := os.WriteFile(migCfg, []byte(fmt.Sprintf(`
input {
	type = "sql";
	driver = "SQLite3";
	database = %q;
	hosts = { ["p.localhost"] = { "accounts", "roster", "vcard", "private", "archive-archive", "pep-pubsub" } };
}
output {
	type = "xep0227";
	path = %q;
}
`, db, exportDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, interp[0], migratorCopy, "--config="+migCfg).CombinedOutput(); err != nil {
		t.Fatalf("prosody-migrator: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(exportDir, "alice@p.localhost.xml")); err != nil {
		t.Fatalf("prosody-migrator wrote no file for alice: %v", err)
	}

	s := startServer(t, serverOpts{hosts: []string{"p.localhost"}, extra: "[retention]\narchive = \"never\"\n"})
	imported, err := s.parley("", "import", exportDir)
	if err != nil || !strings.Contains(imported, "alice@p.localhost: account created, 1 roster items, vCard, 1 private XML namespaces, 1 archived messages") ||
		!strings.Contains(imported, "total: 2 users read, 2 changed") {
		t.Fatalf("parley import: %v\n%s", err, imported)
	}
	if again, err := s.parley("", "import", exportDir); err != nil || !strings.Contains(again, "0 changed, 2 unchanged") {
		t.Fatalf("a second import changed something: %v\n%s", err, again)
	}

	_, stPort := hostPort(s.starttls)
	// Prosody kept only SCRAM-SHA-1: SHA-256 cannot work yet.
	if r := s.slixmppLogin(t, "--jid", "alice@p.localhost", "--password", "wonder land", "--port", stPort, "--mech", "SCRAM-SHA-256", "--no-channel-binding"); r.Authenticated {
		t.Fatalf("SCRAM-SHA-256 worked before any PLAIN login: %+v", r)
	}
	got := runMigratePy(t, "check", "--jid", "alice@p.localhost/new", "--password", "wonder land", "--port", stPort, "--mech", "SCRAM-SHA-1", "--cafile", s.cafile())
	if !got.Authenticated || got.Mech != "SCRAM-SHA-1" || got.Error != "" {
		t.Fatalf("SCRAM-SHA-1 login with the Prosody password: %+v", got)
	}
	bob := got.Roster["bob@p.localhost"]
	if bob.Name != "Bob Builder" || strings.Join(bob.Groups, ",") != "Friends,Work" {
		t.Errorf("roster: %+v", got.Roster)
	}
	if got.VCardFN != "Alice Liddell" || got.PrivateColour != "blue" {
		t.Errorf("vCard FN %q, private colour %q", got.VCardFN, got.PrivateColour)
	}
	if len(got.Archive) != 1 || got.Archive[0].Body != "down the rabbit hole" || got.Archive[0].To != "bob@p.localhost" {
		t.Errorf("archive: %+v", got.Archive)
	}
	plain := runMigratePy(t, "check", "--jid", "alice@p.localhost/plain", "--password", "wonder land", "--port", stPort, "--mech", "PLAIN", "--cafile", s.cafile())
	if !plain.Authenticated || plain.Mech != "PLAIN" || plain.VCardFN != "Alice Liddell" {
		t.Fatalf("PLAIN login with the Prosody password: %+v", plain)
	}
	// The PLAIN login gave the account the hashes Prosody did not keep.
	if r := s.slixmppLogin(t, "--jid", "alice@p.localhost", "--password", "wonder land", "--port", stPort, "--mech", "SCRAM-SHA-256", "--no-channel-binding"); !r.Authenticated {
		t.Fatalf("SCRAM-SHA-256 after a PLAIN login: %+v", r)
	}
}
