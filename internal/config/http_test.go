package config

import (
	"slices"
	"strings"
	"testing"
)

func TestHTTPValidation(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"plain http not on loopback", "[listen]\nhttp = \"0.0.0.0:5280\"", "listen.http: must be a loopback address"},
		{"plain http on another listener", "[listen]\nhttp = \"127.0.0.1:5222\"", "listen.http: must differ from the other listeners"},
		{"plain http without proxies", "[listen]\nhttp = \"127.0.0.1:5280\"\n[http]\ntrusted_proxies = []", "http.trusted_proxies: must not be empty"},
		{"origin with a path", "[http]\nallowed_origins = [\"https://chat.example.org/\"]", `http.allowed_origins: "https://chat.example.org/" is not an origin`},
		{"origin without scheme", "[http]\nallowed_origins = [\"chat.example.org\"]", `http.allowed_origins: "chat.example.org" is not an origin`},
		{"bad proxy", "[http]\ntrusted_proxies = [\"proxy.local\"]", `http.trusted_proxies: "proxy.local" is not an IP address`},
		{"wait too long", "[http]\nbosh_max_wait = \"1h\"", "http.bosh_max_wait: must be between 1s and 10m0s"},
		{"no inactivity", "[http]\nbosh_inactivity = \"0s\"", "http.bosh_inactivity: must be between"},
	} {
		_, err := Parse([]byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	c, err := Parse([]byte("hosts = [\"example.org\"]\n[listen]\nhttps = \"0.0.0.0:5443\"\nhttp = \"127.0.0.1:5280\"\n[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Origins(); !slices.Equal(got, []string{"https://example.org", "https://example.org:5443"}) {
		t.Errorf("default origins %v", got)
	}
	if got := c.HTTP.TrustedProxyPrefixes(); len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "::1/128" {
		t.Errorf("proxies %v", got)
	}
}
