package upload

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startPut begins a PUT to slot whose body the test writes through the
// returned pipe; the response arrives on the channel (nil on a transport
// error, e.g. the server cut the connection without an answer).
func (e *env) startPut(s slotInfo, size int64) (*io.PipeWriter, <-chan *http.Response) {
	e.t.Helper()
	pr, pw := io.Pipe()
	u := strings.Replace(s.put, "https://"+domain+":", "https://127.0.0.1:", 1)
	req, err := http.NewRequest(http.MethodPut, u, pr)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", s.auth)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			resp = nil
		}
		done <- resp
	}()
	e.t.Cleanup(func() { pw.Close() })
	return pw, done
}

func TestSlowBodyIsCut(t *testing.T) {
	e := newEnv(t, Options{MinRate: 100, RateWindow: 500 * time.Millisecond})
	s := e.slot("alice@localhost/phone", "slow.bin", 1000, "")
	pw, done := e.startPut(s, 1000)
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		// One byte every 100 ms: 5 per window where 50 are needed.
		for range 1000 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := pw.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	select {
	case resp := <-done:
		if resp == nil {
			t.Fatal("the slow upload was cut without an answer")
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("slow upload answered %d, want 408", resp.StatusCode)
		}
		// Grace and first window are 1 s.
		if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
			t.Errorf("slow upload cut after %v, want about 1s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a body trickling one byte every 100 ms was not cut within 15 s")
	}
	if n := e.m.files.inProgress("alice@localhost"); n != 0 {
		t.Errorf("%d uploads still in progress after the cut", n)
	}
	for _, f := range e.stored() {
		t.Errorf("left on disk: %s", f)
	}
}

func TestPacedUploadThatKeepsUpSucceeds(t *testing.T) {
	e := newEnv(t, Options{MinRate: 100, RateWindow: 500 * time.Millisecond})
	s := e.slot("alice@localhost/phone", "ok.bin", 600, "")
	pw, done := e.startPut(s, 600)
	// 100 bytes every 250 ms for 1.5 s: slow, but fast enough.
	for range 6 {
		time.Sleep(250 * time.Millisecond)
		if _, err := pw.Write([]byte(strings.Repeat("y", 100))); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	resp := <-done
	if resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("paced upload: %v", resp)
	}
	resp.Body.Close()
	if got := readAll(t, e.do(http.MethodGet, s.get, nil, nil)); got != strings.Repeat("y", 600) {
		t.Errorf("stored %d bytes", len(got))
	}
}

func TestConcurrentUploadsPerUser(t *testing.T) {
	e := newEnv(t, Options{ConcurrentPerUser: 2})
	const alice = "alice@localhost/phone"
	slots := []slotInfo{e.slot(alice, "a", 10, ""), e.slot(alice, "b", 10, ""), e.slot(alice, "c", 10, "")}
	// Two PUTs in progress: each has sent half its body.
	var pipes []*io.PipeWriter
	var dones []<-chan *http.Response
	for _, s := range slots[:2] {
		pw, done := e.startPut(s, 10)
		if _, err := pw.Write([]byte("12345")); err != nil {
			t.Fatal(err)
		}
		pipes, dones = append(pipes, pw), append(dones, done)
	}
	waitFor(t, func() bool { return e.m.files.inProgress("alice@localhost") == 2 })

	// A third PUT is refused with 429, a slot request with wait.
	resp := e.put(slots[2], []byte("0123456789"), "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third concurrent PUT: %d %q, want 429 with Retry-After", resp.StatusCode, readAll(t, resp))
	}
	r := e.iq(alice, domain, "get", request("d", 10, ""))
	cond, el := errorOf(t, r)
	if cond != "resource-constraint" || el.Attr("type") != "wait" {
		t.Errorf("slot request during two uploads: %s", r)
	}
	// Another user is not affected.
	e.slot("bob@localhost/pc", "e", 10, "")

	// One finishes: alice may upload again.
	pipes[0].Write([]byte("67890"))
	pipes[0].Close()
	if resp := <-dones[0]; resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("first upload: %v", resp)
	}
	e.slot(alice, "f", 10, "")
	if resp := e.put(slots[2], []byte("0123456789"), ""); resp.StatusCode != http.StatusCreated {
		t.Errorf("PUT after one finished: %d %s", resp.StatusCode, readAll(t, resp))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
