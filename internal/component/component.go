// Package component serves external components (XEP-0114, "Jabber
// Component Protocol"): a gateway or bridge (biboumi for IRC, Slidge)
// connects, proves it knows the shared secret of its domain with the
// handshake, and from then on gets every stanza for its domain and the
// subdomains of it, and may send stanzas from them. The router reaches a
// component through Handler, which the server registers as a service
// domain; stanzas from a component go back through Config.Route with a
// 'from' checked here.
package component

import (
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/throttle"
	"parley/internal/xmlstream"
)

// NS is the content namespace of a component stream.
const NS = "jabber:component:accept"

// Spec is one configured component: its domain (normalised) and secret.
type Spec struct {
	Domain string
	Secret string
}

// Config is what the component listener needs from the server.
type Config struct {
	Components []Spec
	// ServerDomain is the 'from' of the liveness ping sent to a
	// component when another connection claims its domain.
	ServerDomain string
	// Route takes a stanza from a component, 'from' checked, into the
	// router; Bounce delivers an error made here for a stanza the router
	// handed over but no component took.
	Route  func(ctx context.Context, el *xmlstream.Element)
	Bounce func(ctx context.Context, el *xmlstream.Element)
	// Announce, when set (a cluster), tells the other nodes that a
	// component's domain is connected here, and Withdraw that it is no
	// longer. An error from Announce refuses the stream: a *stream.Error
	// as it is, anything else as <internal-server-error/>.
	Announce func(ctx context.Context, domain string) error
	Withdraw func(ctx context.Context, domain string)

	Limits xmlstream.Limits
	// HandshakeTimeout bounds the time from accept to a successful
	// handshake.
	HandshakeTimeout time.Duration
	// PreauthPerAddress bounds the connections from one address that
	// have not completed the handshake; 0: no limit.
	PreauthPerAddress int
	// MaxOutput bounds the bytes waiting to be written to one component.
	MaxOutput int
	// ProbeTimeout is how long a connected component has to show it is
	// alive (answer a ping) when a new connection claims its domain;
	// 0: 5 s.
	ProbeTimeout time.Duration
	Log          *slog.Logger
}

// Service owns the component listener, its connections and their
// goroutines.
type Service struct {
	cfg     *Config
	secrets map[string]string
	claims  map[string]*sync.Mutex // one handshake completes at a time per domain
	preauth *throttle.Concurrent
	ctx     context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	active    map[string]*conn // domain -> its authenticated stream
	conns     map[*conn]struct{}
	listeners []net.Listener
	stopping  bool
	wg        sync.WaitGroup
}

const defaultProbeTimeout = 5 * time.Second

// writeTimeout bounds one write to a component.
const writeTimeout = 30 * time.Second

func New(cfg *Config) *Service {
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = defaultProbeTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg:     cfg,
		secrets: make(map[string]string, len(cfg.Components)),
		claims:  make(map[string]*sync.Mutex, len(cfg.Components)),
		preauth: throttle.NewConcurrent(cfg.PreauthPerAddress),
		ctx:     ctx,
		cancel:  cancel,
		active:  make(map[string]*conn),
		conns:   make(map[*conn]struct{}),
	}
	for _, c := range cfg.Components {
		s.secrets[c.Domain] = c.Secret
		s.claims[c.Domain] = new(sync.Mutex)
	}
	return s
}

// SetCluster makes the component domains reachable from the other nodes
// of a cluster (Config.Announce and Withdraw). It must be called before
// Serve.
func (s *Service) SetCluster(announce func(ctx context.Context, domain string) error, withdraw func(ctx context.Context, domain string)) {
	s.cfg.Announce, s.cfg.Withdraw = announce, withdraw
}

// Handler returns what the router calls with every stanza for domain, a
// configured component's, or a subdomain of it.
func (s *Service) Handler(domain string) func(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	return func(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
		s.mu.Lock()
		c := s.active[domain]
		s.mu.Unlock()
		if c == nil {
			s.bounce(ctx, el, stanza.ServiceUnavailable())
			return
		}
		if err := c.out.Write(el.Append(nil, stanza.NSClient)); err != nil {
			// A component that does not read its stream is ended; what it
			// was sent meanwhile is answered as not delivered.
			c.end(stream.PolicyViolation("the component does not read its stream"))
			s.bounce(ctx, el, stanza.ServiceUnavailable())
		}
	}
}

func (s *Service) bounce(ctx context.Context, el *xmlstream.Element, se *stanza.Error) {
	if r := stanza.ErrorReply(el, se); r != nil {
		s.cfg.Bounce(ctx, r)
	}
}

// Serve accepts component connections on ln until Stop.
func (s *Service) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	for {
		nc, err := stream.Accept(ln, s.cfg.Log, "component")
		if err != nil {
			return nil
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Stop closes the listeners, ends every component stream with
// <system-shutdown/> and waits for their goroutines, or for ctx.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.end(stream.SystemShutdown())
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// claim makes c the stream of its domain. A domain has one stream: when
// another holds it, that one is asked to prove it is alive, and a live
// one keeps the domain (c gets <conflict/>) while a silent one, a
// connection that broke without a word, is replaced.
func (s *Service) claim(c *conn) error {
	mu := s.claims[c.domain]
	mu.Lock()
	defer mu.Unlock()
	s.mu.Lock()
	old := s.active[c.domain]
	if old == nil {
		s.active[c.domain] = c
		s.mu.Unlock()
		return s.announce(c)
	}
	s.mu.Unlock()
	if old.alive(s.cfg.ServerDomain, s.cfg.ProbeTimeout) {
		return stream.Conflict("a component is already connected for " + c.domain)
	}
	s.mu.Lock()
	if s.active[c.domain] == old {
		s.active[c.domain] = c
	}
	s.mu.Unlock()
	s.cfg.Log.Info("component: replacing a stream that did not answer", "domain", c.domain)
	old.end(stream.Conflict("replaced by a new connection for " + c.domain))
	return s.announce(c)
}

// announce tells the other nodes of a cluster that c holds its domain;
// c gives the domain up again when they refuse. Called with the
// domain's claim lock held.
func (s *Service) announce(c *conn) error {
	if s.cfg.Announce == nil {
		return nil
	}
	err := s.cfg.Announce(s.ctx, c.domain)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	if s.active[c.domain] == c {
		delete(s.active, c.domain)
	}
	s.mu.Unlock()
	s.cfg.Log.Warn("component: the other nodes refused the component", "domain", c.domain, "err", err)
	var se *stream.Error
	if errors.As(err, &se) {
		return se
	}
	return stream.InternalServerError()
}

// release removes c as the stream of its domain, if it still is, and
// then withdraws the domain from the other nodes. The claim lock keeps a
// new stream's announcement from coming between the two.
func (s *Service) release(c *conn) {
	mu := s.claims[c.domain]
	mu.Lock()
	defer mu.Unlock()
	s.mu.Lock()
	held := s.active[c.domain] == c
	if held {
		delete(s.active, c.domain)
	}
	s.mu.Unlock()
	if held && s.cfg.Withdraw != nil {
		s.cfg.Withdraw(context.WithoutCancel(s.ctx), c.domain)
	}
}

// Connected reports whether a component stream holds domain.
func (s *Service) Connected(domain string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[domain] != nil
}

// handshakeDigest is the handshake a component must send: the lowercase
// hex SHA-1 of the stream id followed by the secret (XEP-0114 §3).
func handshakeDigest(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return hex.EncodeToString(sum[:])
}

// handshakeValid compares in constant time, case-insensitively: some
// components write the digest in uppercase.
func handshakeValid(got, id, secret string) bool {
	want := handshakeDigest(id, secret)
	got = strings.ToLower(strings.TrimSpace(got))
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// owner is the configured component whose stanzas d belongs to: d's own,
// else that of its nearest parent domain; "" when none. A component may
// send from its domain and every subdomain of it, except those of
// another component configured beneath it.
func (s *Service) owner(d string) string {
	for {
		if _, ok := s.secrets[d]; ok {
			return d
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return ""
		}
		d = d[i+1:]
	}
}

// toClientNS moves a stanza from the component namespace into
// jabber:client, the namespace of every stanza inside the server.
func toClientNS(el *xmlstream.Element) {
	if el.Name.Space == NS {
		el.Name.Space = stanza.NSClient
	}
	for c := range el.Elements() {
		toClientNS(c)
	}
}
