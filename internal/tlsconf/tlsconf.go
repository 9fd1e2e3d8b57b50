// Package tlsconf loads the server certificate, or creates and keeps a
// self-signed one so that parley runs with TLS from the first start, and
// builds the TLS configuration: TLS 1.2 at least, 1.3 preferred.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// selfSignedLifetime is short enough that a forgotten test certificate
// does not live for ever, long enough not to bother anyone; parley makes
// a new one by itself when it expires.
const selfSignedLifetime = 365 * 24 * time.Hour

// Load returns the certificate from certFile and keyFile, or, when both
// are empty, a self-signed certificate kept in dir (created on first use,
// and again when it expires or no longer names every host).
func Load(certFile, keyFile, dir string, hosts []string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("tls: loading %s and %s: %w", certFile, keyFile, err)
		}
		return c, nil
	}
	certPath := filepath.Join(dir, "selfsigned.crt")
	keyPath := filepath.Join(dir, "selfsigned.key")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && usable(c, hosts) {
		return c, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("tls: reading the self-signed certificate in %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(hosts, time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(keyPath, keyPEM); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(certPath, certPEM); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func usable(c tls.Certificate, hosts []string) bool {
	leaf := c.Leaf
	if leaf == nil {
		return false
	}
	if time.Now().Add(24 * time.Hour).After(leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func selfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	// Service subdomains (conference., upload.) are covered by a wildcard
	// so that adding a service does not need a new certificate.
	names := slices.Clone(hosts)
	for _, h := range hosts {
		names = append(names, "*."+h)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"parley self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: creating the certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// Base is the TLS floor of every stream, client or server: TLS 1.2 at
// least (RFC 9325, RFC 7590), 1.3 when the peer can, and for 1.2 only
// ECDHE with AEAD ciphers, so every session has forward secrecy.
func Base(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// ServerConfig is the TLS configuration of the client listeners: Base,
// announcing XMPP client streams by ALPN (XEP-0368).
func ServerConfig(cert tls.Certificate) *tls.Config {
	c := Base(cert)
	c.NextProtos = []string{"xmpp-client"}
	return c
}
