package invitepage

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"parley/internal/invites"
	"parley/modules/internal/modtest"
)

func get(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Code, w.Header(), w.Body.String()
}

func TestPages(t *testing.T) {
	store := invites.Open(t.TempDir())
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	m := New(store)
	m.now = func() time.Time { return now }
	h := modtest.NewHost("example.org")
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	srv := h.HTTPHandler()
	token, _, err := store.Create(invites.Spec{Host: "example.org", Uses: 1, TTL: 48 * time.Hour, Contact: "alice@example.org"}, now)
	if err != nil {
		t.Fatal(err)
	}

	code, hdr, body := get(t, srv, invites.PageURL("", token))
	if code != http.StatusOK {
		t.Fatalf("a valid invite's page: %d\n%s", code, body)
	}
	uri := invites.URI("example.org", token)
	for _, want := range []string{"example.org", "alice@example.org", "5 December 2026, 12:00 UTC", `href="` + uri + `"`,
		"<svg", "Conversations", "Monal", "Siskin", "Dino", "Gajim"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// No script, nothing loaded from elsewhere, no Referer with the token.
	for _, bad := range []string{"<script", " src=", "<link", "@import", "url("} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("the page has %q", bad)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if hdr.Get("Referrer-Policy") != "no-referrer" || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", hdr)
	}

	if _, err := store.Use(token, "example.org", now); err != nil {
		t.Fatal(err)
	}
	if code, _, body := get(t, srv, invites.PageURL("", token)); code != http.StatusGone || !strings.Contains(body, "it has been used") || strings.Contains(body, "<svg") {
		t.Errorf("a used invite: %d\n%s", code, body)
	}
	for _, p := range []string{invites.PageURL("", "unknownToken123"), invites.PageURL("", ""), invites.PagePath + "a/b", invites.PageURL("", strings.Repeat("a", 200))} {
		if code, _, body := get(t, srv, p); code != http.StatusNotFound || !strings.Contains(body, "Unknown invite") {
			t.Errorf("%s: %d\n%s", p, code, body)
		}
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, invites.PageURL("", token), nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
}

// The SVG draws exactly the dark modules of the QR code of the text, and
// the code is a QR code of level M: finder patterns in three corners,
// the version the text's length needs at level M, and a quiet zone.
func TestQRSVG(t *testing.T) {
	text := invites.URI("example.org", "qD4xM0aQk6Zl1sYbV9wJc2Rt")
	svg, err := qrSVG(text)
	if err != nil {
		t.Fatal(err)
	}
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	want := q.Bitmap()
	n := len(want)
	got := make([][]bool, n)
	for i := range got {
		got[i] = make([]bool, n)
	}
	for _, r := range regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`).FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.Atoi(r[1])
		y, _ := strconv.Atoi(r[2])
		w, _ := strconv.Atoi(r[3])
		for i := range w {
			got[y][x+i] = true
		}
	}
	for y := range n {
		for x := range n {
			if got[y][x] != want[y][x] {
				t.Fatalf("module (%d,%d) is %v in the SVG, %v in the code", x, y, got[y][x], want[y][x])
			}
		}
	}
	if !strings.Contains(svg, `viewBox="0 0 `+strconv.Itoa(n)+" "+strconv.Itoa(n)+`"`) {
		t.Errorf("viewBox does not match %d modules", n)
	}
	// 58 bytes in byte mode at level M need version 4 (3 holds 42, 4
	// holds 62): 33 modules, 41
	// with the quiet zone of 4 on each side.
	if len(text) != 58 || n != 41 {
		t.Fatalf("%d bytes gave %d modules with the quiet zone, want 41 (version 4)", len(text), n)
	}
	finder := func(x0, y0 int) bool {
		for y := range 7 {
			for x := range 7 {
				ring := max(abs(x-3), abs(y-3))
				if want[y0+y][x0+x] != (ring != 2) {
					return false
				}
			}
		}
		return true
	}
	if !finder(4, 4) || !finder(n-11, 4) || !finder(4, n-11) || finder(n-11, n-11) {
		t.Error("finder patterns are not in exactly three corners")
	}
	// The error correction level is the first two format bits (row 8 of
	// the symbol, columns 0 and 1, under the top left finder), masked
	// with 10: M = 00 reads 10, L = 01 reads 11.
	level := func(m [][]bool) [2]bool { return [2]bool{m[4+8][4], m[4+8][5]} }
	low, err := qrcode.New(text, qrcode.Low)
	if err != nil {
		t.Fatal(err)
	}
	if level(want) != [2]bool{true, false} || level(low.Bitmap()) != [2]bool{true, true} {
		t.Errorf("format bits: level %v, want M (dark, light); a level L code has %v", level(want), level(low.Bitmap()))
	}
	for i := range n {
		if want[0][i] || want[i][0] || want[n-1][i] || want[i][n-1] {
			t.Fatal("no quiet zone")
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
