package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// BOSH namespaces (XEP-0124, XEP-0206).
const (
	NSBOSH     = "http://jabber.org/protocol/httpbind"
	NSXBOSH    = "urn:xmpp:xbosh"
	boshWindow = 5 // rids ahead of the next one a client may send, and answers kept for retransmission
)

// BOSHLimits bound what a BOSH client may ask for.
type BOSHLimits struct {
	MaxWait    time.Duration // longest a request is held
	Inactivity time.Duration // longest a session may go without a request
	MaxPause   time.Duration // longest a client may pause it
	// MaxBuffer bounds the output a session holds for its next requests;
	// beyond it c2s waits (and its own output limit applies).
	MaxBuffer int
}

// boshServer owns the BOSH sessions and the goroutine that ends idle ones.
type boshServer struct {
	cfg *Config

	mu       sync.Mutex
	sessions map[string]*boshSession
	stopCh   chan struct{}
	stopOnce sync.Once // both handlers share one server
	wg       sync.WaitGroup
}

func newBOSHServer(cfg *Config) *boshServer {
	b := &boshServer{cfg: cfg, sessions: map[string]*boshSession{}, stopCh: make(chan struct{})}
	b.wg.Add(1)
	go b.reap()
	return b
}

func (b *boshServer) stop() {
	b.stopOnce.Do(func() { close(b.stopCh) })
	b.wg.Wait()
}

// reap ends the sessions whose client stopped sending requests: for c2s
// their connection broke (a resumable session then waits for its client).
func (b *boshServer) reap() {
	defer b.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.stopCh:
			return
		case now := <-t.C:
			b.mu.Lock()
			var idle []*boshSession
			for _, s := range b.sessions {
				if s.idleSince(now) {
					idle = append(idle, s)
				}
			}
			b.mu.Unlock()
			for _, s := range idle {
				s.in.end(io.ErrUnexpectedEOF)
			}
		}
	}
}

func (b *boshServer) get(sid string) *boshSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[sid]
}

func (b *boshServer) remove(s *boshSession) {
	b.mu.Lock()
	if b.sessions[s.sid] == s {
		delete(b.sessions, s.sid)
	}
	b.mu.Unlock()
}

// boshSession is one BOSH session, and the net.Conn its c2s session
// reads and writes: request payloads become stream bytes in order of
// rid; the stream's elements wait in out for the requests held open.
type boshSession struct {
	srv           *boshServer
	sid           string
	local, remote net.Addr
	firstRID      uint64
	wait          time.Duration
	hold          int
	inactivity    time.Duration
	in            *inbox

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change below
	nextRID   uint64        // the rid whose payload goes to c2s next
	out       [][]byte      // elements for the next response
	outBytes  int
	authid    string
	held      []*heldReq // oldest first
	answers   map[uint64][]byte
	lastSeen  time.Time
	pauseTill time.Time
	ended     bool // the stream ended: every request gets terminate
	closed    bool // c2s closed the connection
	wDeadline time.Time
	split     splitter
}

type heldReq struct {
	rid uint64
	ch  chan []byte // cap 1: the response body
}

func (s *boshSession) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// idleSince: no request held and none for inactivity (or a pause).
func (s *boshSession) idleSince(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) > 0 || s.closed {
		return false
	}
	return now.Sub(s.lastSeen) > s.inactivity && now.After(s.pauseTill)
}

func terminateBody(condition string) []byte {
	b := []byte("<body xmlns='" + NSBOSH + "' type='terminate'")
	if condition != "" {
		b = append(b, " condition='"+condition+"'"...)
	}
	return append(b, "/>"...)
}

func (h *Handler) serveBOSH(w http.ResponseWriter, r *http.Request) {
	h.cors(w, r, false)
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		http.Error(w, "BOSH takes POST", http.StatusMethodNotAllowed)
		return
	}
	addr, secure, ok := h.client(r)
	if !ok {
		http.Error(w, "plain HTTP is served to trusted proxies only", http.StatusForbidden)
		return
	}
	if !h.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxStanzaBytes)+4096))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := xmlstream.ParseElement(data, NSBOSH)
	reply := func(b []byte) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Write(b)
	}
	if err != nil || body.Name.Space != NSBOSH || body.Name.Local != "body" {
		reply(terminateBody("bad-request"))
		return
	}
	rid, err := strconv.ParseUint(body.Attr("rid"), 10, 53)
	if err != nil {
		reply(terminateBody("bad-request"))
		return
	}
	sid := body.Attr("sid")
	if sid == "" {
		reply(h.bosh.create(r.Context(), body, rid, addr, secure, r))
		return
	}
	s := h.bosh.get(sid)
	if s == nil {
		reply(terminateBody("item-not-found"))
		return
	}
	reply(s.request(r.Context(), body, rid))
}

// create starts a session (XEP-0124 §7.1, XEP-0206 §4) and answers its
// first request once c2s sent its stream header and features.
func (b *boshServer) create(ctx context.Context, body *xmlstream.Element, rid uint64, addr net.Addr, secure bool, r *http.Request) []byte {
	to := body.Attr("to")
	if to == "" {
		return terminateBody("improper-addressing")
	}
	lim := b.cfg.BOSH
	wait := lim.MaxWait
	if v, err := strconv.Atoi(body.Attr("wait")); err == nil && v >= 0 && time.Duration(v)*time.Second < wait {
		wait = time.Duration(v) * time.Second
	}
	hold := 1
	if v, err := strconv.Atoi(body.Attr("hold")); err == nil && v == 0 {
		hold = 0
	}
	var id [12]byte
	rand.Read(id[:])
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	s := &boshSession{srv: b, sid: hex.EncodeToString(id[:]), local: local, remote: addr, firstRID: rid,
		wait: wait, hold: hold, inactivity: lim.Inactivity, in: newInbox(inboxBytes),
		changed: make(chan struct{}), nextRID: rid + 1, answers: map[uint64][]byte{}, lastSeen: time.Now()}
	lang, _ := body.AttrNS("http://www.w3.org/XML/1998/namespace", "lang")
	s.in.push(streamHeader(to, body.Attr("from"), lang), nil)
	b.mu.Lock()
	b.sessions[s.sid] = s
	b.mu.Unlock()
	if !b.cfg.Sessions.ServeConn(s, secure) {
		b.remove(s)
		return terminateBody("system-shutdown")
	}
	return s.holdFor(ctx, rid, false)
}

// request handles a request of an existing session: in rid order, each
// payload once; a repeated rid gets the answer it got before.
func (s *boshSession) request(ctx context.Context, body *xmlstream.Element, rid uint64) []byte {
	s.mu.Lock()
	s.lastSeen = time.Now()
	if a, ok := s.answers[rid]; ok {
		s.mu.Unlock()
		return a // retransmission (XEP-0124 §14.3)
	}
	if rid >= s.nextRID+boshWindow || rid+boshWindow < s.nextRID {
		s.mu.Unlock()
		return terminateBody("item-not-found")
	}
	// A request may overtake the one before it on another connection:
	// it waits for its turn, at most as long as it would be held.
	timeout := time.NewTimer(s.wait + 5*time.Second)
	defer timeout.Stop()
	for rid > s.nextRID && !s.ended {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			return terminateBody("item-not-found")
		case <-ctx.Done():
			return nil
		}
		s.mu.Lock()
	}
	if s.ended {
		s.mu.Unlock()
		return s.holdFor(ctx, rid, true)
	}
	fresh := rid == s.nextRID
	if fresh {
		s.nextRID++
		s.changedLocked()
	}
	s.mu.Unlock()
	now := false
	if fresh {
		var cond string
		if cond, now = s.take(ctx, body); cond != "" {
			return terminateBody(cond)
		}
	}
	// rid < nextRID without an answer: the client lost the connection
	// of a held request and asks again; it is held anew.
	return s.holdFor(ctx, rid, now)
}

// take hands a request's payload to c2s: its stanzas, a stream restart
// or the end of the stream. now says the request is to be answered at
// once (a pause).
func (s *boshSession) take(ctx context.Context, body *xmlstream.Element) (condition string, now bool) {
	var payload []byte
	if body.Attr("type") == "terminate" {
		for el := range body.Elements() {
			payload = el.Append(payload, stanza.NSClient)
		}
		payload = append(payload, stream.Close...)
	} else if v, ok := body.AttrNS(NSXBOSH, "restart"); ok && v == "true" {
		payload = streamHeader(body.Attr("to"), "", "")
		if body.Attr("to") == "" {
			payload = streamHeader(s.domain(), "", "")
		}
	} else {
		for el := range body.Elements() {
			payload = el.Append(payload, stanza.NSClient)
		}
	}
	if p, err := strconv.Atoi(body.Attr("pause")); err == nil && p > 0 {
		d := min(time.Duration(p)*time.Second, s.srv.cfg.BOSH.MaxPause)
		s.mu.Lock()
		s.pauseTill = time.Now().Add(d)
		// XEP-0124 §10: the held requests are answered at once, this
		// one too.
		for len(s.held) > 0 {
			s.answerLocked()
		}
		s.mu.Unlock()
		now = true
	}
	if len(payload) > 0 && !s.in.push(payload, ctx.Done()) {
		return "remote-connection-failed", false
	}
	return "", now
}

func (s *boshSession) domain() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.split.domain
}

// holdFor keeps the request for rid until there is output for it, it
// has waited wait, or a newer request needs its place; now answers it
// with what there is.
func (s *boshSession) holdFor(ctx context.Context, rid uint64, now bool) []byte {
	h := &heldReq{rid: rid, ch: make(chan []byte, 1)}
	s.mu.Lock()
	s.held = append(s.held, h)
	for len(s.held) > s.hold && len(s.held) > 1 {
		s.answerLocked()
	}
	if now || s.ended || len(s.out) > 0 && s.authid != "" || s.hold == 0 && s.authid != "" {
		s.answerLocked()
	}
	s.mu.Unlock()
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case b := <-h.ch:
		return b
	case <-t.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case b := <-h.ch:
		return b
	default:
	}
	if ctx.Err() != nil {
		s.dropLocked(h)
		return nil
	}
	// Waited long enough: an empty answer lets the client send the next.
	for s.held[0] != h {
		s.answerLocked()
	}
	s.answerLocked()
	return <-h.ch
}

func (s *boshSession) dropLocked(h *heldReq) {
	for i, x := range s.held {
		if x == h {
			s.held = append(s.held[:i], s.held[i+1:]...)
			break
		}
	}
	s.lastSeen = time.Now()
}

// answerLocked answers the oldest held request with what output there
// is, and keeps the answer for a retransmission.
func (s *boshSession) answerLocked() {
	h := s.held[0]
	s.held = s.held[1:]
	s.lastSeen = time.Now()
	b := []byte("<body xmlns='" + NSBOSH + "'")
	if h.rid == s.firstRID {
		b = append(b, " xmlns:xmpp='"+NSXBOSH+"' sid='"+s.sid+"' wait='"+strconv.Itoa(int(s.wait/time.Second))+
			"' requests='"+strconv.Itoa(s.hold+1)+"' hold='"+strconv.Itoa(s.hold)+
			"' inactivity='"+strconv.Itoa(int(s.inactivity/time.Second))+
			"' maxpause='"+strconv.Itoa(int(s.srv.cfg.BOSH.MaxPause/time.Second))+
			"' polling='1' ver='1.11' xmpp:version='1.0' xmpp:restartlogic='true'"...)
		if s.authid != "" {
			b = append(b, " authid='"+s.authid+"'"...)
		}
		if d := s.split.domain; d != "" {
			b = append(b, " from='"...)
			b = append(b, escapeAttr(d)...)
			b = append(b, '\'')
		}
	}
	if s.ended {
		b = append(b, " type='terminate'"...)
		if len(s.out) > 0 && isStreamError(s.out[len(s.out)-1]) {
			// XEP-0206 §6: a domain not served is host-unknown; any
			// other stream error travels inside the terminate.
			cond := "remote-stream-error"
			if bytes.Contains(s.out[len(s.out)-1], []byte("<host-unknown ")) {
				cond = "host-unknown"
			}
			b = append(b, " condition='"+cond+"'"...)
		}
	}
	if len(s.out) == 0 {
		b = append(b, "/>"...)
	} else {
		b = append(b, " xmlns:stream='"+stanza.NSStream+"'>"...)
		for _, el := range s.out {
			b = append(b, el...)
		}
		b = append(b, "</body>"...)
		s.out, s.outBytes = nil, 0
	}
	s.answers[h.rid] = b
	delete(s.answers, h.rid-boshWindow)
	h.ch <- b
	s.changedLocked()
}

func isStreamError(el []byte) bool {
	return len(el) > 13 && string(el[:13]) == "<stream:error"
}

// Read, Write and the rest make the session the c2s connection.
func (s *boshSession) Read(p []byte) (int, error) { return s.in.Read(p) }

func (s *boshSession) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	err := s.split.feed(p, func(kind int, frame []byte) error {
		switch kind {
		case outOpen:
			if id, ok := attrValue(frame, "id"); ok {
				s.authid = string(id)
			}
		case outClose:
			s.ended = true
		default:
			for s.outBytes > 0 && s.outBytes+len(frame) > s.srv.cfg.BOSH.MaxBuffer {
				if len(s.held) > 0 && s.authid != "" {
					s.answerLocked()
					continue
				}
				// The client does not fetch its output: c2s waits, and
				// its own output limit decides when that is too slow.
				if err := s.waitLocked(); err != nil {
					return err
				}
			}
			s.out = append(s.out, frame)
			s.outBytes += len(frame)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// One answer for what one write brought: a stream error and the
	// end of the stream travel together, in the terminate.
	switch {
	case s.ended:
		for len(s.held) > 0 {
			s.answerLocked()
		}
	case len(s.out) > 0 && len(s.held) > 0 && s.authid != "":
		s.answerLocked()
	}
	return len(p), nil
}

// waitLocked waits for a change, until the write deadline.
func (s *boshSession) waitLocked() error {
	if s.closed {
		return net.ErrClosed
	}
	var expired <-chan time.Time
	if !s.wDeadline.IsZero() {
		d := time.Until(s.wDeadline)
		if d <= 0 {
			return timeoutError{}
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	ch := s.changed
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-expired:
		return timeoutError{}
	}
}

// Close ends the session: requests still held get what is left and the
// end of the session.
func (s *boshSession) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ended = true
		for len(s.held) > 0 {
			s.answerLocked()
		}
		s.changedLocked()
	}
	s.mu.Unlock()
	s.in.closeNow()
	s.srv.remove(s)
	return nil
}

func (s *boshSession) LocalAddr() net.Addr  { return s.local }
func (s *boshSession) RemoteAddr() net.Addr { return s.remote }

func (s *boshSession) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *boshSession) SetReadDeadline(t time.Time) error {
	s.in.setDeadline(t)
	return nil
}

func (s *boshSession) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wDeadline = t
	s.mu.Unlock()
	return nil
}

var _ net.Conn = (*boshSession)(nil)
