package modtest

import (
	"fmt"
	"net"
	"net/http"
)

// HandleHTTP records a module's HTTP handler; HTTPHandler serves them.
func (h *Host) HandleHTTP(pattern string, fn http.Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.http == nil {
		h.http = map[string]http.Handler{}
	}
	if _, dup := h.http[pattern]; dup {
		panic(fmt.Sprintf("modtest: two HTTP handlers for %q", pattern))
	}
	h.http[pattern] = fn
}

// HTTPHandler returns a mux over the registered HTTP handlers, as the
// server's HTTPS listener would serve them (e.g. for httptest).
func (h *Host) HTTPHandler() http.Handler {
	h.mu.Lock()
	defer h.mu.Unlock()
	mux := http.NewServeMux()
	for p, fn := range h.http {
		mux.Handle(p, fn)
	}
	return mux
}

// SetHTTPSAddr sets what HTTPSAddr returns, e.g. an httptest server's
// address.
func (h *Host) SetHTTPSAddr(a net.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.httpsAddr = a
}

func (h *Host) HTTPSAddr() net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.httpsAddr
}
