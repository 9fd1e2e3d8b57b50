package bench

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/xmlstream"
)

const (
	nsClient   = "jabber:client"
	nsStream   = "http://etherx.jabber.org/streams"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRegister = "jabber:iq:register"
	nsPing     = "urn:xmpp:ping"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsSM       = "urn:xmpp:sm:3"
)

// Mechanisms the load tool can authenticate with.
const (
	MechPLAIN     = "PLAIN"
	MechSCRAMSHA1 = "SCRAM-SHA-1"
)

// account is one login: the bare JID split in its parts, and its password.
type account struct {
	local, domain, password string
}

func (a account) bare() string { return a.local + "@" + a.domain }

// parseAccount splits "local@domain" as produced by a --user-format.
func parseAccount(jid, password string) (account, error) {
	local, domain, ok := strings.Cut(jid, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(domain, "@/") {
		return account{}, fmt.Errorf("account %q is not of the form local@domain", jid)
	}
	return account{local: local, domain: domain, password: password}, nil
}

// dialer holds what every connection of a run shares.
type dialer struct {
	addr    string
	mech    string
	timeout time.Duration
	salts   *saltCache
}

// xmppConn is one client stream after STARTTLS. After login the reader
// goroutine owns dec; writes go through write, which is safe for the
// sender and the reader (answering pings) at once.
type xmppConn struct {
	raw net.Conn
	tc  *tls.Conn
	dec *xmlstream.Decoder
	jid string // full JID after binding

	// Stream management (--sm): inH is owned by the reader; acked is the
	// last h the server sent.
	inH   uint32
	acked atomic.Uint32

	wmu  sync.Mutex
	wbuf []byte
}

func (c *xmppConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

func (c *xmppConn) writeLocked(b []byte) error {
	var w net.Conn = c.raw
	if c.tc != nil {
		w = c.tc
	}
	_, err := w.Write(b)
	return err
}

// close ends the stream politely and closes the socket without waiting
// for the server's answer: the benchmark has no use for it.
func (c *xmppConn) close() {
	c.wmu.Lock()
	c.raw.SetWriteDeadline(time.Now().Add(time.Second))
	c.writeLocked([]byte("</stream:stream>"))
	c.wmu.Unlock()
	c.raw.Close()
}

// connect opens TCP from src (nil: any), sends the stream header and
// negotiates STARTTLS, leaving the decoder at the post-TLS features.
func (d *dialer) connect(ctx context.Context, src net.Addr, domain string) (*xmppConn, *xmlstream.Element, error) {
	nd := net.Dialer{Timeout: d.timeout, LocalAddr: src}
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	c := &xmppConn{raw: raw, dec: xmlstream.NewDecoder(raw, xmlstream.Limits{})}
	// One deadline for the whole negotiation, and cancellation of ctx
	// cuts it short.
	raw.SetDeadline(time.Now().Add(d.timeout))
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()
	feats, err := c.open(domain)
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	if feats.Child(nsTLS, "starttls") == nil {
		raw.Close()
		return nil, nil, errors.New("server does not offer STARTTLS")
	}
	if err := c.write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("starttls: %w", err)
	}
	el, err := c.next()
	if err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("starttls: %w", err)
	}
	if el.Name != (xmlstream.Name{Space: nsTLS, Local: "proceed"}) {
		raw.Close()
		return nil, nil, fmt.Errorf("starttls: server answered <%s/>", el.Name.Local)
	}
	// Benchmarks run against loopback servers with self-signed
	// certificates; nothing secret crosses these connections.
	c.tc = tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: domain, MinVersion: tls.VersionTLS12})
	if err := c.tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("tls handshake: %w", err)
	}
	c.dec.Reset(c.tc)
	if feats, err = c.open(domain); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return c, feats, nil
}

// open sends a stream header and returns the server's features.
func (c *xmppConn) open(domain string) (*xmlstream.Element, error) {
	hdr := "<?xml version='1.0'?><stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream +
		"' to='" + domain + "' version='1.0'>"
	if err := c.write([]byte(hdr)); err != nil {
		return nil, fmt.Errorf("stream header: %w", err)
	}
	if _, err := c.dec.ReadHeader(); err != nil {
		return nil, fmt.Errorf("server stream header: %w", err)
	}
	el, err := c.next()
	if err != nil {
		return nil, fmt.Errorf("stream features: %w", err)
	}
	if el.Name != (xmlstream.Name{Space: nsStream, Local: "features"}) {
		return nil, fmt.Errorf("expected stream features, got <%s/>", el.Name.Local)
	}
	return el, nil
}

// next returns the next element, turning a stream error into an error
// that names its condition.
func (c *xmppConn) next() (*xmlstream.Element, error) {
	el, err := c.dec.Next()
	if err != nil {
		return nil, err
	}
	if el.Name == (xmlstream.Name{Space: nsStream, Local: "error"}) {
		return nil, fmt.Errorf("stream error: %s", condition(el))
	}
	return el, nil
}

// condition is the local name of the first child element, which is how
// stream errors, SASL failures and stanza errors name what went wrong.
func condition(el *xmlstream.Element) string {
	for ch := range el.Elements() {
		if ch.Name.Local != "text" {
			return ch.Name.Local
		}
	}
	return "unknown"
}

// login connects, authenticates and binds resource; the returned
// connection has no deadline set.
func (d *dialer) login(ctx context.Context, src net.Addr, acc account, resource string) (*xmppConn, error) {
	c, feats, err := d.connect(ctx, src, acc.domain)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Now()) })
	defer stop()
	if err := c.authenticate(feats, d.mech, acc, d.salts); err != nil {
		c.raw.Close()
		return nil, err
	}
	c.dec.Restart()
	if feats, err = c.open(acc.domain); err != nil {
		c.raw.Close()
		return nil, fmt.Errorf("after auth: %w", err)
	}
	if err := c.bind(feats, resource); err != nil {
		c.raw.Close()
		return nil, err
	}
	c.raw.SetDeadline(time.Time{})
	return c, nil
}

func (c *xmppConn) authenticate(feats *xmlstream.Element, mech string, acc account, salts *saltCache) error {
	offered := false
	if ms := feats.Child(nsSASL, "mechanisms"); ms != nil {
		for m := range ms.Elements() {
			if m.Text() == mech {
				offered = true
			}
		}
	}
	if !offered {
		return fmt.Errorf("server does not offer SASL %s", mech)
	}
	switch mech {
	case MechPLAIN:
		if err := c.sendAuth(mech, plainResponse(acc.local, acc.password)); err != nil {
			return err
		}
		el, err := c.next()
		if err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		return saslOutcome(el)
	case MechSCRAMSHA1:
		return c.scram(acc, salts)
	}
	return fmt.Errorf("unsupported mechanism %q", mech)
}

func (c *xmppConn) sendAuth(mech string, initial []byte) error {
	msg := "<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + base64.StdEncoding.EncodeToString(initial) + "</auth>"
	if err := c.write([]byte(msg)); err != nil {
		return fmt.Errorf("sasl auth: %w", err)
	}
	return nil
}

func (c *xmppConn) scram(acc account, salts *saltCache) error {
	nonce, err := randomNonce()
	if err != nil {
		return err
	}
	sc := newSCRAMClient(acc.local, acc.password, nonce, salts)
	if err := c.sendAuth(MechSCRAMSHA1, sc.First()); err != nil {
		return err
	}
	el, err := c.saslStep("challenge")
	if err != nil {
		return err
	}
	serverFirst, err := base64.StdEncoding.DecodeString(el.Text())
	if err != nil {
		return fmt.Errorf("sasl challenge: %w", err)
	}
	final, err := sc.Final(serverFirst)
	if err != nil {
		return err
	}
	resp := "<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(final) + "</response>"
	if err := c.write([]byte(resp)); err != nil {
		return fmt.Errorf("sasl response: %w", err)
	}
	el, err = c.next()
	if err != nil {
		return fmt.Errorf("sasl: %w", err)
	}
	// RFC 6120 §6.3.10 allows the server-final-message as a last
	// challenge answered by an empty response instead of in <success/>.
	if el.Name == (xmlstream.Name{Space: nsSASL, Local: "challenge"}) {
		sfinal, err := base64.StdEncoding.DecodeString(el.Text())
		if err != nil {
			return fmt.Errorf("sasl final challenge: %w", err)
		}
		if err := sc.Verify(sfinal); err != nil {
			return err
		}
		if err := c.write([]byte("<response xmlns='" + nsSASL + "'/>")); err != nil {
			return fmt.Errorf("sasl response: %w", err)
		}
		if el, err = c.next(); err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		return saslOutcome(el)
	}
	if err := saslOutcome(el); err != nil {
		return err
	}
	sfinal, err := base64.StdEncoding.DecodeString(el.Text())
	if err != nil {
		return fmt.Errorf("sasl success data: %w", err)
	}
	return sc.Verify(sfinal)
}

// saslStep reads the next SASL element and requires it to be want.
func (c *xmppConn) saslStep(want string) (*xmlstream.Element, error) {
	el, err := c.next()
	if err != nil {
		return nil, fmt.Errorf("sasl: %w", err)
	}
	if el.Name.Space == nsSASL && el.Name.Local == "failure" {
		return nil, fmt.Errorf("sasl failure: %s", condition(el))
	}
	if el.Name != (xmlstream.Name{Space: nsSASL, Local: want}) {
		return nil, fmt.Errorf("sasl: expected <%s/>, got <%s/>", want, el.Name.Local)
	}
	return el, nil
}

func saslOutcome(el *xmlstream.Element) error {
	switch {
	case el.Name == xmlstream.Name{Space: nsSASL, Local: "success"}:
		return nil
	case el.Name == xmlstream.Name{Space: nsSASL, Local: "failure"}:
		return fmt.Errorf("sasl failure: %s", condition(el))
	}
	return fmt.Errorf("sasl: unexpected <%s/>", el.Name.Local)
}

func (c *xmppConn) bind(feats *xmlstream.Element, resource string) error {
	if feats.Child(nsBind, "bind") == nil {
		return errors.New("server does not offer resource binding")
	}
	req := "<iq type='set' id='bind1'><bind xmlns='" + nsBind + "'><resource>" + escapeText(resource) + "</resource></bind></iq>"
	res, err := c.iq([]byte(req), "bind1")
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	b := res.Child(nsBind, "bind")
	if b == nil || b.Child(nsBind, "jid") == nil {
		return errors.New("bind: result without a JID")
	}
	c.jid = b.Child(nsBind, "jid").Text()
	// Servers that still require RFC 3921 sessions say so by leaving out
	// <optional/>.
	if s := feats.Child(nsSession, "session"); s != nil && s.Child(nsSession, "optional") == nil {
		req := "<iq type='set' id='sess1'><session xmlns='" + nsSession + "'/></iq>"
		if _, err := c.iq([]byte(req), "sess1"); err != nil {
			return fmt.Errorf("session: %w", err)
		}
	}
	return nil
}

// iq sends a request and waits for its answer, skipping anything else
// the server sends meanwhile.
func (c *xmppConn) iq(req []byte, id string) (*xmlstream.Element, error) {
	if err := c.write(req); err != nil {
		return nil, err
	}
	for range 1000 {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if el.Name.Local != "iq" || el.Attr("id") != id {
			continue
		}
		if el.Attr("type") == "error" {
			ie := &iqError{cond: "unknown"}
			if e := el.Child(nsClient, "error"); e != nil {
				ie.cond = condition(e)
			}
			return nil, ie
		}
		return el, nil
	}
	return nil, fmt.Errorf("no answer to iq %s among 1000 stanzas", id)
}

// iqError is an IQ answered with type='error'.
type iqError struct{ cond string }

func (e *iqError) Error() string { return "iq error: " + e.cond }

// register creates acc by in-band registration (XEP-0077) on a new
// connection. An account that already exists counts as success, so a
// benchmark can be rerun on the same server.
func (d *dialer) register(ctx context.Context, acc account) error {
	c, _, err := d.connect(ctx, nil, acc.domain)
	if err != nil {
		return err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Now()) })
	defer stop()
	req := "<iq type='set' id='reg1'><query xmlns='" + nsRegister + "'><username>" + escapeText(acc.local) +
		"</username><password>" + escapeText(acc.password) + "</password></query></iq>"
	_, err = c.iq([]byte(req), "reg1")
	if ie := (*iqError)(nil); errors.As(err, &ie) && ie.cond == "conflict" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("register %s: %w", acc.bare(), err)
	}
	return nil
}

// escapeText escapes character data for use in element content and in
// single-quoted attributes.
func escapeText(s string) string {
	if !strings.ContainsAny(s, "<>&'\"") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// enableSM turns on stream management (XEP-0198) right after binding,
// before the reader goroutine owns the decoder.
func (c *xmppConn) enableSM() error {
	if err := c.write([]byte("<enable xmlns='" + nsSM + "'/>")); err != nil {
		return err
	}
	for {
		el, err := c.next()
		if err != nil {
			return fmt.Errorf("enabling stream management: %w", err)
		}
		if el.Name.Space != nsSM {
			continue
		}
		if el.Name.Local != "enabled" {
			return fmt.Errorf("enabling stream management: <%s/>", el.Name.Local)
		}
		return nil
	}
}
