package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// HTTP configures the web client transports: WebSocket (RFC 7395) and
// BOSH (XEP-0124/0206), served on listen.https and listen.http.
type HTTP struct {
	// AllowedOrigins are the browser origins ("https://chat.example.org")
	// whose pages may open sessions; empty means the served hosts' own
	// https origins. Requests without Origin (not browsers) always may.
	AllowedOrigins []string `toml:"allowed_origins"`
	// TrustedProxies are the addresses or prefixes of reverse proxies:
	// only they may use listen.http, their X-Forwarded-For names the
	// client for the per-address limits, and their connections count as
	// encrypted (they terminate TLS).
	TrustedProxies []string `toml:"trusted_proxies"`
	BOSHMaxWait    Duration `toml:"bosh_max_wait"`   // longest a BOSH request is held
	BOSHInactivity Duration `toml:"bosh_inactivity"` // a BOSH session without requests this long has lost its client
	BOSHMaxPause   Duration `toml:"bosh_max_pause"`  // longest pause a BOSH client may ask for
}

func defaultHTTP() HTTP {
	return HTTP{
		TrustedProxies: []string{"127.0.0.1", "::1"},
		BOSHMaxWait:    Duration{60 * time.Second},
		BOSHInactivity: Duration{60 * time.Second},
		BOSHMaxPause:   Duration{120 * time.Second},
	}
}

// TrustedProxyPrefixes returns trusted_proxies, which Validate checked.
func (h HTTP) TrustedProxyPrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Origins returns allowed_origins, or by default the https origins of
// the served hosts on the port of listen.https.
func (c Config) Origins() []string {
	if len(c.HTTP.AllowedOrigins) > 0 {
		return c.HTTP.AllowedOrigins
	}
	port := ""
	if _, p, err := net.SplitHostPort(c.Listen.HTTPS); err == nil && p != "443" && p != "0" {
		port = ":" + p
	}
	var os []string
	for _, h := range c.AllHosts() {
		os = append(os, "https://"+h)
		if port != "" {
			os = append(os, "https://"+h+port)
		}
	}
	return os
}

func (c *Config) validateHTTP() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	if len(c.HTTP.AllowedOrigins) == 0 {
		c.HTTP.AllowedOrigins = nil // one representation for "absent"
	}
	if a := c.Listen.HTTP; a != "" {
		if err := checkListenAddr(a); err != nil {
			add("listen.http: %v", err)
		}
		// Plain HTTP carries passwords in the clear: it is for a proxy
		// on the same machine.
		if !isLoopback(a) {
			add("listen.http: must be a loopback address (it is for a reverse proxy that terminates TLS), got %q", a)
		}
		if !strings.HasSuffix(a, ":0") && (a == c.Listen.HTTPS || a == c.Listen.C2S || a == c.Listen.C2SDirectTLS || a == c.Listen.S2S || a == c.Listen.Admin) {
			add("listen.http: must differ from the other listeners, got %q", a)
		}
		if len(c.HTTP.TrustedProxies) == 0 {
			add("http.trusted_proxies: must not be empty when listen.http is set: only trusted proxies may use it")
		}
	}
	for _, o := range c.HTTP.AllowedOrigins {
		scheme, rest, ok := strings.Cut(o, "://")
		if !ok || (scheme != "https" && scheme != "http") || rest == "" || strings.ContainsAny(rest, "/?#") {
			add("http.allowed_origins: %q is not an origin such as \"https://chat.example.org\"", o)
		}
	}
	for _, p := range c.HTTP.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			add("http.trusted_proxies: %q is not an IP address or prefix such as \"10.0.0.0/8\"", p)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
		max time.Duration
	}{{"http.bosh_max_wait", c.HTTP.BOSHMaxWait, 10 * time.Minute}, {"http.bosh_inactivity", c.HTTP.BOSHInactivity, time.Hour}, {"http.bosh_max_pause", c.HTTP.BOSHMaxPause, time.Hour}} {
		if d.v.Duration < time.Second || d.v.Duration > d.max {
			add("%s: must be between 1s and %s, got %s", d.key, d.max, d.v.Duration)
		}
	}
	return errs
}
