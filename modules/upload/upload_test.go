package upload

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

const domain = "upload.localhost"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	m     *Module
	h     *modtest.Host
	srv   *httptest.Server
	clock *clock
	dir   string
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	h := modtest.NewHost("localhost")
	h.AddUser("alice@localhost")
	h.AddUser("bob@localhost")
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	o.Domain = domain
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "uploads")
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = 1 << 20
	}
	o.Now = c.Now
	m := New(o)
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h.HTTPHandler())
	t.Cleanup(srv.Close)
	h.SetHTTPSAddr(srv.Listener.Addr())
	return &env{t: t, m: m, h: h, srv: srv, clock: c, dir: o.Dir}
}

// iq sends an IQ from a user to the service and returns its answer.
func (e *env) iq(from, to, typ string, payload *xmlstream.Element) *xmlstream.Element {
	e.t.Helper()
	el := xmlstream.New(stanza.NSClient, "iq", "type", typ, "id", "q1", "from", from, "to", to)
	el.AddChild(payload)
	if !e.h.ToComponent(context.Background(), jid.MustParse(from), jid.MustParse(to), el) {
		e.t.Fatalf("no component for %s", to)
	}
	routed := e.h.TakeRouted()
	if len(routed) != 1 {
		e.t.Fatalf("want one answer, got %d", len(routed))
	}
	r := routed[0]
	if r.Attr("id") != "q1" || r.Attr("to") != from || r.Attr("from") != to {
		e.t.Fatalf("answer addressed wrongly: %s", r)
	}
	return r
}

func request(filename string, size int64, ctype string) *xmlstream.Element {
	req := xmlstream.New(NS, "request", "filename", filename, "size", strconv.FormatInt(size, 10))
	if ctype != "" {
		req.SetAttr("content-type", ctype)
	}
	return req
}

type slotInfo struct{ put, get, auth string }

// slot asks for a slot and fails the test unless one comes back.
func (e *env) slot(from, filename string, size int64, ctype string) slotInfo {
	e.t.Helper()
	r := e.iq(from, domain, "get", request(filename, size, ctype))
	s := r.Child(NS, "slot")
	if r.Attr("type") != "result" || s == nil {
		e.t.Fatalf("slot request refused: %s", r)
	}
	put, get := s.Child(NS, "put"), s.Child(NS, "get")
	if put == nil || get == nil || put.Child(NS, "header") == nil {
		e.t.Fatalf("incomplete slot: %s", s)
	}
	hd := put.Child(NS, "header")
	if hd.Attr("name") != "Authorization" {
		e.t.Fatalf("header %q, want Authorization", hd.Attr("name"))
	}
	return slotInfo{put: put.Attr("url"), get: get.Attr("url"), auth: hd.Text()}
}

// errorOf returns the condition and the error element of an IQ error.
func errorOf(t *testing.T, r *xmlstream.Element) (string, *xmlstream.Element) {
	t.Helper()
	if r.Attr("type") != "error" {
		t.Fatalf("want an error, got %s", r)
	}
	e := r.Child(stanza.NSClient, "error")
	if e == nil || e.FirstElement() == nil {
		t.Fatalf("error without condition: %s", r)
	}
	return e.FirstElement().Name.Local, e
}

// do sends an HTTP request to the test server; URLs name the service
// domain, which only the test server answers for.
func (e *env) do(method, u string, body []byte, hdr map[string]string) *http.Response {
	e.t.Helper()
	u = strings.Replace(u, "https://"+domain+":", "https://127.0.0.1:", 1)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *env) put(s slotInfo, body []byte, ctype string) *http.Response {
	e.t.Helper()
	hdr := map[string]string{"Authorization": s.auth}
	if ctype != "" {
		hdr["Content-Type"] = ctype
	}
	return e.do(http.MethodPut, s.put, body, hdr)
}

func readAll(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stored lists the upload directory.
func (e *env) stored() []string {
	e.t.Helper()
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

func TestDisco(t *testing.T) {
	e := newEnv(t, Options{MaxFileSize: 5000})
	r := e.iq("alice@localhost/phone", domain, "get", xmlstream.New(nsDiscoInfo, "query"))
	q := r.Child(nsDiscoInfo, "query")
	if r.Attr("type") != "result" || q == nil {
		t.Fatalf("disco#info: %s", r)
	}
	id := q.Child(nsDiscoInfo, "identity")
	if id == nil || id.Attr("category") != "store" || id.Attr("type") != "file" {
		t.Errorf("identity: %v", id)
	}
	var features []string
	var maxSize, formType string
	for c := range q.Elements() {
		if c.Name.Local == "feature" {
			features = append(features, c.Attr("var"))
		}
		if c.Name == (xmlstream.Name{Space: dataform.NS, Local: "x"}) {
			for f := range c.Elements() {
				v := f.Child(dataform.NS, "value")
				switch f.Attr("var") {
				case "FORM_TYPE":
					formType = v.Text()
				case "max-file-size":
					maxSize = v.Text()
				}
			}
		}
	}
	if !slices.Contains(features, NS) || !slices.Contains(features, nsDiscoInfo) {
		t.Errorf("features %q", features)
	}
	if formType != NS || maxSize != "5000" {
		t.Errorf("form: FORM_TYPE %q, max-file-size %q", formType, maxSize)
	}

	r = e.iq("alice@localhost/phone", domain, "get", xmlstream.New(nsDiscoItems, "query"))
	if q := r.Child(nsDiscoItems, "query"); r.Attr("type") != "result" || q == nil || q.FirstElement() != nil {
		t.Errorf("disco#items: %s", r)
	}
	r = e.iq("alice@localhost/phone", domain, "get", xmlstream.New(nsDiscoInfo, "query", "node", "x"))
	if c, _ := errorOf(t, r); c != "item-not-found" {
		t.Errorf("disco#info with node: %s", c)
	}
	if got := e.h.Components(); len(got) != 1 || got[0].Domain != domain {
		t.Errorf("components %v", got)
	}
}

func TestSlotRequestRefused(t *testing.T) {
	e := newEnv(t, Options{MaxFileSize: 1000})
	tests := []struct {
		name, from, to, typ string
		payload             *xmlstream.Element
		cond, errType       string
	}{
		{"remote user", "eve@remote.example/x", domain, "get", request("a.png", 10, ""), "not-allowed", "cancel"},
		{"the server itself", "localhost", domain, "get", request("a.png", 10, ""), "not-allowed", "cancel"},
		{"no filename", "alice@localhost/a", domain, "get", request("", 10, ""), "bad-request", "modify"},
		{"size not a number", "alice@localhost/a", domain, "get", xmlstream.New(NS, "request", "filename", "a", "size", "ten"), "bad-request", "modify"},
		{"size missing", "alice@localhost/a", domain, "get", xmlstream.New(NS, "request", "filename", "a"), "bad-request", "modify"},
		{"size negative", "alice@localhost/a", domain, "get", request("a", -1, ""), "bad-request", "modify"},
		{"bad content type", "alice@localhost/a", domain, "get", request("a", 10, "not a type"), "bad-request", "modify"},
		{"too large", "alice@localhost/a", domain, "get", request("a", 1001, ""), "not-acceptable", "modify"},
		{"set instead of get", "alice@localhost/a", domain, "set", request("a", 10, ""), "service-unavailable", "cancel"},
		{"to a JID at the service", "alice@localhost/a", "x@" + domain, "get", request("a", 10, ""), "service-unavailable", "cancel"},
		{"unknown payload", "alice@localhost/a", domain, "get", xmlstream.New("urn:example", "q"), "service-unavailable", "cancel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.iq(tt.from, tt.to, tt.typ, tt.payload)
			cond, el := errorOf(t, r)
			if cond != tt.cond || el.Attr("type") != tt.errType {
				t.Fatalf("got %s (%s), want %s (%s): %s", cond, el.Attr("type"), tt.cond, tt.errType, r)
			}
			if tt.cond == "not-acceptable" {
				ftl := el.Child(NS, "file-too-large")
				if ftl == nil || ftl.Child(NS, "max-file-size") == nil || ftl.Child(NS, "max-file-size").Text() != "1000" {
					t.Errorf("no file-too-large with the limit: %s", el)
				}
			}
		})
	}
	if got := e.stored(); len(got) != 0 {
		t.Errorf("refused requests left files: %q", got)
	}
}

func TestMessagesBounced(t *testing.T) {
	e := newEnv(t, Options{})
	msg := xmlstream.New(stanza.NSClient, "message", "from", "alice@localhost/a", "to", domain)
	e.h.ToComponent(context.Background(), jid.MustParse("alice@localhost/a"), jid.MustParse(domain), msg)
	r := e.h.TakeRouted()
	if len(r) != 1 || r[0].Attr("type") != "error" {
		t.Fatalf("message answered with %v", r)
	}
	pres := xmlstream.New(stanza.NSClient, "presence", "from", "alice@localhost/a", "to", domain)
	e.h.ToComponent(context.Background(), jid.MustParse("alice@localhost/a"), jid.MustParse(domain), pres)
	res := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", "x", "from", "alice@localhost/a", "to", domain)
	e.h.ToComponent(context.Background(), jid.MustParse("alice@localhost/a"), jid.MustParse(domain), res)
	if r := e.h.TakeRouted(); len(r) != 0 {
		t.Fatalf("presence or IQ result answered: %v", r)
	}
}

func TestUploadAndDownload(t *testing.T) {
	e := newEnv(t, Options{Retention: 7 * 24 * time.Hour})
	body := []byte("\x89PNG\r\n\x1a\nnot really a picture")
	s := e.slot("alice@localhost/phone", "../../holiday pic.png", int64(len(body)), "image/png")
	if !strings.HasPrefix(s.put, "https://"+domain+":") || s.put != s.get {
		t.Fatalf("put %q get %q", s.put, s.get)
	}
	if !strings.HasSuffix(s.put, "/holiday%20pic.png") || strings.Contains(s.put, "..") {
		t.Errorf("URL does not end in the sanitised name: %s", s.put)
	}
	if r := e.put(s, body, "image/png"); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", r.Status, readAll(t, r))
	}

	r := e.do(http.MethodGet, s.get, nil, nil)
	if r.StatusCode != http.StatusOK || readAll(t, r) != string(body) {
		t.Fatalf("GET: %s", r.Status)
	}
	want := map[string]string{
		"Content-Type":                "image/png",
		"Content-Disposition":         `inline; filename="holiday pic.png"`,
		"X-Content-Type-Options":      "nosniff",
		"Content-Security-Policy":     "default-src 'none'; sandbox",
		"Referrer-Policy":             "no-referrer",
		"Access-Control-Allow-Origin": "*",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("GET %s = %q, want %q", k, got, v)
		}
	}
	r = e.do(http.MethodHead, s.get, nil, nil)
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Length") != strconv.Itoa(len(body)) || readAll(t, r) != "" {
		t.Errorf("HEAD: %s, length %q", r.Status, r.Header.Get("Content-Length"))
	}
	r = e.do(http.MethodGet, s.get, nil, map[string]string{"Range": "bytes=0-3"})
	if r.StatusCode != http.StatusPartialContent || readAll(t, r) != "\x89PNG" {
		t.Errorf("range GET: %s", r.Status)
	}

	// The slot is used: a second PUT, even with the same content, is
	// refused and the first file stays.
	if r := e.put(s, []byte("\x89PNG\r\n\x1a\nsomething else, same size"[:len(body)]), "image/png"); r.StatusCode != http.StatusConflict {
		t.Errorf("second PUT: %s", r.Status)
	}
	if r := e.do(http.MethodGet, s.get, nil, nil); readAll(t, r) != string(body) {
		t.Errorf("the second PUT changed the file")
	}

	// Private on disk: the directory 0700, the files 0600.
	fi, err := os.Stat(e.dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, %v", fi.Mode(), err)
	}
	names := e.stored()
	if len(names) != 2 {
		t.Fatalf("stored %q, want the file and its record", names)
	}
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(e.dir, n))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, %v", n, fi.Mode(), err)
		}
	}
	// Nothing of the file is readable on disk: not its owner, its name,
	// its type or its content.
	var md meta
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(e.dir, n))
		for _, clear := range []string{"alice", "holiday", "image/png", "PNG", "\r\n\x1a"} {
			if strings.Contains(string(b), clear) {
				t.Errorf("%s shows %q in clear", n, clear)
			}
		}
		if id, ok := strings.CutSuffix(n, ".json"); ok {
			if md, err = e.m.files.readMeta(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if md.Owner != "alice@localhost" || md.Size != int64(len(body)) || md.Type != "image/png" || md.Name != "holiday pic.png" || !md.Created.Equal(e.clock.Now()) {
		t.Errorf("record %+v", md)
	}
}

// TestClearFileOfEarlierVersion: a file stored in clear beside a JSON
// record (earlier versions) is still served, ranges too.
func TestClearFileOfEarlierVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uploads")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const id = "0123456789abcdef0123456789abcdef"
	content := "old clear content"
	rec := `{"owner":"alice@localhost","name":"old.txt","size":17,"type":"text/plain","created":"2025-03-01T11:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, id), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Dir: dir})
	u := "https://" + e.srv.Listener.Addr().String() + slotPath(id, "old.txt")
	if r := e.do(http.MethodGet, u, nil, nil); r.StatusCode != http.StatusOK || readAll(t, r) != content {
		t.Fatalf("GET of a clear file: %s", r.Status)
	}
	if r := e.do(http.MethodGet, u, nil, map[string]string{"Range": "bytes=4-8"}); r.StatusCode != http.StatusPartialContent || readAll(t, r) != "clear" {
		t.Errorf("range GET of a clear file: %s", r.Status)
	}
}
