package sasl

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

func selfSigned(t *testing.T, key any, pub any, alg x509.SignatureAlgorithm) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: "example.com"},
		DNSNames:           []string{"example.com"},
		NotBefore:          time.Now().Add(-time.Hour),
		NotAfter:           time.Now().Add(time.Hour),
		SignatureAlgorithm: alg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

// handshake connects a TLS client and server over a pipe and returns both
// connection states.
func handshake(t *testing.T, cert tls.Certificate, version uint16) (client, server tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

func TestTLSExporter(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, cert := selfSigned(t, key, &key.PublicKey, x509.ECDSAWithSHA256)

	cli, srv := handshake(t, cert, tls.VersionTLS13)
	got, err := TLSExporter(&srv)
	if err != nil {
		t.Fatal(err)
	}
	want, err := TLSExporter(&cli)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 32 || !bytes.Equal(got, want) {
		t.Errorf("server %x, client %x: want equal 32-byte values", got, want)
	}
	_, other := handshake(t, cert, tls.VersionTLS13)
	if again, _ := TLSExporter(&other); bytes.Equal(again, got) {
		t.Error("two connections share exporter data")
	}

	_, old := handshake(t, cert, tls.VersionTLS12)
	if data, err := TLSExporter(&old); err == nil {
		t.Errorf("TLS 1.2 gave %x", data)
	}
	if _, err := TLSExporter(nil); err == nil {
		t.Error("nil state accepted")
	}
}

// TestSCRAMPLUSOverTLS runs SCRAM-SHA-256-PLUS with both binding types
// computed from a real TLS 1.3 connection, each side from its own state.
func TestSCRAMPLUSOverTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, cert := selfSigned(t, key, &key.PublicKey, x509.ECDSAWithSHA256)
	cli, srv := handshake(t, cert, tls.VersionTLS13)

	s := store{}
	s.add(t, "juliet", "secret", "SHA-256")
	cfg := testConfig(s)
	cfg.ChannelBindings = map[string]func() ([]byte, error){
		"tls-exporter":         func() ([]byte, error) { return TLSExporter(&srv) },
		"tls-server-end-point": func() ([]byte, error) { return TLSServerEndPoint(leaf) },
	}
	clientExporter, err := TLSExporter(&cli)
	if err != nil {
		t.Fatal(err)
	}
	clientEndPoint, err := TLSServerEndPoint(cli.PeerCertificates[0])
	if err != nil {
		t.Fatal(err)
	}
	for cbType, data := range map[string][]byte{"tls-exporter": clientExporter, "tls-server-end-point": clientEndPoint} {
		c := &scramClient{hash: "SHA-256", user: "juliet", password: "secret", gs2: "p=" + cbType + ",,", cbData: data, nonce: "n"}
		if _, _, err := runSCRAM(t, "SCRAM-SHA-256-PLUS", cfg, c); err != nil {
			t.Errorf("%s: %v", cbType, err)
		}
	}
	// Data from another TLS session (a relayed login) must not pass.
	otherCli, _ := handshake(t, cert, tls.VersionTLS13)
	relayed, err := TLSExporter(&otherCli)
	if err != nil {
		t.Fatal(err)
	}
	c := &scramClient{hash: "SHA-256", user: "juliet", password: "secret", gs2: "p=tls-exporter,,", cbData: relayed, nonce: "n"}
	_, _, err = runSCRAM(t, "SCRAM-SHA-256-PLUS", cfg, c)
	if err == nil || failure(t, err).Condition != condNotAuthorized {
		t.Errorf("relayed exporter data: %v", err)
	}
}

func TestTLSServerEndPoint(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum256 := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	sum384 := func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }
	sum512 := func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }

	c256, _ := selfSigned(t, p256, &p256.PublicKey, x509.ECDSAWithSHA256)
	c384, _ := selfSigned(t, p384, &p384.PublicKey, x509.ECDSAWithSHA384)
	c512, _ := selfSigned(t, p384, &p384.PublicKey, x509.ECDSAWithSHA512)
	ced, _ := selfSigned(t, edKey, edPub, x509.PureEd25519)
	// Go no longer signs with MD5 or SHA-1; only the algorithm field and
	// the DER matter here.
	raw := []byte("not really DER, but hashed all the same")
	md5 := &x509.Certificate{Raw: raw, SignatureAlgorithm: x509.MD5WithRSA}
	sha1 := &x509.Certificate{Raw: raw, SignatureAlgorithm: x509.ECDSAWithSHA1}
	rsa384 := &x509.Certificate{Raw: raw, SignatureAlgorithm: x509.SHA384WithRSAPSS}

	tests := []struct {
		name string
		cert *x509.Certificate
		want []byte // nil: error
	}{
		{"ECDSA SHA-256", c256, sum256(c256.Raw)},
		{"ECDSA SHA-384", c384, sum384(c384.Raw)},
		{"ECDSA SHA-512", c512, sum512(c512.Raw)},
		{"MD5 becomes SHA-256", md5, sum256(raw)},
		{"SHA-1 becomes SHA-256", sha1, sum256(raw)},
		{"RSA-PSS SHA-384", rsa384, sum384(raw)},
		{"Ed25519 undefined", ced, nil},
		{"nil", nil, nil},
		{"no DER", &x509.Certificate{SignatureAlgorithm: x509.SHA256WithRSA}, nil},
	}
	for _, tt := range tests {
		got, err := TLSServerEndPoint(tt.cert)
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s: got %x, want an error", tt.name, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: got %x, %v; want %x", tt.name, got, err, tt.want)
		}
	}
}
