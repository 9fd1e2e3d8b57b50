package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// liveServer is a parley binary built from this tree and started on a
// free loopback port with n accounts user1..userN / pass1..passN.
type liveServer struct {
	addr string
	pid  int
}

func startParley(t *testing.T, users int) liveServer {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts parley; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley")
	_, here, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", bin, "./cmd/parley")
	build.Dir = filepath.Join(filepath.Dir(here), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building parley: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "parley.toml")
	conf := fmt.Sprintf("data_dir = %q\n[listen]\nc2s = \"127.0.0.1:0\"\nc2s_direct_tls = \"\"\ns2s = \"\"\n[log]\nlevel = \"warn\"\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= users; i++ {
		add := exec.Command(bin, "user", "add", fmt.Sprintf("user%d@localhost", i), "--password", fmt.Sprintf("pass%d", i), "--config", cfg)
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("parley user add: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addrs := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`^listening for clients \(STARTTLS\) on (\S+)$`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-addrs:
		return liveServer{addr: a, pid: cmd.Process.Pid}
	case <-exited:
		t.Fatal("parley exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("parley did not listen within 30 s")
	}
	return liveServer{}
}

func TestLiveParley(t *testing.T) {
	srv := startParley(t, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("login+chat", func(t *testing.T) {
		res, err := Run(ctx, Config{
			Mode: ModeLoginChat, Addr: srv.addr, First: 1, Users: 10, Mechanism: MechPLAIN,
			Rate: 200, Duration: 2 * time.Second, Grace: 3 * time.Second, ServerPID: srv.pid,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Logins.OK != 10 || res.Logins.Failed != 0 {
			t.Fatalf("logins: %+v", res.Logins)
		}
		c := res.Chat
		// 200/s for 2 s: 400 scheduled; the pacer makes that exact.
		if c.Scheduled != 400 || c.Sent != 400 {
			t.Errorf("scheduled %d, sent %d; want 400", c.Scheduled, c.Sent)
		}
		if c.Lost != 0 || c.Delivered != c.Sent || c.ErrorsReceived != 0 || c.SendErrors != 0 {
			t.Errorf("chat: %+v", c)
		}
		if c.P50Ms <= 0 || c.P99Ms < c.P50Ms || c.DeliveredPerSec < 150 || c.DeliveredPerSec > 250 {
			t.Errorf("implausible figures: %+v", c)
		}
		s := res.Server
		if s == nil || s.PID != srv.pid || s.RSSBeforeKiB <= 0 || s.CPUPerMessageUs <= 0 {
			t.Errorf("server figures: %+v", s)
		}
	})

	t.Run("csi", func(t *testing.T) {
		res, err := Run(ctx, Config{
			Mode: ModeCSI, Addr: srv.addr, First: 1, Users: 10, Mechanism: MechPLAIN,
			Rate: 200, Duration: time.Second, Grace: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		c := res.CSI
		// Five inactive clients get nothing while inactive, then the
		// latest presence and the latest chat state from their partner.
		if c == nil || c.Pairs != 5 || c.Sent != 200 || c.WhileInactive != 0 || c.Received != 10 || c.SparedPct < 90 {
			t.Fatalf("csi: %+v", c)
		}
	})

	t.Run("login burst with SCRAM", func(t *testing.T) {
		res, err := Run(ctx, Config{
			Mode: ModeLogin, Addr: srv.addr, First: 1, Users: 10, Connections: 30, Mechanism: MechSCRAMSHA1,
			Concurrency: 5, Warmup: true, ServerPID: srv.pid,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Logins.OK != 30 || res.Logins.Failed != 0 || res.Logins.PerSec <= 0 {
			t.Fatalf("logins: %+v", res.Logins)
		}
	})

	t.Run("idle over two source addresses", func(t *testing.T) {
		res, err := Run(ctx, Config{
			Mode: ModeIdle, Addr: srv.addr, First: 1, Users: 10, Connections: 40, SourceAddrs: 2,
			Hold: 500 * time.Millisecond, ServerPID: srv.pid,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Logins.OK != 40 || res.Idle.Held != 40 || res.Idle.Dropped != 0 {
			t.Fatalf("idle: logins %+v, idle %+v", res.Logins, res.Idle)
		}
		if res.Server == nil || res.Server.RSSEndKiB <= 0 {
			t.Errorf("server figures: %+v", res.Server)
		}
	})

	// Last: parley slows down an address after failed logins.
	t.Run("wrong password fails", func(t *testing.T) {
		res, err := Run(ctx, Config{
			Mode: ModeLogin, Addr: srv.addr, First: 1, Users: 2, Mechanism: MechSCRAMSHA1, PasswordFormat: "wrong%d",
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Logins.OK != 0 || res.Logins.Failed != 2 || res.Logins.FirstError == "" {
			t.Fatalf("logins with wrong passwords: %+v", res.Logins)
		}
	})
}
