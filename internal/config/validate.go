package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/jid"
	"parley/internal/storage"
)

// minStanzaBytes is the smallest stanza limit RFC 6120 §13.12 allows a
// server to impose.
const minStanzaBytes = 10000

// minPEPBytes is the smallest PEP quota: room for a small avatar, a
// bookmark list and OMEMO keys.
const minPEPBytes = 64 << 10

// Validate checks every rule, normalises the host names in place and fills
// in derived defaults (the SQLite DSN). It reports all problems at once so
// an admin can fix the file in one pass.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}

	// Hosts. Normalising here means the rest of the server can compare a
	// JID's domain with a configured host using ==.
	if len(c.Hosts) == 0 {
		add("hosts: must list at least one domain")
	}
	// An explicitly empty list means the same as an absent one; keeping one
	// representation lets configurations be compared.
	if len(c.AnonymousHosts) == 0 {
		c.AnonymousHosts = nil
	}
	seen := make(map[string]string) // normalised host -> key it came from
	for _, list := range []struct {
		key   string
		hosts []string
	}{{"hosts", c.Hosts}, {"anonymous_hosts", c.AnonymousHosts}} {
		for i, h := range list.hosts {
			j, err := jid.New("", h, "")
			if err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %q is not a valid domain: %w", list.key, h, err))
				continue
			}
			norm := j.Domain()
			list.hosts[i] = norm
			switch prev, dup := seen[norm]; {
			case dup && prev == list.key:
				add("%s: %q is listed more than once", list.key, norm)
			case dup:
				add("%s: %q is already listed in %s", list.key, norm, prev)
			default:
				seen[norm] = list.key
			}
		}
	}

	errs = append(errs, c.validateAdmins()...)

	if c.DataDir == "" {
		add(`data_dir: must not be empty (use "." for the working directory)`)
	}

	// Listeners.
	for _, l := range []struct{ key, addr string }{
		{"listen.c2s", c.Listen.C2S},
		{"listen.c2s_direct_tls", c.Listen.C2SDirectTLS},
		{"listen.admin", c.Listen.Admin},
		{"listen.https", c.Listen.HTTPS},
		{"listen.s2s", c.Listen.S2S},
		{"listen.component", c.Listen.Component},
		{"listen.http_acme", c.Listen.HTTPACME},
	} {
		if l.addr == "" {
			continue
		}
		if err := checkListenAddr(l.addr); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", l.key, err))
		}
	}
	if c.Listen.C2S == "" && c.Listen.C2SDirectTLS == "" {
		add("listen: at least one of listen.c2s and listen.c2s_direct_tls must be set, or no client could connect")
	}
	// Port 0 asks the kernel for a free port, so two listeners may share it.
	if c.Listen.C2S != "" && c.Listen.C2S == c.Listen.C2SDirectTLS && !strings.HasSuffix(c.Listen.C2S, ":0") {
		add("listen.c2s_direct_tls: must differ from listen.c2s, both are %q", c.Listen.C2S)
	}
	// The admin endpoint exposes internals (profiling, metrics) without
	// authentication, so it must never be reachable from the network.
	if a := c.Listen.Admin; a != "" && !isLoopback(a) && !c.Listen.AdminAllowRemote {
		add("listen.admin: must be a loopback address such as \"127.0.0.1:5280\", got %q (or set listen.admin_allow_remote = true)", a)
	}

	if h := c.Listen.HTTPS; h != "" && !strings.HasSuffix(h, ":0") && (h == c.Listen.C2S || h == c.Listen.C2SDirectTLS) {
		add("listen.https: must differ from the client listeners, got %q", h)
	}
	if a := c.Listen.S2S; a != "" && !strings.HasSuffix(a, ":0") && (a == c.Listen.C2S || a == c.Listen.C2SDirectTLS || a == c.Listen.HTTPS) {
		add("listen.s2s: must differ from the other listeners, got %q", a)
	}
	errs = append(errs, c.validateUpload(seen)...)
	errs = append(errs, c.validateHTTP()...)
	errs = append(errs, c.validateS2S(seen)...)
	errs = append(errs, c.validateComponents(seen)...)
	errs = append(errs, c.validateTURN()...)

	// TLS files: both or neither, and they must exist now rather than fail
	// on the first client connection.
	switch {
	case c.TLS.Cert != "" && c.TLS.Key == "":
		add("tls.key: must be set when tls.cert is set")
	case c.TLS.Cert == "" && c.TLS.Key != "":
		add("tls.cert: must be set when tls.key is set")
	case c.TLS.Cert != "":
		if err := checkFile(c.TLS.Cert); err != nil {
			errs = append(errs, fmt.Errorf("config: tls.cert: %w", err))
		}
		if err := checkFile(c.TLS.Key); err != nil {
			errs = append(errs, fmt.Errorf("config: tls.key: %w", err))
		}
	}

	if c.TLS.Dir != "" {
		if fi, err := os.Stat(c.TLS.Dir); err != nil {
			add("tls.dir: cannot use %q: %v", c.TLS.Dir, err)
		} else if !fi.IsDir() {
			add("tls.dir: %q is not a directory", c.TLS.Dir)
		}
	}

	errs = append(errs, c.validateACME()...)

	switch c.Storage.Driver {
	case "sqlite":
		if c.Storage.DSN == "" {
			c.Storage.DSN = filepath.Join(c.DataDir, "parley.db")
		}
	case "postgres":
		if c.Storage.DSN == "" {
			add(`storage.dsn: required when storage.driver is "postgres"`)
		}
	default:
		add(`storage.driver: must be "sqlite" or "postgres", got %q`, c.Storage.Driver)
	}

	errs = append(errs, c.validateCluster()...)

	switch c.Privacy.RequireE2EE {
	case "off", "warn", "enforce":
	default:
		add(`privacy.require_e2ee: must be "off", "warn" or "enforce", got %q`, c.Privacy.RequireE2EE)
	}
	for _, l := range []struct {
		key  string
		list *[]string
	}{{"abuse", &c.Contact.Abuse}, {"admin", &c.Contact.Admin}, {"security", &c.Contact.Security}, {"support", &c.Contact.Support}} {
		if len(*l.list) == 0 {
			*l.list = nil
		}
		for _, u := range *l.list {
			if p, err := url.Parse(u); err != nil || p.Scheme == "" || (p.Opaque == "" && p.Host == "") {
				add("contact.%s: %q is not a URI such as \"xmpp:abuse@example.org\", \"mailto:abuse@example.org\" or \"https://example.org/abuse\"", l.key, u)
			}
		}
	}
	if n := c.Registration.MaxAccounts; n < 0 {
		add("registration.max_accounts: must be 0 (no cap) or more, got %d", n)
	}
	if e, w := c.Registration.ExpireInactive.Keep, c.Registration.WarnInactive.Keep; e > 0 && w >= e {
		add("registration.warn_inactive: must be shorter than registration.expire_inactive (%v), got %v", e, w)
	}
	if n := c.Registration.PerAddressPerHour; n < 0 {
		add("registration.per_address_per_hour: must be 0 (no limit) or more, got %d", n)
	}
	if n := c.Limits.MaxStanzaBytes; n < minStanzaBytes {
		add("limits.max_stanza_bytes: must be at least %d (RFC 6120 §13.12), got %d", minStanzaBytes, n)
	}
	if d := c.Limits.AuthTimeout.Duration; d <= 0 {
		add("limits.auth_timeout: must be more than 0, got %q", d.String())
	}
	if n := c.Limits.LoginFailuresPerMinute; n < 1 {
		add("limits.login_failures_per_minute: must be at least 1, got %d", n)
	}
	if n := c.Limits.PreauthConnectionsPerAddress; n < 0 {
		add("limits.preauth_connections_per_address: must be 0 (no limit) or more, got %d", n)
	}
	if d := c.Limits.IdlePing.Duration; d != 0 && d < 10*time.Second {
		add("limits.idle_ping: must be \"0s\" (off) or at least \"10s\", got %q", d.String())
	}
	if d := c.Limits.ResumeTimeout.Duration; d < 0 || d > 24*time.Hour {
		add("limits.resume_timeout: must be from \"0s\" (no resumption) to \"24h\", got %q", d.String())
	}
	for _, d := range c.MUCServices() {
		if j, err := jid.New("", d, ""); err != nil || j.Domain() != d {
			add("muc.host: %q is not a valid domain", d)
		} else if slices.Contains(c.AllHosts(), d) {
			add("muc.host: %q is already a served host", d)
		} else if d == c.Upload.Host {
			add("muc.host: %q is also upload.host; each service needs its own domain", d)
		}
	}
	if n := c.Limits.MaxRosterItems; n < 0 {
		add("limits.max_roster_items: must be 0 (no limit) or more, got %d", n)
	}
	if n := c.Limits.MaxOfflineMessages; n < 0 {
		add("limits.max_offline_messages: must be 0 (offline storage off) or more, got %d", n)
	}
	// Below a few KiB an avatar or a bookmark list could not be kept.
	if n := c.Limits.PEPBytesPerUser; n != 0 && n < minPEPBytes {
		add("limits.pep_bytes_per_user: must be 0 (no limit) or at least %d, got %d", minPEPBytes, n)
	}
	for _, d := range c.PubSubServices() {
		if j, err := jid.New("", d, ""); err != nil || j.Domain() != d {
			add("pubsub.host: %q is not a valid domain", d)
		} else if slices.Contains(c.AllHosts(), d) {
			add("pubsub.host: %q is already a served host", d)
		} else if d == c.Upload.Host || slices.Contains(c.MUCServices(), d) {
			add("pubsub.host: %q is also muc.host or upload.host; each service needs its own domain", d)
		}
	}
	if n := c.PubSub.MaxNodesPerUser; n < 0 {
		add("pubsub.max_nodes_per_user: must be 0 (no limit) or more, got %d", n)
	}
	if n := c.PubSub.MaxItemsPerNode; n < 1 || n > storage.MaxPubSubItems {
		add("pubsub.max_items_per_node: must be from 1 to %d, got %d", storage.MaxPubSubItems, n)
	}
	if n := c.PubSub.MaxBytesPerUser; n < 0 {
		add("pubsub.max_bytes_per_user: must be 0 (no limit) or more, got %d", n)
	}
	if n := c.PubSub.MaxItemBytes; n < 1024 || n > storage.MaxValueBytes {
		add("pubsub.max_item_bytes: must be from 1024 to %d, got %d", storage.MaxValueBytes, n)
	}
	if n := c.MUC.MaxRooms; n < 0 {
		add("muc.max_rooms: must be 0 (no limit) or more, got %d", n)
	}
	if n := c.MUC.RoomCreationsPerHour; n < 0 {
		add("muc.room_creations_per_hour: must be 0 (no limit) or more, got %d", n)
	}

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		add(`log.level: must be "debug", "info", "warn" or "error", got %q`, c.Log.Level)
	}
	return errors.Join(errs...)
}

// validateS2S checks the [s2s] table and normalises the routed domains.
func (c *Config) validateS2S(seen map[string]string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	s := &c.S2S
	if len(s.Routes) == 0 {
		s.Routes = nil // one representation for "none", as for anonymous_hosts
	}
	routes := make(map[string]string, len(s.Routes))
	for d, addr := range s.Routes {
		j, err := jid.New("", d, "")
		switch {
		case err != nil:
			add("s2s.routes: %q is not a valid domain: %v", d, err)
			continue
		case seen[j.Domain()] != "":
			add("s2s.routes: %q is served here (%s), it cannot be a remote domain", j.Domain(), seen[j.Domain()])
			continue
		}
		if _, dup := routes[j.Domain()]; dup {
			add("s2s.routes: %q is listed more than once", j.Domain())
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			add("s2s.routes: %q: must be \"host:port\" such as \"xmpp.example.org:5269\", got %q", j.Domain(), addr)
			continue
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			add("s2s.routes: %q: port must be a number from 1 to 65535, got %q", j.Domain(), port)
			continue
		}
		routes[j.Domain()] = addr
	}
	if s.Routes != nil {
		s.Routes = routes
	}
	if s.CAFile != "" {
		if err := checkFile(s.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("config: s2s.ca_file: %w", err))
		}
	}
	if d := s.IdleTimeout.Duration; d < time.Second {
		add("s2s.idle_timeout: must be at least \"1s\", got %q", d.String())
	}
	if n := s.MaxStreams; n < 1 {
		add("s2s.max_streams: must be at least 1, got %d", n)
	}
	return errs
}

// validateUpload checks the [upload] table; seen holds the served hosts
// (normalised), which the upload domain must not be one of.
func (c *Config) validateUpload(seen map[string]string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	u := &c.Upload
	if u.Host != "" {
		j, err := jid.New("", u.Host, "")
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("config: upload.host: %q is not a valid domain: %w", u.Host, err))
		case seen[j.Domain()] != "":
			add("upload.host: %q is already listed in %s; the upload service needs a domain of its own such as \"upload.%s\"", j.Domain(), seen[j.Domain()], j.Domain())
		default:
			u.Host = j.Domain()
		}
		if c.Listen.HTTPS == "" {
			add("listen.https: must be set when upload.host is set, since uploads go over HTTPS")
		}
	}
	if u.MaxFileSize < 1 {
		add("upload.max_file_size: must be at least 1 (bytes), got %d", u.MaxFileSize)
	}
	// A quota below the largest file would advertise sizes that can never
	// be uploaded.
	for _, q := range []struct {
		key string
		n   int64
	}{{"upload.quota_per_user_per_day", u.QuotaPerUserPerDay}, {"upload.quota_total", u.QuotaTotal}} {
		if q.n != 0 && q.n < u.MaxFileSize {
			add("%s: must be 0 (no limit) or at least upload.max_file_size (%d), got %d", q.key, u.MaxFileSize, q.n)
		}
	}
	if n := u.MinRateBytesPerSecond; n < 0 {
		add("upload.min_rate_bytes_per_second: must be 0 (no limit) or more, got %d", n)
	}
	if n := u.ConcurrentPerUser; n < 0 {
		add("upload.concurrent_per_user: must be 0 (no limit) or more, got %d", n)
	}
	if n := u.ConnectionsPerAddress; n < 0 {
		add("upload.connections_per_address: must be 0 (no limit) or more, got %d", n)
	}
	if u.PublicURL != "" {
		pu, err := url.Parse(u.PublicURL)
		switch {
		case err != nil:
			add("upload.public_url: %q is not a URL: %v", u.PublicURL, err)
		case pu.Scheme != "https" || pu.Host == "" || pu.User != nil || pu.RawQuery != "" || pu.Fragment != "" || pu.Opaque != "":
			// XEP-0363 requires HTTPS; the slot path is appended to it.
			add("upload.public_url: must be an https URL such as \"https://upload.example.org\" without user, query or fragment, got %q", u.PublicURL)
		default:
			u.PublicURL = strings.TrimRight(u.PublicURL, "/")
		}
	}
	return errs
}

// checkListenAddr accepts what net.Listen("tcp", addr) accepts with a
// numeric port. Port 0 (any free port) is allowed; tests rely on it.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be \"host:port\" such as \"127.0.0.1:5222\", got %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number from 0 to 65535, got %q", port)
	}
	return nil
}

// isLoopback reports whether addr's host is a loopback IP or "localhost".
// An empty host would mean all interfaces, so it is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func checkFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot use %q: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%q is a directory, not a file", path)
	}
	return nil
}

// validateComponents checks the [[components]] tables and normalises
// their domains. A component takes its subdomains too, so no served host
// or service may lie under a component's domain.
func (c *Config) validateComponents(seen map[string]string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	if len(c.Components) == 0 {
		c.Components = nil
		return nil
	}
	if c.Listen.Component == "" {
		add("listen.component: must be set when [[components]] lists a component")
	} else if a := c.Listen.Component; !strings.HasSuffix(a, ":0") && slices.Contains([]string{c.Listen.C2S, c.Listen.C2SDirectTLS, c.Listen.HTTPS, c.Listen.S2S, c.Listen.Admin}, a) {
		add("listen.component: must differ from the other listeners, got %q", a)
	}
	services := slices.Clone(c.AllHosts())
	services = append(services, c.MUCServices()...)
	services = append(services, c.PubSubServices()...)
	if c.Upload.Host != "" {
		services = append(services, c.Upload.Host)
	}
	domains := make(map[string]bool)
	for i := range c.Components {
		comp := &c.Components[i]
		j, err := jid.New("", comp.Domain, "")
		if comp.Domain == "" || err != nil || j.Local() != "" || j.Resource() != "" {
			add("components: domain %q is not a valid domain", comp.Domain)
			continue
		}
		d := j.Domain()
		comp.Domain = d
		if domains[d] {
			add("components: %q is listed more than once", d)
		}
		domains[d] = true
		for _, sv := range services {
			if sv == d || strings.HasSuffix(sv, "."+d) {
				add("components: %q would take %q, which this server serves itself; give the component a domain of its own such as \"irc.%s\"", d, sv, sv)
			}
		}
		if comp.Secret == "" {
			add("components: %q needs a secret", d)
		}
	}
	return errs
}

// turnTypes are the service types and transports [turn] transports may
// name (XEP-0215 with RFC 7064/7065 URIs: turns runs over TLS on TCP).
var turnTypes = map[string][]string{"stun": {"udp", "tcp"}, "turn": {"udp", "tcp"}, "turns": {"tcp"}}

// ParseTURNTransport splits a [turn] transports entry, "type/transport"
// with an optional ":port"; port is 0 when the entry names none.
func ParseTURNTransport(s string) (typ, transport string, port int, err error) {
	typ, rest, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", 0, fmt.Errorf("%q: must be \"type/transport\" such as \"turn/udp\", optionally with \":port\"", s)
	}
	transport, p, hasPort := strings.Cut(rest, ":")
	if !slices.Contains(turnTypes[typ], transport) {
		return "", "", 0, fmt.Errorf("%q: must be one of stun/udp, stun/tcp, turn/udp, turn/tcp, turns/tcp", s)
	}
	if hasPort {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", "", 0, fmt.Errorf("%q: port must be a number from 1 to 65535", s)
		}
		port = int(n)
	}
	return typ, transport, port, nil
}

// validateTURN checks the [turn] table when it is in use.
func (c *Config) validateTURN() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	t := &c.TURN
	if t.Host == "" {
		if t.Secret != "" {
			add("turn.host: must be set when turn.secret is set")
		}
		return errs
	}
	if strings.ContainsAny(t.Host, " /:@") && net.ParseIP(t.Host) == nil {
		add("turn.host: must be a host name or IP address, got %q", t.Host)
	}
	if t.Port < 1 || t.Port > 65535 {
		add("turn.port: must be a number from 1 to 65535, got %d", t.Port)
	}
	if t.Secret == "" {
		add("turn.secret: must be set when turn.host is set (coturn's static-auth-secret)")
	}
	if d := t.TTL.Duration; d < time.Minute {
		add("turn.ttl: must be at least \"1m\", got %q", d.String())
	}
	if len(t.Transports) == 0 {
		add("turn.transports: must list at least one of stun/udp, stun/tcp, turn/udp, turn/tcp, turns/tcp")
	}
	seen := make(map[string]bool)
	for _, e := range t.Transports {
		if _, _, _, err := ParseTURNTransport(e); err != nil {
			errs = append(errs, fmt.Errorf("config: turn.transports: %w", err))
		} else if seen[e] {
			add("turn.transports: %q is listed more than once", e)
		}
		seen[e] = true
	}
	return errs
}

// validateACME checks the [tls] acme keys: a way to answer challenges,
// a CA, and names a public CA can issue for.
func (c *Config) validateACME() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	if d := c.TLS.ACMERenewalCheck.Duration; d < time.Second {
		add("tls.acme_renewal_check: must be at least \"1s\", got %q", d.String())
	}
	if !c.TLS.ACME {
		if c.Listen.HTTPACME != "" {
			add("listen.http_acme: set, but tls.acme is off")
		}
		return errs
	}
	if c.Listen.HTTPS == "" && c.Listen.HTTPACME == "" {
		add("tls.acme: needs listen.https (TLS-ALPN-01 challenges, port 443 for a public CA) or listen.http_acme (HTTP-01, port 80)")
	}
	if u, err := url.Parse(c.TLS.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
		add("tls.acme_ca: must be the https URL of an ACME directory, got %q", c.TLS.ACMECA)
	}
	if c.TLS.ACMECARoot != "" {
		if err := checkFile(c.TLS.ACMECARoot); err != nil {
			errs = append(errs, fmt.Errorf("config: tls.acme_ca_root: %w", err))
		}
	}
	for _, d := range c.Domains() {
		if d == "localhost" || strings.HasSuffix(d, ".localhost") || strings.HasSuffix(d, ".local") ||
			strings.HasSuffix(d, ".internal") || strings.HasSuffix(d, ".home.arpa") || !strings.Contains(d, ".") {
			add("tls.acme: %q is not a public name, so no ACME CA can issue a certificate for it", d)
		}
	}
	return errs
}

// validateAdmins normalises admins to bare JIDs, so that the server can
// compare them with a sender's bare JID using ==.
func (c *Config) validateAdmins() []error {
	if len(c.Admins) == 0 {
		c.Admins = nil // an empty list means the same as an absent one
	}
	var errs []error
	seen := make(map[string]bool, len(c.Admins))
	for i, a := range c.Admins {
		j, err := jid.Parse(a)
		if err != nil || j.Local() == "" || !j.IsBare() {
			errs = append(errs, fmt.Errorf("config: admins: %q is not an account address of the form user@domain", a))
			continue
		}
		c.Admins[i] = j.String()
		if seen[j.String()] {
			errs = append(errs, fmt.Errorf("config: admins: %q is listed more than once", j))
		}
		seen[j.String()] = true
	}
	return errs
}

// IsAdmin reports whether bare (a bare JID, normalised) is in admins.
func (c *Config) IsAdmin(bare string) bool { return slices.Contains(c.Admins, bare) }

// validateCluster checks [cluster]; the node name defaults to the host
// name, made fit for a NATS subject token and KV key.
func (c *Config) validateCluster() []error {
	if c.Cluster.NATSURL == "" {
		return nil
	}
	var errs []error
	if c.Storage.Driver != "postgres" {
		errs = append(errs, fmt.Errorf(`config: cluster.nats_url: a cluster keeps its state in a database every node shares; set [storage] driver = "postgres" (it is %q)`, c.Storage.Driver))
	}
	if !strings.HasPrefix(c.Cluster.NATSURL, "nats://") && !strings.HasPrefix(c.Cluster.NATSURL, "tls://") {
		errs = append(errs, fmt.Errorf(`config: cluster.nats_url: want nats://host:port or tls://host:port, got %q`, c.Cluster.NATSURL))
	}
	if c.Cluster.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return append(errs, fmt.Errorf("config: cluster.node: no host name to default to; name this node"))
		}
		c.Cluster.Node = nodeName(h)
	}
	if c.Cluster.Node != nodeName(c.Cluster.Node) || len(c.Cluster.Node) > 64 {
		errs = append(errs, fmt.Errorf("config: cluster.node: %q: use at most 64 letters, digits, '-' and '_'", c.Cluster.Node))
	}
	return errs
}

// nodeName replaces what cannot appear in a NATS subject token or KV key
// (dots of a host name, for instance) with '-'.
func nodeName(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return string(b)
}
