package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// localEntry is one of this node's sessions as the registry has it.
type localEntry struct {
	c   *Cluster
	s   session.Session
	key string
	mu  sync.Mutex // orders the writes of one session
	rev uint64     // the registry revision of our last write; 0: none
	// gone: unbound, or bound again elsewhere; nothing more is written.
	gone bool
}

// Bound registers a session this node just bound. The write is waited
// for (bounded): the client's first presence follows at once, and other
// nodes should know where to answer it.
func (c *Cluster) Bound(ctx context.Context, s session.Session) {
	e := &localEntry{c: c, s: s, key: key(s.JID())}
	c.mu.Lock()
	c.local[s.JID()] = e
	c.mu.Unlock()
	s.State().Watch(func() { e.publish(context.Background(), false) })
	e.publish(ctx, true)
}

// Unbound removes a session of this node from the registry, unless it
// was bound again on another node meanwhile.
func (c *Cluster) Unbound(ctx context.Context, s session.Session) {
	s.State().Watch(nil)
	c.mu.Lock()
	e := c.local[s.JID()]
	if e != nil && e.s == s {
		delete(c.local, s.JID())
	}
	c.mu.Unlock()
	if e == nil || e.s != s {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || e.rev == 0 {
		e.gone = true
		return
	}
	e.gone = true
	c.remove(ctx, e.key, e.rev)
}

// remove deletes a session of ours from the registry, or, while NATS is
// away, leaves it for the reconnection: nothing waits on a link that is
// down.
func (c *Cluster) remove(ctx context.Context, key string, rev uint64) {
	if !c.nc.IsConnected() {
		c.mu.Lock()
		c.pending[key] = rev
		c.mu.Unlock()
		return
	}
	sessions, _ := c.buckets()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if err := sessions.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil && !isWrongRevision(err) {
		c.cfg.Log.Warn("cluster: a session could not be removed from the registry", "err", err)
	}
}

// publish writes the session's current state. The first write (and a
// rewrite after a reconnect) takes the key whoever held it; later ones
// only update our own revision, so a session bound again on another
// node is never overwritten by the one it replaced.
func (e *localEntry) publish(ctx context.Context, take bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || !e.c.nc.IsConnected() {
		// While NATS is away the reconnection writes every session.
		return
	}
	b, err := json.Marshal(record{Node: e.c.cfg.Node, Incarnation: e.c.incarnation, State: e.s.State().Snapshot()})
	if err != nil {
		return
	}
	sessions, _ := e.c.buckets()
	ctx, cancel := context.WithTimeout(ctx, e.c.cfg.RequestTimeout)
	defer cancel()
	var rev uint64
	if take || e.rev == 0 {
		rev, err = sessions.Put(ctx, e.key, b)
	} else {
		rev, err = sessions.Update(ctx, e.key, b, e.rev)
	}
	switch {
	case err == nil:
		e.rev = rev
	case isWrongRevision(err):
		e.gone = true
	default:
		e.c.cfg.Log.Warn("cluster: a session's state could not be written to the registry", "err", err)
	}
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

// Session finds another node's session bound to full.
func (c *Cluster) Session(full jid.JID) session.Session {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if r := c.view[full.Bare()][full.Resource()]; r != nil {
		return r
	}
	return nil
}

// Sessions lists the sessions other nodes hold for bare.
func (c *Cluster) Sessions(bare jid.JID) []session.Session {
	c.mu.RLock()
	defer c.mu.RUnlock()
	res := c.view[bare]
	if len(res) == 0 {
		return nil
	}
	out := make([]session.Session, 0, len(res))
	for _, r := range res {
		out = append(out, r)
	}
	return out
}

// All lists every session other nodes hold.
func (c *Cluster) All() []session.Session {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []session.Session
	for _, res := range c.view {
		for _, r := range res {
			out = append(out, r)
		}
	}
	return out
}

// IQResult offers every other node an IQ result no module here claimed.
func (c *Cluster) IQResult(_ context.Context, el *xmlstream.Element) {
	if err := c.nc.Publish(c.cfg.Prefix+".iqr", frame(opIQResult, c.cfg.Node, el.Append(nil, ""))); err != nil {
		c.cfg.Log.Warn("cluster: an IQ result could not be passed on", "err", err)
	}
}

// remote is a session held by another node. Deliver sends to that node;
// its State is the replica of the last state the node wrote.
type remote struct {
	c           *Cluster
	full        jid.JID
	node        string
	incarnation string
	rev         uint64
	state       *session.State
}

func (r *remote) JID() jid.JID          { return r.full }
func (r *remote) State() *session.State { return r.state }

// Node is the node holding the session.
func (r *remote) Node() string { return r.node }

func (r *remote) Deliver(el *xmlstream.Element) {
	r.send(opDeliver, el.Append(nil, ""))
}

// ErrGone says that a stanza did not reach a session on another node:
// the session or the node has gone.
var ErrGone = errors.New("cluster: the session is gone")

// DeliverAcked waits for the session's node to queue el; no answer
// within RequestTimeout counts as gone.
func (r *remote) DeliverAcked(ctx context.Context, el *xmlstream.Element) error {
	if !r.c.nc.IsConnected() {
		return ErrGone
	}
	ctx, cancel := context.WithTimeout(ctx, r.c.cfg.RequestTimeout)
	defer cancel()
	msg, err := r.c.nc.RequestWithContext(ctx, r.c.nodeSubject(r.node), frame(opDeliverAcked, r.full.String(), el.Append(nil, "")))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	if string(msg.Data) != ackOK {
		return ErrGone
	}
	return nil
}

// DeliverPaced is DeliverAcked for the modules that hand over what they
// keep (offline messages): done says whether the node queued el, and an
// error leaves it kept for the next login instead of counted as handed
// over to a dead node.
func (r *remote) DeliverPaced(ctx context.Context, el *xmlstream.Element, done func(bool)) error {
	err := r.DeliverAcked(ctx, el)
	if err == nil && done != nil {
		done(true)
	}
	return err
}

// WaitRoom does not wait: the session's node paces its own output.
func (r *remote) WaitRoom(context.Context, time.Time) error { return nil }

func (r *remote) Replace() { r.send(opReplace, nil) }

// End closes the session on its node (admin kick).
func (r *remote) End(text string) { r.send(opEnd, []byte(text)) }

func (r *remote) send(op byte, payload []byte) {
	if err := r.c.nc.Publish(r.c.nodeSubject(r.node), frame(op, r.full.String(), payload)); err != nil {
		r.c.cfg.Log.Warn("cluster: a stanza for another node was not sent", "node", r.node, "err", err)
	}
}

// The frames between nodes: an operation byte, a length-prefixed
// address (a full JID, or the sending node for IQ results), then the
// payload (a serialized stanza, or a reason).
const (
	opDeliver      = 'd'
	opDeliverAcked = 'a'
	opReplace      = 'r'
	opEnd          = 'e'
	opIQResult     = 'q'
	opComponent    = 's'
)

const (
	ackOK   = "ok"
	ackGone = "gone"
)

func frame(op byte, addr string, payload []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen32+len(addr)+len(payload))
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(addr)))
	b = append(b, addr...)
	return append(b, payload...)
}

func unframe(b []byte) (op byte, addr string, payload []byte, err error) {
	if len(b) < 2 {
		return 0, "", nil, errors.New("cluster: short frame")
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)-1-k) {
		return 0, "", nil, errors.New("cluster: bad frame address")
	}
	start := 1 + k
	return b[0], string(b[start : start+int(n)]), b[start+int(n):], nil
}

// receive takes what other nodes send to this node's sessions. NATS
// hands one subscription's messages over in order, which keeps a
// sender's presence ahead of its messages.
func (c *Cluster) receive(m *nats.Msg) {
	op, addr, payload, err := unframe(m.Data)
	if err != nil {
		c.cfg.Log.Warn("cluster: a frame from another node was refused", "err", err)
		return
	}
	if op == opComponent {
		_ = m.Respond([]byte(ackOK))
		if el, err := xmlstream.ParseElement(payload, stanza.NSClient); err == nil {
			c.cfg.Router.Service(context.Background(), el)
		}
		return
	}
	full, err := jid.Parse(addr)
	if err != nil {
		return
	}
	s := c.cfg.Router.Local(full)
	switch op {
	case opReplace:
		if s != nil {
			s.Replace()
		}
		return
	case opEnd:
		if s != nil {
			session.End(s, string(payload))
		}
		return
	}
	if c.cfg.MaxStanzaBytes > 0 && len(payload) > 2*c.cfg.MaxStanzaBytes {
		c.cfg.Log.Warn("cluster: an oversized stanza from another node was refused", "bytes", len(payload))
		return
	}
	el, err := xmlstream.ParseElement(payload, stanza.NSClient)
	if err != nil {
		c.cfg.Log.Warn("cluster: a stanza from another node does not parse", "err", err)
		return
	}
	ack := ackGone
	if s != nil {
		s.Deliver(el)
		ack = ackOK
	}
	switch {
	case op == opDeliverAcked:
		_ = m.Respond([]byte(ack))
	case s == nil && el.Name.Local == "iq" && slices.Contains([]string{"get", "set"}, el.Attr("type")):
		c.cfg.Router.Bounce(context.Background(), el)
	}
}

func (c *Cluster) receiveIQResult(m *nats.Msg) {
	op, node, payload, err := unframe(m.Data)
	if err != nil || op != opIQResult || node == c.cfg.Node {
		return
	}
	el, err := xmlstream.ParseElement(payload, stanza.NSClient)
	if err != nil {
		return
	}
	c.cfg.Router.Unclaimed(context.Background(), el)
}
