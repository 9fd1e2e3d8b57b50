package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/jid"
)

// minStanzaBytes is the smallest stanza limit RFC 6120 §13.12 allows a
// server to impose.
const minStanzaBytes = 10000

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

	if c.DataDir == "" {
		add(`data_dir: must not be empty (use "." for the working directory)`)
	}

	// Listeners.
	for _, l := range []struct{ key, addr string }{
		{"listen.c2s", c.Listen.C2S},
		{"listen.c2s_direct_tls", c.Listen.C2SDirectTLS},
		{"listen.admin", c.Listen.Admin},
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
	if a := c.Listen.Admin; a != "" && !isLoopback(a) {
		add("listen.admin: must be a loopback address such as \"127.0.0.1:5280\", got %q", a)
	}

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
	if d := c.Limits.IdlePing.Duration; d != 0 && d < 10*time.Second {
		add("limits.idle_ping: must be \"0s\" (off) or at least \"10s\", got %q", d.String())
	}
	if d := c.Limits.ResumeTimeout.Duration; d < 0 || d > 24*time.Hour {
		add("limits.resume_timeout: must be from \"0s\" (no resumption) to \"24h\", got %q", d.String())
	}
	if n := c.Limits.MaxRosterItems; n < 0 {
		add("limits.max_roster_items: must be 0 (no limit) or more, got %d", n)
	}
	if n := c.Limits.MaxOfflineMessages; n < 0 {
		add("limits.max_offline_messages: must be 0 (offline storage off) or more, got %d", n)
	}

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		add(`log.level: must be "debug", "info", "warn" or "error", got %q`, c.Log.Level)
	}
	return errors.Join(errs...)
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
