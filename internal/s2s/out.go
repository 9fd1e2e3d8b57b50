package s2s

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// queued is a stanza waiting for its stream, kept both serialised (what
// is sent) and as an element (what is bounced).
type queued struct {
	el      *xmlstream.Element
	data    []byte
	retried bool // already moved once from a stream the peer closed
}

type enqueueResult int

const (
	enqueued enqueueResult = iota
	queueFull
	streamClosed
)

// outStream is the outgoing stream for one pair of domains. Its goroutine
// (run) connects, then writes whatever is queued until the stream idles,
// breaks or the service stops.
type outStream struct {
	s    *Service
	key  pair
	wake chan struct{} // a stanza was queued

	mu     sync.Mutex
	queue  []queued
	closed bool // no more stanzas are taken; Send must make a new stream
	// failed is why the stream could not be made or broke, once closed
	// for it; nil when it closed idle or handed its queue on.
	failed *stanza.Error
}

func newOutStream(s *Service, key pair) *outStream {
	return &outStream{s: s, key: key, wake: make(chan struct{}, 1)}
}

// enqueue queues q unless the queue is full or the stream closed; a
// stream closed for a failure says which.
func (o *outStream) enqueue(q queued) (enqueueResult, *stanza.Error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return streamClosed, o.failed
	}
	if len(o.queue) >= o.s.cfg.MaxQueued {
		return queueFull, nil
	}
	o.queue = append(o.queue, q)
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return enqueued, nil
}

func (o *outStream) take() []queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue = nil
	return q
}

// fail closes the stream for new stanzas and bounces those still waiting.
func (o *outStream) fail(se *stanza.Error) {
	o.s.forget(o)
	o.mu.Lock()
	o.closed = true
	o.failed = se
	q := o.queue
	o.queue = nil
	o.mu.Unlock()
	for _, x := range q {
		o.s.bounce(x.el, se)
	}
}

// requeue closes the stream and hands what waits for it to a new one;
// a stanza moved before is bounced instead, so that a peer that closes
// every stream at once cannot keep it circling.
func (o *outStream) requeue() {
	o.s.forget(o)
	o.mu.Lock()
	o.closed = true
	q := o.queue
	o.queue = nil
	o.mu.Unlock()
	for _, x := range q {
		if x.retried {
			o.s.bounce(x.el, remoteServerTimeout())
			continue
		}
		x.retried = true
		o.s.submit(o.key, x)
	}
}

// closeIfIdle closes the stream for new stanzas unless one is waiting.
// It holds the service lock so that no Send can find the stream between
// the check and its removal from the table.
func (o *outStream) closeIfIdle() bool {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 {
		return false
	}
	o.closed = true
	if o.s.out[o.key] == o {
		delete(o.s.out, o.key)
	}
	return true
}

func (o *outStream) run() {
	log := o.s.cfg.Log
	p, err := o.connect()
	if err != nil {
		se := remoteServerTimeout()
		if errors.Is(err, errNotFound) {
			se = stanza.RemoteServerNotFound()
		}
		// Info names the remote domain alone: the local one beside it
		// would say who talks to whom, and the error may hold addresses.
		log.Info("s2s: outgoing stream failed", "remote_domain", o.key.remote, "condition", se.Condition)
		log.Debug("s2s: outgoing stream failed", "from_domain", o.key.local, "to_domain", o.key.remote, "err", err)
		o.fail(se)
		return
	}
	log.Info("s2s: outgoing stream ready", "remote_domain", o.key.remote)
	log.Debug("s2s: outgoing stream ready", "from_domain", o.key.local, "to_domain", o.key.remote)
	o.serve(p)
	log.Info("s2s: outgoing stream closed", "remote_domain", o.key.remote)
}

// connect opens and authenticates the stream: SASL EXTERNAL when the
// peer offers it (it then found our certificate valid), else dialback.
func (o *outStream) connect() (*peer, error) {
	p, err := o.s.dialPeer(o.s.ctx, o.key.local, o.key.remote)
	if err != nil {
		return nil, err
	}
	if err := o.authenticate(p); err != nil {
		p.abort(err)
		return nil, err
	}
	p.nc.SetDeadline(time.Time{})
	return p, nil
}

func (o *outStream) authenticate(p *peer) error {
	// Stop may come while we wait for the peer: it ends the connection.
	stop := context.AfterFunc(o.s.ctx, func() { p.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if p.secure && p.offers("EXTERNAL") {
		ok, err := o.external(p)
		if err != nil || ok {
			return err
		}
	}
	if o.s.cfg.RequireValidCertificates {
		return fmt.Errorf("s2s: %s did not accept our certificate, and dialback is off", o.key.remote)
	}
	return o.dialback(p)
}

// external authenticates with SASL EXTERNAL (XEP-0178); ok is false
// when the peer refused, so that dialback can be tried.
func (o *outStream) external(p *peer) (ok bool, err error) {
	authz := base64.StdEncoding.EncodeToString([]byte(o.key.local))
	if err := p.write([]byte("<auth xmlns='" + stanza.NSSASL + "' mechanism='EXTERNAL'>" + authz + "</auth>")); err != nil {
		return false, err
	}
	el, err := p.dec.Next()
	if err != nil {
		return false, err
	}
	switch {
	case el.Name.Space == stanza.NSSASL && el.Name.Local == "success":
		p.dec.Restart()
		return true, p.open()
	case el.Name.Space == stanza.NSSASL && el.Name.Local == "failure":
		return false, nil
	}
	return false, stream.UnsupportedStanzaType("expected the outcome of SASL EXTERNAL")
}

// dialback sends our key (XEP-0220 §2.1.1) and waits for the peer to
// have it verified by our authoritative server.
func (o *outStream) dialback(p *peer) error {
	key := dialbackKey(o.s.cfg.Secret, o.key.remote, o.key.local, p.id)
	// The receiving server asks our listener to verify the key while we
	// wait here; only then is it confirmed.
	done := o.s.expectDialback(dialbackID{receiving: o.key.remote, originating: o.key.local, streamID: p.id})
	defer done()
	if err := p.write(appendDialback(nil, "result", o.key.local, o.key.remote, "", "", key)); err != nil {
		return err
	}
	for {
		el, err := p.dec.Next()
		if err != nil {
			return err
		}
		if el.Name.Space == stanza.NSStream && el.Name.Local == "error" {
			return fmt.Errorf("s2s: %s ended the stream: %s", o.key.remote, streamErrorCondition(el))
		}
		if el.Name.Space != nsDialback || el.Name.Local != "result" {
			continue // nothing else is expected yet; RFC 6120 §4.3.5 lets us ignore it
		}
		if !sameDomain(el.Attr("from"), o.key.remote) || !sameDomain(el.Attr("to"), o.key.local) {
			continue
		}
		switch el.Attr("type") {
		case "valid":
			return nil
		case "invalid":
			return fmt.Errorf("s2s: %s found our dialback key invalid", o.key.remote)
		default:
			return fmt.Errorf("s2s: dialback with %s failed (%s)", o.key.remote, dialbackErrorCondition(el))
		}
	}
}

func streamErrorCondition(el *xmlstream.Element) string {
	for c := range el.Elements() {
		if c.Name.Space == stanza.NSStreams && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return "unknown"
}

func dialbackErrorCondition(el *xmlstream.Element) string {
	if e := el.Child(nsDialback, "error"); e != nil {
		for c := range e.Elements() {
			if c.Name.Space == stanza.NSStanzas && c.Name.Local != "text" {
				return c.Name.Local
			}
		}
	}
	return "error"
}

// closeWait is how long a closing stream waits for the peer's end tag.
const closeWait = 5 * time.Second

// serve writes queued stanzas until the stream idles, breaks or the
// service stops. A reader goroutine watches the peer's side for its
// stream end or errors; nothing else is expected there.
func (o *outStream) serve(p *peer) {
	readDone := make(chan error, 1)
	go func() {
		for {
			el, err := p.dec.Next()
			if err != nil {
				readDone <- err
				return
			}
			if el.Name.Space == stanza.NSStream && el.Name.Local == "error" {
				o.s.cfg.Log.Info("s2s: outgoing stream error from peer", "to_domain", o.key.remote, "condition", streamErrorCondition(el))
			}
		}
	}()
	idle := time.NewTimer(o.s.cfg.IdleTimeout)
	defer idle.Stop()
	send := func() error {
		batch := o.take()
		if len(batch) == 0 {
			return nil
		}
		var buf []byte
		for _, q := range batch {
			buf = append(buf, q.data...)
		}
		p.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := p.write(buf); err != nil {
			// What was in this batch may or may not have arrived; it
			// cannot be told, so it is answered as not delivered.
			for _, q := range batch {
				o.s.bounce(q.el, remoteServerTimeout())
			}
			return err
		}
		return nil
	}
	for {
		select {
		case <-o.wake:
			if err := send(); err != nil {
				o.fail(remoteServerTimeout())
				p.nc.Close()
				<-readDone
				return
			}
			idle.Reset(o.s.cfg.IdleTimeout)
		case <-idle.C:
			if !o.closeIfIdle() {
				idle.Reset(o.s.cfg.IdleTimeout)
				continue
			}
			o.close(p, readDone)
			return
		case err := <-readDone:
			// The peer closed its side (it idled out first) or the
			// connection broke: what is still queued goes on a new
			// stream, once.
			if !errors.Is(err, xmlstream.ErrStreamEnd) {
				o.s.cfg.Log.Debug("s2s: outgoing stream broke", "to_domain", o.key.remote, "err", err)
			}
			o.requeue()
			p.nc.SetWriteDeadline(time.Now().Add(time.Second))
			p.write([]byte(stream.Close))
			p.nc.Close()
			return
		case <-o.s.ctx.Done():
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			send()
			o.fail(remoteServerTimeout())
			o.close(p, readDone)
			return
		}
	}
}

// close ends the stream politely: our end tag, then the peer's.
func (o *outStream) close(p *peer, readDone chan error) {
	p.nc.SetWriteDeadline(time.Now().Add(closeWait))
	p.write([]byte(stream.Close))
	select {
	case <-readDone:
	case <-time.After(closeWait):
		p.nc.Close()
		<-readDone
	}
	p.nc.Close()
}
