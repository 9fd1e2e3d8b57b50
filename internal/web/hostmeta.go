package web

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
)

// serveHostMeta answers XEP-0156 discovery for the host the request
// names: its WebSocket and BOSH URLs, on the same host and port the
// browser used (or, behind a trusted proxy, the scheme it reports).
// Any origin may read it: it is public and clients of other sites look
// it up.
func (h *Handler) serveHostMeta(w http.ResponseWriter, r *http.Request, asJSON bool) {
	h.cors(w, r, true)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	host := r.Host
	name := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		name = hn
	}
	if !slices.Contains(h.cfg.Hosts, strings.ToLower(name)) {
		http.NotFound(w, r)
		return
	}
	_, secure, ok := h.client(r)
	if !ok {
		http.Error(w, "plain HTTP is served to trusted proxies only", http.StatusForbidden)
		return
	}
	if h.plain && r.Header.Get("X-Forwarded-Proto") == "http" {
		// Behind the proxy, the browser's leg is what counts.
		secure = false
	}
	ws, bosh := "ws://", "http://"
	if secure {
		ws, bosh = "wss://", "https://"
	}
	wsURL, boshURL := ws+host+PathWebSocket, bosh+host+PathBOSH
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"links": []map[string]string{
			{"rel": "urn:xmpp:alt-connections:websocket", "href": wsURL},
			{"rel": "urn:xmpp:alt-connections:xbosh", "href": boshURL},
		}})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml")
	w.Write([]byte("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n" +
		"  <Link rel='urn:xmpp:alt-connections:websocket' href='" + string(escapeAttr(wsURL)) + "'/>\n" +
		"  <Link rel='urn:xmpp:alt-connections:xbosh' href='" + string(escapeAttr(boshURL)) + "'/>\n</XRD>\n"))
}
