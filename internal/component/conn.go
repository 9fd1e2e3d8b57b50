package component

import (
	"errors"
	"net"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/throttle"
	"parley/internal/xmlstream"
)

// conn is one component stream. Its goroutine (serve) owns every field
// not under mu; others only write through out, end it, or probe it.
type conn struct {
	s       *Service
	nc      net.Conn
	out     *stream.OutQueue
	addr    string // peer address, for debug logs only
	addrKey string // what the pre-authentication limit counts by

	domain     string // set by the header; the stream's only domain
	headerSent bool
	authed     bool

	// activity gets a token for each element read, which a liveness
	// probe waits for; done closes when serve returns.
	activity chan struct{}
	done     chan struct{}

	mu     sync.Mutex
	endErr *stream.Error
}

func newConn(s *Service, nc net.Conn) *conn {
	addr := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	max := s.cfg.MaxOutput
	if max <= 0 {
		max = 1 << 20
	}
	return &conn{
		s: s, nc: nc, addr: addr, addrKey: throttle.AddressKey(addr),
		out:      stream.NewOutQueue(nc, max, writeTimeout),
		activity: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// end asks the stream to close with se; the reader wakes up at once.
func (c *conn) end(se *stream.Error) {
	c.mu.Lock()
	if c.endErr == nil {
		c.endErr = se
	}
	c.mu.Unlock()
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

func (c *conn) requestedEnd() *stream.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// alive pings the component and reports whether anything came from it
// within timeout; any well-behaved entity answers an IQ get, with a
// result or an error.
func (c *conn) alive(from string, timeout time.Duration) bool {
	select {
	case <-c.activity:
	default:
	}
	ping := xmlstream.New(stanza.NSClient, "iq", "type", "get", "id", "liveness-"+stream.NewID(), "from", from, "to", c.domain)
	ping.AddChild(xmlstream.New("urn:xmpp:ping", "ping"))
	if c.out.Write(ping.Append(nil, stanza.NSClient)) != nil {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.activity:
		return true
	case <-c.done:
	case <-t.C:
	}
	return false
}

func (c *conn) serve() {
	defer close(c.done)
	if !c.s.preauth.Acquire(c.addrKey) {
		c.s.cfg.Log.Debug("component: connection refused, too many unauthenticated ones from its address", "addr", c.addr)
		c.finish(stream.PolicyViolation("too many unauthenticated connections from your address"))
		return
	}
	held := true
	release := func() {
		if held {
			held = false
			c.s.preauth.Release(c.addrKey)
		}
	}
	defer release()
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	dec := xmlstream.NewDecoder(c.nc, c.s.cfg.Limits)
	err := c.handshake(dec)
	if err == nil {
		release()
		err = c.stanzas(dec)
	}
	c.finish(err)
}

// handshake reads the header and the handshake (XEP-0114 §3) and claims
// the domain.
func (c *conn) handshake(dec *xmlstream.Decoder) error {
	h, err := dec.ReadHeader()
	if err != nil {
		return err
	}
	if h.Name.Space != stanza.NSStream || h.Name.Local != "stream" {
		return stream.InvalidNamespace("the stream element must be {http://etherx.jabber.org/streams}stream")
	}
	if h.DefaultNS != NS {
		return stream.InvalidNamespace("the content namespace of a component stream must be " + NS)
	}
	var to string
	for _, a := range h.Attrs {
		if a.Name.Space == "" && a.Name.Local == "to" {
			to = a.Value
		}
	}
	d, err := jid.New("", to, "")
	if to == "" || err != nil {
		return stream.HostUnknown("the stream header must name the component's domain in 'to'")
	}
	secret, ok := c.s.secrets[d.Domain()]
	if !ok {
		c.s.cfg.Log.Info("component: connection for an unknown domain refused", "domain", d.Domain())
		return stream.HostUnknown("no component is configured for " + d.Domain())
	}
	c.domain = d.Domain()
	// Our header names the component's domain and the id the handshake
	// is computed over (XEP-0114 §3).
	id := stream.NewID()
	if err := c.out.Write(stream.AppendHeader(nil, stream.Header{ContentNS: NS, ID: id, From: c.domain, NoVersion: true})); err != nil {
		return err
	}
	c.headerSent = true
	el, err := dec.Next()
	if err != nil {
		return err
	}
	if el.Name.Space != NS || el.Name.Local != "handshake" {
		return stream.NotAuthorized("the handshake must come first")
	}
	if !handshakeValid(el.Text(), id, secret) {
		c.s.cfg.Log.Info("component: authentication failed", "domain", c.domain)
		c.s.cfg.Log.Debug("component: authentication failed", "addr", c.addr)
		return stream.NotAuthorized("wrong handshake")
	}
	if err := c.s.claim(c); err != nil {
		c.s.cfg.Log.Info("component: second connection refused", "domain", c.domain)
		return err
	}
	c.authed = true
	c.s.cfg.Log.Info("component: connected", "domain", c.domain)
	// Components may stay silent for long: no read deadline from now on;
	// TCP keepalive notices a connection that broke.
	c.nc.SetReadDeadline(time.Time{})
	if c.requestedEnd() != nil { // Stop came before the line above
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	return c.out.Write([]byte("<handshake/>"))
}

// stanzas routes the component's stanzas until the stream ends.
func (c *conn) stanzas(dec *xmlstream.Decoder) error {
	for {
		el, err := dec.Next()
		if err != nil {
			return err
		}
		select {
		case c.activity <- struct{}{}:
		default:
		}
		if err := c.handle(el); err != nil {
			return err
		}
	}
}

// handle checks a stanza's addresses and routes it: 'from' must be at the
// component's domain or a subdomain of it, 'to' must be set.
func (c *conn) handle(el *xmlstream.Element) error {
	if !stanza.IsStanza(el, NS) {
		return stream.UnsupportedStanzaType("<" + el.Name.Local + "/> in " + el.Name.Space + " is not a stanza")
	}
	from, err := jid.Parse(el.Attr("from"))
	if el.Attr("from") == "" || err != nil || c.s.owner(from.Domain()) != c.domain {
		c.s.cfg.Log.Info("component: stanza with a foreign 'from' refused", "domain", c.domain)
		return stream.InvalidFrom("a component may only send from " + c.domain + " and its subdomains")
	}
	if el.Attr("to") == "" {
		return stream.ImproperAddressing("a stanza from a component needs 'to'")
	}
	toClientNS(el)
	el.SetAttr("from", from.String())
	if se := stanza.CheckIQ(el); se != nil {
		c.s.bounce(c.s.ctx, el, se)
		return nil
	}
	// The router answers a malformed 'to' with jid-malformed.
	c.s.cfg.Route(c.s.ctx, el)
	return nil
}

// finish closes the stream the way err calls for and logs the end of an
// authenticated one.
func (c *conn) finish(err error) {
	var se *stream.Error
	var xe *xmlstream.Error
	var ne net.Error
	switch {
	case c.requestedEnd() != nil:
		se = c.requestedEnd()
	case errors.As(err, &se):
	case errors.As(err, &xe):
		se = &stream.Error{Condition: xe.Condition, Text: xe.Text}
	case errors.As(err, &ne) && ne.Timeout() && !c.authed:
		se = stream.ConnectionTimeout()
	}
	if c.authed {
		c.s.release(c)
		reason := "closed by the component"
		switch {
		case se != nil:
			reason = se.Condition
		case err != nil && !errors.Is(err, xmlstream.ErrStreamEnd):
			reason = "connection lost"
		}
		c.s.cfg.Log.Info("component: disconnected", "domain", c.domain, "reason", reason)
	}
	var buf []byte
	if (se != nil || errors.Is(err, xmlstream.ErrStreamEnd)) && !c.headerSent {
		buf = stream.AppendHeader(buf, stream.Header{ContentNS: NS, ID: stream.NewID(), From: c.domain, NoVersion: true})
	}
	if se != nil {
		c.s.cfg.Log.Debug("component: stream error", "addr", c.addr, "condition", se.Condition, "text", se.Text)
		buf = stream.AppendError(buf, se)
	}
	if se != nil || errors.Is(err, xmlstream.ErrStreamEnd) {
		buf = append(buf, stream.Close...)
	}
	if len(buf) > 0 {
		c.out.Write(buf)
	}
	c.out.Flush()
	c.out.Close()
	c.nc.Close()
}
