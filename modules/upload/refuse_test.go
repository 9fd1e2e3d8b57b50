package upload

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/xmpptime"
)

// retoken rewrites the grant inside an Authorization value, keeping the
// original MAC: what a client would try to get a bigger slot.
func retoken(t *testing.T, auth string, change func(*grant)) string {
	t.Helper()
	body64, mac64, _ := strings.Cut(strings.TrimPrefix(auth, authScheme), ".")
	body, err := base64.RawURLEncoding.DecodeString(body64)
	if err != nil {
		t.Fatal(err)
	}
	var g grant
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatal(err)
	}
	change(&g)
	body, _ = json.Marshal(g)
	return authScheme + base64.RawURLEncoding.EncodeToString(body) + "." + mac64
}

func TestPutRefused(t *testing.T) {
	body := []byte("0123456789")
	tests := []struct {
		name   string
		ctype  string // of the slot
		mutate func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte
		status int
	}{
		{"no Authorization", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			delete(hdr, "Authorization")
			return body
		}, http.StatusForbidden},
		{"MAC changed", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			a := hdr["Authorization"]
			last := a[len(a)-2]
			if last == 'A' {
				last = 'B'
			} else {
				last = 'A'
			}
			hdr["Authorization"] = a[:len(a)-2] + string(last) + a[len(a)-1:]
			return body
		}, http.StatusForbidden},
		{"size raised in grant", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			hdr["Authorization"] = retoken(t, hdr["Authorization"], func(g *grant) { g.Size = 20 })
			return []byte("01234567890123456789")
		}, http.StatusForbidden},
		{"expiry pushed back in grant", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			hdr["Authorization"] = retoken(t, hdr["Authorization"], func(g *grant) { g.Expires += 3600 })
			return body
		}, http.StatusForbidden},
		{"owner changed in grant", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			hdr["Authorization"] = retoken(t, hdr["Authorization"], func(g *grant) { g.Owner = "bob@localhost" })
			return body
		}, http.StatusForbidden},
		{"type dropped from grant", "text/plain", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			hdr["Authorization"] = retoken(t, hdr["Authorization"], func(g *grant) { g.Type = "" })
			hdr["Content-Type"] = "text/html"
			return body
		}, http.StatusForbidden},
		{"other file name", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			s.put = strings.Replace(s.put, "/a.txt", "/b.txt", 1)
			return body
		}, http.StatusForbidden},
		{"other slot id", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			i := strings.Index(s.put, pathPrefix) + len(pathPrefix)
			c := "0"
			if s.put[i] == '0' {
				c = "1"
			}
			s.put = s.put[:i] + c + s.put[i+1:]
			return body
		}, http.StatusForbidden},
		{"expired", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			e.clock.Advance(slotLifetime + time.Second)
			return body
		}, http.StatusForbidden},
		{"shorter than the slot", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			return body[:9]
		}, http.StatusBadRequest},
		{"longer than the slot", "", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			return append(body, 'x')
		}, http.StatusBadRequest},
		{"other content type", "text/plain", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			hdr["Content-Type"] = "text/html"
			return body
		}, http.StatusBadRequest},
		{"no content type when the slot has one", "text/plain", func(t *testing.T, e *env, s *slotInfo, hdr map[string]string) []byte {
			delete(hdr, "Content-Type")
			return body
		}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			s := e.slot("alice@localhost/a", "a.txt", int64(len(body)), tt.ctype)
			hdr := map[string]string{"Authorization": s.auth}
			if tt.ctype != "" {
				hdr["Content-Type"] = tt.ctype
			}
			b := tt.mutate(t, e, &s, hdr)
			r := e.do(http.MethodPut, s.put, b, hdr)
			if r.StatusCode != tt.status {
				t.Fatalf("PUT: %s %s, want %d", r.Status, readAll(t, r), tt.status)
			}
			if got := e.stored(); len(got) != 0 {
				t.Errorf("a refused PUT stored %q", got)
			}
			if r := e.do(http.MethodGet, s.get, nil, nil); r.StatusCode != http.StatusNotFound {
				t.Errorf("GET after a refused PUT: %s", r.Status)
			}
		})
	}
}

// TestMatchingTypeSpelling: the same media type written differently in
// the request and the PUT is the same type.
func TestMatchingTypeSpelling(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.slot("alice@localhost/a", "a.txt", 2, "Text/Plain; Charset=UTF-8")
	if r := e.put(s, []byte("hi"), "text/plain;charset=UTF-8"); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", r.Status, readAll(t, r))
	}
}

// TestBrokenBodyStoresNothing sends fewer bytes than Content-Length and
// hangs up, which net/http's client cannot be made to do.
func TestBrokenBodyStoresNothing(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.slot("alice@localhost/a", "a.bin", 100, "")
	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	path := s.put[strings.Index(s.put, pathPrefix):]
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: 100\r\n\r\n%s", path, domain, s.auth, strings.Repeat("x", 40))
	conn.CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("short body: %s", resp.Status)
		}
	}
	conn.Close()
	// The handler may still be cleaning up after the connection closed.
	deadline := time.Now().Add(5 * time.Second)
	for len(e.stored()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.stored(); len(got) != 0 {
		t.Errorf("a broken upload left %q", got)
	}
	// The slot was not used up.
	if r := e.put(s, make([]byte, 100), ""); r.StatusCode != http.StatusCreated {
		t.Errorf("PUT after the broken one: %s", r.Status)
	}
}

func TestQuotaPerUserPerDay(t *testing.T) {
	e := newEnv(t, Options{MaxFileSize: 60, QuotaPerUserPerDay: 100})
	first := e.clock.Now()
	s := e.slot("alice@localhost/a", "a", 60, "")
	if r := e.put(s, make([]byte, 60), ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", r.Status)
	}
	e.clock.Advance(time.Hour)
	s = e.slot("alice@localhost/a", "b", 40, "")
	if r := e.put(s, make([]byte, 40), ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT up to the quota: %s", r.Status)
	}
	r := e.iq("alice@localhost/a", domain, "get", request("c", 1, ""))
	cond, el := errorOf(t, r)
	if cond != "resource-constraint" || el.Attr("type") != "wait" {
		t.Fatalf("over the quota: %s", r)
	}
	// One byte fits again when the first upload leaves the window.
	retry := el.Child(NS, "retry")
	want := xmpptime.Format(first.Add(24 * time.Hour).Add(time.Second))
	if retry == nil || retry.Attr("stamp") != want {
		t.Errorf("retry %v, want stamp %s", retry, want)
	}
	// Another user has a quota of their own.
	e.slot("bob@localhost/b", "d", 60, "")

	e.clock.Advance(23*time.Hour + time.Second)
	e.slot("alice@localhost/a", "e", 60, "")
}

// TestQuotaAtPut: slots are not state, so two slots can together promise
// more than the quota; the PUT that would exceed it is refused.
func TestQuotaAtPut(t *testing.T) {
	e := newEnv(t, Options{MaxFileSize: 60, QuotaPerUserPerDay: 100})
	s1 := e.slot("alice@localhost/a", "a", 60, "")
	s2 := e.slot("alice@localhost/a", "b", 60, "")
	if r := e.put(s1, make([]byte, 60), ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("first PUT: %s", r.Status)
	}
	if r := e.put(s2, make([]byte, 60), ""); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT over the quota: %s", r.Status)
	}
	if got := e.stored(); len(got) != 2 {
		t.Errorf("stored %q, want only the first file and its record", got)
	}
}

func TestQuotaTotalAndExpiry(t *testing.T) {
	const retention = 7 * 24 * time.Hour
	e := newEnv(t, Options{MaxFileSize: 60, QuotaTotal: 100, Retention: retention})
	s := e.slot("alice@localhost/a", "a", 60, "")
	if r := e.put(s, make([]byte, 60), ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", r.Status)
	}
	r := e.iq("bob@localhost/b", domain, "get", request("b", 41, ""))
	if cond, _ := errorOf(t, r); cond != "resource-constraint" {
		t.Fatalf("over the total quota: %s", r)
	}
	e.slot("bob@localhost/b", "b", 40, "")

	e.clock.Advance(retention - time.Second)
	e.m.expire(e.clock.Now())
	if r := e.do(http.MethodGet, s.get, nil, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("GET before expiry: %s", r.Status)
	}
	e.clock.Advance(time.Second)
	e.m.expire(e.clock.Now())
	if r := e.do(http.MethodGet, s.get, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET after expiry: %s", r.Status)
	}
	if got := e.stored(); len(got) != 0 {
		t.Errorf("expired file still on disk: %q", got)
	}
	// The space is free again.
	e.slot("bob@localhost/b", "b", 60, "")
}

func TestSweepLeftovers(t *testing.T) {
	e := newEnv(t, Options{Retention: 0})
	now := e.clock.Now()
	old := now.Add(-staleAfter - time.Minute)
	files := map[string]time.Time{
		"0123456789abcdef0123456789abcdef.part":      old, // interrupted upload
		"1123456789abcdef0123456789abcdef":           old, // content without a record
		"2123456789abcdef0123456789abcdef.json.part": old,
		"3123456789abcdef0123456789abcdef.part":      now, // may still be running
		"README":                                     old, // not ours
	}
	for n, mt := range files {
		p := filepath.Join(e.dir, n)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	s := e.slot("alice@localhost/a", "kept", 1, "")
	if r := e.put(s, []byte("k"), ""); r.StatusCode != http.StatusCreated {
		t.Fatal(r.Status)
	}
	// "never" keeps real files however old they get.
	e.clock.Advance(365 * 24 * time.Hour)
	e.m.expire(now)
	got := e.stored()
	for _, want := range []string{"3123456789abcdef0123456789abcdef.part", "README"} {
		if !contains(got, want) {
			t.Errorf("%s removed", want)
		}
	}
	for _, gone := range []string{"0123456789abcdef0123456789abcdef.part", "1123456789abcdef0123456789abcdef", "2123456789abcdef0123456789abcdef.json.part"} {
		if contains(got, gone) {
			t.Errorf("%s kept", gone)
		}
	}
	if r := e.do(http.MethodGet, s.get, nil, nil); r.StatusCode != http.StatusOK {
		t.Errorf("a stored file went with retention never: %s", r.Status)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestRestartKeepsFilesAndQuota(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uploads")
	e := newEnv(t, Options{Dir: dir, MaxFileSize: 60, QuotaTotal: 100})
	s := e.slot("alice@localhost/a", "a.txt", 60, "text/plain")
	if r := e.put(s, make([]byte, 60), "text/plain"); r.StatusCode != http.StatusCreated {
		t.Fatal(r.Status)
	}
	// A damaged record beside it must not stop the restart.
	if err := os.WriteFile(filepath.Join(dir, "ffffffffffffffffffffffffffffffff.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, Options{Dir: dir, MaxFileSize: 60, QuotaTotal: 100})
	s.put = strings.Replace(s.put, e.srv.Listener.Addr().String(), e2.srv.Listener.Addr().String(), 1)
	s.get = s.put
	if r := e2.do(http.MethodGet, s.get, nil, nil); r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET after restart: %s %q", r.Status, r.Header.Get("Content-Type"))
	}
	if cond, _ := errorOf(t, e2.iq("bob@localhost/b", domain, "get", request("b", 41, ""))); cond != "resource-constraint" {
		t.Errorf("the restarted service forgot the stored bytes: %s", cond)
	}
	if !strings.Contains(e2.h.Logs(), "unreadable file record skipped") {
		t.Errorf("damaged record not logged: %s", e2.h.Logs())
	}
}

func TestServingHeaders(t *testing.T) {
	tests := []struct {
		slotType, putType string
		wantType, disp    string
	}{
		{"text/html", "text/html", "application/octet-stream", "attachment"},
		{"image/svg+xml", "image/svg+xml", "application/octet-stream", "attachment"},
		{"application/javascript", "application/javascript", "application/octet-stream", "attachment"},
		{"application/xml", "application/xml", "application/octet-stream", "attachment"},
		{"application/pdf", "application/pdf", "application/octet-stream", "attachment"},
		{"", "text/html; charset=utf-8", "application/octet-stream", "attachment"},
		{"", "", "application/octet-stream", "attachment"},
		{"image/jpeg", "image/jpeg", "image/jpeg", "inline"},
		{"video/mp4", "video/mp4", "video/mp4", "inline"},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8", "text/plain; charset=utf-8", "inline"},
		{"", "image/png; foo=bar", "image/png", "inline"},
	}
	e := newEnv(t, Options{})
	for i, tt := range tests {
		t.Run(tt.slotType+"|"+tt.putType, func(t *testing.T) {
			name := fmt.Sprintf("f%d.html", i)
			s := e.slot("alice@localhost/a", name, 4, tt.slotType)
			if r := e.put(s, []byte("<b/>"), tt.putType); r.StatusCode != http.StatusCreated {
				t.Fatalf("PUT: %s %s", r.Status, readAll(t, r))
			}
			r := e.do(http.MethodGet, s.get, nil, nil)
			if got := r.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if got, want := r.Header.Get("Content-Disposition"), tt.disp+`; filename=`+name; got != want {
				t.Errorf("Content-Disposition %q, want %q", got, want)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Content-Security-Policy") != "default-src 'none'; sandbox" {
				t.Errorf("protective headers missing: %v", r.Header)
			}
		})
	}
}

func TestNonASCIIFileName(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.slot("alice@localhost/a", "Grüße 日本.txt", 2, "text/plain")
	if r := e.put(s, []byte("hi"), "text/plain"); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", r.Status)
	}
	r := e.do(http.MethodGet, s.get, nil, nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Disposition"), "filename*=utf-8''Gr%C3%BC%C3%9Fe%20%E6%97%A5%E6%9C%AC.txt") {
		t.Errorf("GET: %s, Content-Disposition %q", r.Status, r.Header.Get("Content-Disposition"))
	}
}

func TestCORSAndMethods(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.slot("alice@localhost/a", "a", 1, "")
	r := e.do(http.MethodOptions, s.put, nil, map[string]string{
		"Origin":                         "https://web.example",
		"Access-Control-Request-Method":  "PUT",
		"Access-Control-Request-Headers": "authorization, content-type",
	})
	if r.StatusCode != http.StatusNoContent {
		t.Errorf("preflight: %s", r.Status)
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
		"Access-Control-Allow-Headers": "Authorization, Content-Type",
	} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, m := range []string{http.MethodDelete, http.MethodPost} {
		r := e.do(m, s.put, nil, map[string]string{"Authorization": s.auth})
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != allowedMethods {
			t.Errorf("%s: %s, Allow %q", m, r.Status, r.Header.Get("Allow"))
		}
	}
}

func TestNoListingNoGuessing(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.slot("alice@localhost/a", "a.txt", 1, "")
	if r := e.put(s, []byte("a"), ""); r.StatusCode != http.StatusCreated {
		t.Fatal(r.Status)
	}
	base := "https://" + e.srv.Listener.Addr().String()
	id := s.get[strings.Index(s.get, pathPrefix)+len(pathPrefix):][:32]
	for _, p := range []string{
		"/upload/",
		"/upload/" + id,
		"/upload/" + id + "/",
		"/upload/" + id + "/b.txt", // right id, other name
		"/upload/ffffffffffffffffffffffffffffffff/a.txt", // other id, right name
		"/upload/" + strings.ToUpper(id) + "/a.txt",
		"/upload/" + id + ".json/a.txt",
		"/",
		"/upload/x/a.txt",
	} {
		for _, m := range []string{http.MethodGet, http.MethodPut} {
			r := e.do(m, base+p, nil, map[string]string{"Authorization": s.auth})
			if r.StatusCode != http.StatusNotFound && !(m == http.MethodPut && r.StatusCode == http.StatusForbidden) {
				t.Errorf("%s %s: %s", m, p, r.Status)
			}
		}
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		public string
		addr   net.Addr
		want   string
	}{
		{"https://files.example/up", nil, "https://files.example/up"},
		{"", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5443}, "https://" + domain + ":5443"},
		{"", &net.TCPAddr{IP: net.IPv6zero, Port: 443}, "https://" + domain},
		{"", nil, ""},
	}
	for _, tt := range tests {
		e := newEnv(t, Options{PublicURL: tt.public})
		e.h.SetHTTPSAddr(tt.addr)
		got, err := e.m.baseURL()
		if got != tt.want || (tt.want == "") != errors.Is(err, errNoHTTPS) {
			t.Errorf("public %q addr %v: %q, %v; want %q", tt.public, tt.addr, got, err, tt.want)
		}
		r := e.iq("alice@localhost/a", domain, "get", request("a", 1, ""))
		if tt.want == "" {
			if cond, _ := errorOf(t, r); cond != "internal-server-error" {
				t.Errorf("slot without a listener: %s", cond)
			}
			continue
		}
		put := r.Child(NS, "slot").Child(NS, "put").Attr("url")
		if !strings.HasPrefix(put, tt.want+pathPrefix) {
			t.Errorf("slot URL %q does not start with %q", put, tt.want+pathPrefix)
		}
	}
}

func TestStartNeedsOptions(t *testing.T) {
	for _, o := range []Options{{Dir: t.TempDir(), MaxFileSize: 1}, {Domain: domain, MaxFileSize: 1}, {Domain: domain, Dir: t.TempDir()}} {
		if err := New(o).Start(nil); err == nil {
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}
