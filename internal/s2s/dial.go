package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// errNotFound means no server could be found or reached for a domain
// (remote-server-not-found); other errors of an outgoing stream mean the
// server was there but the stream failed (remote-server-timeout).
var errNotFound = errors.New("s2s: no server reachable for the domain")

// resolve lists the addresses to try for domain, in order: the configured
// route, else the _xmpp-server._tcp SRV targets (RFC 6120 §3.2), else the
// domain itself on port 5269.
func (s *Service) resolve(ctx context.Context, domain string) ([]string, error) {
	if addr, ok := s.cfg.Routes[domain]; ok {
		return []string{addr}, nil
	}
	// Special-use names (RFC 6761) never reach DNS: .invalid cannot
	// exist, and .localhost is this machine, where a route must say which
	// server is meant.
	if domain == "localhost" || strings.HasSuffix(domain, ".localhost") || strings.HasSuffix(domain, ".invalid") {
		return nil, fmt.Errorf("%w: %s is a special-use name without a route", errNotFound, domain)
	}
	// A peer names the domain we connect to for verification (the
	// 'from' of its db:result): an IP address would let it point us at
	// any host, a name without a dot at one the resolver completes from
	// our own search domains. Both are reachable only through a route.
	if isIPLiteral(domain) || !strings.Contains(domain, ".") {
		return nil, fmt.Errorf("%w: %s is not a DNS domain and has no route", errNotFound, domain)
	}
	name, err := asciiName(domain)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errNotFound, domain, err)
	}
	// Absolute, so that no search domain is ever appended.
	name += "."
	r := s.cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	_, srvs, err := r.LookupSRV(ctx, "xmpp-server", "tcp", name)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(srvs) == 1 && srvs[0].Target == ".":
		// RFC 2782: the service is decidedly not available.
		return nil, fmt.Errorf("%w: %s has no XMPP server (SRV target \".\")", errNotFound, domain)
	case err == nil && len(srvs) > 0:
		out := make([]string, 0, len(srvs))
		for _, srv := range srvs {
			out = append(out, net.JoinHostPort(strings.TrimSuffix(srv.Target, "."), strconv.Itoa(int(srv.Port))))
		}
		return out, nil
	case err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return []string{net.JoinHostPort(name, "5269")}, nil
	default:
		return nil, fmt.Errorf("%w: looking up %s: %v", errNotFound, domain, err)
	}
}

// peer is the initiating side of a server stream while it negotiates.
type peer struct {
	s             *Service
	local, remote string
	nc            net.Conn
	dec           *xmlstream.Decoder
	id            string // the id of the peer's latest stream header
	features      *xmlstream.Element
	secure        bool
	certValid     bool // the peer's certificate is valid for remote
}

// dialPeer connects to remote's server as local, and negotiates TLS
// (RFC 6120 §5): when it returns, the stream is open, its features read.
// The connection's deadline is left at the negotiation deadline.
func (s *Service) dialPeer(ctx context.Context, local, remote string) (*peer, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.NegotiationTimeout)
	defer cancel()
	addrs, err := s.resolve(ctx, remote)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var nc net.Conn
	var errs []error
	for _, a := range addrs {
		nc, err = d.DialContext(ctx, "tcp", a)
		if err == nil {
			break
		}
		errs = append(errs, err)
	}
	if nc == nil {
		return nil, fmt.Errorf("%w: %s: %v", errNotFound, remote, errors.Join(errs...))
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	// Stop may come during the negotiation: it ends the connection.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	p := &peer{s: s, local: local, remote: remote, nc: nc, dec: xmlstream.NewDecoder(nc, s.limitsNow())}
	if err := p.negotiateTLS(ctx); err != nil {
		p.abort(err)
		return nil, err
	}
	return p, nil
}

func (p *peer) write(b []byte) error {
	_, err := p.nc.Write(b)
	return err
}

// open sends our header and reads the peer's and its features.
func (p *peer) open() error {
	if err := p.write(appendHeader(nil, p.local, p.remote, "")); err != nil {
		return err
	}
	raw, err := p.dec.ReadHeader()
	if err != nil {
		return err
	}
	h, err := checkHeader(raw)
	if err != nil {
		return err
	}
	if h.id == "" {
		return stream.BadFormat("the stream header has no id")
	}
	p.id = h.id
	el, err := p.dec.Next()
	if err != nil {
		return err
	}
	if el.Name.Space != stanza.NSStream || el.Name.Local != "features" {
		return stream.UnsupportedStanzaType("expected <stream:features/>")
	}
	p.features = el
	return nil
}

func (p *peer) negotiateTLS(ctx context.Context) error {
	if err := p.open(); err != nil {
		return err
	}
	if p.features.Child(stanza.NSTLS, "starttls") == nil {
		if p.s.cfg.RequireEncryption {
			return fmt.Errorf("s2s: %s does not offer STARTTLS, which is required", p.remote)
		}
		return nil
	}
	if err := p.write([]byte("<starttls xmlns='" + stanza.NSTLS + "'/>")); err != nil {
		return err
	}
	el, err := p.dec.Next()
	if err != nil {
		return err
	}
	if el.Name.Space != stanza.NSTLS || el.Name.Local != "proceed" {
		return fmt.Errorf("s2s: %s refused STARTTLS", p.remote)
	}
	if p.dec.BufferedAfterSpace() > 0 {
		// Bytes after <proceed/> came in the clear; after the handshake
		// they would pass for protected ones (STARTTLS injection).
		return stream.PolicyViolation("data after <proceed/>")
	}
	tc := tls.Client(p.nc, clientTLS(p.s.cfg, p.local, p.remote))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("s2s: TLS with %s: %w", p.remote, err)
	}
	p.nc = tc
	p.secure = true
	p.certValid = peerCertValid(tc.ConnectionState(), p.s.cfg.Roots, p.remote)
	if !p.certValid && p.s.cfg.RequireValidCertificates {
		return fmt.Errorf("s2s: the certificate of %s is not valid for it", p.remote)
	}
	p.dec.Reset(tc)
	return p.open()
}

// offers reports whether the peer's features include SASL mechanism m.
func (p *peer) offers(m string) bool {
	mechs := p.features.Child(stanza.NSSASL, "mechanisms")
	if mechs == nil {
		return false
	}
	for c := range mechs.Elements() {
		if c.Name.Local == "mechanism" && strings.TrimSpace(c.Text()) == m {
			return true
		}
	}
	return false
}

// abort ends a negotiation that failed: with a stream error when it is
// ours to give, else just closed.
func (p *peer) abort(err error) {
	var se *stream.Error
	if errors.As(err, &se) {
		p.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		p.write(append(stream.AppendError(nil, se), stream.Close...))
	}
	p.nc.Close()
}
