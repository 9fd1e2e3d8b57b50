// Package config loads and validates parley's single TOML configuration
// file. Start-up must fail loudly on anything suspicious (unknown keys,
// impossible values) because a silently ignored typo in a server config
// tends to surface much later as a security or availability problem.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole server configuration. Each field's toml tag is its key
// in the file; parley.example.toml documents every key.
type Config struct {
	Hosts          []string `toml:"hosts"`           // served domains
	AnonymousHosts []string `toml:"anonymous_hosts"` // domains where SASL ANONYMOUS gives throwaway accounts (XEP-0175)
	DataDir        string   `toml:"data_dir"`
	// Admins are the bare JIDs that may run the admin commands (XEP-0133)
	// and receive the server's notices.
	Admins []string `toml:"admins"`

	Listen struct {
		C2S          string `toml:"c2s"`            // "" disables
		C2SDirectTLS string `toml:"c2s_direct_tls"` // "" disables (XEP-0368)
		Admin        string `toml:"admin"`          // metrics, health, profiler; loopback only; "" disables
		// AdminAllowRemote lets admin listen on a non-loopback address
		// (behind a firewall or a proxy that authenticates).
		AdminAllowRemote bool   `toml:"admin_allow_remote"`
		HTTPS            string `toml:"https"`     // HTTPS for HTTP file upload; "" disables
		S2S              string `toml:"s2s"`       // server-to-server (federation); "" disables
		HTTPACME         string `toml:"http_acme"` // plain HTTP for ACME HTTP-01 challenges; "" disables
		// Component is where external components (XEP-0114) connect;
		// "" disables. Only opened when [[components]] lists one.
		Component string `toml:"component"`
		// HTTP is plain HTTP for WebSocket and BOSH behind a reverse
		// proxy that terminates TLS; "" disables.
		HTTP string `toml:"http"`
	} `toml:"listen"`

	HTTP HTTP `toml:"http"` // web clients: WebSocket, BOSH (see http.go)

	// Components are the external components (XEP-0114) allowed to
	// connect, one [[components]] table each.
	Components []Component `toml:"components"`

	// TURN is the STUN/TURN server announced with XEP-0215; "" host: none.
	TURN struct {
		Host   string   `toml:"host"`
		Port   int      `toml:"port"`
		Secret string   `toml:"secret"` // coturn's static-auth-secret (use-auth-secret)
		TTL    Duration `toml:"ttl"`    // how long credentials stay valid
		// Transports lists what is announced, each "type/transport" with
		// an optional ":port" overriding port: "stun/udp", "stun/tcp",
		// "turn/udp", "turn/tcp", "turns/tcp".
		Transports []string `toml:"transports"`
	} `toml:"turn"`

	S2S struct {
		// Routes maps a remote domain to "host:port", overriding DNS
		// (private federations, tests).
		Routes                   map[string]string `toml:"routes"`
		RequireEncryption        bool              `toml:"require_encryption"`
		RequireValidCertificates bool              `toml:"require_valid_certificates"`
		CAFile                   string            `toml:"ca_file"` // extra trusted roots for peer certificates
		IdleTimeout              Duration          `toml:"idle_timeout"`
		MaxStreams               int               `toml:"max_streams"`
	} `toml:"s2s"`

	TLS struct {
		Cert string `toml:"cert"` // "" = self-signed certificate kept in data_dir
		Key  string `toml:"key"`
		// Dir holds a certificate per domain (DOMAIN.crt and DOMAIN.key,
		// or certbot's DOMAIN/fullchain.pem and DOMAIN/privkey.pem),
		// picked by the name a peer asks for; cert/key stay the default.
		Dir             string `toml:"dir"`
		RequireStartTLS bool   `toml:"require_starttls"`
		// ACME obtains and renews certificates for every host and service
		// domain from the CA at ACMECA (TLS-ALPN-01 on listen.https,
		// HTTP-01 on listen.http_acme), kept in data_dir/acme.
		ACME      bool   `toml:"acme"`
		ACMEEmail string `toml:"acme_email"`
		ACMECA    string `toml:"acme_ca"`
		// ACMECARoot is a PEM file of roots to trust for the CA's own
		// HTTPS (a private CA); "" = the system's.
		ACMECARoot       string   `toml:"acme_ca_root"`
		ACMERenewalCheck Duration `toml:"acme_renewal_check"` // how often certificates are checked for renewal
	} `toml:"tls"`

	// Cluster joins this process to other parley nodes serving the same
	// domains: sessions and stanzas move between them over NATS, state
	// stays in the shared PostgreSQL database.
	Cluster struct {
		NATSURL string `toml:"nats_url"` // "" = a single node
		Node    string `toml:"node"`     // unique per node; default the host name
	} `toml:"cluster"`

	Storage struct {
		Driver string `toml:"driver"` // "sqlite" or "postgres"
		DSN    string `toml:"dsn"`    // sqlite: file path (filled in by Validate); postgres: connection string
		// KeyFile holds the server-wide key that seals vCards, PEP
		// items, rooms and upload records; "" means server.secret in
		// data_dir (see KeyPath). Kept apart from data_dir, a copy of
		// the data directory alone does not unseal them.
		KeyFile string `toml:"key_file"`
	} `toml:"storage"`

	Registration struct {
		Open              bool `toml:"open"`                 // XEP-0077 in-band registration
		PerAddressPerHour int  `toml:"per_address_per_hour"` // 0 = no limit
		// Welcome is sent from the host's JID at a new account's first
		// login; "" = none.
		Welcome string `toml:"welcome"`
		// MaxAccounts caps in-band registration: no new account once the
		// server has that many (0 = no cap). Admins may still add.
		MaxAccounts int `toml:"max_accounts"`
		// NotifyAdmins: each account registered in band is announced to
		// the admins.
		NotifyAdmins bool `toml:"notify_admins"`
		// UserInvites lets users create invites (an ad-hoc command).
		UserInvites bool `toml:"user_invites"`
		// ExpireInactive deletes accounts with no login for that long
		// ("never" = keep), after a warning WarnInactive before.
		ExpireInactive Retention `toml:"expire_inactive"`
		WarnInactive   Retention `toml:"warn_inactive"`
	} `toml:"registration"`

	Limits struct {
		MaxStanzaBytes         int      `toml:"max_stanza_bytes"`
		AuthTimeout            Duration `toml:"auth_timeout"`
		LoginFailuresPerMinute int      `toml:"login_failures_per_minute"`
		// Client connections per source address not yet authenticated;
		// 0 = no limit.
		PreauthConnectionsPerAddress int      `toml:"preauth_connections_per_address"`
		IdlePing                     Duration `toml:"idle_ping"`
		ResumeTimeout                Duration `toml:"resume_timeout"`
		MaxRosterItems               int      `toml:"max_roster_items"`
		MaxOfflineMessages           int      `toml:"max_offline_messages"`
		PEPBytesPerUser              int64    `toml:"pep_bytes_per_user"` // all of a user's stored PEP items; 0 = no limit
	} `toml:"limits"`

	Retention struct {
		Offline Retention `toml:"offline"`
		Archive Retention `toml:"archive"`
		Uploads Retention `toml:"uploads"`
	} `toml:"retention"`

	Upload struct {
		Host               string `toml:"host"`                   // XEP-0363 service domain; "" = no upload service
		Dir                string `toml:"dir"`                    // where files are kept; "" = data_dir/uploads
		MaxFileSize        int64  `toml:"max_file_size"`          // bytes
		QuotaPerUserPerDay int64  `toml:"quota_per_user_per_day"` // bytes in any 24 hours; 0 = no limit
		QuotaTotal         int64  `toml:"quota_total"`            // bytes stored at once; 0 = no limit
		PublicURL          string `toml:"public_url"`             // "" = https://<host>:<port of listen.https>
		// MinRateBytesPerSecond is the slowest a PUT body may arrive
		// (checked over windows of a few seconds); 0 = no limit.
		MinRateBytesPerSecond int64 `toml:"min_rate_bytes_per_second"`
		ConcurrentPerUser     int   `toml:"concurrent_per_user"` // PUTs in progress per user; 0 = no limit
		// ConnectionsPerAddress bounds the open HTTPS connections from
		// one IP address (IPv6: one /64); 0 = no limit.
		ConnectionsPerAddress int `toml:"connections_per_address"`
	} `toml:"upload"`

	MUC struct {
		// Host is the group chat service domain (XEP-0045). "<domain>"
		// stands for each served host; "" turns group chat off.
		Host string `toml:"host"`
		// MaxRooms bounds the rooms of each service, temporary and
		// persistent; 0 = no limit.
		MaxRooms             int `toml:"max_rooms"`
		RoomCreationsPerHour int `toml:"room_creations_per_hour"` // per user; 0 = no limit
	} `toml:"muc"`

	PubSub struct {
		// Host is the publish-subscribe service domain (XEP-0060).
		// "<domain>" stands for each served host; "" turns it off.
		Host string `toml:"host"`
		// MaxNodesPerUser bounds the nodes one user owns on a service;
		// 0 = no limit.
		MaxNodesPerUser int `toml:"max_nodes_per_user"`
		// MaxItemsPerNode is the most items a node keeps (what
		// pubsub#max_items "max" means).
		MaxItemsPerNode int `toml:"max_items_per_node"`
		// MaxItemBytes bounds one item's payload.
		MaxItemBytes int `toml:"max_item_bytes"`
		// MaxBytesPerUser bounds what the items of the nodes one user
		// owns on a service take together; 0 = no limit.
		MaxBytesPerUser int64 `toml:"max_bytes_per_user"`
	} `toml:"pubsub"`

	Privacy struct {
		HideVersion bool `toml:"hide_version"`
		// BlockStrangers drops messages and repeated subscription
		// requests from JIDs not in the recipient's roster; users may
		// turn it off or on for themselves.
		BlockStrangers bool `toml:"block_strangers"`
		// RequireE2EE is "off", "warn" or "enforce" for one-to-one
		// messages with a body and no end-to-end encryption.
		RequireE2EE string `toml:"require_e2ee"`
		// RandomResources replaces the resource every client asks for
		// at bind with a random one, since a resource names the client
		// (and often the device) to everyone who sees a full JID.
		RandomResources bool `toml:"random_resources"`
	} `toml:"privacy"`

	// Contact is the addresses (URIs) published in the server's disco
	// (XEP-0157).
	Contact struct {
		Abuse    []string `toml:"abuse"`
		Admin    []string `toml:"admin"`
		Security []string `toml:"security"`
		Support  []string `toml:"support"`
	} `toml:"contact"`

	Push struct {
		IncludeSender bool `toml:"include_sender"`
		IncludeBody   bool `toml:"include_body"`
	} `toml:"push"`

	Log struct {
		Level string `toml:"level"` // "debug", "info", "warn" or "error"
	} `toml:"log"`
}

// Component is one external component: the domain it serves and the
// secret of its handshake.
type Component struct {
	Domain string `toml:"domain"`
	Secret string `toml:"secret"`
}

// Duration is a time.Duration written in the file as a Go duration string
// such as "60s" or "5m".
type Duration struct{ time.Duration }

var (
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration{}
)

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("must be a duration such as \"60s\" or \"5m\", got %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in the form UnmarshalText accepts, so a
// Config can be encoded back to TOML (e.g. to show the effective settings).
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// Retention is how long the server keeps something: a duration such as
// "168h" or "7d", or "never" for no limit (Keep is then 0).
type Retention struct{ Keep time.Duration }

var (
	_ encoding.TextUnmarshaler = (*Retention)(nil)
	_ encoding.TextMarshaler   = Retention{}
)

func (r *Retention) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "never" {
		r.Keep = 0
		return nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n > 0 {
			r.Keep = time.Duration(n) * 24 * time.Hour
			return nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("must be a duration such as \"7d\" or \"12h\", or \"never\", got %q", b)
	}
	r.Keep = v
	return nil
}

func (r Retention) MarshalText() ([]byte, error) {
	if r.Keep == 0 {
		return []byte("never"), nil
	}
	if r.Keep%(24*time.Hour) == 0 {
		return []byte(strconv.Itoa(int(r.Keep/(24*time.Hour))) + "d"), nil
	}
	return []byte(r.Keep.String()), nil
}

// Default returns the configuration used when no file is given, and the
// base that a file's values are decoded over. It builds fresh slices on
// every call because the TOML decoder reuses a slice's backing array.
func Default() Config {
	var c Config
	c.Hosts = []string{"localhost"}
	c.DataDir = "./parley-data"
	c.Listen.C2S = "127.0.0.1:5222"
	c.Listen.C2SDirectTLS = "127.0.0.1:5223"
	c.Listen.S2S = "127.0.0.1:5269"
	c.Listen.Component = "127.0.0.1:5347"
	c.TURN.Port = 3478
	c.TURN.TTL = Duration{24 * time.Hour}
	c.TURN.Transports = []string{"stun/udp", "turn/udp", "turn/tcp"}
	c.S2S.RequireEncryption = true
	c.S2S.IdleTimeout = Duration{5 * time.Minute}
	c.S2S.MaxStreams = 1000
	c.TLS.RequireStartTLS = true
	c.TLS.ACMECA = "https://acme-v02.api.letsencrypt.org/directory"
	c.TLS.ACMERenewalCheck = Duration{10 * time.Minute}
	c.Storage.Driver = "sqlite"
	c.Registration.PerAddressPerHour = 5
	c.Privacy.RequireE2EE = "off"
	c.Registration.WarnInactive.Keep = 30 * 24 * time.Hour
	c.Limits.MaxStanzaBytes = 262144
	c.Limits.AuthTimeout = Duration{60 * time.Second}
	c.Limits.LoginFailuresPerMinute = 5
	c.Limits.PreauthConnectionsPerAddress = 20
	c.Limits.IdlePing = Duration{10 * time.Minute}
	c.Limits.ResumeTimeout = Duration{5 * time.Minute}
	c.Limits.MaxRosterItems = 1000
	c.Limits.MaxOfflineMessages = 100
	c.Limits.PEPBytesPerUser = 10 << 20
	c.Retention.Offline = Retention{7 * 24 * time.Hour}
	c.Retention.Archive = Retention{7 * 24 * time.Hour}
	c.Retention.Uploads = Retention{7 * 24 * time.Hour}
	c.Upload.MaxFileSize = 100 << 20
	c.Upload.QuotaPerUserPerDay = 1 << 30
	c.Upload.QuotaTotal = 10 << 30
	c.Upload.MinRateBytesPerSecond = 1024
	c.Upload.ConcurrentPerUser = 3
	c.Upload.ConnectionsPerAddress = 20
	c.MUC.Host = "conference.<domain>"
	c.MUC.MaxRooms = 10000
	c.MUC.RoomCreationsPerHour = 30
	c.PubSub.Host = "pubsub.<domain>"
	c.PubSub.MaxNodesPerUser = 100
	c.PubSub.MaxItemsPerNode = 1000
	c.PubSub.MaxItemBytes = 256 << 10
	c.PubSub.MaxBytesPerUser = 10 << 20
	c.Log.Level = "info"
	c.HTTP = defaultHTTP()
	return c
}

// MUCServices lists the group chat service domains, one per served host
// when [muc] host uses "<domain>".
func (c Config) MUCServices() []string { return perHost(c.MUC.Host, c.Hosts) }

// PubSubServices lists the pubsub service domains, one per served host
// when [pubsub] host uses "<domain>".
func (c Config) PubSubServices() []string { return perHost(c.PubSub.Host, c.Hosts) }

// perHost expands a service domain pattern over the hosts.
func perHost(pattern string, hosts []string) []string {
	if pattern == "" {
		return nil
	}
	if !strings.Contains(pattern, "<domain>") {
		return []string{pattern}
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, strings.ReplaceAll(pattern, "<domain>", h))
	}
	return out
}

// KeyPath is the file of the server-wide key: storage.key_file, or
// server.secret in data_dir when that is not set.
func (c Config) KeyPath() string {
	if c.Storage.KeyFile != "" {
		return c.Storage.KeyFile
	}
	return filepath.Join(c.DataDir, "server.secret")
}

// Load reads and validates the file at path. An empty path means no file:
// the defaults, validated (which fills in derived values such as the
// SQLite DSN).
func Load(path string) (Config, error) {
	if path == "" {
		return Parse(nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes data over Default() and validates the result.
func Parse(data []byte) (Config, error) {
	c := Default()
	// Decoding into a Primitive first separates syntax errors (reported by
	// line) from unknown keys and type errors, which are reported by key.
	var doc toml.Primitive
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, &wrapped{fmt.Sprintf("config: line %d: syntax error: %s", pe.Position.Line, pe.Message), err}
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := checkKeys(md.Keys()); err != nil {
		return Config{}, err
	}
	if err := md.PrimitiveDecode(doc, &c); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			return Config{}, &wrapped{fmt.Sprintf("config: line %d: %s: %s", pe.Position.Line, pe.LastKey, pe.Message), err}
		}
		// The decoder's type-mismatch errors already name the key and the
		// expected type ("last key ...: incompatible types: ...").
		return Config{}, fmt.Errorf("config: %w", err)
	}
	// checkKeys matches keys exactly; Undecoded is the decoder's own view and
	// guards against any key checkKeys might consider known but the decoder
	// did not store.
	if err := unknownKeysError(md.Undecoded()); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// wrapped rewords an error for the admin while keeping the original
// reachable through errors.As.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// checkKeys rejects keys that are not exactly a Config key. The decoder
// itself matches keys case-insensitively, so "Hosts" would otherwise be
// accepted although TOML keys are case-sensitive.
func checkKeys(found []toml.Key) error {
	known := make(map[string]bool)
	maps := mapKeys()
	for _, k := range keys() {
		known[k] = true
	}
	var unknown []toml.Key
	for _, k := range found {
		// The entries of a table decoded into a map ([s2s] routes) are
		// data, not keys: any name is allowed there.
		if !known[k.String()] && !underMap(k, maps) {
			unknown = append(unknown, k)
		}
	}
	return unknownKeysError(unknown)
}

// unknownKeysError reports each unknown key once, skipping keys inside an
// unknown table since naming the table says it all.
func unknownKeysError(unknown []toml.Key) error {
	var errs []error
	var reported []string
	for _, k := range unknown {
		name := k.String()
		inside := false
		for _, r := range reported {
			if strings.HasPrefix(name, r+".") {
				inside = true
				break
			}
		}
		if inside {
			continue
		}
		reported = append(reported, name)
		errs = append(errs, fmt.Errorf("config: unknown key %q", name))
	}
	return errors.Join(errs...)
}

// keys returns every key Config understands, in dotted form ("listen.c2s"),
// tables included ("listen"). It is derived from the struct tags so the
// list cannot drift from the struct.
func keys() []string {
	var out []string
	walkKeys(reflect.TypeFor[Config](), "", &out)
	return out
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// mapKeys returns the keys whose value is a table of arbitrary names
// (a Go map, such as [s2s] routes).
func mapKeys() map[string]bool {
	out := make(map[string]bool)
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case tag == "" || tag == "-":
			case f.Type.Kind() == reflect.Map:
				out[prefix+tag] = true
			case f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler):
				walk(f.Type, prefix+tag+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// underMap reports whether k names an entry inside a map-valued table.
func underMap(k toml.Key, maps map[string]bool) bool {
	for i := 1; i < len(k); i++ {
		if maps[toml.Key(k[:i]).String()] {
			return true
		}
	}
	return false
}

func walkKeys(t reflect.Type, prefix string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		*out = append(*out, key)
		// Types decoded from text (Duration) are single values, not tables.
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
			walkKeys(f.Type, key+".", out)
		}
		// An array of tables ([[components]]) has the keys of its element.
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			walkKeys(f.Type.Elem(), key+".", out)
		}
	}
}

// Domains returns every name that needs a certificate: the served hosts
// and the service domains (group chat, upload).
func (c Config) Domains() []string {
	out := c.AllHosts()
	out = append(out, c.MUCServices()...)
	out = append(out, c.PubSubServices()...)
	if c.Upload.Host != "" {
		out = append(out, c.Upload.Host)
	}
	return out
}

// AllHosts returns every served domain: Hosts, then AnonymousHosts.
func (c Config) AllHosts() []string {
	out := make([]string, 0, len(c.Hosts)+len(c.AnonymousHosts))
	out = append(out, c.Hosts...)
	return append(out, c.AnonymousHosts...)
}

// IsAnonymousHost reports whether domain is one of AnonymousHosts. domain
// must be in normalised form (as jid.JID.Domain returns); Validate stores
// the configured hosts normalised, so a plain comparison suffices.
func (c Config) IsAnonymousHost(domain string) bool {
	return slices.Contains(c.AnonymousHosts, domain)
}

// UploadDir is where uploaded files are kept.
func (c *Config) UploadDir() string {
	if c.Upload.Dir != "" {
		return c.Upload.Dir
	}
	return filepath.Join(c.DataDir, "uploads")
}
