package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// Source says where the certificates come from.
type Source struct {
	// Cert and Key are the default pair, presented when no other
	// certificate matches the name a peer asked for. Empty: the
	// self-signed certificate kept in SelfSignedDir.
	Cert, Key string
	// Dir holds one certificate per domain: DOMAIN.crt with DOMAIN.key,
	// or certbot's DOMAIN/fullchain.pem with DOMAIN/privkey.pem.
	Dir string
	// SelfSignedDir keeps the self-signed certificate used when there is
	// neither a default pair nor a certificate in Dir for the first host.
	SelfSignedDir string
	// Hosts are the domains served (hosts and service domains): the
	// self-signed certificate names them.
	Hosts []string
	// ReadOnly reads the self-signed certificate but never makes one,
	// for checks that must not change anything.
	ReadOnly bool
}

// Certs holds the server's certificates and picks one per connection by
// the name the peer asked for (SNI), or, for connections parley opens to
// other servers, by the domain it speaks for. Reload swaps the whole set
// at once: handshakes after it see the new certificates, connections
// already open keep the one they got.
type Certs struct {
	src Source
	cur atomic.Pointer[certSet]
	// override, when set, is asked first (ACME-managed certificates); a
	// nil certificate from it falls through to the files.
	override atomic.Pointer[func(hello *tls.ClientHelloInfo) *tls.Certificate]
}

type certSet struct {
	def *tls.Certificate
	// byFile maps the domain a file is named after to its certificate;
	// byName maps each DNS name a certificate carries (wildcards
	// included, as "*.example.org") to it.
	byFile, byName map[string]*tls.Certificate
}

// NewCerts loads every certificate src names.
func NewCerts(src Source) (*Certs, error) {
	c := &Certs{src: src}
	set, err := load(src)
	if err != nil {
		return nil, err
	}
	c.cur.Store(set)
	return c, nil
}

// Reload reads the certificates again. On any error the certificates in
// use stay.
func (c *Certs) Reload() error {
	set, err := load(c.src)
	if err != nil {
		return err
	}
	c.cur.Store(set)
	return nil
}

// SetOverride makes f the first place certificates are looked up (nil
// removes it).
func (c *Certs) SetOverride(f func(hello *tls.ClientHelloInfo) *tls.Certificate) {
	if f == nil {
		c.override.Store(nil)
		return
	}
	c.override.Store(&f)
}

// ForDomain returns the certificate for name: the one whose file is
// named after it, else one that names it, else one whose wildcard covers
// it, else the default.
func (c *Certs) ForDomain(name string) *tls.Certificate {
	return c.pick(&tls.ClientHelloInfo{ServerName: name})
}

func (c *Certs) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if f := c.override.Load(); f != nil {
		if cert := (*f)(hello); cert != nil {
			return cert
		}
	}
	set := c.cur.Load()
	if name == "" {
		return set.def
	}
	if cert := set.byFile[name]; cert != nil {
		return cert
	}
	if cert := set.byName[name]; cert != nil {
		return cert
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if cert := set.byName["*."+parent]; cert != nil {
			return cert
		}
	}
	return set.def
}

// Default is the certificate presented when nothing more specific
// matches.
func (c *Certs) Default() *tls.Certificate { return c.cur.Load().def }

// GetCertificate is for tls.Config: the certificate for the SNI name.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.pick(hello), nil
}

// All returns every distinct certificate loaded, the default first, for
// checks.
func (c *Certs) All() []*tls.Certificate {
	set := c.cur.Load()
	out := []*tls.Certificate{set.def}
	names := make([]string, 0, len(set.byFile))
	for n := range set.byFile {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !slices.Contains(out, set.byFile[n]) {
			out = append(out, set.byFile[n])
		}
	}
	return out
}

// Files returns the domains of the per-domain certificates, for checks
// and logs.
func (c *Certs) Files() []string {
	set := c.cur.Load()
	out := make([]string, 0, len(set.byFile))
	for n := range set.byFile {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func load(src Source) (*certSet, error) {
	set := &certSet{byFile: map[string]*tls.Certificate{}, byName: map[string]*tls.Certificate{}}
	if src.Dir != "" {
		if err := loadDir(src.Dir, set); err != nil {
			return nil, err
		}
	}
	switch {
	case src.Cert != "" || src.Key != "":
		cert, err := Load(src.Cert, src.Key, "", nil)
		if err != nil {
			return nil, err
		}
		set.def = &cert
	case len(src.Hosts) > 0 && set.byFile[src.Hosts[0]] != nil:
		set.def = set.byFile[src.Hosts[0]]
	case src.ReadOnly:
		cert, err := tls.LoadX509KeyPair(filepath.Join(src.SelfSignedDir, "selfsigned.crt"), filepath.Join(src.SelfSignedDir, "selfsigned.key"))
		if err != nil {
			return nil, fmt.Errorf("tls: the self-signed certificate: %w", err)
		}
		set.def = &cert
	default:
		cert, err := Load("", "", src.SelfSignedDir, src.Hosts)
		if err != nil {
			return nil, err
		}
		set.def = &cert
	}
	return set, nil
}

// loadDir reads DOMAIN.crt/DOMAIN.key pairs and certbot's
// DOMAIN/fullchain.pem/privkey.pem directories. A file without its key
// is an error rather than skipped, so a half-copied renewal is noticed.
func loadDir(dir string, set *certSet) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tls.dir: %w", err)
	}
	for _, e := range entries {
		var domain, certFile, keyFile string
		switch {
		case e.IsDir():
			certFile = filepath.Join(dir, e.Name(), "fullchain.pem")
			if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
				continue // not a certbot live directory
			}
			domain, keyFile = e.Name(), filepath.Join(dir, e.Name(), "privkey.pem")
		case strings.HasSuffix(e.Name(), ".crt"):
			domain = strings.TrimSuffix(e.Name(), ".crt")
			certFile, keyFile = filepath.Join(dir, e.Name()), filepath.Join(dir, domain+".key")
		default:
			continue
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("tls.dir: certificate for %s: %w", domain, err)
		}
		cp := &cert
		set.byFile[strings.ToLower(domain)] = cp
		for _, n := range leafNames(cert.Leaf) {
			if _, taken := set.byName[n]; !taken {
				set.byName[n] = cp
			}
		}
	}
	return nil
}

func leafNames(leaf *x509.Certificate) []string {
	if leaf == nil {
		return nil
	}
	out := make([]string, 0, len(leaf.DNSNames))
	for _, n := range leaf.DNSNames {
		out = append(out, strings.ToLower(n))
	}
	return out
}

// ServerConfig is the TLS configuration of a listener that picks the
// certificate by SNI: Base, with protos announced by ALPN.
func (c *Certs) ServerConfig(protos ...string) *tls.Config {
	tc := Base(tls.Certificate{})
	tc.Certificates = nil
	tc.GetCertificate = c.GetCertificate
	tc.NextProtos = protos
	return tc
}

// Recording returns a copy of base that remembers the certificate its
// handshake presented, and a function returning it (nil before the
// handshake): channel binding (tls-server-end-point) needs the very
// certificate the client saw, even if a reload happened since.
func Recording(base *tls.Config) (*tls.Config, func() *x509.Certificate) {
	tc := base.Clone()
	var chosen atomic.Pointer[x509.Certificate]
	get := base.GetCertificate
	if get == nil {
		if len(base.Certificates) > 0 {
			chosen.Store(base.Certificates[0].Leaf)
		}
		return tc, chosen.Load
	}
	tc.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := get(h)
		if err == nil && cert != nil {
			chosen.Store(cert.Leaf)
		}
		return cert, err
	}
	return tc, chosen.Load
}
