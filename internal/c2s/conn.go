package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/jid"
	"parley/internal/metrics"
	"parley/internal/module"
	"parley/internal/sasl"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/throttle"
	"parley/internal/xmlstream"
)

// maxAuthAttempts is how many failed SASL attempts one stream gets before
// it is closed; RFC 6120 §6.4.5 asks for between 2 and 5.
const maxAuthAttempts = 3

// senderWait bounds how long what a client sends waits for a recipient
// that does not read (back-pressure) before the sender gets a
// resource-constraint error instead.
const senderWait = 10 * time.Second

// writeTimeout bounds one write to a client; a client that reads nothing
// for that long is gone or hostile.
const writeTimeout = 30 * time.Second

// conn is one client connection. Its goroutine (serve) owns every field
// that is not under mu; other goroutines only Deliver to it or end it.
type conn struct {
	cfg       *Config
	tun       *Tunables // the limits in force when it opened
	directTLS bool
	addr      string // source IP, for throttling and debug logs only
	dec       *xmlstream.Decoder
	out       *stream.OutQueue

	// negotiation state
	secure     bool
	tlsState   *tls.ConnectionState
	leaf       func() *x509.Certificate // the certificate our handshake presented
	domain     string
	headerSent bool
	authUser   string // localpart once SASL succeeded
	anonymous  bool
	failures   int
	saslSrv    sasl.Server
	guess      *throttle.Guess // the password being checked, reserved under the throttles
	wrongGuess bool            // a wrong password was checked on this connection
	preauth    bool            // counted in cfg.Preauth until authenticated
	full       jid.JID         // set once, before the session is bound
	bound      bool
	ctx        context.Context
	cancel     context.CancelFunc
	sendCtx    context.Context // ctx for what the client sends: it may wait for its recipients

	// preAuthValues is what modules keep across the IQs before
	// authentication (module.PreAuthIQ.Stream).
	preAuthValues map[any]any

	state session.State
	flood flood

	mu       sync.Mutex
	nc       net.Conn
	endErr   *stream.Error // why another goroutine asked us to end
	sm       smState
	csi      csiQueue
	detached bool // the connection broke; waiting for a resumption
	finished bool

	attachCh chan attachReq // a new connection resuming this session
	wake     chan struct{}  // end() wakes a detached session with it

	// Parking (parker_linux.go): an idle session gives up its goroutine.
	ir        *idleReader // the TLS reader; nil before TLS
	kicked    atomic.Bool // end() or a resumption wants the reader awake
	parkID    uint64      // guarded by the parker's lock, as parkRC
	parkRC    *recordConn // the socket registered while parked
	parkTimer *time.Timer // wakes a parked session at its read deadline
	pinged    bool        // a ping is out and unanswered
	graced    bool        // its deadline passed; what is buffered is being read
	deadline  bool        // the idle read deadline is set
	done      func()      // the server's bookkeeping, once the conn ends
}

func newConn(cfg *Config, nc net.Conn, directTLS bool, done func()) *conn {
	addr := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	c := &conn{cfg: cfg, tun: cfg.tunablesNow(), nc: nc, directTLS: directTLS, addr: addr,
		attachCh: make(chan attachReq, 1), wake: make(chan struct{}, 1), done: done}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.sendCtx = session.SenderMayWait(c.ctx, senderWait)
	return c
}

// serve runs a new connection; loop runs its bound session until it
// ends or parks, and runs again on a fresh goroutine when a parked
// session wakes. Both sit on the stack of every idle session, so they
// keep small frames: the work is in functions that return before the
// session waits (see idleread.go).
func (c *conn) serve() {
	err := c.open()
	if errors.Is(err, errHandedOver) {
		// The socket now belongs to the resumed session.
		c.leavePreauth()
		c.cancel()
		c.done()
		return
	}
	if err != nil {
		c.close(err)
		return
	}
	c.loop()
}

func (c *conn) loop() {
	for {
		err := c.stanzaLoop()
		if err == errPark {
			if c.cfg.parker.park(c) {
				return // the parker owns c until it wakes
			}
			continue
		}
		if !brokenConnection(err) || !c.waitResume() {
			c.close(err)
			return
		}
	}
}

// close ends the stream the way err calls for and tells the server.
func (c *conn) close(err error) {
	if err != errNoStream {
		c.finish(err)
	}
	c.leavePreauth()
	c.cancel()
	c.done()
}

// mayPark lets the session park once it is bound, never while it
// negotiates (the negotiation would read errPark as a failure).
func (c *conn) mayPark() {
	if c.ir != nil && c.cfg.parker != nil {
		c.ir.parkAfter = parkAfter
	}
}

// kick wakes the reader: a parked session gets a goroutine again to
// notice a deadline in the past or a closed socket.
func (c *conn) kick() {
	c.kicked.Store(true)
	c.cfg.parker.unpark(c)
}

// recordConn is the socket under TLS, for the parker.
func (c *conn) recordConn() *recordConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ir == nil {
		return nil
	}
	return c.ir.rc
}

// errNoStream: the TLS handshake failed, before any stream existed.
var errNoStream = errors.New("c2s: no stream")

// open sets up TLS (direct TLS) and negotiates the stream up to a bound
// session.
func (c *conn) open() error {
	nc := c.netConn()
	if !c.cfg.Preauth.Acquire(throttle.AddressKey(c.addr)) {
		c.refuseBusy(nc)
		return errNoStream
	}
	c.preauth = true
	nc.SetDeadline(time.Now().Add(c.tun.AuthTimeout))
	c.cfg.Log.Debug("c2s: connection accepted", "addr", c.addr, "direct_tls", c.directTLS)
	if c.directTLS {
		tc, ir := tlsServer(nc, c.serverTLS())
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.cfg.Log.Debug("c2s: TLS handshake failed", "addr", c.addr, "err", err)
			nc.Close()
			return errNoStream
		}
		c.useTLS(tc, ir)
		c.dec = xmlstream.NewDecoder(ir, c.tun.Limits)
		nc = tc
	} else {
		c.dec = xmlstream.NewDecoder(nc, c.tun.Limits)
	}
	c.out = stream.NewOutQueue(nc, c.tun.MaxOutput, writeTimeout)
	if err := c.negotiate(); err != nil {
		return err
	}
	c.netConn().SetDeadline(time.Time{})
	c.mayPark()
	c.cfg.Log.Info("c2s: session started", "jid", c.full.String())
	return nil
}

// refuseBusy turns away a connection from an address that already has
// preauth_connections_per_address unauthenticated ones. A STARTTLS client
// gets a <policy-violation/> stream error in the clear; a direct TLS one
// is closed before its handshake, which would cost more than the refusal
// is meant to save.
func (c *conn) refuseBusy(nc net.Conn) {
	c.cfg.Log.Debug("c2s: too many unauthenticated connections", "addr", c.addr)
	if !c.directTLS {
		buf := stream.AppendHeader(nil, stream.Header{ContentNS: stanza.NSClient, ID: stream.NewID()})
		buf = stream.AppendError(buf, stream.PolicyViolation("too many unauthenticated connections from your address"))
		buf = append(buf, stream.Close...)
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(buf)
	}
	nc.Close()
}

// leavePreauth stops counting the connection as unauthenticated.
func (c *conn) leavePreauth() {
	if c.preauth {
		c.preauth = false
		c.cfg.Preauth.Release(throttle.AddressKey(c.addr))
	}
}

// brokenConnection tells a connection that died (a phone losing its
// network) from a stream that ended on purpose or with an error.
func brokenConnection(err error) bool {
	var se *stream.Error
	var xe *xmlstream.Error
	return err != nil && !errors.Is(err, xmlstream.ErrStreamEnd) && !errors.As(err, &se) && !errors.As(err, &xe)
}

func (c *conn) netConn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc
}

func (c *conn) useTLS(tc *tls.Conn, ir *idleReader) {
	cs := tc.ConnectionState()
	c.mu.Lock()
	c.nc = tc
	c.ir = ir
	c.mu.Unlock()
	c.secure = true
	c.tlsState = &cs
}

// end asks the connection's goroutine to close the stream with e: the
// goroutine is blocked reading, so its read is made to time out now.
func (c *conn) end(e *stream.Error) {
	c.mu.Lock()
	if c.endErr == nil {
		c.endErr = e
	}
	nc := c.nc
	c.mu.Unlock()
	nc.SetReadDeadline(time.Unix(1, 0))
	c.kick()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) shutdown() { c.end(stream.SystemShutdown()) }

// End closes the session on an admin's order (kick, a disabled account)
// with a policy-violation stream error that says why.
func (c *conn) End(text string) { c.end(stream.PolicyViolation(text)) }

func (c *conn) requestedEnd() *stream.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// finish closes the stream the way err calls for and cleans up.
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
	case errors.As(err, &ne) && ne.Timeout() && !c.bound:
		se = stream.ConnectionTimeout()
	}
	if c.out != nil {
		var buf []byte
		if (se != nil || errors.Is(err, xmlstream.ErrStreamEnd)) && !c.headerSent {
			buf = stream.AppendHeader(buf, stream.Header{ContentNS: stanza.NSClient, ID: stream.NewID(), From: c.domain})
		}
		if se != nil {
			c.cfg.Log.Debug("c2s: stream error", "addr", c.addr, "condition", se.Condition, "text", se.Text)
			buf = stream.AppendError(buf, se)
		}
		if se != nil || errors.Is(err, xmlstream.ErrStreamEnd) {
			buf = append(buf, stream.Close...)
		}
		if len(buf) > 0 {
			// The queue may be full or broken; then the peer gets nothing.
			nc := c.netConn()
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.out.Write(buf)
			c.out.Flush()
		}
		c.out.Close()
	}
	c.mu.Lock()
	c.finished = true
	c.mu.Unlock()
	if c.sm.id != "" {
		c.cfg.resumable.remove(c.sm.id, c)
	}
	if c.bound {
		c.cfg.Router.Unbind(context.Background(), c)
		c.rerouteUnacked(context.Background())
		c.cfg.Log.Info("c2s: session ended", "jid", c.full.String())
	}
	if c.anonymous && c.authUser != "" {
		bare, _ := jid.New(c.authUser, c.domain, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.cfg.Accounts.Delete(ctx, bare); err != nil {
			c.cfg.Log.Error("c2s: deleting an anonymous account failed", "err", err)
		}
		cancel()
	}
	c.netConn().Close()
}

func (c *conn) write(b []byte) { c.out.Write(b) }

// readHeader reads and checks the client's stream header, then sends ours.
func (c *conn) readHeader() error {
	c.headerSent = false
	h, err := c.dec.ReadHeader()
	if err != nil {
		return err
	}
	if h.Name.Local != "stream" || h.Name.Space != stanza.NSStream {
		return stream.InvalidNamespace("the stream element must be {http://etherx.jabber.org/streams}stream")
	}
	if h.Prefix == "" {
		return stream.BadNamespacePrefix("the stream element needs a prefix")
	}
	if h.DefaultNS != stanza.NSClient {
		return stream.InvalidNamespace("the content namespace must be jabber:client")
	}
	var to, from, version string
	for _, a := range h.Attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "to":
			to = a.Value
		case "from":
			from = a.Value
		case "version":
			version = a.Value
		}
	}
	dom, err := jid.New("", to, "")
	switch {
	case to == "" || err != nil:
		return stream.HostUnknown("the stream header must name a domain served here in 'to'")
	case c.domain != "" && dom.Domain() != c.domain:
		return stream.NotAuthorized("the 'to' of a restarted stream must not change")
	case !c.cfg.IsHost(dom.Domain()) && !c.cfg.IsAnonymousHost(dom.Domain()):
		return stream.HostUnknown("this server does not serve " + to)
	}
	c.domain = dom.Domain()
	if !versionAtLeastOne(version) {
		return stream.UnsupportedVersion("XMPP version 1.0 is required")
	}
	respTo := ""
	if fj, err := jid.Parse(from); err == nil && from != "" {
		respTo = fj.String()
	}
	c.write(stream.AppendHeader(nil, stream.Header{ContentNS: stanza.NSClient, ID: stream.NewID(), From: c.domain, To: respTo}))
	c.headerSent = true
	return nil
}

func versionAtLeastOne(v string) bool {
	major, _, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(major)
	return err == nil && n >= 1
}

// negotiate runs the stream until a resource is bound.
func (c *conn) negotiate() error {
	for {
		if err := c.readHeader(); err != nil {
			return err
		}
		c.write(stream.AppendFeatures(nil, stanza.NSClient, c.features()))
		restart, err := c.negotiateStep()
		if err != nil {
			return err
		}
		if !restart {
			return nil
		}
	}
}

func (c *conn) tlsRequired() bool { return !c.secure && c.cfg.RequireStartTLS }

func (c *conn) features() []*xmlstream.Element {
	var fs []*xmlstream.Element
	if !c.secure {
		st := xmlstream.New(stanza.NSTLS, "starttls")
		if c.cfg.RequireStartTLS {
			st.AddChild(xmlstream.New(stanza.NSTLS, "required"))
			// Nothing else is offered before TLS: no mechanism may be
			// tried, and PLAIN is never offered in the clear.
			return append(fs, st)
		}
		fs = append(fs, st)
	}
	if c.authUser == "" {
		mechs := xmlstream.New(stanza.NSSASL, "mechanisms")
		for _, m := range sasl.Mechanisms(c.saslConfig()) {
			mechs.AddChild(xmlstream.New(stanza.NSSASL, "mechanism").AddText(m))
		}
		fs = append(fs, mechs)
		fs = append(fs, c.cfg.Registry.StreamFeatures(module.FeatureContext{Domain: c.domain, Secure: c.secure})...)
		if cb := c.channelBindings(); len(cb) > 0 {
			el := xmlstream.New(stanza.NSSASLCB, "sasl-channel-binding")
			for _, t := range []string{"tls-server-end-point", "tls-exporter"} {
				if cb[t] != nil {
					el.AddChild(xmlstream.New(stanza.NSSASLCB, "channel-binding", "type", t))
				}
			}
			fs = append(fs, el)
		}
		return fs
	}
	bind := xmlstream.New(stanza.NSBind, "bind")
	sess := xmlstream.New(stanza.NSSession, "session")
	sess.AddChild(xmlstream.New(stanza.NSSession, "optional"))
	fs = append(fs, bind, sess, xmlstream.New(NSSM, "sm"), xmlstream.New(NSCSI, "csi"))
	return append(fs, c.cfg.Registry.StreamFeatures(module.FeatureContext{Domain: c.domain, Authenticated: true, Secure: c.secure})...)
}

// negotiateStep reads elements until the stream must restart (after TLS
// or SASL) or a resource is bound.
func (c *conn) negotiateStep() (restart bool, err error) {
	for {
		el, err := c.dec.Next()
		if err != nil {
			return false, err
		}
		switch {
		case el.Name.Space == stanza.NSTLS && el.Name.Local == "starttls" && !c.secure:
			return true, c.startTLS()
		case c.tlsRequired():
			return false, stream.PolicyViolation("STARTTLS is required")
		case el.Name.Space == stanza.NSSASL && c.authUser == "":
			ok, err := c.handleSASL(el)
			if err != nil || ok {
				return ok, err
			}
		case el.Name.Space == NSSM && el.Name.Local == "resume" && c.authUser != "":
			if err := c.handleResume(el); err != nil {
				return false, err
			}
		case el.Name.Space == NSSM && c.authUser != "":
			f := xmlstream.New(NSSM, "failed")
			f.AddChild(xmlstream.New(stanza.NSStanzas, "unexpected-request"))
			c.write(f.Append(nil, stanza.NSClient))
		case stanza.IsStanza(el, stanza.NSClient) && c.authUser != "":
			done, err := c.handlePreBind(el)
			if err != nil || done {
				return false, err
			}
		case stanza.IsStanza(el, stanza.NSClient) && el.Name.Local == "iq" && c.preAuthHandler(el) != nil:
			c.handlePreAuthIQ(el)
		case stanza.IsStanza(el, stanza.NSClient):
			return false, stream.NotAuthorized("authenticate first")
		default:
			return false, stream.UnsupportedStanzaType("<" + el.Name.Local + "/> in " + el.Name.Space + " is not expected here")
		}
	}
}

func (c *conn) startTLS() error {
	if c.dec.BufferedAfterSpace() > 0 {
		// Data sent after <starttls/> before our <proceed/> would be
		// mixed into the TLS stream: the classic STARTTLS injection.
		return stream.PolicyViolation("data after <starttls/>")
	}
	c.write([]byte("<proceed xmlns='" + stanza.NSTLS + "'/>"))
	if err := c.out.Flush(); err != nil {
		return err
	}
	tc, ir := tlsServer(c.netConn(), c.serverTLS())
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.cfg.Log.Debug("c2s: STARTTLS handshake failed", "addr", c.addr, "err", err)
		// There is no stream left to send an error on.
		return io.EOF
	}
	c.useTLS(tc, ir)
	c.dec.Reset(ir)
	c.out.SetConn(tc)
	return nil
}

func (c *conn) channelBindings() map[string]func() ([]byte, error) {
	if c.tlsState == nil {
		return nil
	}
	cbs := map[string]func() ([]byte, error){}
	if leaf := c.servedLeaf(); leaf != nil {
		cbs["tls-server-end-point"] = func() ([]byte, error) { return sasl.TLSServerEndPoint(leaf) }
	}
	if _, err := sasl.TLSExporter(c.tlsState); err == nil {
		st := c.tlsState
		cbs["tls-exporter"] = func() ([]byte, error) { return sasl.TLSExporter(st) }
	}
	return cbs
}

func (c *conn) saslConfig() sasl.Config {
	domain := c.domain
	accts := c.cfg.Accounts
	ctx := c.ctx
	return sasl.Config{
		Lookup: func(username, hash string) (sasl.Credentials, error) {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			creds, err := accts.Lookup(lctx, domain, username, hash)
			if err != nil && !errors.Is(err, sasl.ErrUnknownUser) {
				// The client only sees temporary-auth-failure.
				c.cfg.storageFails.Report("looking up an account to log in", err)
			}
			return creds, err
		},
		Guess:           c.reserveGuess,
		PlainVerified:   func(u, pw string) { accts.CompleteCredentials(ctx, domain, u, pw) },
		FakeSecret:      c.cfg.FakeSecret,
		TLS:             c.secure,
		ChannelBindings: c.channelBindings(),
		Anonymous:       c.cfg.IsAnonymousHost(domain),
		NewAnonymousUsername: func() (string, error) {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return "", err
			}
			return hex.EncodeToString(b[:]), nil
		},
	}
}

// guessWait bounds how long a login waits for guesses in flight from its
// address or at its account to settle before it is refused.
const guessWait = 3 * time.Second

// reserveGuess runs right before a mechanism checks a password for user:
// the guess takes its tokens now, so guesses racing on many streams
// cannot all be checked (settleGuess gives them back unless the password
// was wrong). A connection gets one wrong password: a client falling back
// to its next mechanism with the same typo makes one mistake, not four,
// and an attacker cannot multiply guesses per token by retrying on one
// stream. A person who retypes reconnects, as clients do after a failure.
func (c *conn) reserveGuess(user string) error {
	if c.wrongGuess {
		return &sasl.Failure{Condition: "temporary-auth-failure", Text: "one wrong password per connection: reconnect to try again"}
	}
	g, ok := c.cfg.Logins.BeginWait(user+"@"+c.domain, throttle.AddressKey(c.addr), guessWait)
	if !ok {
		return &sasl.Failure{Condition: "temporary-auth-failure", Text: "too many failed logins, try again later"}
	}
	c.guess = g
	return nil
}

// settleGuess ends the guess reserved during a SASL step: a wrong password
// (not-authorized) keeps its tokens; anything else short of success
// (storage failed, malformed message) gives them back.
func (c *conn) settleGuess(err error) {
	g := c.guess
	if g == nil {
		return
	}
	c.guess = nil
	var f *sasl.Failure
	if errors.As(err, &f) && f.Condition == "not-authorized" {
		g.Failed()
		c.cfg.Metrics.AuthFailure()
		c.wrongGuess = true
		return
	}
	g.Cancel()
}

func (c *conn) saslFailure(condition, text string) {
	el := xmlstream.New(stanza.NSSASL, "failure")
	el.AddChild(xmlstream.New(stanza.NSSASL, condition))
	if text != "" {
		el.AddChild(xmlstream.New(stanza.NSSASL, "text").AddText(text))
	}
	c.write(el.Append(nil, stanza.NSClient))
}

// decodeSASLData distinguishes no data (nil) from empty data ("=").
func decodeSASLData(el *xmlstream.Element) ([]byte, error) {
	t := strings.TrimSpace(el.Text())
	switch t {
	case "":
		return nil, nil
	case "=":
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(t)
}

func encodeSASLData(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// handleSASL processes one element of the SASL exchange; ok is true once
// authentication succeeded and the stream must restart.
func (c *conn) handleSASL(el *xmlstream.Element) (ok bool, err error) {
	var data []byte
	switch el.Name.Local {
	case "auth":
		c.saslSrv = nil
		srv, err := sasl.NewServer(el.Attr("mechanism"), c.saslConfig())
		if err != nil {
			var f *sasl.Failure
			if errors.As(err, &f) {
				c.saslFailure(f.Condition, f.Text)
				return false, nil
			}
			return false, err
		}
		c.saslSrv = srv
	case "response":
		if c.saslSrv == nil {
			c.saslFailure("malformed-request", "no authentication in progress")
			return false, nil
		}
	case "abort":
		c.saslSrv = nil
		c.saslFailure("aborted", "")
		return false, nil
	default:
		return false, stream.UnsupportedStanzaType("unknown SASL element <" + el.Name.Local + "/>")
	}
	data, err = decodeSASLData(el)
	if err != nil {
		c.saslSrv = nil
		c.saslFailure("incorrect-encoding", "")
		return false, nil
	}
	out, done, err := c.saslSrv.Step(data)
	if err != nil {
		c.settleGuess(err)
		return false, c.authFailed(err)
	}
	if !done {
		c.write([]byte("<challenge xmlns='" + stanza.NSSASL + "'>" + encodeSASLData(out) + "</challenge>"))
		return false, nil
	}
	return c.authSucceeded(out)
}

func (c *conn) authFailed(err error) error {
	c.saslSrv = nil
	var f *sasl.Failure
	if !errors.As(err, &f) {
		c.cfg.Log.Error("c2s: SASL failed", "err", err)
		f = &sasl.Failure{Condition: "temporary-auth-failure"}
	}
	// A client that offers a channel binding we do not have (slixmpp
	// knows only tls-unique, which TLS 1.3 lacks) fails before any
	// password is checked; it then tries its next mechanism, so these
	// failures count neither as guesses nor against the stream's retries.
	if f.Text == sasl.TextUnsupportedChannelBinding || f.Text == sasl.TextDowngrade {
		c.saslFailure(f.Condition, f.Text)
		return nil
	}
	c.saslFailure(f.Condition, f.Text)
	c.failures++
	if c.failures >= maxAuthAttempts {
		return stream.PolicyViolation("too many failed authentication attempts")
	}
	return nil
}

func (c *conn) authSucceeded(additional []byte) (bool, error) {
	// The password was right, so its reservation goes back whatever
	// follows; only a completed login trusts this address for the account.
	g := c.guess
	c.guess = nil
	ok, err := c.completeAuth(additional)
	if g != nil && ok {
		g.Succeeded()
	} else if g != nil {
		g.Cancel()
	}
	return ok, err
}

func (c *conn) completeAuth(additional []byte) (bool, error) {
	srv := c.saslSrv
	c.saslSrv = nil
	user := srv.Username()
	bare, err := jid.New(user, c.domain, "")
	if err != nil {
		c.saslFailure("not-authorized", "")
		return false, nil
	}
	if z := srv.Authzid(); z != "" {
		if zj, err := jid.Parse(z); err != nil || !zj.Equal(bare) {
			c.saslFailure("invalid-authzid", "")
			return false, nil
		}
	}
	// Checked after the password, so that the flag tells nothing to
	// someone who does not know it.
	if off, err := c.cfg.Accounts.Disabled(c.ctx, bare); err != nil || off {
		if err != nil {
			c.cfg.Log.Error("c2s: reading the disabled flag failed", "err", err)
			c.saslFailure("temporary-auth-failure", "")
			return false, nil
		}
		c.saslFailure("account-disabled", "this account is disabled; ask the server's admin")
		return false, nil
	}
	if c.cfg.IsAnonymousHost(c.domain) {
		if err := c.cfg.Accounts.CreateAnonymous(c.ctx, bare); err != nil {
			c.cfg.Log.Error("c2s: creating an anonymous account failed", "err", err)
			c.saslFailure("temporary-auth-failure", "")
			return false, nil
		}
		c.anonymous = true
	}
	c.authUser = bare.Local()
	c.leavePreauth()
	el := xmlstream.New(stanza.NSSASL, "success")
	if len(additional) > 0 {
		el.AddText(base64.StdEncoding.EncodeToString(additional))
	}
	c.write(el.Append(nil, stanza.NSClient))
	c.dec.Restart()
	return true, nil
}

// handlePreBind answers the stanzas allowed between SASL and binding.
func (c *conn) handlePreBind(el *xmlstream.Element) (bound bool, err error) {
	if el.Name.Local != "iq" || el.Attr("type") != "set" {
		return false, stream.NotAuthorized("bind a resource first")
	}
	p := el.FirstElement()
	if p == nil || p.Name.Space != stanza.NSBind || p.Name.Local != "bind" {
		return false, stream.NotAuthorized("bind a resource first")
	}
	res := ""
	if r := p.Child(stanza.NSBind, "resource"); r != nil {
		res = strings.TrimSpace(r.Text())
	}
	if res == "" || c.cfg.RandomResources {
		res = randomResource()
	}
	full, err := jid.New(c.authUser, c.domain, res)
	if err != nil {
		c.replyError(el, stanza.BadRequest("the resource is not allowed"))
		return false, nil
	}
	c.full = full
	c.bound = true
	if old := c.cfg.Router.Bind(c.ctx, c); old != nil {
		old.Replace()
	}
	payload := xmlstream.New(stanza.NSBind, "bind")
	payload.AddChild(xmlstream.New(stanza.NSBind, "jid").AddText(full.String()))
	res2 := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", el.Attr("id"))
	res2.AddChild(payload)
	c.write(res2.Append(nil, stanza.NSClient))
	return true, nil
}

func randomResource() string {
	var b [6]byte
	rand.Read(b[:])
	return "parley-" + hex.EncodeToString(b[:])
}

func (c *conn) replyError(el *xmlstream.Element, se *stanza.Error) {
	if r := stanza.ErrorReply(el, se); r != nil {
		c.Deliver(r)
	}
}

// JID, Deliver and Replace make conn a router.Session.
func (c *conn) JID() jid.JID { return c.full }

func (c *conn) State() *session.State { return &c.state }

func (c *conn) Replace() {
	c.end(stream.Conflict("replaced by a new session with the same resource"))
}

// pingGrace is how long a session whose ping went unanswered past its
// deadline gets to hand over what is already in its socket buffer.
const pingGrace = 2 * time.Second

// pingID marks the server's own keepalive pings (XEP-0199 §4.2), whose
// answers are consumed here instead of being routed.
const pingID = "parley-c2s-ping"

// stanzaLoop handles the bound session until the stream ends. A session
// silent for IdleTimeout gets a ping; one that does not answer it within
// PingTimeout is gone (a phone that lost its network without a FIN) and
// is closed, so its presence does not linger.
func (c *conn) stanzaLoop() error {
	for {
		if c.tun.IdleTimeout > 0 && !c.deadline {
			c.setIdleDeadline()
			// end() may have set its deadline in the past just before
			// this replaced it.
			if e := c.requestedEnd(); e != nil {
				return e
			}
		}
		el, err := c.dec.Next()
		if err == errPark {
			return err
		}
		if err != nil && c.idleTimeout(err) {
			if c.pinged && !c.graced {
				// The deadline may have passed while the process was
				// paused (SIGSTOP, a frozen VM) with the answer already
				// in the socket: read what is there before giving up.
				c.graced = true
				c.netConn().SetReadDeadline(time.Now().Add(pingGrace))
				continue
			}
			if c.pinged {
				return stream.ConnectionTimeout()
			}
			c.pinged = true
			c.deadline = false
			c.ping()
			continue
		}
		if err != nil {
			return err
		}
		c.pinged, c.graced = false, false
		c.deadline = false
		if err := c.handleElement(el); err != nil {
			return err
		}
	}
}

// setIdleDeadline gives a silent client IdleTimeout before a ping, then
// PingTimeout to answer it. The deadline stays while the session parks.
func (c *conn) setIdleDeadline() {
	wait := c.tun.IdleTimeout
	if c.pinged {
		wait = c.cfg.PingTimeout
	}
	c.netConn().SetReadDeadline(time.Now().Add(wait))
	c.deadline = true
}

// idleTimeout reports whether err is the idle deadline running out, not
// a deadline set by end().
func (c *conn) idleTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && c.requestedEnd() == nil && c.tun.IdleTimeout > 0
}

// ping asks a quiet client whether it is still there (XEP-0199).
func (c *conn) ping() {
	ping := xmlstream.New(stanza.NSClient, "iq", "type", "get", "id", pingID, "from", c.domain, "to", c.full.String())
	ping.AddChild(xmlstream.New("urn:xmpp:ping", "ping"))
	c.Deliver(ping)
}

// handleElement takes one top-level element of a bound session.
func (c *conn) handleElement(el *xmlstream.Element) error {
	if el.Name.Space == NSSM {
		return c.handleSM(el)
	}
	if el.Name.Space == NSCSI && (el.Name.Local == "active" || el.Name.Local == "inactive") {
		c.setInactive(el.Name.Local == "inactive")
		return nil
	}
	if !stanza.IsStanza(el, stanza.NSClient) {
		return stream.UnsupportedStanzaType("<" + el.Name.Local + "/> in " + el.Name.Space + " is not a stanza")
	}
	c.cfg.Metrics.Stanza(el.Name.Local, metrics.In)
	if err := c.stampFrom(el); err != nil {
		return err
	}
	// Handled, for stream management, once what it writes is committed.
	ctx, g := c.track()
	if g != nil {
		defer g.Release()
	}
	if el.Name.Local == "iq" && el.Attr("id") == pingID && (el.Attr("type") == "result" || el.Attr("type") == "error") {
		return nil // any answer, even an error, shows the client is there
	}
	if se := stanza.CheckIQ(el); se != nil {
		c.replyError(el, se)
		return nil
	}
	if se := c.flood.check(el, time.Now()); se != nil {
		c.replyError(el, se)
		return nil
	}
	if c.isSessionIQ(el) {
		c.Deliver(stanza.Result(el, nil))
		return nil
	}
	c.cfg.Router.Route(ctx, el)
	return nil
}

// stampFrom enforces RFC 6120 §8.1.2.1: the server sets 'from' to the
// session's full JID; a client may give its own full or bare JID, and
// anything else ends the stream with <invalid-from/>.
func (c *conn) stampFrom(el *xmlstream.Element) error {
	f := el.Attr("from")
	if f == "" {
		el.SetAttr("from", c.full.String())
		return nil
	}
	fj, err := jid.Parse(f)
	if err != nil || !(fj.Equal(c.full) || fj.Equal(c.full.Bare())) {
		return stream.InvalidFrom("'from' must be your own address")
	}
	// Presence always carries the full JID inside the server, so the
	// presence module knows which session it is about.
	if el.Name.Local == "presence" {
		fj = c.full
	}
	el.SetAttr("from", fj.String())
	return nil
}

// isSessionIQ recognises legacy session establishment (RFC 3921), which
// RFC 6121 keeps as an optional no-op for old clients.
func (c *conn) isSessionIQ(el *xmlstream.Element) bool {
	if el.Name.Local != "iq" || el.Attr("type") != "set" {
		return false
	}
	if to := el.Attr("to"); to != "" && to != c.domain {
		return false
	}
	p := el.FirstElement()
	return p != nil && p.Name.Space == stanza.NSSession && p.Name.Local == "session"
}

// preAuthHandler returns the module handler for an IQ sent before
// authentication, nil when there is none (the stanza is then refused).
func (c *conn) preAuthHandler(el *xmlstream.Element) module.PreAuthIQHandler {
	typ := el.Attr("type")
	p := el.FirstElement()
	if p == nil || (typ != "get" && typ != "set") || !c.secure || c.cfg.IsAnonymousHost(c.domain) {
		return nil
	}
	if to := el.Attr("to"); to != "" && to != c.domain {
		return nil
	}
	return c.cfg.Registry.PreAuthIQHandler(p.Name)
}

func (c *conn) handlePreAuthIQ(el *xmlstream.Element) {
	if se := stanza.CheckIQ(el); se != nil {
		c.replyError(el, se)
		return
	}
	p := el.FirstElement()
	if c.preAuthValues == nil {
		c.preAuthValues = make(map[any]any)
	}
	res, err := c.preAuthHandler(el)(c.ctx, module.PreAuthIQ{Domain: c.domain, Addr: c.addr, Type: el.Attr("type"), Payload: p, Stanza: el, Stream: c.preAuthValues})
	if err != nil {
		se := stanza.AsError(err)
		if se.Condition == "internal-server-error" {
			c.cfg.Log.Error("c2s: pre-authentication IQ failed", "payload", p.Name.Space, "err", err)
		}
		c.replyError(el, se)
		return
	}
	r := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", el.Attr("id"))
	if res != nil {
		r.AddChild(res)
	}
	c.write(r.Append(nil, stanza.NSClient))
}

// setInactive records the client's state (XEP-0352); becoming active
// flushes what was held.
func (c *conn) setInactive(inactive bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.csi.inactive = inactive
	if !inactive {
		for _, held := range c.csi.take() {
			c.deliverLocked(held)
		}
	}
}
