// Package integration starts the real parley binary on free loopback ports
// and drives it with real clients: slixmpp (Debian's python3-slixmpp, run
// with /usr/bin/python3) and raw sockets for the malformed-input cases.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binPath   string
	srcRoot   string
	trackOnce sync.Once
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "parley")
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	srcRoot = root
	build := exec.Command("go", "build", "-o", binPath, "./cmd/parley")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building parley:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// trackSources opens every source file of the server and of the test
// clients. go test caches a package's result until the files its tests
// opened change; the binary is built by a subprocess it cannot see, so
// without this a change to the server would be answered from the cache.
// It must run inside a test: opens in TestMain before m.Run are not
// logged.
func trackSources(root string) {
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "parley-data") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".py", ".mod", ".sum":
			if f, err := os.Open(path); err == nil {
				f.Close()
			}
		}
		return nil
	})
}

// mustHave skips when an external tool is missing on a developer machine,
// but fails under CI (CI=true) or PARLEY_REQUIRE_INTEGRATION=1, so that the
// integration tests cannot silently not run where they must.
func mustHave(t *testing.T, what string, ok bool, hint string) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf("%s is not available (%s)", what, hint)
	if os.Getenv("CI") == "true" || os.Getenv("PARLEY_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func needSlixmpp(t *testing.T) {
	t.Helper()
	err := exec.Command("/usr/bin/python3", "-c", "import slixmpp").Run()
	mustHave(t, "python3-slixmpp", err == nil, "apt-get install python3-slixmpp")
}

type server struct {
	t        *testing.T
	dir      string
	config   string
	cmd      *exec.Cmd
	starttls string // host:port
	direct   string
	admin    string // the profiler's host:port, when enabled
	https    string // the HTTPS listener's host:port, when enabled
	http     string // the plain HTTP listener's host:port, when enabled
	s2s      string // the server-to-server listener's host:port, when enabled
	comp     string // the component listener's host:port, when enabled
	ca       string // the certificate clients trust, when not the self-signed one
	mu       sync.Mutex
	stderr   bytes.Buffer
	done     chan struct{}
}

type serverOpts struct {
	hosts     []string
	anonymous []string
	admin     bool   // enable the loopback profiler
	https     bool   // enable the HTTPS listener (file upload)
	http      bool   // enable the plain HTTP listener (web clients behind a proxy)
	extra     string // appended TOML
	top       string // top-level TOML keys (admins), written before any table
	s2s       string // listen.s2s ("127.0.0.1:0", or a reserved port); "" = off
	component bool   // listen for components (extra must add [[components]])
	cafile    string // the certificate clients trust when extra sets [tls] cert
	dataDir   string // "" = data/ in the test's directory
}

// startServer writes a config with ports chosen by the kernel, starts
// parley and waits for it to say where it listens.
func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	trackOnce.Do(func() { trackSources(srcRoot) })
	if len(o.hosts) == 0 {
		o.hosts = []string{"localhost"}
	}
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "hosts = %s\n", tomlList(o.hosts))
	if len(o.anonymous) > 0 {
		fmt.Fprintf(&cfg, "anonymous_hosts = %s\n", tomlList(o.anonymous))
	}
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	fmt.Fprintf(&cfg, "data_dir = %q\n", dataDir)
	cfg.WriteString(o.top)
	cfg.WriteString("[listen]\nc2s = \"127.0.0.1:0\"\nc2s_direct_tls = \"127.0.0.1:0\"\n")
	if o.admin {
		cfg.WriteString("admin = \"127.0.0.1:0\"\n")
	}
	if o.https {
		cfg.WriteString("https = \"127.0.0.1:0\"\n")
	}
	if o.http {
		cfg.WriteString("http = \"127.0.0.1:0\"\n")
	}
	fmt.Fprintf(&cfg, "s2s = %q\n", o.s2s)
	if o.component {
		cfg.WriteString("component = \"127.0.0.1:0\"\n")
	}
	cfg.WriteString(o.extra)
	path := filepath.Join(dir, "parley.toml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, path, o)
}

// launch starts parley with an existing config and data directory (also
// again after a crash) and waits for it to say where it listens.
func launch(t *testing.T, dir, path string, o serverOpts) *server {
	t.Helper()
	s := &server{t: t, dir: dir, config: path, done: make(chan struct{}), ca: o.cafile}
	s.cmd = exec.Command(binPath, "serve", "--config", path)
	s.cmd.Dir = dir
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.stop)
	re := regexp.MustCompile(`^listening for clients \((STARTTLS|direct TLS)\) on (\S+)$`)
	adminRE := regexp.MustCompile(`^profiler \(pprof\) on http://(\S+)/debug/pprof/$`)
	httpsRE := regexp.MustCompile(`^serving HTTPS \([^)]*\) on (\S+)$`)
	httpRE := regexp.MustCompile(`^serving HTTP \([^)]*\) on (\S+)$`)
	s2sRE := regexp.MustCompile(`^listening for servers on (\S+)$`)
	compRE := regexp.MustCompile(`^listening for components on (\S+)$`)
	deadline := time.After(30 * time.Second)
	for s.starttls == "" || s.direct == "" || (o.admin && s.admin == "") || (o.https && s.https == "") || (o.http && s.http == "") || (o.s2s != "" && s.s2s == "") || (o.component && s.comp == "") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("parley exited before listening; stderr:\n%s", s.Stderr())
			}
			if m := adminRE.FindStringSubmatch(l); m != nil {
				s.admin = m[1]
			}
			if m := httpsRE.FindStringSubmatch(l); m != nil {
				s.https = m[1]
			}
			if m := httpRE.FindStringSubmatch(l); m != nil {
				s.http = m[1]
			}
			if m := s2sRE.FindStringSubmatch(l); m != nil {
				s.s2s = m[1]
			}
			if m := compRE.FindStringSubmatch(l); m != nil {
				s.comp = m[1]
			}
			if m := re.FindStringSubmatch(l); m != nil {
				if m[1] == "STARTTLS" {
					s.starttls = m[2]
				} else {
					s.direct = m[2]
				}
			}
		case <-deadline:
			t.Fatalf("parley did not start in 30s; stderr:\n%s", s.Stderr())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return s
}

func tomlList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("parley did not stop within 15s of SIGTERM")
	}
	if s.t.Failed() {
		s.t.Logf("parley stderr:\n%s", s.Stderr())
	}
}

// alive reports whether the server process is still running.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// parley runs a parley subcommand against this server's config.
func (s *server) parley(stdin string, args ...string) (string, error) {
	s.t.Helper()
	args = append(args, "--config", s.config)
	cmd := exec.Command(binPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *server) addUser(jid, password string) {
	s.t.Helper()
	if out, err := s.parley("", "user", "add", jid, "--password", password); err != nil {
		s.t.Fatalf("user add %s: %v\n%s", jid, err, out)
	}
}

func (s *server) cafile() string {
	if s.ca != "" {
		return s.ca
	}
	return filepath.Join(s.dir, "data", "tls", "selfsigned.crt")
}

type loginResult struct {
	Connected      bool   `json:"connected"`
	Authenticated  bool   `json:"authenticated"`
	BoundJID       string `json:"bound_jid"`
	Mech           string `json:"mech"`
	Ping           string `json:"ping"`
	DiscoFeatures  any    `json:"disco_features"`
	UnknownIQError string `json:"unknown_iq_error"`
	Failure        any    `json:"failure"`
	TLSVersion     string `json:"tls_version"`
}

// slixmppLogin runs clients/login.py and decodes what it saw.
func (s *server) slixmppLogin(t *testing.T, args ...string) loginResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "clients", "login.py")
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{script, "--cafile", s.cafile()}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("login.py: %v\nstderr:\n%s", err, stderr.String())
	}
	var r loginResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("login.py printed %q: %v\nstderr:\n%s", out, err, stderr.String())
	}
	return r
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}
