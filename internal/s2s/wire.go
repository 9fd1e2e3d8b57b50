package s2s

import (
	"crypto/tls"
	"crypto/x509"
	"strconv"
	"strings"
	"time"

	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/tlsconf"
	"parley/internal/xmlstream"
)

// writeTimeout bounds one write to a peer server.
const writeTimeout = 30 * time.Second

// appendHeader writes our stream header. Unlike a client stream it
// declares the dialback prefix (XEP-0220 §2.1: servers that predate the
// stream feature look for it) and always names both domains.
func appendHeader(buf []byte, from, to, id string) []byte {
	buf = append(buf, "<?xml version='1.0'?><stream:stream xmlns='"+stanza.NSServer+"' xmlns:stream='"+stanza.NSStream+"' xmlns:db='"+nsDialback+"' version='1.0'"...)
	for _, a := range [][2]string{{"from", from}, {"to", to}, {"id", id}} {
		if a[1] == "" {
			continue
		}
		buf = append(buf, ' ')
		buf = append(buf, a[0]...)
		buf = append(buf, "='"...)
		buf = append(buf, escapeAttr(a[1])...)
		buf = append(buf, '\'')
	}
	return append(buf, '>')
}

func escapeAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;").Replace(s)
}

// appendDialback writes a db:result or db:verify element; key is its
// text, typ its type ("" on requests).
func appendDialback(buf []byte, name, from, to, id, typ, key string) []byte {
	buf = append(buf, "<db:"+name...)
	for _, a := range [][2]string{{"from", from}, {"to", to}, {"id", id}, {"type", typ}} {
		if a[1] == "" {
			continue
		}
		buf = append(buf, ' ')
		buf = append(buf, a[0]...)
		buf = append(buf, "='"...)
		buf = append(buf, escapeAttr(a[1])...)
		buf = append(buf, '\'')
	}
	if key == "" {
		return append(buf, "/>"...)
	}
	buf = append(buf, '>')
	buf = append(buf, escapeAttr(key)...)
	return append(buf, "</db:"+name+">"...)
}

// header is what we need of a peer's stream header.
type header struct {
	from, to, id, version string
	dialback              bool // the db prefix is declared (old dialback servers)
}

// checkHeader applies RFC 6120 §4.7 and §4.8 to a server stream header.
func checkHeader(h xmlstream.StreamHeader) (header, error) {
	if h.Name.Local != "stream" || h.Name.Space != stanza.NSStream {
		return header{}, stream.InvalidNamespace("the stream element must be {http://etherx.jabber.org/streams}stream")
	}
	if h.Prefix == "" {
		return header{}, stream.BadNamespacePrefix("the stream element needs a prefix")
	}
	if h.DefaultNS != stanza.NSServer {
		return header{}, stream.InvalidNamespace("the content namespace of a server stream must be jabber:server")
	}
	var out header
	for _, a := range h.Attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "to":
			out.to = a.Value
		case "from":
			out.from = a.Value
		case "id":
			out.id = a.Value
		case "version":
			out.version = a.Value
		}
	}
	if !versionAtLeastOne(out.version) {
		// Without version 1.0 there are no stream features, so no TLS.
		return header{}, stream.UnsupportedVersion("XMPP version 1.0 is required")
	}
	return out, nil
}

func versionAtLeastOne(v string) bool {
	major, _, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(major)
	return err == nil && n >= 1
}

// nsServerToClient moves a stanza from jabber:server into jabber:client,
// the namespace every stanza has inside the server, so that modules see
// the same names whichever stream a stanza came on. Children in the
// content namespace (body, subject, error...) move with it.
func nsServerToClient(el *xmlstream.Element) {
	if el.Name.Space == stanza.NSServer {
		el.Name.Space = stanza.NSClient
	}
	for c := range el.Elements() {
		nsServerToClient(c)
	}
}

// peerCertValid reports whether the certificate a peer presented is valid
// for domain under roots (RFC 6125 as RFC 7590 applies it: a DNS name in
// the subjectAltName, wildcards in the leftmost label only). Any extended
// key usage is accepted, since many server certificates lack clientAuth.
func peerCertValid(cs tls.ConnectionState, roots *x509.CertPool, domain string) bool {
	if len(cs.PeerCertificates) == 0 || domain == "" {
		return false
	}
	// RFC 6125 §6.4.2: an internationalised domain is compared in its
	// A-label form, the form certificates carry.
	name, err := asciiName(domain)
	if err != nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// serverTLS is the configuration of incoming streams: the peer is asked
// for a certificate (for SASL EXTERNAL) but may go without one, since
// dialback can still authenticate it.
func serverTLS(cfg *Config) *tls.Config {
	c := tlsconf.Base(cfg.Cert)
	if cfg.Certs != nil {
		c.Certificates = nil
		c.GetCertificate = cfg.Certs.GetCertificate
	}
	c.ClientAuth = tls.RequestClientCert
	return c
}

// clientTLS is the configuration of outgoing streams from local. The certificate is
// checked after the handshake (peerCertValid), not by crypto/tls, because
// an invalid one may still be acceptable with dialback.
func clientTLS(cfg *Config, local, remote string) *tls.Config {
	c := tlsconf.Base(cfg.Cert)
	if cfg.Certs != nil {
		// The certificate of the domain this stream speaks for, so that
		// the peer can authenticate it with SASL EXTERNAL.
		c.Certificates = nil
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cfg.Certs.ForDomain(local), nil
		}
	}
	if name, err := asciiName(remote); err == nil {
		c.ServerName = name // SNI carries A-labels (RFC 6066 §3)
	}
	c.InsecureSkipVerify = true
	return c
}
