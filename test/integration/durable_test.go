package integration

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// smSender is a raw client that sends messages with stream management
// and records the highest h the server acknowledged.
type smSender struct {
	c     *rawClient
	mu    sync.Mutex
	acked int
	errs  int    // error stanzas received
	first string // the first of them
	gotA  *sync.Cond
	done  chan struct{}
}

var errRE = regexp.MustCompile(`<message[^>]* type=["']error["']`)

var ackRE = regexp.MustCompile(`<a xmlns=["']urn:xmpp:sm:3["'] h=["'](\d+)["']`)

func newSMSender(t *testing.T, addr, bare, password, resource string) *smSender {
	c := dialRaw(t, addr)
	c.login(bare, password, resource)
	c.send("<enable xmlns='urn:xmpp:sm:3'/>")
	c.expect("<enabled")
	s := &smSender{c: c, done: make(chan struct{})}
	s.gotA = sync.NewCond(&s.mu)
	go s.read()
	return s
}

// read collects acks until the connection breaks.
func (s *smSender) read() {
	defer close(s.done)
	var pending string
	buf := make([]byte, 4096)
	s.c.conn.SetReadDeadline(time.Time{})
	for {
		n, err := s.c.conn.Read(buf)
		pending += string(buf[:n])
		if i := errRE.FindStringIndex(pending); i != nil {
			s.mu.Lock()
			s.errs += len(errRE.FindAllStringIndex(pending, -1))
			if s.first == "" {
				s.first = pending[i[0]:min(len(pending), i[0]+400)]
			}
			s.mu.Unlock()
		}
		for _, m := range ackRE.FindAllStringSubmatch(pending, -1) {
			h, _ := strconv.Atoi(m[1])
			s.mu.Lock()
			s.acked = max(s.acked, h)
			s.gotA.Broadcast()
			s.mu.Unlock()
		}
		if i := strings.LastIndex(pending, ">"); i >= 0 {
			pending = pending[i+1:]
		}
		if err != nil {
			s.mu.Lock()
			s.gotA.Broadcast()
			s.mu.Unlock()
			return
		}
	}
}

func (s *smSender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// TestKillNineKeepsAcknowledgedMessages is issue 10 item 6: the server is
// killed with SIGKILL while a client sends messages under stream
// management; after a restart on the same data, every message the
// client saw acknowledged is in its archive and in the offline store of
// the (offline) recipient.
func TestKillNineKeepsAcknowledgedMessages(t *testing.T) {
	needSlixmpp(t)
	o := serverOpts{extra: "[limits]\nmax_offline_messages = 5000\n"}
	s := startServer(t, o)
	s.addUser("alice@localhost", "pw")
	s.addUser("bob@localhost", "pw")

	// Several sessions of one account, each below the per-session flood
	// limit (50 messages/s), make the load.
	const sessions, perSecond = 6, 40
	senders := make([]*smSender, sessions)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range senders {
		snd := newSMSender(t, s.starttls, "alice@localhost", "pw", fmt.Sprintf("s%d", r))
		senders[r] = snd
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / perSecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				msg := fmt.Sprintf("<message to='bob@localhost' type='chat'><body>kill %d %d</body></message>", r, i)
				if i%5 == 4 {
					msg += "<r xmlns='urn:xmpp:sm:3'/>"
				}
				snd.c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(snd.c.conn, msg); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	close(stop)
	wg.Wait()
	acked := make([]int, sessions)
	total := 0
	for r, snd := range senders {
		<-snd.done
		acked[r] = snd.ackedCount()
		total += acked[r]
	}
	if total == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	t.Logf("%d messages acknowledged before SIGKILL", total)

	s2 := launch(t, s.dir, s.config, o)
	alice := s2.connect(t, "alice@localhost/check", "pw")
	archived := map[string]bool{}
	after := ""
	for range total/250 + 2 {
		rsm := "<set xmlns='http://jabber.org/protocol/rsm'><max>250</max>"
		if after != "" {
			rsm += "<after>" + after + "</after>"
		}
		results, fin := mamQuery(t, alice, "k"+after, rsm+"</set>", "<field var='with'><value>bob@localhost</value></field>")
		for _, r := range results {
			fwd := r.Child("urn:xmpp:mam:2", "result").Child("urn:xmpp:forward:0", "forwarded")
			if m := fwd.Child("jabber:client", "message"); m != nil {
				archived[m.Child("jabber:client", "body").Text()] = true
			}
		}
		if fin.Attr("complete") == "true" || len(results) == 0 {
			break
		}
		after = fin.FirstElement().Child("http://jabber.org/protocol/rsm", "last").Text()
	}
	bob := s2.connect(t, "bob@localhost/desk", "pw")
	bob.send("<presence/>")
	got := map[string]bool{}
	bob.mu.Lock()
	bob.waitFor(func() bool {
		for _, el := range bob.stanzas {
			if b := el.Child("jabber:client", "body"); el.Name.Local == "message" && b != nil {
				got[b.Text()] = true
			}
		}
		bob.stanzas = nil
		for r := range sessions {
			for i := range acked[r] {
				if !got[fmt.Sprintf("kill %d %d", r, i)] {
					return false
				}
			}
		}
		return true
	})
	bob.mu.Unlock()
	missingArchive, missingOffline := 0, 0
	for r := range sessions {
		for i := range acked[r] {
			body := fmt.Sprintf("kill %d %d", r, i)
			if !archived[body] {
				missingArchive++
			}
			if !got[body] {
				missingOffline++
			}
		}
	}
	if missingArchive > 0 || missingOffline > 0 {
		t.Fatalf("of %d acknowledged messages, %d are missing from the sender's archive and %d were not delivered from offline storage (archive holds %d)",
			total, missingArchive, missingOffline, len(archived))
	}
}
