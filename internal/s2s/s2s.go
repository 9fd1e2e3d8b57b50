// Package s2s serves server-to-server streams (RFC 6120 federation): one
// outgoing stream per pair of local and remote domain, created on demand,
// and the listener for streams from other servers. Peers authenticate
// with SASL EXTERNAL when their certificate is valid for their domain,
// else with Server Dialback (XEP-0220). The router reaches this package
// only through Send; inbound stanzas go back to it with a verified from.
package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/jid"
	"parley/internal/metrics"
	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// Config is everything server streams need from the server.
type Config struct {
	// IsLocal reports whether a domain is served here: a host or one of
	// its services (components). Only stanzas to such domains are
	// accepted from other servers, and only from them sent out.
	IsLocal func(domain string) bool
	// Route takes a stanza that arrived from another server, its 'from'
	// verified, into the router.
	Route func(ctx context.Context, el *xmlstream.Element)
	// Bounce delivers an error this package made for a stanza it could
	// not deliver back to the local sender.
	Bounce func(ctx context.Context, el *xmlstream.Element)

	Cert tls.Certificate // ours, also offered as client certificate
	// Certs, when set, picks our certificate instead of Cert: by SNI on
	// incoming streams, by the domain we speak for on outgoing ones.
	Certs interface {
		GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
		ForDomain(name string) *tls.Certificate
	}
	Roots *x509.CertPool // roots trusted for peer certificates; nil: the system's
	// Routes maps a remote domain to "host:port", overriding DNS.
	Routes                   map[string]string
	RequireEncryption        bool
	RequireValidCertificates bool
	// Secret keys dialback; every process serving the same domains
	// must share it.
	Secret []byte
	// PendingElsewhere, when set, asks the other nodes of a cluster
	// whether one of their outgoing streams waits for a dialback key
	// (the peer may check a key with any node serving the domain).
	PendingElsewhere func(ctx context.Context, receiving, originating, streamID string) bool

	Metrics            *metrics.Metrics // nil: not counted
	Limits             xmlstream.Limits
	NegotiationTimeout time.Duration // connect, TLS and authentication, each direction
	IdleTimeout        time.Duration // a stream that carried nothing this long is closed
	// MaxStreams bounds the streams in each direction: incoming ones
	// past it are refused, and stanzas that would open an outgoing one
	// are bounced. One address may have an eighth of them (8 at least)
	// that have not authenticated yet.
	MaxStreams int
	// MaxQueued bounds the stanzas waiting for one outgoing stream.
	MaxQueued int
	// MaxVerifications bounds the dialback verifications under way at
	// once for all incoming streams together: each is a connection to a
	// server a peer chose. One peer address gets an eighth of them at
	// most. 0: defaultMaxVerifications.
	MaxVerifications int
	// MaxDomainPairs bounds the domain pairs one incoming stream may
	// authenticate (XEP-0220, Multiplexing): each may become an
	// outgoing stream of ours too. 0: defaultMaxDomainPairs.
	MaxDomainPairs int

	Log      *slog.Logger
	Resolver *net.Resolver // nil: net.DefaultResolver
}

// pair names an outgoing stream, and a pair authenticated on an incoming
// one: dialback and SASL authenticate one local domain to one remote
// domain, both in canonical form (internal/jid).
type pair struct{ local, remote string }

// dialbackID names a dialback key we sent and wait to have verified: the
// receiving (remote) domain, our originating one, and the receiving
// server's stream ID.
type dialbackID struct{ receiving, originating, streamID string }

// Service owns every server stream and every goroutine serving one.
type Service struct {
	cfg    *Config
	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc

	mu        sync.Mutex
	out       map[pair]*outStream
	in        map[*inConn]struct{}
	listeners []net.Listener
	stopping  bool
	wg        sync.WaitGroup
	// pending counts our outgoing streams waiting for a dialback result
	// per key; a db:verify is answered "valid" only for one of these.
	pending map[dialbackID]int

	// limits are the stanza limits new streams get: Config.Limits at
	// first, then those of the last SetLimits (a reload).
	limits atomic.Pointer[xmlstream.Limits]

	verifySlots chan struct{}  // one token per verification under way
	verifying   map[string]int // verifications under way per peer address
	unauth      map[string]int // incoming streams not yet authenticated per peer address
}

// defaultMaxQueued is the queue of one outgoing stream when Config does
// not say: enough for a burst of presence while the stream connects.
const defaultMaxQueued = 1000

// defaultMaxVerifications is the number of dialback verifications under
// way at once when Config does not say: far more than peers connecting
// at the same moment need, far fewer than the streams an attacker may
// open to make us connect elsewhere.
const defaultMaxVerifications = 64

// defaultMaxDomainPairs is the domain pairs of one incoming stream when
// Config does not say: room for a server with many virtual hosts.
const defaultMaxDomainPairs = 100

func New(cfg *Config) *Service {
	if cfg.MaxDomainPairs <= 0 {
		cfg.MaxDomainPairs = defaultMaxDomainPairs
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = defaultMaxQueued
	}
	if cfg.MaxVerifications <= 0 {
		cfg.MaxVerifications = defaultMaxVerifications
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, ctx: ctx, cancel: cancel,
		out:         make(map[pair]*outStream),
		in:          make(map[*inConn]struct{}),
		pending:     make(map[dialbackID]int),
		verifySlots: make(chan struct{}, cfg.MaxVerifications),
		verifying:   make(map[string]int),
		unauth:      make(map[string]int),
	}
	s.SetLimits(cfg.Limits)
	return s
}

// SetLimits puts new stanza limits in force for the streams opened from
// now on, in both directions; open streams keep theirs (a reload).
func (s *Service) SetLimits(l xmlstream.Limits) { s.limits.Store(&l) }

func (s *Service) limitsNow() xmlstream.Limits { return *s.limits.Load() }

// startVerification takes a place for one dialback verification asked
// by a peer at addr; ok is false when all are taken, or when addr holds
// its share of them already, so that one host cannot keep every place
// busy with verifications that time out. release gives the place back.
func (s *Service) startVerification(addr string) (release func(), ok bool) {
	share := max(1, s.cfg.MaxVerifications/8)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verifying[addr] >= share {
		return nil, false
	}
	select {
	case s.verifySlots <- struct{}{}:
	default:
		return nil, false
	}
	s.verifying[addr]++
	return func() {
		s.mu.Lock()
		if s.verifying[addr]--; s.verifying[addr] <= 0 {
			delete(s.verifying, addr)
		}
		s.mu.Unlock()
		<-s.verifySlots
	}, true
}

// expectDialback records that one of our streams waits for the dialback
// result of id; the returned function ends the wait.
func (s *Service) expectDialback(id dialbackID) (done func()) {
	s.mu.Lock()
	s.pending[id]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.pending[id]--; s.pending[id] <= 0 {
			delete(s.pending, id)
		}
		s.mu.Unlock()
	}
}

// dialbackPending reports whether one of our streams waits for id, or
// one of another node's.
func (s *Service) dialbackPending(id dialbackID) bool {
	if s.DialbackPending(id.receiving, id.originating, id.streamID) {
		return true
	}
	return s.cfg.PendingElsewhere != nil && s.cfg.PendingElsewhere(s.ctx, id.receiving, id.originating, id.streamID)
}

// DialbackPending reports whether one of this process's outgoing streams
// waits for the dialback of streamID (another cluster node asks).
func (s *Service) DialbackPending(receiving, originating, streamID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[dialbackID{receiving, originating, streamID}] > 0
}

// remoteServerTimeout is the stanza error for a peer that was reached but
// did not take the stanza (RFC 6120 §8.3.3.15); the stanza package only
// has the conditions the core needs.
func remoteServerTimeout() *stanza.Error {
	return &stanza.Error{Type: stanza.Wait, Condition: "remote-server-timeout"}
}

// Send queues el for the server of to's domain, connecting first if
// needed. A stanza that cannot be delivered is answered with an error;
// none is dropped without a word except errors, never answered.
func (s *Service) Send(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if !s.cfg.IsLocal(from.Domain()) {
		// Only a stanza whose sender we vouch for may leave; a remote
		// sender here would make us a relay.
		s.cfg.Log.Debug("s2s: stanza with a foreign sender not sent", "to_domain", to.Domain())
		return
	}
	if s.cfg.IsLocal(to.Domain()) {
		return // the router's business, never ours
	}
	s.cfg.Metrics.Stanza(el.Name.Local, metrics.Out)
	s.submit(pair{from.Domain(), to.Domain()}, queued{el: el, data: el.Append(nil, stanza.NSClient)})
}

// submit queues q on the stream for key, making the stream if needed.
func (s *Service) submit(key pair, q queued) {
	el := q.el
	for range 2 {
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			s.bounce(el, remoteServerTimeout())
			return
		}
		o := s.out[key]
		if o == nil && len(s.out) >= s.cfg.MaxStreams {
			s.mu.Unlock()
			s.bounce(el, stanza.ResourceConstraint("too many connections to other servers"))
			return
		}
		if o == nil {
			// The stanza is queued before the stream's goroutine starts:
			// a stream that fails at once (no such domain) then bounces
			// it with the reason, instead of being closed before it could
			// take it.
			o = newOutStream(s, key)
			o.enqueue(q)
			s.out[key] = o
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				o.run()
			}()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		switch res, failed := o.enqueue(q); {
		case res == enqueued:
			return
		case res == queueFull:
			s.bounce(el, stanza.ResourceConstraint("too many stanzas waiting for "+key.remote))
			return
		case failed != nil:
			// The stream failed just now: this stanza shares the fate of
			// those that waited for it, rather than start another
			// attempt at once.
			s.bounce(el, failed)
			return
		}
		// The stream closed between lookup and enqueue (idle, or its
		// queue handed on): the next round makes a new one.
	}
	s.bounce(el, remoteServerTimeout())
}

// bounce answers a stanza we could not deliver, unless it is an error.
func (s *Service) bounce(el *xmlstream.Element, se *stanza.Error) {
	if r := stanza.ErrorReply(el, se); r != nil {
		s.cfg.Bounce(context.Background(), r)
	}
}

// unauthShare is how many incoming streams one address may have that
// are not authenticated yet: an eighth of all, or 8 when that is more.
func (s *Service) unauthShare() int { return max(8, s.cfg.MaxStreams/8) }

// authenticatedFrom counts one stream from addr as no longer waiting to
// authenticate: it did, or it ended.
func (s *Service) authenticatedFrom(addr string) {
	s.mu.Lock()
	if s.unauth[addr]--; s.unauth[addr] <= 0 {
		delete(s.unauth, addr)
	}
	s.mu.Unlock()
}

// forget removes o from the table if it is still the stream for its pair.
func (s *Service) forget(o *outStream) {
	s.mu.Lock()
	if s.out[o.key] == o {
		delete(s.out, o.key)
	}
	s.mu.Unlock()
}

// Serve accepts streams from other servers on ln until Stop.
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
		nc, err := stream.Accept(ln, s.cfg.Log, "s2s")
		if err != nil {
			return nil
		}
		c := newInConn(s, nc)
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		full := len(s.in) >= s.cfg.MaxStreams
		// One host may not hold every place with streams that never
		// authenticate, each kept until the negotiation timeout.
		crowded := s.unauth[c.addr] >= s.unauthShare()
		if !full && !crowded {
			s.in[c] = struct{}{}
			s.unauth[c.addr]++
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			if full || crowded {
				c.refuse(stream.ResourceConstraint("too many server connections"))
				return
			}
			c.serve()
			s.mu.Lock()
			delete(s.in, c)
			s.mu.Unlock()
			if !c.authenticated() {
				s.authenticatedFrom(c.addr)
			}
		}()
	}
}

// Stop closes the listeners, ends incoming streams with
// <system-shutdown/>, sends what outgoing streams still hold and closes
// them, then waits for every goroutine, or for ctx.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.in {
		c.shutdown()
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
