package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDefault(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatalf("Parse(nil): %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"hosts", c.Hosts, []string{"localhost"}},
		{"anonymous_hosts", len(c.AnonymousHosts), 0},
		{"data_dir", c.DataDir, "./parley-data"},
		{"listen.c2s", c.Listen.C2S, "127.0.0.1:5222"},
		{"listen.c2s_direct_tls", c.Listen.C2SDirectTLS, "127.0.0.1:5223"},
		{"listen.admin", c.Listen.Admin, ""},
		{"tls.cert", c.TLS.Cert, ""},
		{"tls.key", c.TLS.Key, ""},
		{"tls.require_starttls", c.TLS.RequireStartTLS, true},
		{"storage.driver", c.Storage.Driver, "sqlite"},
		{"storage.dsn", c.Storage.DSN, filepath.Join("parley-data", "parley.db")},
		{"registration.open", c.Registration.Open, false},
		{"registration.per_address_per_hour", c.Registration.PerAddressPerHour, 5},
		{"limits.max_stanza_bytes", c.Limits.MaxStanzaBytes, 262144},
		{"limits.auth_timeout", c.Limits.AuthTimeout.Duration, 60 * time.Second},
		{"limits.login_failures_per_minute", c.Limits.LoginFailuresPerMinute, 5},
		{"limits.preauth_connections_per_address", c.Limits.PreauthConnectionsPerAddress, 20},
		{"log.level", c.Log.Level, "info"},
		{"pubsub services", c.PubSubServices(), []string{"pubsub.localhost"}},
		{"pubsub.max_nodes_per_user", c.PubSub.MaxNodesPerUser, 100},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	// Default() itself leaves derived values to Validate.
	if d := Default(); d.Storage.DSN != "" {
		t.Errorf("Default().Storage.DSN = %q, want empty until Validate", d.Storage.DSN)
	}
	loaded, err := Load("")
	if err != nil || !reflect.DeepEqual(loaded, c) {
		t.Errorf("Load(\"\") = %+v, %v; want %+v", loaded, err, c)
	}
}

func TestDefaultSlicesNotShared(t *testing.T) {
	a := Default()
	a.Hosts[0] = "changed.example"
	if b := Default(); b.Hosts[0] != "localhost" {
		t.Errorf("Default() shares its Hosts slice between calls: got %q", b.Hosts[0])
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		check func(t *testing.T, c Config)
	}{
		{"hosts replaced and normalised", `hosts = ["Example.COM", "ｅｘａｍｐｌｅ．ｏｒｇ", "example.net."]`, func(t *testing.T, c Config) {
			want := []string{"example.com", "example.org", "example.net"}
			if !slices.Equal(c.Hosts, want) {
				t.Errorf("Hosts = %q, want %q", c.Hosts, want)
			}
		}},
		{"anonymous hosts", "hosts = [\"example.com\"]\nanonymous_hosts = [\"Anon.Example.com\"]", func(t *testing.T, c Config) {
			if !slices.Equal(c.AllHosts(), []string{"example.com", "anon.example.com"}) {
				t.Errorf("AllHosts() = %q", c.AllHosts())
			}
			if !c.IsAnonymousHost("anon.example.com") || c.IsAnonymousHost("example.com") || c.IsAnonymousHost("other.example") {
				t.Errorf("IsAnonymousHost wrong for %q", c.AnonymousHosts)
			}
		}},
		{"components and turn", "[[components]]\ndomain = \"IRC.localhost\"\nsecret = \"s\"\n[turn]\nhost = \"turn.example.org\"\nsecret = \"t\"\ntransports = [\"stun/udp\", \"turns/tcp:5349\"]", func(t *testing.T, c Config) {
			if len(c.Components) != 1 || c.Components[0] != (Component{Domain: "irc.localhost", Secret: "s"}) {
				t.Errorf("Components = %+v", c.Components)
			}
			if c.TURN.TTL.Duration != 24*time.Hour || c.TURN.Port != 3478 {
				t.Errorf("TURN defaults %+v", c.TURN)
			}
			if typ, tr, port, err := ParseTURNTransport(c.TURN.Transports[1]); err != nil || typ != "turns" || tr != "tcp" || port != 5349 {
				t.Errorf("ParseTURNTransport: %s %s %d %v", typ, tr, port, err)
			}
		}},
		{"sqlite dsn follows data_dir", `data_dir = "/var/lib/parley"`, func(t *testing.T, c Config) {
			if want := filepath.Join("/var/lib/parley", "parley.db"); c.Storage.DSN != want {
				t.Errorf("DSN = %q, want %q", c.Storage.DSN, want)
			}
		}},
		{"sqlite explicit dsn kept", "[storage]\ndsn = \"/tmp/x.db\"", func(t *testing.T, c Config) {
			if c.Storage.DSN != "/tmp/x.db" {
				t.Errorf("DSN = %q", c.Storage.DSN)
			}
		}},
		{"postgres", "[storage]\ndriver = \"postgres\"\ndsn = \"host=db user=parley\"", func(t *testing.T, c Config) {
			if c.Storage.Driver != "postgres" || c.Storage.DSN != "host=db user=parley" {
				t.Errorf("Storage = %+v", c.Storage)
			}
		}},
		{"cluster", "[storage]\ndriver = \"postgres\"\ndsn = \"host=db\"\n[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\nnode = \"n1\"", func(t *testing.T, c Config) {
			if c.Cluster.NATSURL != "nats://127.0.0.1:4222" || c.Cluster.Node != "n1" {
				t.Errorf("Cluster = %+v", c.Cluster)
			}
		}},
		{"cluster node defaults to the host name", "[storage]\ndriver = \"postgres\"\ndsn = \"host=db\"\n[cluster]\nnats_url = \"nats://127.0.0.1:4222\"", func(t *testing.T, c Config) {
			h, _ := os.Hostname()
			if c.Cluster.Node == "" || c.Cluster.Node != nodeName(h) {
				t.Errorf("Node = %q, host name %q", c.Cluster.Node, h)
			}
		}},
		{"upload dir", "[upload]\ndir = \"/srv/shared/uploads\"", func(t *testing.T, c Config) {
			if c.UploadDir() != "/srv/shared/uploads" {
				t.Errorf("UploadDir = %q", c.UploadDir())
			}
		}},
		{"single node by default", "", func(t *testing.T, c Config) {
			if c.UploadDir() != filepath.Join(c.DataDir, "uploads") {
				t.Errorf("UploadDir = %q", c.UploadDir())
			}
			if c.Cluster.NATSURL != "" || c.Cluster.Node != "" {
				t.Errorf("Cluster = %+v", c.Cluster)
			}
		}},
		{"durations", "[limits]\nauth_timeout = \"2m30s\"", func(t *testing.T, c Config) {
			if c.Limits.AuthTimeout.Duration != 150*time.Second {
				t.Errorf("AuthTimeout = %v", c.Limits.AuthTimeout)
			}
		}},
		{"only direct tls", "[listen]\nc2s = \"\"\nc2s_direct_tls = \"[::]:5223\"", func(t *testing.T, c Config) {
			if c.Listen.C2S != "" || c.Listen.C2SDirectTLS != "[::]:5223" {
				t.Errorf("Listen = %+v", c.Listen)
			}
		}},
		{"admin loopback forms", "[listen]\nadmin = \"[::1]:5280\"", func(t *testing.T, c Config) {
			if c.Listen.Admin != "[::1]:5280" {
				t.Errorf("Admin = %q", c.Listen.Admin)
			}
		}},
		{"port zero allowed", "[listen]\nc2s = \"127.0.0.1:0\"\nadmin = \"localhost:0\"", func(t *testing.T, c Config) {
			if c.Listen.C2S != "127.0.0.1:0" {
				t.Errorf("C2S = %q", c.Listen.C2S)
			}
		}},
		{"registration unlimited", "[registration]\nopen = true\nper_address_per_hour = 0", func(t *testing.T, c Config) {
			if !c.Registration.Open || c.Registration.PerAddressPerHour != 0 {
				t.Errorf("Registration = %+v", c.Registration)
			}
		}},
		{"federation", "[listen]\ns2s = \"0.0.0.0:5269\"\n[s2s]\nrequire_valid_certificates = true\nidle_timeout = \"90s\"\nmax_streams = 7\n[s2s.routes]\n\"Example.NET\" = \"10.0.0.7:5269\"\n\"b.example\" = \"[::1]:15269\"", func(t *testing.T, c Config) {
			s := c.S2S
			if c.Listen.S2S != "0.0.0.0:5269" || !s.RequireValidCertificates || !s.RequireEncryption || s.IdleTimeout.Duration != 90*time.Second || s.MaxStreams != 7 {
				t.Errorf("S2S = %+v, listen = %q", s, c.Listen.S2S)
			}
			if len(s.Routes) != 2 || s.Routes["example.net"] != "10.0.0.7:5269" || s.Routes["b.example"] != "[::1]:15269" {
				t.Errorf("Routes = %v, want the domains normalised", s.Routes)
			}
		}},
		{"federation off", "[listen]\ns2s = \"\"\n[s2s]\nroutes = {}", func(t *testing.T, c Config) {
			if c.Listen.S2S != "" || c.S2S.Routes != nil {
				t.Errorf("listen.s2s = %q, routes = %#v", c.Listen.S2S, c.S2S.Routes)
			}
		}},
		{"minimum stanza size", "[limits]\nmax_stanza_bytes = 10000", func(t *testing.T, c Config) {
			if c.Limits.MaxStanzaBytes != 10000 {
				t.Errorf("MaxStanzaBytes = %d", c.Limits.MaxStanzaBytes)
			}
		}},
		{"upload service", "[listen]\nhttps = \"0.0.0.0:5443\"\n[upload]\nhost = \"Upload.Example.COM\"\nmax_file_size = 1000\nquota_per_user_per_day = 1000\nquota_total = 0\npublic_url = \"https://files.example.com/up/\"\n[retention]\nuploads = \"30d\"", func(t *testing.T, c Config) {
			u := c.Upload
			if u.Host != "upload.example.com" || u.MaxFileSize != 1000 || u.QuotaPerUserPerDay != 1000 || u.QuotaTotal != 0 {
				t.Errorf("Upload = %+v", u)
			}
			if u.PublicURL != "https://files.example.com/up" {
				t.Errorf("PublicURL = %q, want the trailing slash trimmed", u.PublicURL)
			}
			if c.Listen.HTTPS != "0.0.0.0:5443" || c.Retention.Uploads.Keep != 30*24*time.Hour {
				t.Errorf("HTTPS = %q, uploads retention = %v", c.Listen.HTTPS, c.Retention.Uploads.Keep)
			}
		}},
		{"upload defaults", "", func(t *testing.T, c Config) {
			u := c.Upload
			if u.Host != "" || c.Listen.HTTPS != "" || u.MaxFileSize != 100<<20 || u.QuotaPerUserPerDay != 1<<30 || u.QuotaTotal != 10<<30 || u.PublicURL != "" {
				t.Errorf("Upload = %+v, HTTPS = %q", u, c.Listen.HTTPS)
			}
			if c.Retention.Uploads.Keep != 7*24*time.Hour {
				t.Errorf("uploads retention = %v", c.Retention.Uploads.Keep)
			}
		}},
		{"https without upload", "[listen]\nhttps = \"127.0.0.1:0\"\nc2s = \"127.0.0.1:0\"", func(t *testing.T, c Config) {
			if c.Listen.HTTPS != "127.0.0.1:0" {
				t.Errorf("HTTPS = %q", c.Listen.HTTPS)
			}
		}},
		{"starttls off and log debug", "[tls]\nrequire_starttls = false\n[log]\nlevel = \"debug\"", func(t *testing.T, c Config) {
			if c.TLS.RequireStartTLS || c.Log.Level != "debug" {
				t.Errorf("TLS = %+v, Log = %+v", c.TLS, c.Log)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := filepath.Join(dir, "key.pem")
	for _, p := range []string{cert, key} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name      string
		cert, key string
		wantErr   string // "" = valid
	}{
		{"both set", cert, key, ""},
		{"both empty", "", "", ""},
		{"cert only", cert, "", `config: tls.key: must be set when tls.cert is set`},
		{"key only", "", key, `config: tls.cert: must be set when tls.key is set`},
		{"cert missing", missing, key, `config: tls.cert: cannot use "` + missing + `"`},
		{"key missing", cert, missing, `config: tls.key: cannot use "` + missing + `"`},
		{"cert is dir", dir, key, `config: tls.cert: "` + dir + `" is a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.TLS.Cert, c.TLS.Key = tt.cert, tt.key
			err := c.Validate()
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want string
	}{
		// Unknown keys, anywhere.
		{"unknown nested key", "[listen]\nc2ss = \"127.0.0.1:5222\"", `config: unknown key "listen.c2ss"`},
		{"unknown top key", `host = ["example.com"]`, `config: unknown key "host"`},
		{"unknown table", "[listener]\nc2s = \"x\"", `config: unknown key "listener"`},
		{"wrong case", `Hosts = ["example.com"]`, `config: unknown key "Hosts"`},
		{"key under value", "[limits.auth_timeout]\nx = 1", `config: unknown key "limits.auth_timeout.x"`},

		// Syntax and type errors.
		{"syntax error line", "hosts = [\"a\"]\n\nx = = 1\n", `config: line 3: syntax error`},
		{"syntax error unclosed table", "hosts = [\"a\"]\n\n[listen", `config: line 3: syntax error`},
		{"wrong type", "[limits]\nmax_stanza_bytes = \"big\"", `limits.max_stanza_bytes`},
		{"wrong type table", `listen = "x"`, `listen`},
		{"bad duration", "[limits]\n\nauth_timeout = \"soon\"", `config: line 3: limits.auth_timeout: must be a duration such as "60s" or "5m", got "soon"`},
		{"duration without unit", "[limits]\nauth_timeout = 60", `limits.auth_timeout: must be a duration`},

		// Validation rules, each naming its key.
		{"no hosts", `hosts = []`, `config: hosts: must list at least one domain`},
		{"bad host", `hosts = ["exa mple.com"]`, `config: hosts: "exa mple.com" is not a valid domain`},
		{"host with at", `hosts = ["a@example.com"]`, `config: hosts: "a@example.com" is not a valid domain`},
		{"host with slash", `hosts = ["example.com/x"]`, `config: hosts: "example.com/x" is not a valid domain`},
		{"empty host", `hosts = [""]`, `config: hosts: "" is not a valid domain`},
		{"bad anonymous host", `anonymous_hosts = ["a..b"]`, `config: anonymous_hosts: "a..b" is not a valid domain`},
		{"duplicate host", `hosts = ["example.com", "EXAMPLE.com"]`, `config: hosts: "example.com" is listed more than once`},
		{"host also anonymous", "hosts = [\"example.com\"]\nanonymous_hosts = [\"Example.com\"]", `config: anonymous_hosts: "example.com" is already listed in hosts`},
		{"empty data dir", `data_dir = ""`, `config: data_dir: must not be empty`},
		{"bad c2s", "[listen]\nc2s = \"localhost\"", `config: listen.c2s: must be "host:port"`},
		{"bad direct tls port", "[listen]\nc2s_direct_tls = \"127.0.0.1:https\"", `config: listen.c2s_direct_tls: port must be a number`},
		{"port out of range", "[listen]\nc2s = \"127.0.0.1:70000\"", `config: listen.c2s: port must be a number from 0 to 65535, got "70000"`},
		{"no client listener", "[listen]\nc2s = \"\"\nc2s_direct_tls = \"\"", `config: listen: at least one of listen.c2s and listen.c2s_direct_tls must be set`},
		{"same listener twice", "[listen]\nc2s = \"127.0.0.1:5222\"\nc2s_direct_tls = \"127.0.0.1:5222\"", `config: listen.c2s_direct_tls: must differ from listen.c2s`},
		{"admin public", "[listen]\nadmin = \"0.0.0.0:5280\"", `config: listen.admin: must be a loopback address such as "127.0.0.1:5280", got "0.0.0.0:5280"`},
		{"admin all interfaces", "[listen]\nadmin = \":5280\"", `config: listen.admin: must be a loopback address`},
		{"admin host name", "[listen]\nadmin = \"example.com:5280\"", `config: listen.admin: must be a loopback address`},
		{"admin malformed", "[listen]\nadmin = \"127.0.0.1\"", `config: listen.admin: must be "host:port"`},
		{"upload without https", "[upload]\nhost = \"upload.localhost\"", `config: listen.https: must be set when upload.host is set`},
		{"pubsub host is a served host", "[pubsub]\nhost = \"localhost\"", `config: pubsub.host: "localhost" is already a served host`},
		{"pubsub host is the muc host", "[pubsub]\nhost = \"conference.<domain>\"", `config: pubsub.host: "conference.localhost" is also muc.host or upload.host`},
		{"pubsub host invalid", "[pubsub]\nhost = \"pub sub\"", `config: pubsub.host: "pub sub" is not a valid domain`},
		{"pubsub negative nodes", "[pubsub]\nmax_nodes_per_user = -1", `config: pubsub.max_nodes_per_user: must be 0 (no limit) or more`},
		{"pubsub items zero", "[pubsub]\nmax_items_per_node = 0", `config: pubsub.max_items_per_node: must be from 1 to 10000`},
		{"pubsub item bytes", "[pubsub]\nmax_item_bytes = 10", `config: pubsub.max_item_bytes: must be from 1024 to 1048576`},
		{"pubsub bytes per user", "[pubsub]\nmax_bytes_per_user = -1", `config: pubsub.max_bytes_per_user: must be 0 (no limit) or more`},
		{"upload host is a served host", "[listen]\nhttps = \"127.0.0.1:5443\"\n[upload]\nhost = \"LOCALHOST\"", `config: upload.host: "localhost" is already listed in hosts`},
		{"upload host invalid", "[listen]\nhttps = \"127.0.0.1:5443\"\n[upload]\nhost = \"up load\"", `config: upload.host: "up load" is not a valid domain`},
		{"bad https address", "[listen]\nhttps = \"127.0.0.1\"", `config: listen.https: must be "host:port"`},
		{"s2s same as c2s", "[listen]\ns2s = \"127.0.0.1:5222\"", `config: listen.s2s: must differ from the other listeners`},
		{"s2s bad address", "[listen]\ns2s = \"5269\"", `config: listen.s2s: must be "host:port"`},
		{"route to a served host", "[s2s]\nroutes = { \"localhost\" = \"127.0.0.1:5269\" }", `config: s2s.routes: "localhost" is served here`},
		{"route without port", "[s2s]\nroutes = { \"b.example\" = \"127.0.0.1\" }", `config: s2s.routes: "b.example": must be "host:port"`},
		{"route port 0", "[s2s]\nroutes = { \"b.example\" = \"127.0.0.1:0\" }", `config: s2s.routes: "b.example": port must be a number from 1 to 65535`},
		{"route bad domain", "[s2s]\nroutes = { \"a b\" = \"127.0.0.1:5269\" }", `config: s2s.routes: "a b" is not a valid domain`},
		{"route duplicate", "[s2s]\nroutes = { \"B.example\" = \"127.0.0.1:1\", \"b.example\" = \"127.0.0.1:2\" }", `config: s2s.routes: "b.example" is listed more than once`},
		{"s2s idle timeout", "[s2s]\nidle_timeout = \"0s\"", `config: s2s.idle_timeout: must be at least "1s"`},
		{"s2s max streams", "[s2s]\nmax_streams = 0", `config: s2s.max_streams: must be at least 1`},
		{"s2s ca file", "[s2s]\nca_file = \"/nonexistent/ca.pem\"", `config: s2s.ca_file: cannot use`},
		{"unknown s2s key", "[s2s]\nroute = {}", `config: unknown key "s2s.route"`},
		{"https same as c2s", "[listen]\nhttps = \"127.0.0.1:5222\"", `config: listen.https: must differ from the client listeners`},
		{"zero max file size", "[upload]\nmax_file_size = 0", `config: upload.max_file_size: must be at least 1 (bytes), got 0`},
		{"daily quota below file size", "[upload]\nmax_file_size = 1000\nquota_per_user_per_day = 999", `config: upload.quota_per_user_per_day: must be 0 (no limit) or at least upload.max_file_size (1000), got 999`},
		{"negative total quota", "[upload]\nquota_total = -1", `config: upload.quota_total: must be 0 (no limit) or at least upload.max_file_size`},
		{"public url http", "[upload]\npublic_url = \"http://upload.example.com\"", `config: upload.public_url: must be an https URL`},
		{"public url with query", "[upload]\npublic_url = \"https://upload.example.com/?a=b\"", `config: upload.public_url: must be an https URL`},
		{"public url without host", "[upload]\npublic_url = \"https:///x\"", `config: upload.public_url: must be an https URL`},
		{"bad uploads retention", "[retention]\nuploads = \"0d\"", `retention.uploads: must be a duration such as "7d"`},
		{"bad driver", "[storage]\ndriver = \"mysql\"", `config: storage.driver: must be "sqlite" or "postgres", got "mysql"`},
		{"empty driver", "[storage]\ndriver = \"\"", `config: storage.driver: must be "sqlite" or "postgres", got ""`},
		{"cluster on sqlite", "[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\nnode = \"a\"", `config: cluster.nats_url: a cluster keeps its state in a database every node shares; set [storage] driver = "postgres" (it is "sqlite")`},
		{"cluster bad url", "[storage]\ndriver = \"postgres\"\ndsn = \"x\"\n[cluster]\nnats_url = \"127.0.0.1:4222\"\nnode = \"a\"", `config: cluster.nats_url: want nats://host:port`},
		{"cluster bad node", "[storage]\ndriver = \"postgres\"\ndsn = \"x\"\n[cluster]\nnats_url = \"nats://h:4222\"\nnode = \"a.b\"", `config: cluster.node: "a.b": use at most 64 letters`},
		{"postgres without dsn", "[storage]\ndriver = \"postgres\"", `config: storage.dsn: required when storage.driver is "postgres"`},
		{"negative registrations", "[registration]\nper_address_per_hour = -1", `config: registration.per_address_per_hour: must be 0 (no limit) or more, got -1`},
		{"small stanza limit", "[limits]\nmax_stanza_bytes = 9999", `config: limits.max_stanza_bytes: must be at least 10000 (RFC 6120 §13.12), got 9999`},
		{"zero auth timeout", "[limits]\nauth_timeout = \"0s\"", `config: limits.auth_timeout: must be more than 0, got "0s"`},
		{"negative auth timeout", "[limits]\nauth_timeout = \"-5s\"", `config: limits.auth_timeout: must be more than 0`},
		{"zero login failures", "[limits]\nlogin_failures_per_minute = 0", `config: limits.login_failures_per_minute: must be at least 1, got 0`},
		{"small PEP quota", "[limits]\npep_bytes_per_user = 1000", `config: limits.pep_bytes_per_user: must be 0 (no limit) or at least 65536, got 1000`},
		{"negative room limit", "[muc]\nmax_rooms = -1", `config: muc.max_rooms: must be 0 (no limit) or more, got -1`},
		{"negative room rate", "[muc]\nroom_creations_per_hour = -1", `config: muc.room_creations_per_hour: must be 0 (no limit) or more`},
		{"negative upload rate", "[upload]\nmin_rate_bytes_per_second = -1", `config: upload.min_rate_bytes_per_second: must be 0 (no limit) or more`},
		{"negative concurrent uploads", "[upload]\nconcurrent_per_user = -2", `config: upload.concurrent_per_user: must be 0 (no limit) or more`},
		{"negative connections", "[upload]\nconnections_per_address = -1", `config: upload.connections_per_address: must be 0 (no limit) or more`},
		{"negative preauth connections", "[limits]\npreauth_connections_per_address = -1", `config: limits.preauth_connections_per_address: must be 0 (no limit) or more, got -1`},
		{"component without secret", "[[components]]\ndomain = \"irc.localhost\"", `config: components: "irc.localhost" needs a secret`},
		{"component on a host", "[[components]]\ndomain = \"LocalHost\"\nsecret = \"x\"", `config: components: "localhost" would take "localhost"`},
		{"component above a service", "[[components]]\ndomain = \"localhost.\"\nsecret = \"x\"", `would take "conference.localhost"`},
		{"component twice", "[[components]]\ndomain = \"irc.localhost\"\nsecret = \"x\"\n[[components]]\ndomain = \"IRC.localhost\"\nsecret = \"y\"", `config: components: "irc.localhost" is listed more than once`},
		{"component bad domain", "[[components]]\ndomain = \"a@b\"\nsecret = \"x\"", `config: components: domain "a@b" is not a valid domain`},
		{"component without listener", "[listen]\ncomponent = \"\"\n[[components]]\ndomain = \"irc.localhost\"\nsecret = \"x\"", `config: listen.component: must be set`},
		{"component unknown key", "[[components]]\ndomain = \"irc.localhost\"\npassword = \"x\"", `config: unknown key "components.password"`},
		{"turn without secret", "[turn]\nhost = \"turn.example.org\"", `config: turn.secret: must be set when turn.host is set`},
		{"turn secret without host", "[turn]\nsecret = \"x\"", `config: turn.host: must be set when turn.secret is set`},
		{"turn bad transport", "[turn]\nhost = \"t.example\"\nsecret = \"x\"\ntransports = [\"turns/udp\"]", `config: turn.transports: "turns/udp": must be one of`},
		{"turn bad port", "[turn]\nhost = \"t.example\"\nsecret = \"x\"\nport = 0", `config: turn.port: must be a number from 1 to 65535, got 0`},
		{"turn short ttl", "[turn]\nhost = \"t.example\"\nsecret = \"x\"\nttl = \"10s\"", `config: turn.ttl: must be at least "1m"`},
		{"turn transport port", "[turn]\nhost = \"t.example\"\nsecret = \"x\"\ntransports = [\"turns/tcp:99999\"]", `port must be a number from 1 to 65535`},
		{"unknown log level", "[log]\nlevel = \"verbose\"", `config: log.level: must be "debug", "info", "warn" or "error", got "verbose"`},
		{"log level case", "[log]\nlevel = \"INFO\"", `config: log.level:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error containing %q", c, tt.want)
			}
			checkErr(t, err, tt.want)
		})
	}
}

func TestSyntaxErrorUnwraps(t *testing.T) {
	_, err := Parse([]byte("a = "))
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v does not wrap toml.ParseError", err)
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := Parse([]byte("hosts = []\n[log]\nlevel = \"x\"\n[limits]\nmax_stanza_bytes = 1"))
	for _, key := range []string{"hosts:", "log.level:", "limits.max_stanza_bytes:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not mention %s", err, key)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "parley.toml")
	if err := os.WriteFile(path, []byte("hosts = [\"example.com\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || !slices.Equal(c.Hosts, []string{"example.com"}) {
		t.Errorf("Load = %q, %v", c.Hosts, err)
	}
	_, err = Load(filepath.Join(dir, "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"60s", time.Minute, false},
		{"1h2m3s", time.Hour + 2*time.Minute + 3*time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"60", 0, true},
		{"", 0, true},
		{"fast", 0, true},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.wantErr || d.Duration != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v, err %v", tt.in, d.Duration, err, tt.want, tt.wantErr)
		}
		if err == nil {
			text, _ := d.MarshalText()
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != d {
				t.Errorf("MarshalText round trip of %v: %q, %v", d, text, err)
			}
		}
	}
}

const examplePath = "../../parley.example.toml"

// TestExampleFile keeps parley.example.toml honest: it must parse, must
// give exactly the defaults, and must mention every key Config has.
func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("example file does not parse: %v", err)
	}
	want, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example file values differ from defaults:\n got  %+v\n want %+v", got, want)
	}

	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		t.Fatal(err)
	}
	inFile := make(map[string]bool)
	for _, k := range md.Keys() {
		inFile[k.String()] = true
	}
	// Walked here independently of the package's own keys() so a bug there
	// cannot hide a missing key.
	var want2 []string
	// The keys of an array of tables ([[components]]) are explained in a
	// comment: the example has no entry whose keys could be set.
	inArray := make(map[string]bool)
	var walk func(reflect.Type, string, bool)
	walk = func(rt reflect.Type, prefix string, array bool) {
		for f := range rt.Fields() {
			name := prefix + strings.Split(f.Tag.Get("toml"), ",")[0]
			want2 = append(want2, name)
			inArray[name] = array
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() && f.Type != reflect.TypeFor[Retention]() {
				walk(f.Type, name+".", array)
			}
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
				walk(f.Type.Elem(), name+".", true)
				if !strings.Contains(string(data), "#   "+strings.Split(f.Type.Elem().Field(0).Tag.Get("toml"), ",")[0]+" = ") {
					t.Errorf("the keys of [[%s]] are not shown in a comment", name)
				}
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", false)
	if len(want2) < 20 {
		t.Fatalf("struct walk found only %d keys: %q", len(want2), want2)
	}
	for _, k := range want2 {
		if !inFile[k] && !inArray[k] {
			t.Errorf("key %q is not documented in %s", k, examplePath)
		}
	}
	if pkg := keys(); !slices.Equal(pkg, want2) {
		t.Errorf("keys() = %q, want %q", pkg, want2)
	}
	// Every key must be explained by a comment directly above it; keys
	// on consecutive lines (tls.cert and tls.key) may share one.
	lines := strings.Split(string(data), "\n")
	isKey := func(l string) bool {
		l = strings.TrimSpace(l)
		return l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[")
	}
	for i, line := range lines {
		if !isKey(line) {
			continue
		}
		j := i - 1
		for j >= 0 && isKey(lines[j]) {
			j--
		}
		if j < 0 || !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
			t.Errorf("line %d %q has no comment above it", i+1, line)
		}
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Errorf("no error, want one containing %q", want)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestRetentionText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"36h", 36 * time.Hour, true},
		{"never", 0, true},
		{"0d", 0, false},
		{"-1h", 0, false},
		{"0s", 0, false},
		{"soon", 0, false},
	} {
		var r Retention
		err := r.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || (tt.ok && r.Keep != tt.want) {
			t.Errorf("%q: got %v, %v", tt.in, r.Keep, err)
		}
		if tt.ok {
			b, _ := r.MarshalText()
			var back Retention
			if err := back.UnmarshalText(b); err != nil || back != r {
				t.Errorf("%q does not round-trip: %s", tt.in, b)
			}
		}
	}
	c, err := Parse([]byte("[retention]\noffline = \"sometimes\""))
	if err == nil || !strings.Contains(err.Error(), "retention.offline") {
		t.Errorf("bad retention accepted or error does not name the key: %v, %v", c.Retention, err)
	}
}

func TestAdmins(t *testing.T) {
	c := Default()
	c.Admins = []string{"Alice@Example.org"}
	if err := c.Validate(); err != nil || !c.IsAdmin("alice@example.org") {
		t.Fatalf("admins = %v, err %v: want the normalised bare JID", c.Admins, err)
	}
	for _, bad := range []string{"example.org", "alice@example.org/phone", "@@"} {
		c := Default()
		c.Admins = []string{bad}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "admins") {
			t.Errorf("admins = [%q]: err %v, want one naming admins", bad, err)
		}
	}
}

func TestAdminKeysValidation(t *testing.T) {
	for _, c := range []struct {
		name, key string
		set       func(*Config)
	}{
		{"require_e2ee", "privacy.require_e2ee", func(c *Config) { c.Privacy.RequireE2EE = "sometimes" }},
		{"contact", "contact.abuse", func(c *Config) { c.Contact.Abuse = []string{"abuse@example.org"} }},
		{"max_accounts", "registration.max_accounts", func(c *Config) { c.Registration.MaxAccounts = -1 }},
		{"warn after expire", "registration.warn_inactive", func(c *Config) {
			c.Registration.ExpireInactive.Keep = 24 * time.Hour
			c.Registration.WarnInactive.Keep = 48 * time.Hour
		}},
	} {
		cfg := Default()
		c.set(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: err %v, want one naming %s", c.name, err, c.key)
		}
	}
	cfg := Default()
	cfg.Contact.Abuse = []string{"xmpp:abuse@example.org", "mailto:abuse@example.org", "https://example.org/abuse"}
	cfg.Registration.ExpireInactive.Keep = 365 * 24 * time.Hour
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid admin keys refused: %v", err)
	}
}

func TestPubSubServices(t *testing.T) {
	c, err := Parse([]byte("hosts = [\"a.example\", \"b.example\"]\n[pubsub]\nhost = \"ps.<domain>\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.PubSubServices(); !reflect.DeepEqual(got, []string{"ps.a.example", "ps.b.example"}) {
		t.Errorf("per host: %v", got)
	}
	if !slices.Contains(c.Domains(), "ps.b.example") {
		t.Errorf("the service domains need certificates: %v", c.Domains())
	}
	c, err = Parse([]byte("[pubsub]\nhost = \"\"\n"))
	if err != nil || c.PubSubServices() != nil {
		t.Errorf("turned off: %v, %v", c.PubSubServices(), err)
	}
}
