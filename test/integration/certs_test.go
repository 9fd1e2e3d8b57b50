package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the tests; its name is the issuer a
// client sees, so tests tell certificates apart by it.
type testCA struct {
	t    *testing.T
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate in PEM, for clients to trust
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.crt")
	writePEM(t, file, "CERTIFICATE", der)
	return &testCA{t: t, name: name, cert: cert, key: key, file: file}
}

// issue writes certFile (the leaf, then the CA: a complete chain) and
// keyFile for names, valid until notAfter.
func (ca *testCA) issue(certFile, keyFile string, notAfter time.Time, names ...string) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		ca.t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		ca.t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	writePEM(ca.t, keyFile, "PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// presented does a TLS handshake with addr asking for name (directly,
// or after STARTTLS when starttls is true) and returns the certificate
// the server presented.
func presented(t *testing.T, addr, name string, starttls bool) *x509.Certificate {
	t.Helper()
	cfg := &tls.Config{ServerName: name, InsecureSkipVerify: true}
	if starttls {
		c := dialRaw(t, addr)
		c.send(strings.Replace(header, "to='localhost'", "to='"+name+"'", 1))
		c.expect("</stream:features>")
		c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		c.expect("<proceed")
		return c.upgrade(cfg).ConnectionState().PeerCertificates[0]
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS with %s for %s: %v", addr, name, err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0]
}

// TestCertificatePerHost: with [tls] dir, each listener presents the
// certificate of the name the client asked for, from either layout
// (DOMAIN.crt or certbot's), a wildcard covers service domains, and
// anything else gets the default pair.
func TestCertificatePerHost(t *testing.T) {
	ca := newTestCA(t, "parley test CA")
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	far := time.Now().Add(24 * time.Hour)
	ca.issue(filepath.Join(certs, "a.localhost.crt"), filepath.Join(certs, "a.localhost.key"), far, "a.localhost", "*.a.localhost")
	ca.issue(filepath.Join(certs, "b.localhost", "fullchain.pem"), filepath.Join(certs, "b.localhost", "privkey.pem"), far, "b.localhost")
	ca.issue(filepath.Join(dir, "default.crt"), filepath.Join(dir, "default.key"), far, "default.localhost")
	s := startServer(t, serverOpts{
		hosts: []string{"a.localhost", "b.localhost"}, https: true, cafile: ca.file,
		extra: fmt.Sprintf("[tls]\ndir = %q\ncert = %q\nkey = %q\n", certs, filepath.Join(dir, "default.crt"), filepath.Join(dir, "default.key")),
	})
	for _, tc := range []struct {
		listener, addr string
		starttls       bool
	}{{"c2s_direct_tls", s.direct, false}, {"c2s", s.starttls, true}, {"https", s.https, false}} {
		for name, want := range map[string]string{
			"a.localhost":            "a.localhost",
			"b.localhost":            "b.localhost",
			"conference.a.localhost": "a.localhost",
			"other.localhost":        "default.localhost",
		} {
			if tc.starttls && !strings.HasPrefix(name, "a.") && !strings.HasPrefix(name, "b.") {
				continue // a client stream must be for a served host
			}
			got := presented(t, tc.addr, name, tc.starttls)
			if got.Subject.CommonName != want {
				t.Errorf("%s: asking for %s got the certificate of %s (%v), want %s", tc.listener, name, got.Subject.CommonName, got.DNSNames, want)
			}
		}
	}
}

// TestFederationCertificatePerDomain: a server with two hosts, each with
// its own certificate, opens streams to a server that accepts only valid
// certificates; a stream for the second host presents that host's
// certificate, so SASL EXTERNAL authenticates it.
func TestFederationCertificatePerDomain(t *testing.T) {
	needSlixmpp(t)
	ca := newTestCA(t, "parley federation CA")
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	far := time.Now().Add(24 * time.Hour)
	for _, d := range []string{"a.localhost", "a2.localhost", "b.localhost"} {
		ca.issue(filepath.Join(certs, d+".crt"), filepath.Join(certs, d+".key"), far, d)
	}
	pa, pb := freeLoopbackPort(t), freeLoopbackPort(t)
	a := startServer(t, serverOpts{
		hosts: []string{"a.localhost", "a2.localhost"}, s2s: pa, cafile: ca.file,
		extra: fmt.Sprintf("[s2s]\nroutes = { \"b.localhost\" = %q }\nca_file = %q\n[tls]\ndir = %q\n", pb, ca.file, certs),
	})
	b := startServer(t, serverOpts{
		hosts: []string{"b.localhost"}, s2s: pb, cafile: ca.file,
		extra: fmt.Sprintf("[s2s]\nroutes = { \"a.localhost\" = %q, \"a2.localhost\" = %q }\nca_file = %q\nrequire_valid_certificates = true\n[tls]\ndir = %q\n", pa, pa, ca.file, certs),
	})
	a.addUser("alice@a2.localhost", "pw")
	b.addUser("bob@b.localhost", "pw")
	alice := a.connect(t, "alice@a2.localhost/phone", "pw")
	bob := b.connect(t, "bob@b.localhost/desk", "pw")
	alice.send("<message to='bob@b.localhost/desk' type='chat'><body>from the second host</body></message>")
	bob.expect("the message", isMessage("alice@a2.localhost/phone", "from the second host"))
	if log := b.Stderr(); !strings.Contains(log, `method="sasl external"`) || strings.Contains(log, "method=dialback") {
		t.Errorf("a2.localhost not authenticated by its certificate:\n%s", log)
	}
}
