// Package acme obtains and renews the server's certificates from an ACME
// certificate authority (Let's Encrypt by default) with certmagic:
// TLS-ALPN-01 answered on the HTTPS listener, HTTP-01 on a plain HTTP
// listener. Certificates are kept under the data directory and renewed
// in the background; a renewed one is used from the next handshake on,
// so no connection is dropped.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// LetsEncrypt is the default certificate authority.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// Options configure the manager.
type Options struct {
	Domains []string // every name to hold a certificate for
	Dir     string   // where certificates and the account key are kept
	CA      string   // the ACME directory URL
	Email   string   // the account's contact; "" for none
	// CARoots, when set, are the roots trusted for the CA's own HTTPS
	// (a private or test CA); nil: the system's.
	CARoots *x509.CertPool
	// TLSALPNAddr is the address the HTTPS listener is bound to, where
	// TLS-ALPN-01 is answered; HTTPAddr that of the HTTP-01 listener.
	// "" turns the challenge off.
	TLSALPNAddr, HTTPAddr string
	// RenewCheck is how often certificates are checked for renewal.
	RenewCheck time.Duration
	Log        *slog.Logger
}

// Manager holds the ACME-managed certificates.
type Manager struct {
	opts   Options
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	ctx    context.Context // ends obtaining and renewing: Stop cancels it
	cancel context.CancelFunc
}

// New prepares the manager; Start begins obtaining certificates.
func New(o Options) (*Manager, error) {
	if o.TLSALPNAddr == "" && o.HTTPAddr == "" {
		return nil, fmt.Errorf("acme: neither listen.https (TLS-ALPN-01) nor listen.http_acme (HTTP-01) is set")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	m := &Manager{opts: o}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: o.RenewCheck,
		Logger:             zap.NewNop(),
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Dir},
		// The renewal window: the last third of a certificate's life
		// (30 days of Let's Encrypt's 90), from the expiry date alone,
		// so that a CA's renewal hints cannot delay it.
		RenewalWindowRatio: 1.0 / 3,
		DisableARI:         true,
		OnEvent:            m.event,
		Logger:             zap.NewNop(),
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:                      o.CA,
		Email:                   o.Email,
		Agreed:                  true,
		TrustedRoots:            o.CARoots,
		DisableTLSALPNChallenge: o.TLSALPNAddr == "",
		DisableHTTPChallenge:    o.HTTPAddr == "",
		// certmagic answers a challenge on its own listener unless the
		// port is taken; naming parley's own listeners' ports makes it
		// use them, through Certificate and HTTPHandler.
		AltTLSALPNPort: port(o.TLSALPNAddr),
		AltHTTPPort:    port(o.HTTPAddr),
		Logger:         zap.NewNop(),
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

func port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Start obtains what is missing and keeps renewing, in the background,
// until Stop; errors are logged and retried.
func (m *Manager) Start() error {
	if err := m.magic.ManageAsync(m.ctx, m.opts.Domains); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

// Stop ends obtaining and renewing.
func (m *Manager) Stop() {
	m.cancel()
	m.cache.Stop()
}

// Certificate answers a handshake: an ACME TLS-ALPN-01 challenge, or the
// managed certificate of the name asked for. It returns nil for other
// names and while no certificate has been obtained yet, so that the
// certificate files (or the self-signed one) serve meanwhile.
func (m *Manager) Certificate(hello *tls.ClientHelloInfo) *tls.Certificate {
	challenge := slices.Contains(hello.SupportedProtos, "acme-tls/1")
	if !challenge && !slices.Contains(m.opts.Domains, strings.ToLower(hello.ServerName)) {
		return nil
	}
	if hello.Conn == nil {
		// Asked outside a handshake (the client certificate of an
		// outgoing server stream); certmagic reads the addresses.
		h := *hello
		h.Conn = noConn{}
		hello = &h
	}
	cert, err := m.magic.GetCertificate(hello)
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	return cert
}

// noConn stands for the connection of a ClientHelloInfo made up outside
// a handshake: only its addresses are ever read.
type noConn struct{ net.Conn }

func (noConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
func (noConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }

// HTTPHandler answers HTTP-01 challenges and passes other requests to
// next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// event logs what certmagic did, without the details it carries (keys,
// paths) beyond the names.
func (m *Manager) event(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtained":
		m.opts.Log.Info("acme: certificate obtained", "identifier", data["identifier"], "renewal", data["renewal"])
	case "cert_failed":
		m.opts.Log.Error("acme: obtaining a certificate failed; retrying", "identifier", data["identifier"], "renewal", data["renewal"], "err", data["error"])
	}
	return nil
}
