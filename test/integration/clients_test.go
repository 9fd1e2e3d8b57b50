package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Third-party clients from Debian against the real server, exchanging
// messages with a slixmpp client.

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	mustHave(t, name, err == nil, "apt-get install "+pkg)
	return p
}

// sendxmppArgs are the flags go-sendxmpp needs for this server: it has no
// option to trust one certificate, so it is told to skip verification
// (-n), as an admin would for a self-signed server on the same machine.
func sendxmppArgs(s *server, jid, password string, direct bool) []string {
	if direct {
		return []string{"-u", jid, "-p", password, "-j", s.direct, "-n", "-t", "--timeout", "20"}
	}
	return []string{"-u", jid, "-p", password, "-j", s.starttls, "-n", "--timeout", "20"}
}

// sendxmppCmd runs go-sendxmpp with a HOME of its own, so that no user
// configuration is read.
func sendxmppCmd(ctx context.Context, t *testing.T, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	return cmd
}

// go-sendxmpp sends a message as an alert script would, over STARTTLS
// (it writes a newline after <starttls/>, which the old code refused as
// data after <starttls/>) and over direct TLS; and in listen mode it
// prints a message a slixmpp client sends.
func TestGoSendxmpp(t *testing.T) {
	needSlixmpp(t)
	bin := needTool(t, "go-sendxmpp", "go-sendxmpp")
	s := startServer(t, serverOpts{})
	s.addUser("alert@localhost", "alert password")
	s.addUser("admin@localhost", "admin password")
	admin := s.connect(t, "admin@localhost/laptop", "admin password")
	admin.send("<presence/>")

	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "STARTTLS", true: "direct TLS"}[direct]
		t.Run("send over "+name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			body := "disk almost full (" + name + ")"
			cmd := sendxmppCmd(ctx, t, bin, append(sendxmppArgs(s, "alert@localhost", "alert password", direct), "admin@localhost")...)
			cmd.Stdin = strings.NewReader(body + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go-sendxmpp: %v\n%s", err, out)
			}
			admin.expect("the alert from go-sendxmpp", isMessage("alert@localhost", body))
		})
	}

	t.Run("listen", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := sendxmppCmd(ctx, t, bin, append(sendxmppArgs(s, "alert@localhost", "alert password", false), "-l")...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cancel()
			cmd.Wait()
		}()
		lines := make(chan string, 16)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// go-sendxmpp says nothing when it is ready; a message sent before
		// its session is bound waits in offline storage, so either way
		// it must print it.
		const body = "restart the backup job"
		admin.send("<message to='alert@localhost' type='chat'><body>%s</body></message>", body)
		timeout := time.After(30 * time.Second)
		var seen []string
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("go-sendxmpp -l ended; printed %q; stderr:\n%s", seen, stderr.String())
				}
				seen = append(seen, l)
				if strings.Contains(l, body) && strings.Contains(l, "admin@localhost") {
					t.Logf("go-sendxmpp -l printed %q", l)
					return
				}
			case <-timeout:
				t.Fatalf("go-sendxmpp -l did not print the message; printed %q", seen)
			}
		}
	})
}

// tmuxSession runs a terminal program in a tmux server of its own, so the
// test can type into it and read its screen.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, env []string, command ...string) *tmuxSession {
	t.Helper()
	needTool(t, "tmux", "tmux")
	ts := &tmuxSession{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	args := append([]string{"-S", ts.socket, "new-session", "-d", "-x", "200", "-y", "50"}, command...)
	cmd := exec.Command("tmux", args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screen:\n%s", ts.screen())
		}
		exec.Command("tmux", "-S", ts.socket, "kill-server").Run()
	})
	return ts
}

// keys types text and presses Enter.
func (ts *tmuxSession) keys(text string) {
	ts.t.Helper()
	if out, err := exec.Command("tmux", "-S", ts.socket, "send-keys", "-l", text).CombinedOutput(); err != nil {
		ts.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	if out, err := exec.Command("tmux", "-S", ts.socket, "send-keys", "Enter").CombinedOutput(); err != nil {
		ts.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

func (ts *tmuxSession) screen() string {
	out, _ := exec.Command("tmux", "-S", ts.socket, "capture-pane", "-p", "-J").CombinedOutput()
	return string(out)
}

// waitScreen waits until the screen shows want.
func (ts *tmuxSession) waitScreen(want string) {
	ts.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ts.screen(), want) {
		if time.Now().After(deadline) {
			ts.t.Fatalf("the screen never showed %q", want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Profanity, driven in tmux as a person would: it logs in over STARTTLS,
// sends a message that a slixmpp client receives, and shows the answer.
func TestProfanity(t *testing.T) {
	needSlixmpp(t)
	bin := needTool(t, "profanity", "profanity")
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "alice password")
	s.addUser("bob@localhost", "bob password")
	bob := s.connect(t, "bob@localhost/desk", "bob password")
	bob.send("<presence/>")

	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"), "TERM=xterm-256color", "LANG=C.UTF-8")
	ts := startTmux(t, env, bin, "--logfile", filepath.Join(home, "profanity.log"))
	ts.waitScreen("Profanity")
	host, port := hostPort(s.starttls)
	// tls trust: accept the self-signed certificate, as /tls trust would.
	ts.keys("/connect alice@localhost server " + host + " port " + port + " tls trust")
	ts.waitScreen("password")
	ts.keys("alice password")
	ts.waitScreen("logged in successfully")
	ts.keys("/msg bob@localhost hello from profanity")
	bob.expect("profanity's message", isMessage("alice@localhost", "hello from profanity"))
	bob.send("<message to='alice@localhost' type='chat'><body>hello back from slixmpp</body></message>")
	ts.waitScreen("hello back from slixmpp")
	t.Logf("profanity's screen:\n%s", ts.screen())
}
