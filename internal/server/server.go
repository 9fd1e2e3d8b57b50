// Package server assembles one parley process from its configuration:
// storage, accounts, the routing core, the modules it is given and the
// listeners. It owns them all and stops them in reverse order.
package server

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
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
	"parley/internal/acme"
	"parley/internal/c2s"
	"parley/internal/cluster"
	"parley/internal/component"
	"parley/internal/config"
	"parley/internal/control"
	"parley/internal/jid"
	"parley/internal/metrics"
	"parley/internal/module"
	"parley/internal/router"
	"parley/internal/s2s"
	"parley/internal/session"
	"parley/internal/storage"
	"parley/internal/storage/backend"
	"parley/internal/throttle"
	"parley/internal/tlsconf"
	"parley/internal/vault"
	"parley/internal/web"
	"parley/internal/xmlstream"
)

// Listener is one address the server accepts on, for the start-up message.
type Listener struct {
	Name string // "c2s", "c2s_direct_tls", "s2s", "component", "https", "http" or "admin"
	Addr net.Addr
}

// Server is a running parley.
type Server struct {
	cfg      config.Config // as started; see live for what a reload changed
	live     *config.Live
	log      *slog.Logger
	store    storage.Store
	accounts *accounts.Service
	reg      *module.Registry
	router   *router.Router
	c2s      *c2s.Server
	s2s      *s2s.Service
	comps    *component.Service // nil: no [[components]]
	cluster  *cluster.Cluster   // nil: a single node
	control  *control.Server
	modules  []module.Module
	lns      []Listener
	admin    *http.Server
	https    *http.Server
	certs    *tlsconf.Certs
	acme     *acme.Manager // nil without [tls] acme
	httpACME *http.Server
	metrics  *metrics.Metrics
	vault    *vault.Vault
	http     *http.Server
	web      *web.Handler // WebSocket, BOSH and discovery on https; webPlain on http
	webPlain *web.Handler
	logins   *throttle.Logins
	preauth  *throttle.Concurrent
	httpsMax *perAddressListener // upload.connections_per_address; nil without https
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
	vault  *vault.Vault
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
func (h *host) Vault() *vault.Vault                     { return h.vault }
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
func New(ctx context.Context, live *config.Live, log *slog.Logger, mods []module.Module) (*Server, error) {
	cfg := *live.Load()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory %s: %w", cfg.DataDir, err)
	}
	secret, err := loadKey(cfg)
	if err != nil {
		return nil, err
	}
	// The self-signed certificate names the upload domain too, since
	// clients check it against the upload URLs' host.
	certHosts := cfg.AllHosts()
	if cfg.Upload.Host != "" {
		certHosts = append(certHosts, cfg.Upload.Host)
	}
	certs, err := tlsconf.NewCerts(tlsconf.Source{
		Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, Dir: cfg.TLS.Dir,
		SelfSignedDir: filepath.Join(cfg.DataDir, "tls"), Hosts: certHosts,
	})
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening storage: %w", err)
	}
	s := &Server{cfg: cfg, live: live, log: log, store: store, reg: module.NewRegistry(), modules: mods, certs: certs, metrics: metrics.New()}
	s.router = router.New(cfg.AllHosts(), s.reg, store, log)
	h := &host{Registry: s.reg, r: s.router, store: store, log: log, secret: secret}
	s.vault = newVault(h, log)
	h.vault = s.vault
	s.accounts = accounts.New(store, s.vault)
	h.accts = s.accounts
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
		Cert:                     *certs.Default(),
		Certs:                    certs,
		Roots:                    roots,
		Routes:                   cfg.S2S.Routes,
		RequireEncryption:        cfg.S2S.RequireEncryption,
		RequireValidCertificates: cfg.S2S.RequireValidCertificates,
		Secret:                   h.Key("s2s dialback"),
		PendingElsewhere: func(ctx context.Context, receiving, originating, streamID string) bool {
			// Set before any listener opens; nil on a single node.
			return s.cluster != nil && s.cluster.DialbackPending(ctx, receiving, originating, streamID)
		},
		Limits:             xmlstream.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes},
		NegotiationTimeout: cfg.Limits.AuthTimeout.Duration,
		IdleTimeout:        cfg.S2S.IdleTimeout.Duration,
		MaxStreams:         cfg.S2S.MaxStreams,
		Log:                log,
		Metrics:            s.metrics,
	})
	s.router.SetRemote(s.s2s)
	s.comps = newComponents(cfg, s.reg, s.router, log)
	s.addMetrics()
	for _, m := range mods {
		if err := m.Start(h); err != nil {
			// Jobs the modules started so far must not outlive the store.
			_ = s.reg.StopJobs(ctx)
			store.Close()
			return nil, fmt.Errorf("starting module %s: %w", m.Name(), err)
		}
	}
	if cfg.Cluster.NATSURL != "" {
		if err := s.joinCluster(ctx, h); err != nil {
			_ = s.reg.StopJobs(ctx)
			store.Close()
			return nil, err
		}
	}
	s.control = s.newControl(mods)
	s.logins = throttle.NewLogins(cfg.Limits.LoginFailuresPerMinute)
	s.preauth = throttle.NewConcurrent(cfg.Limits.PreauthConnectionsPerAddress)
	s.c2s = c2s.NewServer(&c2s.Config{
		IsHost:          func(d string) bool { return slices.Contains(cfg.Hosts, d) },
		IsAnonymousHost: cfg.IsAnonymousHost,
		TLS:             certs.ServerConfig("xmpp-client"),
		RequireStartTLS: cfg.TLS.RequireStartTLS,
		Limits:          xmlstream.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes},
		AuthTimeout:     cfg.Limits.AuthTimeout.Duration,
		IdleTimeout:     cfg.Limits.IdlePing.Duration,
		PingTimeout:     time.Minute,
		ResumeTimeout:   cfg.Limits.ResumeTimeout.Duration,
		RandomResources: cfg.Privacy.RandomResources,
		Accounts:        s.accounts,
		Router:          s.router,
		Registry:        s.reg,
		Log:             log,
		FakeSecret:      secret,
		Logins:          s.logins,
		Preauth:         s.preauth,
		MaxOutput:       maxOutput(cfg),
		Metrics:         s.metrics,
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
	if s.cfg.Listen.HTTPS != "" || s.cfg.Listen.HTTP != "" {
		s.web, s.webPlain = web.NewHandlers(&web.Config{
			Hosts:          s.cfg.AllHosts(),
			Sessions:       s.c2s,
			AllowedOrigins: s.cfg.Origins(),
			TrustedProxies: s.cfg.HTTP.TrustedProxyPrefixes(),
			MaxStanzaBytes: s.cfg.Limits.MaxStanzaBytes,
			BOSH: web.BOSHLimits{
				MaxWait:    s.cfg.HTTP.BOSHMaxWait.Duration,
				Inactivity: s.cfg.HTTP.BOSHInactivity.Duration,
				MaxPause:   s.cfg.HTTP.BOSHMaxPause.Duration,
				MaxBuffer:  s.cfg.Limits.MaxStanzaBytes + 64<<10,
			},
			Log: s.log,
		}, s.reg.HTTPHandler())
	}
	if s.cfg.Listen.HTTPS != "" {
		if err := s.listenHTTPS(); err != nil {
			return err
		}
	}
	if s.cfg.TLS.ACME {
		if err := s.startACME(); err != nil {
			return err
		}
	}
	if s.cfg.Listen.HTTP != "" {
		if err := s.listenHTTP(); err != nil {
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
	s.httpsMax = limitPerAddress(ln, s.cfg.Upload.ConnectionsPerAddress)
	ln = s.httpsMax
	tc := s.certs.ServerConfig("h2", "http/1.1")
	if s.cfg.TLS.ACME {
		tc.NextProtos = append(tc.NextProtos, "acme-tls/1") // TLS-ALPN-01 challenges
	}
	// No read or write timeout on the whole request: a large upload on a
	// slow phone link may take long. Headers must come quickly (the TLS
	// handshake too: net/http bounds it by ReadHeaderTimeout), and the
	// upload handler bounds the body by the slot's size and a minimum
	// rate.
	s.https = &http.Server{
		Handler:           s.web,
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

// listenHTTP serves the web transports in plain HTTP for a reverse proxy
// on loopback (web.Handler refuses everyone else).
func (s *Server) listenHTTP() error {
	ln, err := net.Listen("tcp", s.cfg.Listen.HTTP)
	if err != nil {
		return fmt.Errorf("listen.http: %w", err)
	}
	s.http = &http.Server{
		Handler:           s.webPlain,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.lns = append(s.lns, Listener{Name: "http", Addr: ln.Addr()})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http listener stopped", "err", err)
		}
	}()
	return nil
}

func (s *Server) Listeners() []Listener { return s.lns }

// Store is the server's database, for admin commands that run the
// modules without listening (parley import and export).
func (s *Server) Store() storage.Store { return s.store }

// Accounts returns the account manager, which keeps the users' keys in
// step with their passwords.
func (s *Server) Accounts() *accounts.Service { return s.accounts }

// listenAdmin serves metrics, health and the profiler on the admin
// address, which the config accepts only on loopback unless
// admin_allow_remote says otherwise: profiles show internals nobody else
// should see.
func (s *Server) listenAdmin() error {
	ln, err := net.Listen("tcp", s.cfg.Listen.Admin)
	if err != nil {
		return fmt.Errorf("listen.admin: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.metrics.Handler())
	mux.Handle("/healthz", metrics.Health(s.store.Ping))
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
	if s.acme != nil {
		s.acme.Stop()
	}
	if s.httpACME != nil {
		err = errors.Join(err, s.httpACME.Shutdown(ctx))
	}
	err = errors.Join(err, s.s2s.Stop(ctx))
	if s.comps != nil {
		err = errors.Join(err, s.comps.Stop(ctx))
	}
	if s.cluster != nil {
		err = errors.Join(err, s.cluster.Stop(ctx))
	}
	if s.admin != nil {
		err = errors.Join(err, s.admin.Shutdown(ctx))
	}
	if s.https != nil {
		err = errors.Join(err, s.https.Shutdown(ctx))
		s.reg.SetHTTPSAddr(nil)
	}
	if s.http != nil {
		err = errors.Join(err, s.http.Shutdown(ctx))
	}
	if s.web != nil {
		s.web.Stop()
	}
	s.wg.Wait()
	err = errors.Join(err, s.reg.StopJobs(ctx))
	// The resealing jobs write through the modules' stores: stop them
	// first, and wipe every key.
	s.vault.Stop()
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

// loadKey returns the server-wide key from storage.key_file (or
// server.secret in data_dir), created on first start. A key file named
// in the config that exists but cannot be read stops the start: a new key
// there would leave everything sealed under the old one unreadable.
func loadKey(cfg config.Config) ([]byte, error) {
	path := cfg.KeyPath()
	if cfg.Storage.KeyFile != "" {
		// Moving the key out of data_dir is done by moving the file; a
		// key_file that is missing while the old one is still there is a
		// mistake, and a fresh key would orphan the sealed data.
		old := filepath.Join(cfg.DataDir, "server.secret")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && filepath.Clean(old) != filepath.Clean(path) {
			if _, err := os.Stat(old); err == nil {
				return nil, fmt.Errorf("storage.key_file: %s does not exist but %s does: move that file there (mv %s %s) rather than starting with a new key, which would leave the data sealed under the old one unreadable", path, old, old, path)
			}
		}
	}
	b, err := loadSecret(path)
	if err != nil && cfg.Storage.KeyFile != "" {
		return nil, fmt.Errorf("storage.key_file: %w", err)
	}
	return b, err
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
		return nil, fmt.Errorf("reading the key file %s: %w", path, err)
	}
	if err == nil {
		return nil, fmt.Errorf("the key file %s is damaged (want 32 bytes, have %d)", path, len(b))
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	// O_EXCL: two processes starting at once must not each write a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the key file %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing the key file %s: %w", path, err)
	}
	return b, nil
}

// Reload rereads the config file at path (the defaults when path is
// empty) and the certificates, and puts in force what can change while
// running; it logs what changed and what needs a restart. A config that
// does not load, or certificates that do not, are refused as a whole and
// the running ones kept.
func (s *Server) Reload(path string) error {
	next, err := config.Load(path)
	if err != nil {
		s.log.Error("reload refused: the new config is not valid; the running one is kept", "err", err)
		return err
	}
	if err := s.certs.Reload(); err != nil {
		s.log.Error("reload refused: the certificates do not load; the running config and certificates are kept", "err", err)
		return err
	}
	var applied, restart []string
	for _, k := range config.Changed(*s.live.Load(), next) {
		if config.Reloadable(k) {
			applied = append(applied, k)
		}
	}
	for _, k := range config.Changed(s.cfg, next) {
		if !config.Reloadable(k) {
			restart = append(restart, k)
		}
	}
	s.live.Store(next)
	s.apply(next)
	s.log.Info("reloaded: certificates reread, config changes applied", "changed", applied, "certificates", s.certs.Files())
	if len(restart) > 0 {
		s.log.Warn("reload: these changes take effect only after a restart", "keys", restart)
	}
	return nil
}

// maxOutput bounds the unsent bytes queued for one client: a few of the
// largest stanzas, and room for a burst of small ones.
func maxOutput(cfg config.Config) int { return 4*cfg.Limits.MaxStanzaBytes + 1<<20 }

// apply hands the reloadable settings that are not read through Live to
// the parts that hold them (config.reloadable lists both kinds).
func (s *Server) apply(c config.Config) {
	s.c2s.SetTunables(c2s.Tunables{
		Limits:        xmlstream.Limits{MaxStanzaBytes: c.Limits.MaxStanzaBytes},
		AuthTimeout:   c.Limits.AuthTimeout.Duration,
		IdleTimeout:   c.Limits.IdlePing.Duration,
		ResumeTimeout: c.Limits.ResumeTimeout.Duration,
		MaxOutput:     maxOutput(c),
	})
	if s.s2s != nil {
		s.s2s.SetLimits(xmlstream.Limits{MaxStanzaBytes: c.Limits.MaxStanzaBytes})
	}
	s.logins.SetPerMinute(c.Limits.LoginFailuresPerMinute)
	s.preauth.SetMax(c.Limits.PreauthConnectionsPerAddress)
	if s.httpsMax != nil {
		s.httpsMax.setMax(c.Upload.ConnectionsPerAddress)
	}
}
