// Package c2s serves client-to-server streams (RFC 6120): STARTTLS or
// direct TLS (XEP-0368), SASL, resource binding, then the stanza loop that
// hands everything to the router.
package c2s

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/accounts"
	"parley/internal/metrics"
	"parley/internal/module"
	"parley/internal/router"
	"parley/internal/storage"
	"parley/internal/stream"
	"parley/internal/throttle"
	"parley/internal/xmlstream"
)

// Config is everything a client stream needs from the server.
type Config struct {
	IsHost          func(domain string) bool // a served domain with accounts
	IsAnonymousHost func(domain string) bool // a domain where SASL ANONYMOUS gives throwaway accounts
	TLS             *tls.Config              // may pick the certificate per name (GetCertificate)
	RequireStartTLS bool
	Limits          xmlstream.Limits
	AuthTimeout     time.Duration
	// IdleTimeout is how long a bound session may stay silent before the
	// server pings it, PingTimeout how long it then has to answer. An
	// IdleTimeout of 0 turns server pings off.
	IdleTimeout time.Duration
	PingTimeout time.Duration
	// ResumeTimeout is how long a session whose connection broke waits
	// for the client to resume it (XEP-0198); 0 turns resumption off.
	ResumeTimeout time.Duration
	// RandomResources gives every session a random resource whatever
	// the client asked for ([privacy] random_resources): a resource
	// names the client and device to everyone who sees the full JID.
	RandomResources bool

	// tunables are the values above a reload may change (SetTunables);
	// each connection takes those in force when it opens.
	tunables     atomic.Pointer[Tunables]
	resumable    *resumeTable
	storageFails *storage.FailureLog
	parker       *parker // nil: idle sessions keep their goroutine
	Accounts     *accounts.Service
	Router       *router.Router
	Registry     *module.Registry
	Log          *slog.Logger
	// FakeSecret makes SASL answers for unknown users look like those for
	// known ones (see package sasl).
	FakeSecret []byte
	// Logins decides which password guesses are checked (see
	// throttle.Logins for the rule).
	Logins *throttle.Logins
	// Preauth bounds the connections per source address that have not
	// authenticated yet, over all client listeners.
	Preauth *throttle.Concurrent
	// MaxOutput bounds the unsent bytes queued for one client.
	MaxOutput int
	Metrics   *metrics.Metrics // nil: not counted
}

// Tunables are the limits of Config that a reload may change. A
// connection keeps those it opened with: its decoder is already sized and
// its client was told its resumption timeout.
type Tunables struct {
	Limits        xmlstream.Limits
	AuthTimeout   time.Duration
	IdleTimeout   time.Duration
	ResumeTimeout time.Duration
	MaxOutput     int
}

// SetTunables puts new limits in force for the connections opened from
// now on.
func (s *Server) SetTunables(t Tunables) { s.cfg.tunables.Store(&t) }

// tunablesNow are the limits in force: those of the last SetTunables,
// else those the Config was made with.
func (cfg *Config) tunablesNow() *Tunables {
	if t := cfg.tunables.Load(); t != nil {
		return t
	}
	return &Tunables{Limits: cfg.Limits, AuthTimeout: cfg.AuthTimeout,
		IdleTimeout: cfg.IdleTimeout, ResumeTimeout: cfg.ResumeTimeout, MaxOutput: cfg.MaxOutput}
}

// Server accepts client connections on any number of listeners and owns
// every connection goroutine it starts.
type Server struct {
	cfg *Config

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	stopping  bool
	wg        sync.WaitGroup
}

func NewServer(cfg *Config) *Server {
	cfg.resumable = newResumeTable()
	cfg.storageFails = storage.NewFailureLog(cfg.Log)
	cfg.parker = newParker(cfg.Log)
	cfg.tunables.Store(cfg.tunablesNow()) // one copy shared by the connections
	return &Server{cfg: cfg, conns: make(map[*conn]struct{})}
}

// Serve accepts on ln until Stop; directTLS makes every connection start
// with a TLS handshake (XEP-0368) instead of STARTTLS.
func (s *Server) Serve(ln net.Listener, directTLS bool) error {
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
		nc, err := stream.Accept(ln, s.cfg.Log, "c2s")
		if err != nil {
			return nil
		}
		s.start(nc, directTLS, false)
	}
}

// ServeConn runs a client stream over nc, a connection another transport
// (WebSocket, BOSH) accepted and presents as the XMPP byte stream; the
// framing is its business, the session is the same as over TCP. secure
// says that transport is encrypted (HTTPS, or a trusted proxy that
// terminated TLS), so STARTTLS is neither offered nor required and
// nc.RemoteAddr is the client's address for the per-address limits. It
// returns false, having closed nc, once the server is stopping.
func (s *Server) ServeConn(nc net.Conn, secure bool) bool {
	return s.start(nc, false, secure)
}

// start runs a connection unless the server is stopping.
func (s *Server) start(nc net.Conn, directTLS, secure bool) bool {
	var c *conn
	c = newConn(s.cfg, nc, directTLS, func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	})
	c.secure = secure
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	// The connection's goroutine, or the parker while it is parked,
	// owns it until done runs; wg counts connections, not goroutines.
	go c.serve()
	return true
}

// Stop closes the listeners, ends every stream with <system-shutdown/>
// and waits for the connection goroutines, or for ctx.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cfg.parker.close()
		return nil
	case <-ctx.Done():
		s.cfg.parker.close() // wakes what is still parked
		return ctx.Err()
	}
}
