package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"parley/internal/acme"
)

// startACME opens the HTTP-01 listener when configured and starts
// obtaining certificates; it runs after the HTTPS listener is bound, since
// TLS-ALPN-01 challenges are answered there. Until a certificate arrives
// the files (or the self-signed certificate) serve.
func (s *Server) startACME() error {
	o := acme.Options{
		Domains:    s.cfg.Domains(),
		Dir:        filepath.Join(s.cfg.DataDir, "acme"),
		CA:         s.cfg.TLS.ACMECA,
		Email:      s.cfg.TLS.ACMEEmail,
		RenewCheck: s.cfg.TLS.ACMERenewalCheck.Duration,
		Log:        s.log,
	}
	if s.cfg.TLS.ACMECARoot != "" {
		pem, err := os.ReadFile(s.cfg.TLS.ACMECARoot)
		if err != nil {
			return fmt.Errorf("tls.acme_ca_root: %w", err)
		}
		o.CARoots = x509.NewCertPool()
		if !o.CARoots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls.acme_ca_root: %s holds no PEM certificate", s.cfg.TLS.ACMECARoot)
		}
	}
	for _, l := range s.lns {
		if l.Name == "https" {
			o.TLSALPNAddr = l.Addr.String()
		}
	}
	var ln net.Listener
	if addr := s.cfg.Listen.HTTPACME; addr != "" {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listen.http_acme: %w", err)
		}
		o.HTTPAddr = ln.Addr().String()
	}
	m, err := acme.New(o)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	s.acme = m
	s.certs.SetOverride(m.Certificate)
	if ln != nil {
		s.lns = append(s.lns, Listener{Name: "http_acme", Addr: ln.Addr()})
		s.httpACME = &http.Server{Handler: m.HTTPHandler(http.NotFoundHandler()),
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpACME.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http_acme listener stopped", "err", err)
			}
		}()
	}
	return m.Start()
}
