package c2s

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/metrics"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// NSSM is Stream Management (XEP-0198).
const NSSM = "urn:xmpp:sm:3"

// maxUnacked bounds the stanzas a client may leave unacknowledged; a
// client that never acks would otherwise grow the queue for ever.
const maxUnacked = 5000

// ackEvery is how many unacknowledged stanzas make the server ask for an
// ack, so the queue stays short without a request per stanza.
const ackEvery = 5

// errHandedOver ends a connection whose socket now carries a resumed
// session: the new connection must not close or clean up anything.
var errHandedOver = errors.New("c2s: connection handed over to a resumed session")

// smState is the Stream Management state of a session, under conn.mu.
type smState struct {
	enabled   bool
	resumable bool
	id        string
	inH       uint32               // stanzas handled from the client
	acked     uint32               // the client's last h
	unacked   []*xmlstream.Element // sent, not yet acknowledged, oldest first
	requested int                  // len(unacked) when we last sent <r/>
}

// attachReq hands the socket of a new connection to a detached session.
type attachReq struct {
	c *conn // the new connection, whose transport is taken over
	h uint32
}

// resumeTable finds resumable sessions by their stream management id.
type resumeTable struct {
	mu sync.Mutex
	m  map[string]*conn
}

func newResumeTable() *resumeTable { return &resumeTable{m: make(map[string]*conn)} }

func (t *resumeTable) add(id string, c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[id] = c
}

func (t *resumeTable) remove(id string, c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[id] == c {
		delete(t.m, id)
	}
}

func (t *resumeTable) get(id string) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

func smElement(local string, attrs ...string) []byte {
	return xmlstream.New(NSSM, local, attrs...).Append(nil, stanza.NSClient)
}

func newSMID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// handleSM processes a stream management element of a bound session.
func (c *conn) handleSM(el *xmlstream.Element) error {
	switch el.Name.Local {
	case "enable":
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.sm.enabled {
			c.out.Write(smElement("failed"))
			return nil
		}
		c.sm.enabled = true
		resume := el.Attr("resume")
		attrs := []string{"id", newSMID()}
		c.sm.id = attrs[1]
		if (resume == "true" || resume == "1") && c.cfg.ResumeTimeout > 0 && !c.anonymous {
			c.sm.resumable = true
			attrs = append(attrs, "resume", "true", "max", strconv.Itoa(int(c.cfg.ResumeTimeout.Seconds())))
			c.cfg.resumable.add(c.sm.id, c)
		}
		c.out.Write(smElement("enabled", attrs...))
	case "r":
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.sm.enabled {
			c.out.Write(smElement("a", "h", strconv.FormatUint(uint64(c.sm.inH), 10)))
		}
	case "a":
		h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
		if err != nil {
			return stream.BadFormat("<a/> needs a numeric 'h'")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.ackLocked(uint32(h))
	default:
		return stream.UnsupportedStanzaType("unexpected stream management element <" + el.Name.Local + "/>")
	}
	return nil
}

// ackLocked drops what the client acknowledged (h counts modulo 2^32).
func (c *conn) ackLocked(h uint32) error {
	n := h - c.sm.acked
	if int(n) > len(c.sm.unacked) {
		return &stream.Error{Condition: "undefined-condition", Text: "acknowledged more stanzas than were sent (handled-count-too-high)"}
	}
	c.sm.unacked = c.sm.unacked[n:]
	c.sm.acked = h
	c.sm.requested = max(0, c.sm.requested-int(n))
	return nil
}

// Deliver queues a stanza for the client: every stanza goes through here,
// so that stream management counts them in the order they are written.
func (c *conn) Deliver(el *xmlstream.Element) {
	c.cfg.Metrics.Stanza(el.Name.Local, metrics.Out)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.csi.hold(el) {
		return
	}
	// Something that matters goes out: what waited goes first, so the
	// client sees events in order.
	for _, held := range c.csi.take() {
		c.deliverLocked(held)
	}
	c.deliverLocked(el)
}

func (c *conn) deliverLocked(el *xmlstream.Element) {
	if c.sm.enabled {
		if len(c.sm.unacked) >= maxUnacked {
			if c.endErr == nil {
				c.endErr = stream.PolicyViolation("too many unacknowledged stanzas")
				c.nc.SetReadDeadline(time.Unix(1, 0))
			}
			return
		}
		c.sm.unacked = append(c.sm.unacked, el)
	}
	if c.detached {
		return // kept in the queue for the resumption
	}
	err := c.out.Write(el.Append(nil, stanza.NSClient))
	if c.sm.enabled && len(c.sm.unacked)-c.sm.requested >= ackEvery {
		c.sm.requested = len(c.sm.unacked)
		c.out.Write(smElement("r"))
	}
	if errors.Is(err, stream.ErrSlowConsumer) && c.endErr == nil {
		c.endErr = stream.PolicyViolation("too much unread data")
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// waitResume keeps a session whose connection broke, for the client to
// resume it (XEP-0198 §5). It reports whether the session was resumed on
// a new connection.
func (c *conn) waitResume() bool {
	c.mu.Lock()
	if !c.sm.resumable || c.endErr != nil {
		c.mu.Unlock()
		return false
	}
	c.detached = true
	c.nc.Close()
	c.out.Close()
	c.mu.Unlock()
	c.state.SetDetached(true)
	c.cfg.Log.Debug("c2s: session detached, waiting for resumption", "jid", c.full.String())
	timer := time.NewTimer(c.cfg.ResumeTimeout)
	defer timer.Stop()
	select {
	case req := <-c.attachCh:
		return c.attach(req)
	case <-timer.C:
	case <-c.wake:
	}
	c.cfg.resumable.remove(c.sm.id, c)
	// A resumption may have slipped in while the timer fired.
	select {
	case req := <-c.attachCh:
		return c.attach(req)
	default:
	}
	return false
}

// tryResume is called on the new connection: it hands its transport to
// the detached (or not yet detached) session old.
func (old *conn) tryResume(req attachReq) bool {
	old.mu.Lock()
	defer old.mu.Unlock()
	if !old.sm.resumable || old.endErr != nil || old.finished {
		return false
	}
	select {
	case old.attachCh <- req:
	default:
		return false // another resumption is already on its way
	}
	if !old.detached {
		// The server has not noticed that the old connection died; make
		// its reader fail now so the session moves to the new one. A
		// parked reader is woken first: a closed socket leaves the
		// parker's epoll set without an event.
		old.kick()
		old.nc.Close()
	}
	return true
}

// attach continues the session on the transport of req.c.
func (c *conn) attach(req attachReq) bool {
	n := req.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ackLocked(req.h); err != nil {
		n.write(stream.AppendError(nil, &stream.Error{Condition: "undefined-condition", Text: err.Error()}))
		return false
	}
	c.nc, c.dec, c.out, c.ir = n.nc, n.dec, n.out, n.ir
	c.kicked.Store(false)
	c.deadline, c.pinged = false, false
	c.mayPark()
	c.secure, c.tlsState = n.secure, n.tlsState
	c.detached = false
	c.state.SetDetached(false)
	c.out.Write(smElement("resumed", "previd", c.sm.id, "h", strconv.FormatUint(uint64(c.sm.inH), 10)))
	for _, el := range c.sm.unacked {
		c.out.Write(el.Append(nil, stanza.NSClient))
	}
	c.sm.requested = 0
	if len(c.sm.unacked) > 0 {
		c.sm.requested = len(c.sm.unacked)
		c.out.Write(smElement("r"))
	}
	c.cfg.Log.Debug("c2s: session resumed", "jid", c.full.String(), "resent", len(c.sm.unacked))
	return true
}

// handleResume answers <resume/> on a new, authenticated connection.
func (c *conn) handleResume(el *xmlstream.Element) error {
	h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
	old := c.cfg.resumable.get(el.Attr("previd"))
	user, _ := jid.New(c.authUser, c.domain, "")
	if err != nil || old == nil || !old.full.Bare().Equal(user) {
		el := xmlstream.New(NSSM, "failed")
		el.AddChild(xmlstream.New(stanza.NSStanzas, "item-not-found"))
		c.write(el.Append(nil, stanza.NSClient))
		return nil
	}
	c.netConn().SetDeadline(time.Time{})
	if !old.tryResume(attachReq{c: c, h: uint32(h)}) {
		el := xmlstream.New(NSSM, "failed")
		el.AddChild(xmlstream.New(stanza.NSStanzas, "unexpected-request"))
		c.write(el.Append(nil, stanza.NSClient))
		return nil
	}
	return errHandedOver
}

// rerouteUnacked gives the stanzas the client never acknowledged a second
// chance once the session is over: messages go to the account's other
// resources or offline storage, never silently nowhere (XEP-0198 §4).
func (c *conn) rerouteUnacked(ctx context.Context) {
	c.mu.Lock()
	pending := c.sm.unacked
	c.sm.unacked = nil
	enabled := c.sm.enabled
	c.mu.Unlock()
	if !enabled {
		return
	}
	for _, el := range pending {
		if el.Name.Local != "message" {
			continue
		}
		switch el.Attr("type") {
		case "", "normal", "chat":
		default:
			continue
		}
		m := el.Copy()
		m.SetAttr("to", c.full.Bare().String())
		if m.Child("urn:xmpp:delay", "delay") == nil {
			m.AddChild(xmlstream.New("urn:xmpp:delay", "delay", "from", c.domain, "stamp", time.Now().UTC().Format("2006-01-02T15:04:05.000Z")))
		}
		c.cfg.Router.Reroute(ctx, m)
	}
}
