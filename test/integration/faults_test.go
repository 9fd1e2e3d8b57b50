package integration

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cutProxy forwards TCP to a target until it is cut: then every open
// connection is closed and new ones are refused, as when a database
// server is stopped.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// setCut cuts (or restores) the connection to the target.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// loadSenders are SM sessions of one account sending chat messages to
// one offline recipient at a steady rate each.
type loadSenders struct {
	snd  []*smSender
	sent []int
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(t *testing.T, addr, from, to string, sessions, perSecond int) *loadSenders {
	l := &loadSenders{sent: make([]int, sessions), stop: make(chan struct{})}
	for r := range sessions {
		snd := newSMSender(t, addr, from, "pw", fmt.Sprintf("load%d", r))
		l.snd = append(l.snd, snd)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(perSecond))
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				msg := fmt.Sprintf("<message to='%s' type='chat'><body>load %d %d</body></message><r xmlns='urn:xmpp:sm:3'/>", to, r, i)
				snd.c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(snd.c.conn, msg); err != nil {
					return
				}
				l.sent[r] = i + 1
			}
		}()
	}
	return l
}

// finish stops sending and waits until every message is acknowledged.
func (l *loadSenders) finish(t *testing.T, within time.Duration) (total int) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	deadline := time.Now().Add(within)
	for r, snd := range l.snd {
		total += l.sent[r]
		for snd.ackedCount() < l.sent[r] {
			if time.Now().After(deadline) {
				t.Fatalf("session %d: %d of %d messages acknowledged %v after the load ended", r, snd.ackedCount(), l.sent[r], within)
			}
			io.WriteString(snd.c.conn, "<r xmlns='urn:xmpp:sm:3'/>")
			time.Sleep(200 * time.Millisecond)
		}
		snd.mu.Lock()
		if snd.errs > 0 {
			t.Errorf("session %d received %d errors, the first: %s", r, snd.errs, snd.first)
		}
		snd.mu.Unlock()
	}
	return total
}

// expectAllOffline logs the recipient in and checks that every message
// sent was kept for them.
func expectAllOffline(t *testing.T, s *server, to string, l *loadSenders) {
	t.Helper()
	bob := s.connect(t, to+"/desk", "pw")
	bob.send("<presence/>")
	got := map[string]bool{}
	missing := 0
	bob.mu.Lock()
	bob.waitFor(func() bool {
		for _, el := range bob.stanzas {
			if b := el.Child("jabber:client", "body"); el.Name.Local == "message" && b != nil {
				got[b.Text()] = true
			}
		}
		bob.stanzas = nil
		missing = 0
		for r := range l.snd {
			for i := range l.sent[r] {
				if !got[fmt.Sprintf("load %d %d", r, i)] {
					missing++
				}
			}
		}
		return missing == 0
	})
	bob.mu.Unlock()
	if missing > 0 {
		t.Fatalf("%d messages were not kept for %s (received %d)", missing, to, len(got))
	}
}

// TestPostgresOutage is issue 10 item 8: PostgreSQL unreachable for 20 s
// under load. No message to an offline user is bounced; every one is
// acknowledged once stored and delivered afterwards. The outage is made
// by a proxy between parley and the shared server, which keeps running.
func TestPostgresOutage(t *testing.T) {
	needSlixmpp(t)
	var pg storeDriver
	for _, d := range storeDrivers(t) {
		if d.name == "postgres" {
			pg = d
		}
	}
	if pg.name == "" {
		t.Skip("PostgreSQL is not reachable")
	}
	// The DSN of the test's schema, through the proxy.
	dsn := strings.TrimSuffix(strings.SplitN(pg.toml, "dsn = ", 2)[1], "\n")
	dsn = strings.Trim(dsn, `"`)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	s := startServer(t, serverOpts{extra: fmt.Sprintf("[storage]\ndriver = \"postgres\"\ndsn = %q\n[limits]\nmax_offline_messages = 5000\n", u.String())})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")

	load := startLoad(t, s.starttls, "alice@localhost", "bob@localhost", 4, 25)
	time.Sleep(2 * time.Second)
	proxy.setCut(true)
	time.Sleep(20 * time.Second)
	proxy.setCut(false)
	time.Sleep(2 * time.Second)
	total := load.finish(t, 60*time.Second)
	t.Logf("%d messages sent across the outage", total)
	expectAllOffline(t, s, "bob@localhost", load)
	if !strings.Contains(s.Stderr(), "storage failure") {
		t.Errorf("the outage was not logged:\n%s", s.Stderr())
	}
}

// TestSQLiteDiskFull is issue 10 item 8: SQLite on a small filesystem
// that fills up under load. Nothing acknowledged is dropped, MAM queries
// are answered while the disk is full, and everything is stored once
// space returns.
func TestSQLiteDiskFull(t *testing.T) {
	needSlixmpp(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("PARLEY_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", mnt, err, out)
		}
	})
	data := filepath.Join(mnt, "data")
	s := startServer(t, serverOpts{dataDir: data, cafile: filepath.Join(data, "tls", "selfsigned.crt"),
		extra: "[limits]\nmax_offline_messages = 5000\n"})
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")
	alice := s.connect(t, "alice@localhost/reader", "pw")

	load := startLoad(t, s.starttls, "alice@localhost", "bob@localhost", 3, 25)
	time.Sleep(time.Second)
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// SQLite writes in pages: keep the disk full while the load goes on.
	for range 10 {
		time.Sleep(time.Second)
		fill(t, filler)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil || st.Bavail*uint64(st.Bsize) > 64<<10 {
		t.Fatalf("the filesystem is not full: %v, %d bytes free", err, st.Bavail*uint64(st.Bsize))
	}
	if !strings.Contains(s.Stderr(), "storage failure") {
		t.Errorf("the full disk was not logged:\n%s", s.Stderr())
	}
	// The archive still answers (from what is committed).
	start := time.Now()
	results, _ := mamQuery(t, alice, "full", "<set xmlns='http://jabber.org/protocol/rsm'><max>5</max></set>", "")
	t.Logf("MAM answered %d results in %v with the disk full", len(results), time.Since(start))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	total := load.finish(t, 60*time.Second)
	t.Logf("%d messages sent while the disk filled up", total)
	expectAllOffline(t, s, "bob@localhost", load)
	// And every message is in the sender's archive.
	db, err := sql.Open("sqlite", filepath.Join(data, "parley.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM archive WHERE owner = 'alice@localhost'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < total {
		t.Errorf("alice's archive holds %d messages, %d were sent", n, total)
	}
}

// fill appends to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 14 { // bounded: 1 GiB at most
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			// Fill the last partial block too.
			for range 64 {
				if _, err := f.Write(buf[:1024]); err != nil {
					return
				}
			}
			return
		}
	}
	t.Fatal("the filesystem never filled up")
}
