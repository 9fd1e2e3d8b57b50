package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/metrics"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// inConn is one stream from another server. Its goroutine (serve) owns
// every field not under mu; Stop only asks it to end.
type inConn struct {
	s    *Service
	addr string // peer address, for debug logs only (never beside a JID)
	ctx  context.Context

	dec        *xmlstream.Decoder
	secure     bool
	tlsState   *tls.ConnectionState
	local      string // our domain, the 'to' of the peer's header
	remote     string // the 'from' of the peer's header; "" if it gave none
	id         string // the id of our latest header (the dialback stream ID)
	headerSent bool
	saslDone   bool
	// verified holds the domain pairs authenticated on this stream (local
	// is ours, remote the peer's): dialback and SASL vouch for one
	// sender domain towards one target domain (XEP-0220, Multiplexing), so a
	// stanza is taken only for a pair in here.
	verified map[pair]bool
	// dialbackFailures counts the db:result requests that did not
	// verify; each cost us a connection of the peer's choosing.
	dialbackFailures int

	mu     sync.Mutex
	nc     net.Conn
	endErr *stream.Error
}

func newInConn(s *Service, nc net.Conn) *inConn {
	addr := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	return &inConn{s: s, nc: nc, addr: addr, ctx: s.ctx, verified: make(map[pair]bool)}
}

func (c *inConn) netConn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc
}

func (c *inConn) shutdown() {
	c.mu.Lock()
	if c.endErr == nil {
		c.endErr = stream.SystemShutdown()
	}
	nc := c.nc
	c.mu.Unlock()
	nc.SetReadDeadline(time.Unix(1, 0))
}

func (c *inConn) requestedEnd() *stream.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

func (c *inConn) write(b []byte) error {
	nc := c.netConn()
	nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := nc.Write(b)
	return err
}

// refuse turns a connection away before reading anything from it.
func (c *inConn) refuse(se *stream.Error) {
	buf := appendHeader(nil, "", "", stream.NewID())
	buf = append(stream.AppendError(buf, se), stream.Close...)
	c.write(buf)
	c.netConn().Close()
}

func (c *inConn) serve() {
	nc := c.netConn()
	nc.SetDeadline(time.Now().Add(c.s.cfg.NegotiationTimeout))
	c.s.cfg.Log.Debug("s2s: connection accepted", "addr", c.addr)
	c.dec = xmlstream.NewDecoder(nc, c.s.limitsNow())
	err := c.run()
	c.finish(err)
}

func (c *inConn) authenticated() bool { return len(c.verified) > 0 }

// errIdle ends an authenticated stream that carried nothing for the idle
// timeout: closed without an error, the peer reconnects when it needs to.
var errIdle = errors.New("s2s: idle")

func (c *inConn) run() error {
	for {
		if err := c.readHeader(); err != nil {
			return err
		}
		if err := c.write(stream.AppendFeatures(nil, stanza.NSServer, c.features())); err != nil {
			return err
		}
		restart, err := c.elements()
		if err != nil || !restart {
			return err
		}
	}
}

// readHeader reads and checks the peer's stream header (RFC 6120 §4.7),
// then sends ours.
func (c *inConn) readHeader() error {
	c.headerSent = false
	raw, err := c.dec.ReadHeader()
	if err != nil {
		return err
	}
	h, err := checkHeader(raw)
	if err != nil {
		return err
	}
	to, err := jid.New("", h.to, "")
	switch {
	case h.to == "" || err != nil:
		return stream.HostUnknown("the stream header must name a domain served here in 'to'")
	case c.local != "" && to.Domain() != c.local:
		return stream.NotAuthorized("the 'to' of a restarted stream must not change")
	case !c.s.cfg.IsLocal(to.Domain()):
		return stream.HostUnknown("this server does not serve " + h.to)
	}
	c.local = to.Domain()
	if h.from != "" {
		from, err := jid.New("", h.from, "")
		switch {
		case err != nil || c.s.cfg.IsLocal(from.Domain()):
			return stream.InvalidFrom("'from' must be the domain of the connecting server")
		case c.remote != "" && from.Domain() != c.remote:
			return stream.NotAuthorized("the 'from' of a restarted stream must not change")
		}
		c.remote = from.Domain()
	}
	c.id = stream.NewID()
	if err := c.write(appendHeader(nil, c.local, c.remote, c.id)); err != nil {
		return err
	}
	c.headerSent = true
	return nil
}

func (c *inConn) certValid() bool {
	return c.tlsState != nil && c.remote != "" && peerCertValid(*c.tlsState, c.s.cfg.Roots, c.remote)
}

func (c *inConn) features() []*xmlstream.Element {
	var fs []*xmlstream.Element
	if !c.secure {
		st := xmlstream.New(stanza.NSTLS, "starttls")
		if c.s.cfg.RequireEncryption {
			// Nothing else before TLS: no authentication in the clear.
			st.AddChild(xmlstream.New(stanza.NSTLS, "required"))
			return append(fs, st)
		}
		fs = append(fs, st)
	}
	if !c.saslDone && c.certValid() {
		mechs := xmlstream.New(stanza.NSSASL, "mechanisms")
		mechs.AddChild(xmlstream.New(stanza.NSSASL, "mechanism").AddText("EXTERNAL"))
		fs = append(fs, mechs)
	}
	if !c.s.cfg.RequireValidCertificates {
		db := xmlstream.New(nsDialbackFeature, "dialback")
		db.AddChild(xmlstream.New(nsDialbackFeature, "errors"))
		fs = append(fs, db)
	}
	return fs
}

// elements handles the stream's elements until it must restart (after
// TLS or SASL) or ends.
func (c *inConn) elements() (restart bool, err error) {
	for {
		if c.authenticated() {
			c.netConn().SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
			// shutdown sets endErr before its deadline: if that deadline
			// was just overwritten, endErr is already visible here.
			if se := c.requestedEnd(); se != nil {
				return false, se
			}
		}
		el, err := c.dec.Next()
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() && c.authenticated() && c.requestedEnd() == nil {
			return false, errIdle
		}
		if err != nil {
			return false, err
		}
		switch {
		case el.Name.Space == stanza.NSTLS && el.Name.Local == "starttls" && !c.secure:
			return true, c.startTLS()
		case !c.secure && c.s.cfg.RequireEncryption:
			return false, stream.PolicyViolation("STARTTLS is required")
		case el.Name.Space == stanza.NSSASL:
			ok, err := c.handleSASL(el)
			if err != nil || ok {
				return ok, err
			}
		case el.Name.Space == nsDialback && el.Name.Local == "verify":
			if err := c.answerVerify(el); err != nil {
				return false, err
			}
		case el.Name.Space == nsDialback && el.Name.Local == "result":
			if err := c.handleResult(el); err != nil {
				return false, err
			}
		case stanza.IsStanza(el, stanza.NSServer):
			if err := c.handleStanza(el); err != nil {
				return false, err
			}
		default:
			return false, stream.UnsupportedStanzaType("<" + el.Name.Local + "/> in " + el.Name.Space + " is not expected here")
		}
	}
}

func (c *inConn) startTLS() error {
	if c.dec.BufferedAfterSpace() > 0 {
		// Bytes sent before our <proceed/> would be mixed into the TLS
		// stream (STARTTLS command injection).
		return stream.PolicyViolation("data after <starttls/>")
	}
	if err := c.write([]byte("<proceed xmlns='" + stanza.NSTLS + "'/>")); err != nil {
		return err
	}
	tc := tls.Server(c.netConn(), serverTLS(c.s.cfg))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.s.cfg.Log.Debug("s2s: STARTTLS handshake failed", "addr", c.addr, "err", err)
		return io.EOF // no stream is left to send an error on
	}
	cs := tc.ConnectionState()
	c.mu.Lock()
	c.nc = tc
	c.mu.Unlock()
	c.secure = true
	c.tlsState = &cs
	c.dec.Reset(tc)
	return nil
}

func (c *inConn) saslFailure(condition string) error {
	return c.write([]byte("<failure xmlns='" + stanza.NSSASL + "'><" + condition + "/></failure>"))
}

// handleSASL accepts SASL EXTERNAL (RFC 6120 §6, XEP-0178) from a peer
// whose certificate is valid for the domain in its header.
func (c *inConn) handleSASL(el *xmlstream.Element) (ok bool, err error) {
	if c.saslDone {
		return false, stream.PolicyViolation("already authenticated")
	}
	switch el.Name.Local {
	case "auth":
	case "abort":
		return false, c.saslFailure("aborted")
	default:
		return false, stream.UnsupportedStanzaType("unexpected SASL element <" + el.Name.Local + "/>")
	}
	if el.Attr("mechanism") != "EXTERNAL" {
		return false, c.saslFailure("invalid-mechanism")
	}
	if !c.certValid() {
		return false, c.saslFailure("not-authorized")
	}
	authz := c.remote
	switch t := strings.TrimSpace(el.Text()); t {
	case "", "=":
	default:
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return false, c.saslFailure("incorrect-encoding")
		}
		authz = string(b)
	}
	if az, err := jid.New("", authz, ""); err != nil || az.Domain() != c.remote {
		return false, c.saslFailure("invalid-authzid")
	}
	c.saslDone = true
	c.verify(pair{local: c.local, remote: c.remote}, "sasl external")
	if err := c.write([]byte("<success xmlns='" + stanza.NSSASL + "'/>")); err != nil {
		return false, err
	}
	c.dec.Restart()
	return true, nil
}

// verify records that p.remote has proved itself towards p.local on
// this stream.
func (c *inConn) verify(p pair, method string) {
	if !c.authenticated() { // no longer counted against its address
		c.s.authenticatedFrom(c.addr)
	}
	c.verified[p] = true
	// Info names only the remote domain: which of our domains talks to
	// which other one is the business of debug logs.
	c.s.cfg.Log.Info("s2s: incoming stream authenticated", "remote_domain", p.remote, "method", method)
	c.s.cfg.Log.Debug("s2s: incoming stream authenticated", "from_domain", p.remote, "to_domain", p.local, "method", method)
	// From now on the stream may idle, not just negotiate; this also
	// bounds the wait for the header of a stream restarted after SASL.
	nc := c.netConn()
	nc.SetDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	// shutdown sets endErr before its deadline: if Stop came before the
	// line above, that deadline is gone and must be put back, or a
	// restarted stream would wait a whole idle timeout for its header.
	if c.requestedEnd() != nil {
		nc.SetDeadline(time.Unix(1, 0))
	}
}

// dialbackDomains reads and checks the addresses of a db:result or
// db:verify: from must be a remote domain, to one of ours.
func (c *inConn) dialbackDomains(el *xmlstream.Element) (from, to string, err error) {
	f, err1 := jid.New("", el.Attr("from"), "")
	t, err2 := jid.New("", el.Attr("to"), "")
	switch {
	case el.Attr("from") == "" || el.Attr("to") == "":
		return "", "", stream.ImproperAddressing("dialback needs 'from' and 'to'")
	case err1 != nil || c.s.cfg.IsLocal(f.Domain()):
		return "", "", stream.InvalidFrom("'from' must be the domain of the connecting server")
	case err2 != nil || !c.s.cfg.IsLocal(t.Domain()):
		return "", "", stream.HostUnknown("this server does not serve " + el.Attr("to"))
	}
	return f.Domain(), t.Domain(), nil
}

// maxDialbackFailures is how many verifications may fail on one stream
// (invalid key, unreachable server) before it is ended: every
// verification is a connection to a server of the peer's choosing, so a
// peer must not get an unbounded number of them. Config.MaxDomainPairs
// bounds the ones that succeed.
const maxDialbackFailures = 8

// appendDialbackError writes a db:result or db:verify of type "error"
// (XEP-0220, Dialback Error Conditions): it leaves the stream open.
func appendDialbackError(buf []byte, name, from, to, id, errType, condition string) []byte {
	buf = appendDialback(buf, name, from, to, id, "error", "")
	buf = buf[:len(buf)-2] // reopen the empty element for its error
	buf = append(buf, "><error type='"+errType+"'><"+condition+" xmlns='"+stanza.NSStanzas+"'/></error></db:"+name+">"...)
	return buf
}

// handleResult checks a peer's dialback key (XEP-0220 §2.2) by asking
// the authoritative server of the domain it claims.
func (c *inConn) handleResult(el *xmlstream.Element) error {
	if c.s.cfg.RequireValidCertificates {
		return stream.NotAuthorized("only certificates are accepted here, not dialback")
	}
	from, to, err := c.dialbackDomains(el)
	if err != nil {
		return err
	}
	key := strings.TrimSpace(el.Text())
	if key == "" {
		return stream.BadFormat("db:result needs a key")
	}
	p := pair{local: to, remote: from}
	if c.verified[p] {
		return c.write(appendDialback(nil, "result", to, from, "", "valid", ""))
	}
	if c.dialbackFailures >= maxDialbackFailures {
		return stream.PolicyViolation("too many failed dialback attempts on this stream")
	}
	if len(c.verified) >= c.s.cfg.MaxDomainPairs {
		return c.write(appendDialbackError(nil, "result", to, from, "", "wait", "resource-constraint"))
	}
	release, ok := c.s.startVerification(c.addr)
	if !ok {
		c.s.cfg.Log.Debug("s2s: dialback verification refused, too many under way", "addr", c.addr)
		return c.write(appendDialbackError(nil, "result", to, from, "", "wait", "resource-constraint"))
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.NegotiationTimeout)
	valid, err := c.s.verifyDialback(ctx, to, from, c.id, key)
	cancel()
	release()
	if err != nil {
		c.dialbackFailures++
		// The error may name addresses of the peer's servers: debug only.
		c.s.cfg.Log.Info("s2s: dialback verification failed", "remote_domain", from)
		c.s.cfg.Log.Debug("s2s: dialback verification failed", "from_domain", from, "to_domain", to, "err", err)
		return c.write(appendDialbackError(nil, "result", to, from, "", "cancel", "remote-server-not-found"))
	}
	if !valid {
		c.dialbackFailures++
		c.s.cfg.Log.Info("s2s: dialback key refused", "remote_domain", from)
		return c.write(appendDialback(nil, "result", to, from, "", "invalid", ""))
	}
	// Recorded before the peer hears of it, which may act on it at once.
	c.verify(p, "dialback")
	return c.write(appendDialback(nil, "result", to, from, "", "valid", ""))
}

// answerVerify tells a receiving server whether a key is one we made
// (XEP-0220 §2.3.2). Any server may ask, before authenticating; a key is
// valid only while one of our outgoing streams waits for its dialback
// with that very stream ID, so that no key is confirmed that we did not
// send just now (XEP-0220, Security Considerations: unsolicited
// dialback).
func (c *inConn) answerVerify(el *xmlstream.Element) error {
	from, to, err := c.dialbackDomains(el)
	if err != nil {
		return err
	}
	id := el.Attr("id")
	typ := "invalid"
	if verifyDialbackKey(c.s.cfg.Secret, from, to, id, strings.TrimSpace(el.Text())) && c.s.dialbackPending(dialbackID{receiving: from, originating: to, streamID: id}) {
		typ = "valid"
	}
	c.s.cfg.Log.Debug("s2s: dialback key checked", "from_domain", from, "to_domain", to, "type", typ)
	return c.write(appendDialback(nil, "verify", to, from, id, typ, ""))
}

// handleStanza hands a stanza to the router once its addresses are
// checked: 'from' of a domain verified on this stream, 'to' served here.
func (c *inConn) handleStanza(el *xmlstream.Element) error {
	if !c.authenticated() {
		return stream.NotAuthorized("authenticate first")
	}
	f, t := el.Attr("from"), el.Attr("to")
	if f == "" || t == "" {
		return stream.ImproperAddressing("a stanza between servers needs 'from' and 'to'")
	}
	from, err := jid.Parse(f)
	if err != nil {
		return stream.InvalidFrom("'from' is not a valid address")
	}
	to, err := jid.Parse(t)
	if err != nil {
		return stream.ImproperAddressing("'to' is not a valid address")
	}
	if !c.s.cfg.IsLocal(to.Domain()) {
		return stream.HostUnknown("this server does not serve " + to.Domain())
	}
	// Both domains are compared in their canonical form, so that no
	// spelling (case, width, A-label) of another domain passes.
	if !c.verified[pair{local: to.Domain(), remote: from.Domain()}] {
		return stream.InvalidFrom("'from' and 'to' are not a domain pair authenticated on this stream")
	}
	// The router and modules know stanzas as jabber:client, with the
	// addresses in their normalised form.
	nsServerToClient(el)
	el.SetAttr("from", from.String())
	el.SetAttr("to", to.String())
	if se := stanza.CheckIQ(el); se != nil {
		c.s.bounce(el, se)
		return nil
	}
	c.s.cfg.Metrics.Stanza(el.Name.Local, metrics.In)
	c.s.cfg.Route(c.ctx, el)
	return nil
}

// finish closes the stream the way err calls for.
func (c *inConn) finish(err error) {
	var se *stream.Error
	var xe *xmlstream.Error
	var ne net.Error
	switch {
	case c.requestedEnd() != nil:
		se = c.requestedEnd()
	case errors.As(err, &se):
	case errors.As(err, &xe):
		se = &stream.Error{Condition: xe.Condition, Text: xe.Text}
	case errors.As(err, &ne) && ne.Timeout() && !c.authenticated():
		se = stream.ConnectionTimeout()
	}
	var buf []byte
	if (se != nil || errors.Is(err, xmlstream.ErrStreamEnd)) && !c.headerSent {
		buf = appendHeader(buf, c.local, "", stream.NewID())
	}
	if se != nil {
		c.s.cfg.Log.Debug("s2s: incoming stream error", "addr", c.addr, "condition", se.Condition, "text", se.Text)
		buf = stream.AppendError(buf, se)
	}
	if se != nil || errors.Is(err, xmlstream.ErrStreamEnd) || errors.Is(err, errIdle) {
		buf = append(buf, stream.Close...)
	}
	if len(buf) > 0 {
		nc := c.netConn()
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		nc.Write(buf)
	}
	if c.authenticated() {
		// One domain at info (never a list of them side by side).
		remote := c.remote
		if remote == "" { // no 'from' in the header: any domain it proved
			for p := range c.verified {
				remote = p.remote
				break
			}
		}
		c.s.cfg.Log.Info("s2s: incoming stream closed", "remote_domain", remote, "domain_pairs", len(c.verified))
		if c.s.cfg.Log.Enabled(context.Background(), slog.LevelDebug) {
			pairs := make([]string, 0, len(c.verified))
			for p := range c.verified {
				pairs = append(pairs, p.remote+" -> "+p.local)
			}
			slices.Sort(pairs)
			c.s.cfg.Log.Debug("s2s: incoming stream closed", "pairs", pairs)
		}
	}
	c.netConn().Close()
}
