// Package web serves XMPP to browsers: WebSocket (RFC 7395), BOSH
// (XEP-0124/0206) and their discovery (XEP-0156). Both transports only
// frame: each session underneath is a c2s session, handed a net.Conn
// that carries the XMPP byte stream c2s reads over TCP, so SASL,
// binding, stream management, CSI, limits and throttles are the same.
package web

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/coder/websocket"
)

// Sessions runs client streams; c2s.Server is one.
type Sessions interface {
	ServeConn(nc net.Conn, secure bool) bool
}

// Config is what the web transports need from the server.
type Config struct {
	Hosts    []string // domains whose discovery documents are served
	Sessions Sessions
	// AllowedOrigins are the browser origins (scheme://host[:port]) that
	// may open sessions; requests without Origin (not from a browser)
	// are always allowed.
	AllowedOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For is believed and
	// whose plain-HTTP requests count as secure (they terminated TLS).
	TrustedProxies []netip.Prefix
	// MaxStanzaBytes bounds one WebSocket message and one BOSH body.
	MaxStanzaBytes int
	BOSH           BOSHLimits
	Log            *slog.Logger
}

// Handler serves the web transports on one listener; plain says it is
// the plain-HTTP listener meant for a reverse proxy.
type Handler struct {
	cfg   *Config
	plain bool
	bosh  *boshServer
	next  http.Handler
}

// Paths the transports are served at.
const (
	PathWebSocket = "/xmpp-websocket"
	PathBOSH      = "/http-bind"
)

// NewHandlers returns the handlers for the HTTPS and the plain-HTTP
// listener; next serves every other path (file upload). They share the
// BOSH sessions, which Stop ends.
func NewHandlers(cfg *Config, next http.Handler) (https, plain *Handler) {
	if next == nil {
		next = http.NotFoundHandler()
	}
	b := newBOSHServer(cfg)
	return &Handler{cfg: cfg, bosh: b, next: next}, &Handler{cfg: cfg, plain: true, bosh: b, next: next}
}

// Stop ends the BOSH sessions' bookkeeping (their c2s sessions end with
// c2s) and waits for its goroutines.
func (h *Handler) Stop() { h.bosh.stop() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathWebSocket:
		h.serveWebSocket(w, r)
	case PathBOSH:
		h.serveBOSH(w, r)
	case "/.well-known/host-meta":
		h.serveHostMeta(w, r, false)
	case "/.well-known/host-meta.json":
		h.serveHostMeta(w, r, true)
	default:
		h.next.ServeHTTP(w, r)
	}
}

// client resolves who is asking. On the plain listener only a trusted
// proxy may ask, and its X-Forwarded-For names the client: its
// rightmost address not itself a trusted proxy, since the proxy appends
// what it saw and anything left of that is what the client claimed.
// secure says the client's leg was encrypted (HTTPS here, or a trusted
// proxy, which is expected to terminate TLS).
func (h *Handler) client(r *http.Request) (addr net.Addr, secure, ok bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return nil, false, false
	}
	peer := ap.Addr().Unmap()
	trusted := h.trusted(peer)
	if h.plain && !trusted {
		return nil, false, false
	}
	addr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(peer, ap.Port()))
	if !trusted {
		return addr, true, true
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: trust nothing further left
		}
		a = a.Unmap()
		addr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
		if !h.trusted(a) {
			break
		}
	}
	return addr, true, true
}

func (h *Handler) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(h.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// originAllowed checks a browser's Origin; a missing one is a client
// that is not a browser, which no other site can drive.
func (h *Handler) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || slices.Contains(h.cfg.AllowedOrigins, o)
}

// cors adds what a browser needs to let a page of an allowed origin
// read the answer.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request, any bool) {
	o := r.Header.Get("Origin")
	switch {
	case any:
		w.Header().Set("Access-Control-Allow-Origin", "*")
	case o != "" && h.originAllowed(r):
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	default:
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	w.Header().Set("Access-Control-Max-Age", "86400")
}

func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	addr, secure, ok := h.client(r)
	if !ok {
		http.Error(w, "plain HTTP is served to trusted proxies only", http.StatusForbidden)
		return
	}
	if !h.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !slices.Contains(websocketProtocols(r), "xmpp") {
		http.Error(w, errNotXMPP.Error(), http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"xmpp"},
		// originAllowed did the check, against the configured origins.
		InsecureSkipVerify: true,
	})
	if err != nil {
		h.cfg.Log.Debug("web: WebSocket upgrade failed", "addr", addr, "err", err)
		return
	}
	// A stanza and its frame's framing; bigger messages end the
	// connection (status 1009) before they are buffered.
	ws.SetReadLimit(int64(h.cfg.MaxStanzaBytes) + 4096)
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	wc := newWSConn(ws, local, addr)
	if !h.cfg.Sessions.ServeConn(wc, secure) {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	wc.run()
}

func websocketProtocols(r *http.Request) []string {
	var ps []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			ps = append(ps, strings.TrimSpace(p))
		}
	}
	return ps
}
