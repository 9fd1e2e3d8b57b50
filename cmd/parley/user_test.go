package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"parley/internal/control"
)

// TestUserCommandsThroughRunningServer: with a server answering on the
// control socket, `user passwd`, `del` and `disable` are its to carry
// out (it may hold the user's key), and the CLI says what it answered;
// without one the CLI works on storage and a password reset loses the
// sealed data. The server here is a stand-in that records what it was
// asked, so that what the CLI did itself shows in storage.
func TestUserCommandsThroughRunningServer(t *testing.T) {
	cfg := testConfig(t, func(*testing.T) (string, string) { return "sqlite", "" })
	if _, err := parley(t, "user", "add", "alice@localhost", "--password", "pw", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if out, err := parley(t, "user", "passwd", "alice@localhost", "--password", "pw2", "--config", cfg); err != nil || !strings.Contains(out, "sealed data lost:") {
		t.Fatalf("user passwd without a server: %v\n%s", err, out)
	}

	var (
		mu     sync.Mutex
		asked  []string
		lost   bool
		refuse error
	)
	srv := control.NewServer(control.SocketPath(filepath.Dir(cfg)), 1<<20, slog.New(slog.DiscardHandler))
	srv.Handle(control.CmdPasswd, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.PasswdArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, "passwd "+a.JID+" "+a.Password)
		return control.PasswdResult{SealedLost: lost}, refuse
	})
	for cmd, n := range map[string]int{control.CmdDeleteUser: 1, control.CmdDisableUser: 2} {
		srv.Handle(cmd, func(_ context.Context, raw json.RawMessage) (any, error) {
			var a control.AccountArgs
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, cmd+" "+a.JID)
			return control.CountResult{Count: n}, nil
		})
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Stop(context.Background())
		}
	}
	defer stop()

	run := func(args ...string) (string, error) {
		t.Helper()
		return parley(t, append(args, "--config", cfg)...)
	}
	if out, err := run("user", "passwd", "alice@localhost", "--password", "pw3"); err != nil || !strings.Contains(out, "no sealed data lost") {
		t.Fatalf("user passwd, the server holding the key: %v\n%s", err, out)
	}
	mu.Lock()
	lost = true
	mu.Unlock()
	if out, err := run("user", "passwd", "alice@localhost", "--password", "pw4"); err != nil || !strings.Contains(out, "sealed data lost:") {
		t.Fatalf("user passwd, the server not holding the key: %v\n%s", err, out)
	}
	mu.Lock()
	refuse = errors.New("alice@localhost is logged in on node n1")
	mu.Unlock()
	if out, err := run("user", "passwd", "alice@localhost", "--password", "pw5"); err == nil || !strings.Contains(err.Error(), "logged in on node n1") {
		t.Fatalf("user passwd refused by the server: %v\n%s", err, out)
	}
	if out, err := run("user", "disable", "alice@localhost"); err != nil || !strings.Contains(out, "2 sessions ended") {
		t.Fatalf("user disable: %v\n%s", err, out)
	}
	if out, err := run("user", "del", "alice@localhost"); err != nil || !strings.Contains(out, "1 sessions ended") {
		t.Fatalf("user del: %v\n%s", err, out)
	}
	want := "passwd alice@localhost pw3|passwd alice@localhost pw4|passwd alice@localhost pw5|disable-user alice@localhost|delete-user alice@localhost"
	mu.Lock()
	got := strings.Join(asked, "|")
	mu.Unlock()
	if got != want {
		t.Fatalf("the server was asked %q, want %q", got, want)
	}

	// The CLI left storage to the server: the account it was asked to
	// delete is still there; with the server gone, a reset works on
	// storage again.
	stop()
	if out, err := run("user", "list"); err != nil || !strings.Contains(out, "alice@localhost") {
		t.Fatalf("user list after the server was asked to delete: %v\n%s", err, out)
	}
	if out, err := run("user", "passwd", "alice@localhost", "--password", "pw6"); err != nil || !strings.Contains(out, "sealed data lost:") {
		t.Fatalf("user passwd once the server stopped: %v\n%s", err, out)
	}
}
