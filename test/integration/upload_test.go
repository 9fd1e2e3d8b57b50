package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

const nsUpload = "urn:xmpp:http:upload:0"

// uploadClient talks HTTPS to the server's listener whatever host a URL
// names (upload.localhost need not resolve), and checks the certificate
// against the server's self-signed one for the upload domain.
func uploadClient(t *testing.T, s *server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.cafile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in", s.cafile())
	}
	var d net.Dialer
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "upload.localhost", MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, s.https)
			},
		},
	}
}

type uploadSlot struct{ put, get, auth string }

func requestSlot(t *testing.T, a *agent, filename string, size int, ctype string) (*xmlstream.Element, uploadSlot) {
	t.Helper()
	ct := ""
	if ctype != "" {
		ct = fmt.Sprintf(" content-type='%s'", ctype)
	}
	r := a.iq("<iq type='get' to='upload.localhost'><request xmlns='%s' filename='%s' size='%d'%s/></iq>", nsUpload, filename, size, ct)
	slot := r.Child(nsUpload, "slot")
	if slot == nil {
		return r, uploadSlot{}
	}
	put, get := slot.Child(nsUpload, "put"), slot.Child(nsUpload, "get")
	if put == nil || get == nil || put.Child(nsUpload, "header") == nil {
		t.Fatalf("incomplete slot: %s", r)
	}
	return r, uploadSlot{put: put.Attr("url"), get: get.Attr("url"), auth: put.Child(nsUpload, "header").Text()}
}

func httpDo(t *testing.T, c *http.Client, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func uploadDir(s *server) []string {
	entries, _ := os.ReadDir(filepath.Join(s.dir, "data", "uploads"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestHTTPUpload: a slixmpp client finds the service, gets a slot, PUTs
// and GETs the file over HTTPS; every refusal stores nothing.
func TestHTTPUpload(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{https: true, extra: "[upload]\nhost = \"upload.localhost\"\nmax_file_size = 1000\nquota_per_user_per_day = 1500\n"})
	s.addUser("alice@localhost", "pw")
	alice := s.connect(t, "alice@localhost/phone", "pw")
	c := uploadClient(t, s)

	r := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if !strings.Contains(r.String(), "upload.localhost") {
		t.Fatalf("the server's disco#items does not list the upload service: %s", r)
	}
	r = alice.iq("<iq type='get' to='upload.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(r.String(), nsUpload) || !strings.Contains(r.String(), "<value>1000</value>") {
		t.Fatalf("disco#info of the upload service: %s", r)
	}

	body := []byte(strings.Repeat("picture ", 100)) // 800 bytes
	r, slot := requestSlot(t, alice, "holiday.jpg", len(body), "image/jpeg")
	if slot.put == "" {
		t.Fatalf("slot request: %s", r)
	}
	_, port := hostPort(s.https)
	if !strings.HasPrefix(slot.put, "https://upload.localhost:"+port+"/upload/") || !strings.HasSuffix(slot.put, "/holiday.jpg") {
		t.Fatalf("slot URL %q", slot.put)
	}

	// Refusals first: each must leave the slot unused and nothing stored.
	for _, bad := range []struct {
		name   string
		body   []byte
		hdr    map[string]string
		status int
	}{
		{"no authorization", body, map[string]string{"Content-Type": "image/jpeg"}, http.StatusForbidden},
		{"tampered authorization", body, map[string]string{"Authorization": slot.auth[:len(slot.auth)-3] + "AAA", "Content-Type": "image/jpeg"}, http.StatusForbidden},
		{"wrong size", body[:799], map[string]string{"Authorization": slot.auth, "Content-Type": "image/jpeg"}, http.StatusBadRequest},
		{"wrong type", body, map[string]string{"Authorization": slot.auth, "Content-Type": "text/html"}, http.StatusBadRequest},
	} {
		resp, msg := httpDo(t, c, http.MethodPut, slot.put, bad.body, bad.hdr)
		if resp.StatusCode != bad.status {
			t.Errorf("PUT with %s: %s %s, want %d", bad.name, resp.Status, msg, bad.status)
		}
		if got := uploadDir(s); len(got) != 0 {
			t.Errorf("PUT with %s stored %q", bad.name, got)
		}
	}

	resp, msg := httpDo(t, c, http.MethodPut, slot.put, body, map[string]string{"Authorization": slot.auth, "Content-Type": "image/jpeg"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, msg)
	}
	resp, msg = httpDo(t, c, http.MethodPut, slot.put, body, map[string]string{"Authorization": slot.auth, "Content-Type": "image/jpeg"})
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("second PUT: %s %s", resp.Status, msg)
	}
	resp, got := httpDo(t, c, http.MethodGet, slot.get, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(got))
	}
	for k, v := range map[string]string{
		"Content-Type":                "image/jpeg",
		"X-Content-Type-Options":      "nosniff",
		"Content-Security-Policy":     "default-src 'none'; sandbox",
		"Access-Control-Allow-Origin": "*",
	} {
		if resp.Header.Get(k) != v {
			t.Errorf("GET %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("GET not over TLS 1.2+: %+v", resp.TLS)
	}

	// A page a browser would run is served as a download.
	r, html := requestSlot(t, alice, "page.html", 20, "text/html")
	if html.put == "" {
		t.Fatalf("slot request: %s", r)
	}
	httpDo(t, c, http.MethodPut, html.put, []byte("<script>1</script>.."), map[string]string{"Authorization": html.auth, "Content-Type": "text/html"})
	resp, _ = httpDo(t, c, http.MethodGet, html.get, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("HTML served as %s, %q, %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	resp, _ = httpDo(t, c, http.MethodOptions, html.put, nil, map[string]string{"Origin": "https://web.example", "Access-Control-Request-Method": "PUT"})
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("CORS preflight: %s %v", resp.Status, resp.Header)
	}
	resp, _ = httpDo(t, c, http.MethodGet, strings.TrimSuffix(slot.get, "holiday.jpg"), nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET on the slot's directory: %s", resp.Status)
	}

	// Too large, with the limit in the error.
	r, _ = requestSlot(t, alice, "big.bin", 1001, "")
	if errorCondition(r) != "not-acceptable" || !strings.Contains(r.String(), "<max-file-size>1000</max-file-size>") {
		t.Errorf("too large: %s", r)
	}
	// 820 bytes used today of 1500.
	r, _ = requestSlot(t, alice, "more.bin", 700, "")
	if errorCondition(r) != "resource-constraint" {
		t.Errorf("over the daily quota: %s", r)
	}
	r, _ = requestSlot(t, alice, "bad.bin", -5, "")
	if errorCondition(r) != "bad-request" {
		t.Errorf("negative size: %s", r)
	}
}

// TestHTTPUploadExpiry: the server deletes files by itself once the
// retention has passed.
func TestHTTPUploadExpiry(t *testing.T) {
	needSlixmpp(t)
	s := startServer(t, serverOpts{https: true, extra: "[upload]\nhost = \"upload.localhost\"\n[retention]\nuploads = \"3s\"\n"})
	s.addUser("alice@localhost", "pw")
	alice := s.connect(t, "alice@localhost/phone", "pw")
	c := uploadClient(t, s)
	r, slot := requestSlot(t, alice, "note.txt", 5, "text/plain")
	if slot.put == "" {
		t.Fatalf("slot request: %s", r)
	}
	resp, msg := httpDo(t, c, http.MethodPut, slot.put, []byte("hello"), map[string]string{"Authorization": slot.auth, "Content-Type": "text/plain"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, msg)
	}
	if resp, got := httpDo(t, c, http.MethodGet, slot.get, nil, nil); resp.StatusCode != http.StatusOK || string(got) != "hello" {
		t.Fatalf("GET: %s %q", resp.Status, got)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, _ := httpDo(t, c, http.MethodGet, slot.get, nil, nil)
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file still served 15s after a 3s retention: %s", resp.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got := uploadDir(s); len(got) != 0 {
		t.Errorf("expired file still on disk: %q", got)
	}
}
