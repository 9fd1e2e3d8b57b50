package web

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsConn presents a WebSocket carrying RFC 7395 frames as the byte
// stream c2s reads and writes over TCP: frames in become stream bytes
// (translateFrame), stream bytes out become frames (splitter). Deadlines
// work as on a socket: c2s uses read deadlines for its idle pings and to
// wake its reader, so one running out does not break the connection.
type wsConn struct {
	ws            *websocket.Conn
	local, remote net.Addr

	in *inbox // translated frames from readLoop

	dmu       sync.Mutex
	wDeadline time.Time

	wmu       sync.Mutex // one Write at a time
	out       splitter
	closeSent bool // the stream ended with <close/>

	closing   chan struct{} // Close was called
	closed    chan struct{} // closeWS is done
	closeOnce sync.Once
}

// inboxBytes is how much a transport holds of what the client sent
// before c2s reads it; the client then waits.
const inboxBytes = 64 << 10

func newWSConn(ws *websocket.Conn, local, remote net.Addr) *wsConn {
	return &wsConn{ws: ws, local: local, remote: remote, in: newInbox(inboxBytes),
		closing: make(chan struct{}), closed: make(chan struct{})}
}

// run reads frames until the connection ends, then waits for c2s to
// close its side and for the close handshake. It runs on the goroutine
// that owns the WebSocket (the HTTP handler's); an idle session costs no
// other.
func (w *wsConn) run() {
	w.readLoop()
	<-w.closing
	<-w.closed
}

// closeWS ends the WebSocket: with the close handshake after a <close/>,
// at once otherwise. It runs on a goroutine of its own because Close
// must not block (c2s closes under its lock), and run waits for it.
func (w *wsConn) closeWS() {
	defer close(w.closed)
	w.wmu.Lock()
	clean := w.closeSent
	w.wmu.Unlock()
	if clean {
		w.ws.Close(websocket.StatusNormalClosure, "")
	} else {
		w.ws.CloseNow()
	}
}

func (w *wsConn) readLoop() {
	for {
		typ, msg, err := w.ws.Read(context.Background())
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure || websocket.CloseStatus(err) == websocket.StatusGoingAway {
				// Closed without <close/>: for c2s the connection broke,
				// which keeps a resumable session for its client.
				err = io.ErrUnexpectedEOF
			}
			w.in.end(err)
			return
		}
		var b []byte
		if typ != websocket.MessageText {
			err = errFraming("RFC 7395 frames are text messages")
		} else {
			b, err = translateFrame(msg)
		}
		if err != nil {
			w.in.end(err)
			return
		}
		if !w.in.push(b, w.closing) {
			return
		}
	}
}

func (w *wsConn) Read(p []byte) (int, error) { return w.in.Read(p) }

func (w *wsConn) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	select {
	case <-w.closing:
		return 0, net.ErrClosed
	default:
	}
	ctx := context.Background()
	w.dmu.Lock()
	if dl := w.wDeadline; !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	w.dmu.Unlock()
	err := w.out.feed(p, func(kind int, frame []byte) error {
		if kind == outClose {
			w.closeSent = true
		}
		return w.ws.Write(ctx, websocket.MessageText, frame)
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, timeoutError{}
		}
		return 0, err
	}
	return len(p), nil
}

// Close ends the connection without blocking (c2s closes under its
// lock); closeWS performs the close handshake.
func (w *wsConn) Close() error {
	w.closeOnce.Do(func() {
		w.in.closeNow()
		close(w.closing)
		go w.closeWS()
	})
	return nil
}

func (w *wsConn) LocalAddr() net.Addr  { return w.local }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

func (w *wsConn) SetDeadline(t time.Time) error {
	w.SetReadDeadline(t)
	return w.SetWriteDeadline(t)
}

func (w *wsConn) SetReadDeadline(t time.Time) error {
	w.in.setDeadline(t)
	return nil
}

func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.dmu.Lock()
	w.wDeadline = t
	w.dmu.Unlock()
	return nil
}

var _ net.Conn = (*wsConn)(nil)

var errNotXMPP = errors.New("web: the client did not ask for the xmpp subprotocol")
