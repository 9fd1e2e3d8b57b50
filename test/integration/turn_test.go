package integration

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

const nsExtdisco = "urn:xmpp:extdisco:2"

// startCoturn runs Debian's coturn in the foreground on a free loopback
// port with the TURN REST API secret, and waits until it accepts TCP.
func startCoturn(t *testing.T, secret string) string {
	t.Helper()
	bin := needTool(t, "turnserver", "coturn")
	addr := freeLoopbackPort(t)
	_, port := hostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-n",
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port="+port,
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=localhost",
		"--no-tls", "--no-dtls", "--no-cli", "--simple-log",
		"--log-file=stdout", "--pidfile="+filepath.Join(dir, "turnserver.pid"),
		"--userdb="+filepath.Join(dir, "turndb.sqlite"),
		// The client's two allocations talk to each other on loopback.
		"--allow-loopback-peers")
	cmd.Dir = dir
	var out strings.Builder
	var mu lockedWriter
	mu.mu, mu.w = new(sync.Mutex), &out
	cmd.Stdout, cmd.Stderr = &mu, &mu
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			mu.mu.Lock()
			t.Logf("turnserver output:\n%s", out.String())
			mu.mu.Unlock()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver does not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allocate runs turnutils_uclient with the credentials: two clients
// allocate relays and send each other a few packets through them.
func allocate(t *testing.T, port, user, password string, tcp bool) (string, error) {
	t.Helper()
	bin := needTool(t, "turnutils_uclient", "coturn")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"-y", "-n", "3", "-u", user, "-w", password, "-p", port}
	if tcp {
		args = append(args, "-t")
	}
	out, err := exec.CommandContext(ctx, bin, append(args, "127.0.0.1")...).CombinedOutput()
	return string(out), err
}

// XEP-0215 credentials from parley work against a real coturn with
// use-auth-secret; a wrong password does not.
func TestTURNCredentialsWithCoturn(t *testing.T) {
	needSlixmpp(t)
	port := startCoturn(t, "turn-shared-secret")
	s := startServer(t, serverOpts{extra: fmt.Sprintf(
		"[turn]\nhost = \"127.0.0.1\"\nport = %s\nsecret = \"turn-shared-secret\"\nttl = \"1h\"\ntransports = [\"stun/udp\", \"turn/udp\", \"turn/tcp\", \"turns/tcp:5349\"]\n", port)})
	s.addUser("alice@localhost", "pw-alice")
	alice := s.connect(t, "alice@localhost/desk", "pw-alice")

	info := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(info.String(), `var="`+nsExtdisco+`"`) {
		t.Fatalf("disco#info does not advertise %s: %s", nsExtdisco, info)
	}

	res := alice.iq("<iq type='get' to='localhost'><services xmlns='%s'/></iq>", nsExtdisco)
	if res.Attr("type") != "result" {
		t.Fatalf("services: %s", res)
	}
	var kinds []string
	var turnUDP, turnTCP *xmlstream.Element
	for svc := range res.Child(nsExtdisco, "services").Elements() {
		kinds = append(kinds, svc.Attr("type")+"/"+svc.Attr("transport")+":"+svc.Attr("port"))
		switch {
		case svc.Attr("type") == "turn" && svc.Attr("transport") == "udp":
			turnUDP = svc
		case svc.Attr("type") == "turn" && svc.Attr("transport") == "tcp":
			turnTCP = svc
		}
	}
	want := []string{"stun/udp:" + port, "turn/udp:" + port, "turn/tcp:" + port, "turns/tcp:5349"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("services %v, want %v", kinds, want)
	}
	user := turnUDP.Attr("username")
	if !strings.HasSuffix(user, ":alice") || turnUDP.Attr("password") == "" || turnUDP.Attr("expires") == "" {
		t.Fatalf("turn entry without credentials: %s", turnUDP)
	}

	// A type filter, and a credentials request (XEP-0215 §5).
	only := alice.iq("<iq type='get' to='localhost'><services xmlns='%s' type='stun'/></iq>", nsExtdisco)
	if n := strings.Count(only.String(), "<service "); n != 1 || strings.Contains(only.String(), "password") {
		t.Fatalf("services of type stun: %s", only)
	}
	cred := alice.iq("<iq type='get' to='localhost'><credentials xmlns='%s'><service host='127.0.0.1' type='turn'/></credentials></iq>", nsExtdisco)
	cs := cred.Child(nsExtdisco, "credentials")
	if cs == nil || cs.Child(nsExtdisco, "service") == nil || cs.Child(nsExtdisco, "service").Attr("password") == "" {
		t.Fatalf("credentials: %s", cred)
	}
	cuser, cpass := cs.Child(nsExtdisco, "service").Attr("username"), cs.Child(nsExtdisco, "service").Attr("password")

	for _, c := range []struct {
		name      string
		user, pwd string
		tcp       bool
	}{
		{"udp from services", user, turnUDP.Attr("password"), false},
		{"tcp from services", turnTCP.Attr("username"), turnTCP.Attr("password"), true},
		{"udp from credentials", cuser, cpass, false},
	} {
		if out, err := allocate(t, port, c.user, c.pwd, c.tcp); err != nil || !strings.Contains(out, "tot_recv_msgs=") || strings.Contains(out, "ERROR") {
			t.Fatalf("%s: turnutils_uclient failed (%v):\n%s", c.name, err, out)
		}
	}
	out, err := allocate(t, port, user, "d3JvbmcgcGFzc3dvcmQ=", false)
	if err == nil || !strings.Contains(out, "Cannot complete Allocation") {
		t.Fatalf("a wrong password was not refused (%v):\n%s", err, out)
	}
}

// Without [turn] nothing is announced.
func TestNoTURNNoExtdisco(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{})
	s.addUser("alice@localhost", "pw-alice")
	alice := s.connect(t, "alice@localhost/desk", "pw-alice")
	info := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if info.Attr("type") != "result" || strings.Contains(info.String(), nsExtdisco) {
		t.Fatalf("disco#info: %s", info)
	}
	if r := alice.iq("<iq type='get' to='localhost'><services xmlns='%s'/></iq>", nsExtdisco); errorCondition(r) != "service-unavailable" {
		t.Fatalf("services without [turn]: %s", r)
	}
}
