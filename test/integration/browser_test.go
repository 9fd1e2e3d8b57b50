package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// webDir holds the browser test's node project (browser.mjs, page.html).
func webDir() string { return filepath.Join(srcRoot, "test", "integration", "web") }

// needBrowser finds chromium and node and installs the node packages
// (playwright-core, converse.js) from package-lock.json when missing.
func needBrowser(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/usr/bin/chromium")
	mustHave(t, "chromium", err == nil, "apt-get install chromium")
	_, err = exec.LookPath("node")
	mustHave(t, "node", err == nil, "apt-get install nodejs npm")
	if _, err := os.Stat(filepath.Join(webDir(), "node_modules", "converse.js", "dist", "converse.min.js")); err == nil {
		return
	}
	_, err = exec.LookPath("npm")
	mustHave(t, "npm", err == nil, "apt-get install npm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = webDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", webDir(), err, out)
	}
}

// servePage serves the test page and Converse.js's dist on 127.0.0.1.
func servePage(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(filepath.Join(webDir(), "node_modules", "converse.js", "dist")))))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(webDir(), "page.html"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestBrowser: Converse.js in headless chromium logs in over parley's
// WebSocket, then over BOSH, sends a message a slixmpp client receives
// and shows the one it sends back.
func TestBrowser(t *testing.T) {
	needSlixmpp(t)
	needBrowser(t)
	page := servePage(t)
	s := startServer(t, serverOpts{https: true, http: true,
		extra: fmt.Sprintf("[http]\nallowed_origins = [%q]\n", page)})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	for _, tc := range []struct{ name, transport, url string }{
		{"websocket", "ws", "wss://" + s.https + "/xmpp-websocket"},
		{"bosh", "bosh", "http://" + s.http + "/http-bind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Available, so the browser's message to the bare JID reaches it.
			bob := s.connect(t, "bob@localhost/"+tc.name, "pw")
			bob.send("<presence/>")
			bob.expect("own presence", isPresence("bob@localhost/"+tc.name, ""))
			q := url.Values{"transport": {tc.transport}, "url": {tc.url}, "jid": {"alice@localhost/" + tc.name}, "password": {"pw"}}
			out := "hello from chromium over " + tc.name
			back := "hello back over " + tc.name
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "browser.mjs", page+"/?"+q.Encode(), "bob@localhost", out, back)
			cmd.Dir = webDir()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			step := func(want string) {
				t.Helper()
				select {
				case l, ok := <-lines:
					if ok && l == want {
						return
					}
					cmd.Wait()
					t.Fatalf("browser: want %q, got %q; stderr:\n%s", want, l, stderr.String())
				case <-ctx.Done():
					t.Fatalf("browser: no %q in time; stderr:\n%s", want, stderr.String())
				}
			}
			step("connected")
			step("sent")
			bob.expect("the browser's message", isMessage("alice@localhost/"+tc.name, out))
			bob.send("<message to='alice@localhost/%s' type='chat'><body>%s</body></message>", tc.name, back)
			step("shown")
			for range lines {
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("browser: %v; stderr:\n%s", err, stderr.String())
			}
		})
	}
}
