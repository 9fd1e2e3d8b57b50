package c2s

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"parley/internal/durable"
	"parley/internal/jid"
	"parley/internal/metrics"
	"parley/internal/session"
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

// resumeCommitWait bounds how long a resumption waits for the writes of
// stanzas already received before it reports h: longer than a batch
// takes, short enough that a client is not kept waiting by a storage
// outage (the stanzas then count as unhandled and the client resends).
const resumeCommitWait = 5 * time.Second

// errHandedOver ends a connection whose socket now carries a resumed
// session: the new connection must not close or clean up anything.
var errHandedOver = errors.New("c2s: connection handed over to a resumed session")

// smState is the Stream Management state of a session, under conn.mu.
type smState struct {
	enabled   bool
	resumable bool
	id        string
	inH       uint32 // stanzas from the client handled, and what they wrote committed
	// pending are the stanzas after inH, oldest first, still waiting for
	// their writes (an archive batch, offline storage) to commit: true
	// once done. h counts in order, so a done stanza behind one still
	// waiting is not counted yet (group commit: a crash cannot lose
	// what the client saw acknowledged).
	pending []bool
	// owed: the client asked for an ack (<r/>) while stanzas up to owedAt
	// were pending; the <a/> goes out once they are done. owedLast is the
	// target of the latest request: under steady load requests keep
	// coming, and moving owedAt to each would never answer any of them.
	owed      bool
	owedAt    uint32
	owedLast  uint32
	drained   chan struct{}   // closed when pending empties, for a resumption
	acked     uint32          // the client's last h
	unacked   []unackedStanza // sent, not yet acknowledged, oldest first
	requested int             // len(unacked) when we last sent <r/>
}

// unackedStanza is a stanza sent under stream management; done, when not
// nil, learns whether the client acknowledged it (DeliverPaced).
type unackedStanza struct {
	el   *xmlstream.Element
	done func(delivered bool)
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
		if (resume == "true" || resume == "1") && c.tun.ResumeTimeout > 0 && !c.anonymous {
			c.sm.resumable = true
			attrs = append(attrs, "resume", "true", "max", strconv.Itoa(int(c.tun.ResumeTimeout.Seconds())))
			c.cfg.resumable.add(c.sm.id, c)
		}
		c.out.Write(smElement("enabled", attrs...))
	case "r":
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.sm.enabled {
			return nil
		}
		if len(c.sm.pending) > 0 {
			target := c.sm.inH + uint32(len(c.sm.pending))
			if !c.sm.owed {
				c.sm.owed, c.sm.owedAt = true, target
			}
			c.sm.owedLast = target
			return nil
		}
		c.out.Write(smElement("a", "h", strconv.FormatUint(uint64(c.sm.inH), 10)))
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

// track opens a durability group for a stanza the client sent, when
// stream management counts it: the stanza is handled (and counted in h)
// once every write started for it is committed. It returns c.ctx and nil
// when nobody counts.
func (c *conn) track() (context.Context, *durable.Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sm.enabled {
		return c.sendCtx, nil
	}
	idx := c.sm.inH + uint32(len(c.sm.pending))
	c.sm.pending = append(c.sm.pending, false)
	g := durable.NewGroup(func() { c.handled(idx) })
	return durable.With(c.sendCtx, g), g
}

// handled marks stanza idx done and counts every done stanza at the
// head of the queue; it runs on whichever goroutine committed last.
func (c *conn) handled(idx uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := int(idx - c.sm.inH)
	if i < 0 || i >= len(c.sm.pending) {
		return // counted already (cannot happen) or the state was reset
	}
	c.sm.pending[i] = true
	n := 0
	for n < len(c.sm.pending) && c.sm.pending[n] {
		n++
	}
	if n == 0 {
		return
	}
	c.sm.inH += uint32(n)
	c.sm.pending = c.sm.pending[n:]
	if len(c.sm.pending) == 0 {
		c.sm.pending = c.sm.pending[:0:0] // let the old array go
		if c.sm.drained != nil {
			close(c.sm.drained)
			c.sm.drained = nil
		}
	}
	if c.sm.owed && int32(c.sm.inH-c.sm.owedAt) >= 0 {
		if int32(c.sm.inH-c.sm.owedLast) >= 0 {
			c.sm.owed = false
		} else {
			c.sm.owedAt = c.sm.owedLast
		}
		if !c.detached && !c.finished {
			c.out.Write(smElement("a", "h", strconv.FormatUint(uint64(c.sm.inH), 10)))
		}
	}
}

// awaitHandled waits, at most d, until no stanza waits for a commit, so
// that a resumption reports an h that counts everything it can.
func (c *conn) awaitHandled(d time.Duration) {
	c.mu.Lock()
	if len(c.sm.pending) == 0 {
		c.mu.Unlock()
		return
	}
	if c.sm.drained == nil {
		c.sm.drained = make(chan struct{})
	}
	ch := c.sm.drained
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// ackLocked drops what the client acknowledged (h counts modulo 2^32).
func (c *conn) ackLocked(h uint32) error {
	n := h - c.sm.acked
	if int(n) > len(c.sm.unacked) {
		return &stream.Error{Condition: "undefined-condition", Text: "acknowledged more stanzas than were sent (handled-count-too-high)"}
	}
	for _, u := range c.sm.unacked[:n] {
		if u.done != nil {
			u.done(true)
		}
	}
	clear(c.sm.unacked[:n])
	c.sm.unacked = c.sm.unacked[n:]
	c.sm.acked = h
	c.sm.requested = max(0, c.sm.requested-int(n))
	return nil
}

// Deliver queues a stanza for the client: every stanza goes through here
// (or DeliverPaced), so that stream management counts them in the order
// they are written.
func (c *conn) Deliver(el *xmlstream.Element) {
	c.cfg.Metrics.Stanza(el.Name.Local, metrics.Out)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.csi.hold(el) {
		return
	}
	c.releaseHeldLocked()
	c.deliverLocked(el)
}

// releaseHeldLocked sends what client state indication held: something
// that matters goes out, and what waited goes first, so the client sees
// events in order.
func (c *conn) releaseHeldLocked() {
	for _, held := range c.csi.take() {
		c.deliverLocked(held)
	}
}

func (c *conn) deliverLocked(el *xmlstream.Element) { c.sendLocked(el, nil, false, nil) }

// sendLocked queues el (serialised as b when b is not nil). chosen output
// is the server's own burst, paced by its producer and exempt from the
// slow-consumer bound; done learns whether el was delivered: acknowledged
// under stream management, else written to the socket.
func (c *conn) sendLocked(el *xmlstream.Element, b []byte, chosen bool, done func(bool)) {
	if c.sm.enabled {
		if len(c.sm.unacked) >= maxUnacked {
			if c.endErr == nil {
				c.endErr = stream.PolicyViolation("too many unacknowledged stanzas")
				c.nc.SetReadDeadline(time.Unix(1, 0))
			}
			if done != nil {
				done(false)
			}
			return
		}
		c.sm.unacked = append(c.sm.unacked, unackedStanza{el: el, done: done})
		done = nil // the client's ack tells, not the socket
	}
	if c.detached {
		return // kept in the queue for the resumption
	}
	if b == nil {
		b = el.Append(nil, stanza.NSClient)
	}
	var err error
	if chosen {
		err = c.out.WriteChosen(b, done)
	} else {
		err = c.out.Write(b)
	}
	if c.sm.enabled && len(c.sm.unacked)-c.sm.requested >= ackEvery {
		c.sm.requested = len(c.sm.unacked)
		c.out.Write(smElement("r"))
	}
	if errors.Is(err, stream.ErrSlowConsumer) && c.endErr == nil {
		c.endErr = stream.PolicyViolation("too much unread data")
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// DeliverPaced makes conn a session.Paced: the producer of a burst the
// server chose to send (offline messages, an archive page) waits here
// until the client has read enough of what is queued.
func (c *conn) DeliverPaced(ctx context.Context, el *xmlstream.Element, done func(bool)) error {
	b := el.Append(nil, stanza.NSClient)
	c.mu.Lock()
	q, detached := c.out, c.detached
	c.mu.Unlock()
	if !detached {
		if err := q.WaitRoom(ctx, len(b), time.Time{}); err != nil {
			c.mu.Lock()
			detached = c.detached
			c.mu.Unlock()
			// A session waiting for its client to resume keeps what is
			// sent meanwhile, under stream management's bound.
			if !detached {
				if done != nil {
					done(false)
				}
				return fmt.Errorf("c2s: delivering to %s: %w", c.full, err)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		if done != nil {
			done(false)
		}
		return fmt.Errorf("c2s: delivering to %s: %w", c.full, net.ErrClosed)
	}
	c.releaseHeldLocked()
	c.sendLocked(el, b, true, done)
	return nil
}

// WaitRoom makes a sender wait while this session's client has not read
// what others sent it (back-pressure). A session without a connection
// (waiting for a resumption) keeps what comes under stream management's
// bound instead.
func (c *conn) WaitRoom(ctx context.Context, deadline time.Time) error {
	c.mu.Lock()
	q, detached := c.out, c.detached
	c.mu.Unlock()
	if detached || q == nil {
		return nil
	}
	if err := q.WaitRoom(ctx, 0, deadline); errors.Is(err, stream.ErrNoRoom) {
		return session.ErrNoRoom
	}
	return nil
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
	timer := time.NewTimer(c.tun.ResumeTimeout)
	defer timer.Stop()
	select {
	case req := <-c.attachCh:
		c.awaitHandled(resumeCommitWait)
		return c.attach(req)
	case <-timer.C:
	case <-c.wake:
	}
	c.cfg.resumable.remove(c.sm.id, c)
	// A resumption may have slipped in while the timer fired.
	select {
	case req := <-c.attachCh:
		c.awaitHandled(resumeCommitWait)
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
	c.deadline, c.pinged, c.graced = false, false, false
	c.mayPark()
	c.secure, c.tlsState = n.secure, n.tlsState
	c.detached = false
	c.state.SetDetached(false)
	c.out.Write(smElement("resumed", "previd", c.sm.id, "h", strconv.FormatUint(uint64(c.sm.inH), 10)))
	// The resent stanzas were all sent before, some of them paced: as
	// output the server chose, they do not count as a slow consumer.
	for _, u := range c.sm.unacked {
		c.out.WriteChosen(u.el.Append(nil, stanza.NSClient), nil)
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
	for _, u := range pending {
		if u.done != nil {
			// Its producer keeps it (offline storage still holds it).
			u.done(false)
			continue
		}
		el := u.el
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
		stanza.AddDelay(m, c.domain, time.Now())
		c.cfg.Router.Reroute(ctx, m)
	}
}
