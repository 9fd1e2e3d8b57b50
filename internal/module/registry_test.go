package module

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandleHTTP(t *testing.T) {
	r := NewRegistry()
	if r.HTTPHandler() != nil {
		t.Fatal("a handler without registrations")
	}
	text := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, s) })
	}
	r.HandleHTTP("/upload/", text("upload"))
	r.HandleHTTP("/other/", text("other"))
	for _, tt := range []struct{ path, want string }{
		{"/upload/x", "upload"},
		{"/other/y", "other"},
		{"/nothing", "404 page not found\n"},
	} {
		w := httptest.NewRecorder()
		r.HTTPHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if got := w.Body.String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, got, tt.want)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a second handler for a pattern did not panic")
			}
		}()
		r.HandleHTTP("/upload/", text("again"))
	}()
	if r.HTTPSAddr() != nil {
		t.Error("an address before SetHTTPSAddr")
	}
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5443}
	r.SetHTTPSAddr(a)
	if r.HTTPSAddr() != a {
		t.Errorf("HTTPSAddr = %v", r.HTTPSAddr())
	}
}
