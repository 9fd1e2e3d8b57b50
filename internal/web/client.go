package web

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// DialWebSocket opens an RFC 7395 connection to url for a client (the
// load generator) and presents it as the byte stream an XMPP client
// speaks over TCP: the same translation as the server's, the other way
// round. The certificate is not checked: it is for loopback benchmarks.
// src is the local address to dial from (nil: any).
func DialWebSocket(ctx context.Context, url string, src net.Addr, maxFrame int64) (net.Conn, error) {
	nd := &net.Dialer{LocalAddr: src}
	hc := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"xmpp"}})
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	ws.SetReadLimit(maxFrame)
	// The connection's own goroutine (run) owns the WebSocket until
	// Close, as the server's HTTP handler does.
	wc := newWSConn(ws, nil, nil)
	go wc.run()
	return wc, nil
}
