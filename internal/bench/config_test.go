package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseAccount(t *testing.T) {
	tests := []struct {
		in          string
		local, host string
		ok          bool
	}{
		{"user1@localhost", "user1", "localhost", true},
		{"a@b.example", "a", "b.example", true},
		{"nodomain", "", "", false},
		{"@localhost", "", "", false},
		{"user@", "", "", false},
		{"user@host/res", "", "", false},
	}
	for _, tt := range tests {
		acc, err := parseAccount(tt.in, "pw")
		if (err == nil) != tt.ok || acc.local != tt.local || acc.domain != tt.host {
			t.Errorf("parseAccount(%q) = %+v, %v", tt.in, acc, err)
		}
		if tt.ok && acc.bare() != tt.in {
			t.Errorf("bare() = %q, want %q", acc.bare(), tt.in)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5222", true},
		{"127.3.4.5:5222", true},
		{"[::1]:5222", true},
		{"localhost:5222", true},
		{"10.0.0.1:5222", false},
		{"192.168.1.1:5222", false},
		{"example.com:5222", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		if err := checkLoopback(tt.addr); (err == nil) != tt.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Mode: ModeLoginChat, Addr: "127.0.0.1:5222", Users: 10, Rate: 10, Duration: time.Second}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"good", func(*Config) {}, ""},
		{"unknown mode", func(c *Config) { c.Mode = "chat" }, "unknown mode"},
		{"unknown mechanism", func(c *Config) { c.Mechanism = "DIGEST-MD5" }, "unknown mechanism"},
		{"no users", func(c *Config) { c.Users = 0 }, "users"},
		{"one user chat", func(c *Config) { c.Users = 1 }, "pair"},
		{"no rate", func(c *Config) { c.Rate = 0 }, "rate"},
		{"user format without verb", func(c *Config) { c.UserFormat = "user@localhost" }, "%d"},
		{"user format with two verbs", func(c *Config) { c.UserFormat = "u%d%s@localhost" }, "%d"},
		{"password with other verb", func(c *Config) { c.PasswordFormat = "p%s" }, "password"},
		{"remote server", func(c *Config) { c.Addr = "10.1.1.1:5222" }, "loopback"},
		{"too many sources", func(c *Config) { c.SourceAddrs = 300 }, "254"},
		{"idle needs no rate", func(c *Config) { c.Mode = ModeIdle; c.Rate = 0; c.Users = 1 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.withDefaults().validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{bodyPrefix + "12345", 12345, true},
		{bodyPrefix + "0", 0, true},
		{"hello", 0, false},
		{bodyPrefix + "-5", 0, false},
		{bodyPrefix + "12x", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseBody(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseBody(%q) = %v, %v", tt.in, got, ok)
		}
	}
}

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a<b>&'\"", "a&lt;b&gt;&amp;&apos;&quot;"},
		{"ü", "ü"},
	}
	for _, tt := range tests {
		if got := escapeText(tt.in); got != tt.want {
			t.Errorf("escapeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSourceAddr(t *testing.T) {
	r := &runner{cfg: Config{SourceAddrs: 3}}
	for i, want := range []string{"127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0", "127.0.0.1:0"} {
		if got := r.sourceAddr(i).String(); got != want {
			t.Errorf("sourceAddr(%d) = %s, want %s", i, got, want)
		}
	}
	if (&runner{cfg: Config{SourceAddrs: 1}}).sourceAddr(5) != nil {
		t.Error("one source address should leave the choice to the kernel")
	}
}
