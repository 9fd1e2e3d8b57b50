package c2s

import (
	"crypto/tls"
	"crypto/x509"

	"parley/internal/tlsconf"
)

// serverTLS is the listener's TLS configuration for this connection,
// remembering which certificate it presents: the certificate is picked
// per name and may be reloaded, and tls-server-end-point must bind the
// one this client saw.
func (c *conn) serverTLS() *tls.Config {
	tc, leaf := tlsconf.Recording(c.cfg.TLS)
	c.leaf = leaf
	return tc
}

func (c *conn) servedLeaf() *x509.Certificate {
	if c.leaf == nil {
		return nil
	}
	return c.leaf()
}
