package web

import (
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSessions hands the connections c2s would get to the test.
type fakeSessions chan net.Conn

func (f fakeSessions) ServeConn(nc net.Conn, secure bool) bool {
	f <- nc
	return true
}

func boshPost(t *testing.T, h *Handler, body string) string {
	t.Helper()
	r := httptest.NewRequest("POST", PathBOSH, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Body.String()
}

// TestBOSHOutputBounded: output beyond MaxBuffer waits for the client
// to fetch what is held, and the client then gets it in order.
func TestBOSHOutputBounded(t *testing.T) {
	sessions := make(fakeSessions, 1)
	cfg := &Config{Hosts: []string{"example.org"}, Sessions: sessions, MaxStanzaBytes: 1 << 16,
		BOSH: BOSHLimits{MaxWait: 5 * time.Second, Inactivity: time.Minute, MaxPause: time.Minute, MaxBuffer: 100},
		Log:  slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, _ := NewHandlers(cfg, nil)
	defer h.Stop()
	created := make(chan string, 1)
	go func() {
		created <- boshPost(t, h, "<body xmlns='http://jabber.org/protocol/httpbind' rid='10' to='example.org' wait='5' hold='1'/>")
	}()
	nc := <-sessions
	hdr := make([]byte, 200)
	n, _ := nc.Read(hdr)
	if !strings.HasPrefix(string(hdr[:n]), "<stream:stream xmlns='jabber:client'") || !strings.Contains(string(hdr[:n]), "to='example.org'") {
		t.Fatalf("c2s got %q", hdr[:n])
	}
	nc.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'><stream:features/>"))
	first := <-created
	sid := attrOf(first, "sid")
	if sid == "" || attrOf(first, "authid") != "s1" || !strings.Contains(first, "<stream:features") {
		t.Fatalf("creation answer %s", first)
	}
	el := func(i int) string { return "<message id='" + strings.Repeat("x", 40) + string(rune('a'+i)) + "'/>" }
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range 3 {
			nc.Write([]byte(el(i)))
		}
	}()
	select {
	case <-wrote:
		t.Fatal("three 60-byte elements went into a 100-byte buffer with nobody fetching")
	case <-time.After(200 * time.Millisecond):
	}
	var got string
	for rid := 11; rid < 14 && strings.Count(got, "<message") < 3; rid++ {
		got += boshPost(t, h, "<body xmlns='http://jabber.org/protocol/httpbind' rid='"+strconv.Itoa(rid)+"' sid='"+sid+"'/>")
	}
	<-wrote
	if i, j, k := strings.Index(got, "xa'"), strings.Index(got, "xb'"), strings.Index(got, "xc'"); i < 0 || j < i || k < j {
		t.Fatalf("answers %s", got)
	}
	nc.Close()
}

func attrOf(s, name string) string {
	s = strings.ReplaceAll(s, `"`, "'")
	_, rest, ok := strings.Cut(s, " "+name+"='")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, "'")
	return v
}
