package config

import (
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
)

// Live is the configuration a running server uses. A reload swaps it
// whole; whatever may change while running reads it when it needs a
// value (through Load, or a getter made from it), so a new value reaches
// every user at once and none needs to be told.
type Live struct{ p atomic.Pointer[Config] }

// NewLive holds c.
func NewLive(c Config) *Live {
	l := &Live{}
	l.p.Store(&c)
	return l
}

// Load returns the configuration in force; callers must not change it.
func (l *Live) Load() *Config { return l.p.Load() }

// Store puts c in force.
func (l *Live) Store(c Config) { l.p.Store(&c) }

// Level is the log level in force, for slog.HandlerOptions: a reload
// changes it for every logger at once.
func (l *Live) Level() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Load().Log.Level)); err != nil {
		return slog.LevelInfo // Validate accepts only levels that parse
	}
	return lv
}

// reloadable lists the keys (or tables) whose new values take effect on a
// reload: each is read through Live where it is used. Every other key is
// read once at start-up and needs a restart.
var reloadable = []string{
	"log.level",
	"admins",
	"registration",
	"retention.offline",
	"retention.archive",
	// Client and server-to-server streams opened after the reload get
	// the new stanza size, client streams the new timeouts and
	// throttles; component, WebSocket and BOSH streams keep the stanza
	// size they started with until a restart.
	"limits",
	"upload.max_file_size",
	"upload.quota_per_user_per_day",
	"upload.quota_total",
	"upload.min_rate_bytes_per_second",
	"upload.concurrent_per_user",
	"upload.connections_per_address",
	"muc.max_rooms",
	"muc.room_creations_per_hour",
	"privacy.block_strangers",
	"privacy.require_e2ee",
}

// Reloadable reports whether key takes effect on reload.
func Reloadable(key string) bool {
	for _, r := range reloadable {
		if key == r || strings.HasPrefix(key, r+".") {
			return true
		}
	}
	return false
}

// Changed lists the keys whose values differ between a and b, in the
// order of the Config struct (a table decoded into a map, such as
// [s2s] routes, counts as one key).
func Changed(a, b Config) []string {
	var out []string
	diffValues(reflect.ValueOf(a), reflect.ValueOf(b), "", &out)
	return out
}

func diffValues(a, b reflect.Value, prefix string, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		fa, fb := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
			diffValues(fa, fb, key+".", out)
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) && !slices.Contains(*out, key) {
			*out = append(*out, key)
		}
	}
}
