package sasl

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
)

// TLSExporter returns the RFC 9266 tls-exporter channel binding data of a
// TLS connection. It refuses anything older than TLS 1.3: there the exporter
// is only safe with the extended master secret, which tls.ConnectionState
// does not report, so the binding is simply not offered.
func TLSExporter(cs *tls.ConnectionState) ([]byte, error) {
	if cs == nil {
		return nil, errors.New("sasl: tls-exporter: no TLS connection state")
	}
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("sasl: tls-exporter needs TLS 1.3, connection uses %s", tls.VersionName(cs.Version))
	}
	data, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		return nil, fmt.Errorf("sasl: tls-exporter: %w", err)
	}
	return data, nil
}

// TLSServerEndPoint returns the RFC 5929 §4.1 tls-server-end-point channel
// binding data of the server's own leaf certificate (the one this server
// presented, not tls.ConnectionState.PeerCertificates, which on the server
// side are the client's): its DER hashed with the hash of
// its signature algorithm, MD5 and SHA-1 being replaced by SHA-256.
// Algorithms without such a hash (Ed25519) are refused, since RFC 5929
// defines nothing for them and clients would not agree on the data.
func TLSServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Raw) == 0 {
		return nil, errors.New("sasl: tls-server-end-point: no certificate")
	}
	var newHash func() hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		newHash = sha256.New
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		newHash = sha512.New384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		newHash = sha512.New
	default:
		return nil, fmt.Errorf("sasl: tls-server-end-point undefined for signature algorithm %v", cert.SignatureAlgorithm)
	}
	d := newHash()
	d.Write(cert.Raw)
	return d.Sum(nil), nil
}
