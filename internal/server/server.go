// Package server assembles one parley process from its configuration:
// storage, accounts, the routing core, the modules it is given and the
// listeners. It owns them all and stops them in reverse order.
package server

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"parley/internal/accounts"
	"parley/internal/c2s"
	"parley/internal/component"
	"parley/internal/config"
	"parley/internal/control"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/router"
	"parley/internal/s2s"
	"parley/internal/session"
	"parley/internal/storage"
	"parley/internal/storage/backend"
	"parley/internal/throttle"
	"parley/internal/tlsconf"
	"parley/internal/xmlstream"
)

// Listener is one address the server accepts on, for the start-up message.
type Listener struct {
	Name string // "c2s", "c2s_direct_tls", "s2s", "component", "https" or "admin"
	Addr net.Addr
}

// Server is a running parley.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	store    storage.Store
	accounts *accounts.Service
	reg      *module.Registry
	router   *router.Router
	c2s      *c2s.Server
	s2s      *s2s.Service
	comps    *component.Service // nil: no [[components]]
	control  *control.Server
	modules  []module.Module
	lns      []Listener
	admin    *http.Server
	https    *http.Server
	cert     tls.Certificate
	wg       sync.WaitGroup
}

// host is the module.Host handed to every module.
type host struct {
	*module.Registry
	accts  *accounts.Service
	r      *router.Router
	store  storage.Store
	log    *slog.Logger
	secret []byte
}

func (h *host) Key(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, h.secret, nil, "parley "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot make; 32 is fine
	}
	return k
}

func (h *host) IsLocal(domain string) bool                       { return h.r.IsLocal(domain) }
func (h *host) Route(ctx context.Context, el *xmlstream.Element) { h.r.Route(ctx, el) }
func (h *host) Filtered(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	return h.r.Filtered(ctx, from, to, el)
}
func (h *host) Deliver(ctx context.Context, el *xmlstream.Element) {
	h.r.RouteDirect(ctx, el)
}
func (h *host) Store() storage.Store                    { return h.store }
func (h *host) Accounts() module.Accounts               { return h.accts }
func (h *host) Sessions(bare jid.JID) []session.Session { return h.r.Sessions(bare) }
func (h *host) Logger() *slog.Logger                    { return h.log }
func (h *host) AllSessions() []session.Session          { return h.r.AllSessions() }

// OpenStore opens the configured database; the `parley user` commands use
// it too, so they work on the same data as the server, also while it runs.
func OpenStore(ctx context.Context, cfg config.Config) (storage.Store, error) {
	if cfg.Storage.Driver == "sqlite" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the data directory: %w", err)
		}
	}
	return backend.Open(ctx, cfg.Storage.Driver, cfg.Storage.DSN)
}

// New opens storage, loads the certificate and starts the modules; it does
// not listen yet.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, mods []module.Module) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory %s: %w", cfg.DataDir, err)
	}
	secret, err := loadSecret(filepath.Join(cfg.DataDir, "server.secret"))
	if err != nil {
		return nil, err
	}
	// The self-signed certificate names the upload domain too, since
	// clients check it against the upload URLs' host.
	certHosts := cfg.AllHosts()
	if cfg.Upload.Host != "" {
		certHosts = append(certHosts, cfg.Upload.Host)
	}
	cert, err := tlsconf.Load(cfg.TLS.Cert, cfg.TLS.Key, filepath.Join(cfg.DataDir, "tls"), certHosts)
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening storage: %w", err)
	}
	s := &Server{cfg: cfg, log: log, store: store, accounts: accounts.New(store), reg: module.NewRegistry(), modules: mods, cert: cert}
	s.router = router.New(cfg.AllHosts(), s.reg, store, log)
	h := &host{Registry: s.reg, accts: s.accounts, r: s.router, store: store, log: log, secret: secret}
	roots, err := s2sRoots(cfg.S2S.CAFile)
	if err != nil {
		store.Close()
		return nil, err
	}
	s.s2s = s2s.New(&s2s.Config{
		// Services (group chat, upload) are ours too: other servers may
		// write to them, and they to other servers.
		IsLocal:                  func(d string) bool { return s.router.IsLocal(d) || s.reg.Component(d) != nil },
		Route:                    s.router.Route,
		Bounce:                   s.router.RouteDirect,
		Cert:                     cert,
		Roots:                    roots,
		Routes:                   cfg.S2S.Routes,
		RequireEncryption:        cfg.S2S.RequireEncryption,
		RequireValidCertificates: cfg.S2S.RequireValidCertificates,
		Secret:                   h.Key("s2s dialback"),
		Limits:                   xmlstream.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes},
		NegotiationTimeout:       cfg.Limits.AuthTimeout.Duration,
		IdleTimeout:              cfg.S2S.IdleTimeout.Duration,
		MaxStreams:               cfg.S2S.MaxStreams,
		Log:                      log,
	})
	s.router.SetRemote(s.s2s)
	s.comps = newComponents(cfg, s.reg, s.router, log)
	for _, m := range mods {
		if err := m.Start(h); err != nil {
			// Jobs the modules started so far must not outlive the store.
			_ = s.reg.StopJobs(ctx)
			store.Close()
			return nil, fmt.Errorf("starting module %s: %w", m.Name(), err)
		}
	}
	s.control = s.newControl(mods)
	s.c2s = c2s.NewServer(&c2s.Config{
		IsHost:          func(d string) bool { return slices.Contains(cfg.Hosts, d) },
		IsAnonymousHost: cfg.IsAnonymousHost,
		TLS:             tlsconf.ServerConfig(cert),
		Leaf:            cert.Leaf,
		RequireStartTLS: cfg.TLS.RequireStartTLS,
		Limits:          xmlstream.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes},
		AuthTimeout:     cfg.Limits.AuthTimeout.Duration,
		IdleTimeout:     cfg.Limits.IdlePing.Duration,
		PingTimeout:     time.Minute,
		ResumeTimeout:   cfg.Limits.ResumeTimeout.Duration,
		Accounts:        s.accounts,
		Router:          s.router,
		Registry:        s.reg,
		Log:             log,
		FakeSecret:      secret,
		Logins:          throttle.NewLogins(cfg.Limits.LoginFailuresPerMinute),
		Preauth:         throttle.NewConcurrent(cfg.Limits.PreauthConnectionsPerAddress),
		MaxOutput:       4*cfg.Limits.MaxStanzaBytes + 1<<20,
	})
	return s, nil
}

// Listen opens the configured listeners and serves them until Stop.
func (s *Server) Listen() error {
	type spec struct {
		name, addr string
		direct     bool
	}
	// The control socket first: the admin commands find the server as
	// soon as it accepts clients.
	if err := s.control.Listen(); errors.Is(err, control.ErrPathTooLong) {
		// The server is still worth running; only the local admin
		// commands (notify, sessions, kick, announce) will not find it.
		s.log.Error("admin commands unavailable: choose a shorter data_dir", "err", err)
	} else if err != nil {
		return err
	}
	for _, sp := range []spec{{"c2s", s.cfg.Listen.C2S, false}, {"c2s_direct_tls", s.cfg.Listen.C2SDirectTLS, true}} {
		if sp.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			return fmt.Errorf("listen.%s: %w", sp.name, err)
		}
		s.lns = append(s.lns, Listener{Name: sp.name, Addr: ln.Addr()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.c2s.Serve(ln, sp.direct); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("listener stopped", "listener", sp.name, "err", err)
			}
		}()
	}
	if addr := s.cfg.Listen.S2S; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen.s2s: %w", err)
		}
		s.lns = append(s.lns, Listener{Name: "s2s", Addr: ln.Addr()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.s2s.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("listener stopped", "listener", "s2s", "err", err)
			}
		}()
	}
	if addr := s.cfg.Listen.Component; addr != "" && s.comps != nil {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen.component: %w", err)
		}
		s.lns = append(s.lns, Listener{Name: "component", Addr: ln.Addr()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.comps.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("listener stopped", "listener", "component", "err", err)
			}
		}()
	}
	if s.cfg.Listen.HTTPS != "" {
		if err := s.listenHTTPS(); err != nil {
			return err
		}
	}
	if s.cfg.Listen.Admin != "" {
		return s.listenAdmin()
	}
	return nil
}

// listenHTTPS serves what modules registered with HandleHTTP (file
// upload) over TLS with the XMPP listeners' certificate and TLS floor.
func (s *Server) listenHTTPS() error {
	ln, err := net.Listen("tcp", s.cfg.Listen.HTTPS)
	if err != nil {
		return fmt.Errorf("listen.https: %w", err)
	}
	ln = limitPerAddress(ln, s.cfg.Upload.ConnectionsPerAddress)
	h := s.reg.HTTPHandler()
	if h == nil {
		h = http.NotFoundHandler()
	}
	tc := tlsconf.ServerConfig(s.cert)
	tc.NextProtos = []string{"h2", "http/1.1"}
	// No read or write timeout on the whole request: a large upload on a
	// slow phone link may take long. Headers must come quickly (the TLS
	// handshake too: net/http bounds it by ReadHeaderTimeout), and the
	// upload handler bounds the body by the slot's size and a minimum
	// rate.
	s.https = &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.lns = append(s.lns, Listener{Name: "https", Addr: ln.Addr()})
	s.reg.SetHTTPSAddr(ln.Addr())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.https.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("https listener stopped", "err", err)
		}
	}()
	return nil
}

func (s *Server) Listeners() []Listener { return s.lns }

// listenAdmin serves the profiler on the admin address, which the config
// only accepts on loopback: profiles show internals nobody else should see.
func (s *Server) listenAdmin() error {
	ln, err := net.Listen("tcp", s.cfg.Listen.Admin)
	if err != nil {
		return fmt.Errorf("listen.admin: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.lns = append(s.lns, Listener{Name: "admin", Addr: ln.Addr()})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	return nil
}

// Stop ends every session, stops modules and closes storage.
func (s *Server) Stop(ctx context.Context) error {
	// The admin commands first: nothing new is sent while stopping.
	err := s.control.Stop(ctx)
	// Clients next: their going offline still reaches other servers.
	err = errors.Join(err, s.c2s.Stop(ctx))
	err = errors.Join(err, s.s2s.Stop(ctx))
	if s.comps != nil {
		err = errors.Join(err, s.comps.Stop(ctx))
	}
	if s.admin != nil {
		err = errors.Join(err, s.admin.Shutdown(ctx))
	}
	if s.https != nil {
		err = errors.Join(err, s.https.Shutdown(ctx))
		s.reg.SetHTTPSAddr(nil)
	}
	s.wg.Wait()
	err = errors.Join(err, s.reg.StopJobs(ctx))
	for i := len(s.modules) - 1; i >= 0; i-- {
		if st, ok := s.modules[i].(module.Stopper); ok {
			err = errors.Join(err, st.Stop(ctx))
		}
	}
	return errors.Join(err, s.store.Close())
}

// s2sRoots is the pool peer server certificates are checked against:
// the system's roots plus those of caFile.
func s2sRoots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s2s.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s2s.ca_file: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// loadSecret returns the server's own random secret, created on first
// start and kept outside the database, so that a copy of the database
// alone does not give it away.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err == nil {
		return nil, fmt.Errorf("%s is damaged (want 32 bytes, have %d)", path, len(b))
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return b, nil
}
