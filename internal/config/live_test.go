package config

import (
	"slices"
	"testing"
)

func TestChangedAndReloadable(t *testing.T) {
	a := Default()
	b := Default()
	b.Log.Level = "debug"
	b.Limits.MaxRosterItems = 5
	b.Listen.C2S = "127.0.0.1:15222"
	b.S2S.Routes = map[string]string{"x.example": "127.0.0.1:5269"}
	got := Changed(a, b)
	want := []string{"listen.c2s", "s2s.routes", "limits.max_roster_items", "log.level"}
	if !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
	for k, live := range map[string]bool{"log.level": true, "limits.max_roster_items": true, "listen.c2s": false, "s2s.routes": false, "log": false,
		"admins": true, "registration.welcome": true, "limits.max_stanza_bytes": true, "upload.quota_total": true, "upload.host": false,
		"muc.max_rooms": true, "muc.host": false, "privacy.require_e2ee": true, "privacy.hide_version": false,
		"hosts": false, "data_dir": false, "storage.driver": false, "listen.https": false} {
		if Reloadable(k) != live {
			t.Errorf("Reloadable(%q) = %v", k, !live)
		}
	}
	l := NewLive(a)
	l.Store(b)
	if l.Level().String() != "DEBUG" {
		t.Errorf("Level after Store = %v", l.Level())
	}
}

func TestAdminAllowRemote(t *testing.T) {
	c, err := Parse([]byte("[listen]\nadmin = \"0.0.0.0:5280\"\nadmin_allow_remote = true\n"))
	if err != nil {
		t.Fatalf("a remote admin address with admin_allow_remote: %v", err)
	}
	if c.Listen.Admin != "0.0.0.0:5280" {
		t.Errorf("admin = %q", c.Listen.Admin)
	}
}
