package integration

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClusterNodeLossUnderLoad: kill -9 of the recipient's node while a
// sender on another node streams messages to him with stream management.
// Every message the sender's node acknowledged (XEP-0198 <a h/>) is
// accounted for: read by the recipient before his node died, delivered
// from offline storage at his next login on another node, in his archive
// (MAM), or bounced to the sender with an error (past the offline limit,
// 100 by default, messages for the absent bob are refused with
// resource-constraint). The surviving nodes keep serving throughout.
func TestClusterNodeLossUnderLoad(t *testing.T) {
	n1, n2, n3 := threeNodes(t, "alice", "bob")
	bob := dialRaw(t, n2.starttls)
	bob.login("bob@localhost", "pw", "b1")
	bob.send("<presence/>")
	// bob's client reads everything until his node dies.
	var mu sync.Mutex
	var firstStream strings.Builder
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 64<<10)
		bob.conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
		for {
			k, err := bob.conn.Read(buf)
			mu.Lock()
			firstStream.Write(buf[:k])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()

	alice := dialRaw(t, n1.starttls)
	alice.wait = 2 * time.Minute
	alice.login("alice@localhost", "pw", "a1")
	alice.send("<enable xmlns='urn:xmpp:sm:3'/>")
	alice.expect("<enabled")
	const total = 300
	for i := range total {
		if i == total/2 {
			if err := n2.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		alice.send(fmt.Sprintf("<message to='bob@localhost' type='chat' id='l%d'><body>load %d.</body></message>", i, i))
		// A steady stream, not a synchronisation: about 200 a second.
		time.Sleep(5 * time.Millisecond)
	}
	<-n2.done
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	aliceOut := alice.expect("<a ")
	rest := alice.expect("/>")
	m := regexp.MustCompile(`h="(\d+)"`).FindStringSubmatch(rest)
	if m == nil {
		t.Fatalf("the ack answered %q", rest)
	}
	acked, _ := strconv.Atoi(m[1])
	if acked < total {
		t.Errorf("n1 acknowledged %d of %d messages", acked, total)
	}
	bounced := map[int]bool{}
	for _, id := range regexp.MustCompile(`<message[^>]*id="l(\d+)"[^>]*type="error"|<message[^>]*type="error"[^>]*id="l(\d+)"`).FindAllStringSubmatch(aliceOut, -1) {
		n, _ := strconv.Atoi(id[1] + id[2])
		bounced[n] = true
	}
	<-readerDone

	// bob comes back on n3: offline messages, then his archive, page by
	// page.
	bob2 := dialRaw(t, n3.starttls)
	bob2.wait = time.Minute
	bob2.login("bob@localhost", "pw", "b2")
	bob2.send("<presence/>")
	var second strings.Builder
	after := ""
	for page := 0; page < 10; page++ {
		set := "<max>250</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		bob2.send(fmt.Sprintf("<iq type='set' id='mam%d'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"+
			"<field var='with'><value>alice@localhost</value></field></x>"+
			"<set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>", page, set))
		out := bob2.expect(fmt.Sprintf(`id="mam%d"`, page))
		out += bob2.expect("</iq>")
		second.WriteString(out)
		if strings.Contains(out, `complete="true"`) {
			break
		}
		lm := regexp.MustCompile(`<last>([^<]+)</last>`).FindStringSubmatch(out)
		if lm == nil {
			t.Fatalf("a MAM page without <last>: %q", out)
		}
		after = lm[1]
	}

	mu.Lock()
	before := firstStream.String()
	mu.Unlock()
	for i := range acked {
		body := fmt.Sprintf("load %d.", i)
		live := strings.Contains(before, body)
		later := strings.Contains(second.String(), body)
		switch {
		case live || later:
		case bounced[i]:
		default:
			t.Errorf("message %d was acknowledged to alice but reached bob nowhere (live, offline, archive) and was not bounced", i)
		}
	}
	t.Logf("%d messages acknowledged; %d read live before the kill, %d bounced", acked, strings.Count(before, "<body>load "), len(bounced))
	if !n1.alive() || !n3.alive() {
		t.Fatal("a surviving node stopped")
	}
}
