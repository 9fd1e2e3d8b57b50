package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// agent is one slixmpp client (clients/agent.py) driven by a test.
type agent struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	jid   string

	mu      sync.Mutex
	cond    *sync.Cond
	stanzas []*xmlstream.Element // received, not yet taken
	events  []string
	closed  bool
}

// connect starts an agent for jid and waits for its session to start.
func (s *server) connect(t *testing.T, jid, password string, extra ...string) *agent {
	t.Helper()
	return s.connectAt(t, jid, password, false, extra...)
}

// connectAt is connect on the direct TLS port when direct is true (the
// agent then needs --direct-tls in extra).
func (s *server) connectAt(t *testing.T, jid, password string, direct bool, extra ...string) *agent {
	t.Helper()
	_, port := hostPort(s.starttls)
	if direct {
		_, port = hostPort(s.direct)
	}
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "clients", "agent.py")
	a := &agent{t: t, name: jid}
	a.cond = sync.NewCond(&a.mu)
	args := []string{script, "--jid", jid, "--password", password, "--port", port, "--cafile", s.cafile()}
	args = append(args, extra...)
	if os.Getenv("PARLEY_AGENT_DEBUG") != "" {
		args = append(args, "--debug") // slixmpp's own log, shown when a test fails
	}
	a.cmd = exec.Command("/usr/bin/python3", args...)
	var err error
	if a.stdin, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	a.cmd.Stderr = &lockedWriter{mu: &a.mu, w: &stderr}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go a.read(out)
	t.Cleanup(func() {
		a.stdin.Close()
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			a.mu.Lock()
			t.Logf("agent %s stderr:\n%s", a.name, stderr.String())
			a.mu.Unlock()
		}
	})
	ev := a.waitEvent("session_start")
	var m map[string]string
	json.Unmarshal([]byte(ev), &m)
	a.jid = m["jid"]
	return a
}

func (a *agent) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var m map[string]string
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		a.mu.Lock()
		if m["event"] == "stanza" {
			if el, err := xmlstream.ParseElement([]byte(m["xml"]), "jabber:client"); err == nil {
				a.stanzas = append(a.stanzas, el)
			}
		} else {
			a.events = append(a.events, sc.Text())
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.closed = true
	a.cond.Broadcast()
	a.mu.Unlock()
}

// waitFor blocks until cond is true, the agent's output ends, or 10 s.
func (a *agent) waitFor(cond func() bool) bool {
	timer := time.AfterFunc(10*time.Second, func() {
		a.mu.Lock()
		a.cond.Broadcast()
		a.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if a.closed || time.Now().After(deadline) {
			return cond()
		}
		a.cond.Wait()
	}
	return true
}

// waitEvent waits for an event and removes it (and those before it).
func (a *agent) waitEvent(name string) string {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var found string
	ok := a.waitFor(func() bool {
		for i, e := range a.events {
			if strings.Contains(e, `"event": "`+name+`"`) {
				found = e
				a.events = a.events[i+1:]
				return true
			}
		}
		return false
	})
	if !ok {
		a.t.Fatalf("%s: no %s event; events: %v", a.name, name, a.events)
	}
	return found
}

func (a *agent) send(format string, args ...any) {
	a.t.Helper()
	line, _ := json.Marshal(map[string]string{"op": "send", "xml": fmt.Sprintf(format, args...)})
	if _, err := a.stdin.Write(append(line, '\n')); err != nil {
		a.t.Fatalf("%s: %v", a.name, err)
	}
}

func (a *agent) op(op string) {
	line, _ := json.Marshal(map[string]string{"op": op})
	a.stdin.Write(append(line, '\n'))
}

// expect waits for a received stanza that match accepts, removes it from
// the queue and returns it.
func (a *agent) expect(what string, match func(*xmlstream.Element) bool) *xmlstream.Element {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var got *xmlstream.Element
	ok := a.waitFor(func() bool {
		for i, el := range a.stanzas {
			if match(el) {
				got = el
				a.stanzas = append(a.stanzas[:i], a.stanzas[i+1:]...)
				return true
			}
		}
		return false
	})
	if !ok {
		var seen []string
		for _, el := range a.stanzas {
			seen = append(seen, el.String())
		}
		a.t.Fatalf("%s: did not receive %s; received:\n%s", a.name, what, strings.Join(seen, "\n"))
	}
	return got
}

// expectNone checks that nothing match accepts arrives within d.
func (a *agent) expectNone(what string, d time.Duration, match func(*xmlstream.Element) bool) {
	a.t.Helper()
	time.Sleep(d)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, el := range a.stanzas {
		if match(el) {
			a.t.Fatalf("%s: unexpectedly received %s: %s", a.name, what, el)
		}
	}
}

// iq sends an IQ with a fresh id and returns the response.
func (a *agent) iq(format string, args ...any) *xmlstream.Element {
	a.t.Helper()
	id := fmt.Sprintf("t%d", time.Now().UnixNano())
	a.send("%s", strings.Replace(fmt.Sprintf(format, args...), "<iq ", "<iq id='"+id+"' ", 1))
	return a.expect("the answer to IQ "+id, func(el *xmlstream.Element) bool {
		return el.Name.Local == "iq" && el.Attr("id") == id && (el.Attr("type") == "result" || el.Attr("type") == "error")
	})
}

// Matchers.
func isMessage(from, body string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		b := el.Child("jabber:client", "body")
		return el.Name.Local == "message" && strings.HasPrefix(el.Attr("from"), from) && b != nil && b.Text() == body
	}
}

func isPresence(from, typ string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		return el.Name.Local == "presence" && strings.HasPrefix(el.Attr("from"), from) && el.Attr("type") == typ
	}
}

func isRosterPush(contact, subscription string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		if el.Name.Local != "iq" || el.Attr("type") != "set" {
			return false
		}
		q := el.Child("jabber:iq:roster", "query")
		if q == nil {
			return false
		}
		it := q.Child("jabber:iq:roster", "item")
		return it != nil && it.Attr("jid") == contact && it.Attr("subscription") == subscription
	}
}

func errorCondition(el *xmlstream.Element) string {
	if el.Attr("type") != "error" {
		return ""
	}
	e := el.Child("jabber:client", "error")
	if e == nil || e.FirstElement() == nil {
		return "?"
	}
	return e.FirstElement().Name.Local
}
