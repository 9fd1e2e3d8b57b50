package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runCheck runs `parley check` on config and returns its report and exit
// status.
func runCheck(t *testing.T, config string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"check", "--config", config}, args...)...)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestCheck: `parley check` passes on a good installation and exits 1,
// naming the problem, on an expired certificate, a certificate for
// another name, and a port another program holds.
func TestCheck(t *testing.T) {
	ca := newTestCA(t, "check CA")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	keyFile := filepath.Join(dir, "keys", "parley.key")
	write := func(c2s string) string {
		path := filepath.Join(dir, "parley.toml")
		cfg := fmt.Sprintf("data_dir = %q\n[storage]\nkey_file = %q\n[listen]\nc2s = %q\nc2s_direct_tls = \"\"\ns2s = \"127.0.0.1:0\"\n[s2s]\nca_file = %q\n[tls]\ncert = %q\nkey = %q\n", data, keyFile, c2s, ca.file, crt, key)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := write("127.0.0.1:0")

	ca.issue(crt, key, time.Now().Add(90*24*time.Hour), "localhost", "*.localhost")
	out, code := runCheck(t, cfg, "--strict")
	if code != 0 {
		t.Fatalf("a good installation: exit %d\n%s", code, out)
	}
	for _, want := range []string{"ok    config:", "ok    certificate localhost:", "ok    certificate conference.localhost:", "ok    data_dir:", "ok    key_file:"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "ok    ") {
			t.Errorf("not ok on a good installation: %s", line)
		}
	}

	// The key beside the data it seals: a warning, not a failure.
	inData := filepath.Join(dir, "inside.toml")
	if err := os.WriteFile(inData, []byte(fmt.Sprintf("data_dir = %q\n[listen]\nc2s = \"127.0.0.1:0\"\nc2s_direct_tls = \"\"\ns2s = \"127.0.0.1:0\"\n[s2s]\nca_file = %q\n[tls]\ncert = %q\nkey = %q\n", data, ca.file, crt, key)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCheck(t, inData); code != 0 || !strings.Contains(out, "warn  key_file: "+filepath.Join(data, "server.secret")+" is inside data_dir: a copy of the data directory then unseals the server-key data") {
		t.Errorf("the key inside data_dir: exit %d, want 0 and a warning\n%s", code, out)
	}

	ca.issue(crt, key, time.Now().Add(10*24*time.Hour), "localhost", "*.localhost")
	if out, code := runCheck(t, cfg); code != 0 || !strings.Contains(out, "warn  certificate localhost: expires in") {
		t.Errorf("a certificate expiring in 10 days: exit %d, want 0 and a warning\n%s", code, out)
	}
	if _, code := runCheck(t, cfg, "--strict"); code != 1 {
		t.Errorf("--strict with a warning: exit %d, want 1", code)
	}

	ca.issue(crt, key, time.Now().Add(-time.Hour), "localhost", "*.localhost")
	if out, code := runCheck(t, cfg); code != 1 || !strings.Contains(out, "fail  certificate localhost: expired") {
		t.Errorf("an expired certificate: exit %d\n%s", code, out)
	}

	ca.issue(crt, key, time.Now().Add(90*24*time.Hour), "other.localhost")
	if out, code := runCheck(t, cfg); code != 1 || !strings.Contains(out, "fail  certificate localhost: does not name localhost") {
		t.Errorf("a certificate for another name: exit %d\n%s", code, out)
	}

	ca.issue(crt, key, time.Now().Add(90*24*time.Hour), "localhost", "*.localhost")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if out, code := runCheck(t, write(ln.Addr().String())); code != 1 || !strings.Contains(out, "fail  port listen.c2s: "+ln.Addr().String()+" is in use by another program") {
		t.Errorf("a port in use: exit %d\n%s", code, out)
	}

	if err := os.WriteFile(cfg, []byte("hosts = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCheck(t, cfg); code != 1 || !strings.HasPrefix(out, "fail  config:") {
		t.Errorf("an invalid config: exit %d\n%s", code, out)
	}
}

// TestCheckBesideItsServer: a port held by the running parley passes, a
// self-signed certificate only warns.
func TestCheckBesideItsServer(t *testing.T) {
	dir := t.TempDir()
	addr := freeLoopbackPort(t)
	cfg := filepath.Join(dir, "parley.toml")
	conf := fmt.Sprintf("data_dir = %q\n[listen]\nc2s = %q\nc2s_direct_tls = \"\"\ns2s = \"\"\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "serve", "--config", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if _, err := os.Stat(filepath.Join(dir, "data", "parley.pid")); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("parley did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, code := runCheck(t, cfg)
	if code != 0 || !strings.Contains(out, "ok    port listen.c2s: "+addr+" is held by the running parley") ||
		!strings.Contains(out, "warn  certificate localhost: self-signed") {
		t.Errorf("beside its server: exit %d\n%s", code, out)
	}
	if _, code := runCheck(t, cfg, "--strict"); code != 1 {
		t.Errorf("--strict with a self-signed certificate: exit %d, want 1", code)
	}
}
