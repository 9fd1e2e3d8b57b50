package last

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/roster"
)

const (
	alice = "alice@example.org"
	bob   = "bob@example.org"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(t *testing.T) (*modtest.Host, *Module, *clock) {
	t.Helper()
	h := modtest.NewHost("example.org")
	// Contacts come from the roster module, as in the server.
	if err := roster.New(func() int { return 0 }).Start(h); err != nil {
		t.Fatal(err)
	}
	h.AddUser(alice)
	h.AddUser(bob)
	c := &clock{t: t0}
	m := New()
	m.now = c.now
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	return h, m, c
}

func TestLastActivity(t *testing.T) {
	logout := strconv.FormatInt(t0.Add(-time.Hour).Unix(), 10)
	tests := []struct {
		name      string
		sub       string // bob's subscription in alice's roster, "" for no item
		stored    string // alice's stored logout, "" for none
		available bool   // alice has an available session
		bound     bool   // alice has a session that sent no presence
		from, to  string
		typ       string
		advance   time.Duration
		want      string // the 'seconds' attribute
		wantErr   string
	}{
		{name: "server uptime", from: bob + "/b", to: "example.org", typ: "get", advance: 90 * time.Second, want: "90"},
		{name: "server uptime at start", from: bob + "/b", to: "example.org", typ: "get", want: "0"},
		{name: "owner asks, offline", stored: logout, from: alice + "/a", to: alice, typ: "get", want: "3600"},
		{name: "owner asks without to", stored: logout, from: alice + "/a", typ: "get", advance: time.Minute, want: "3660"},
		{name: "subscribed contact (from)", sub: "from", stored: logout, from: bob + "/b", to: alice, typ: "get", want: "3600"},
		{name: "subscribed contact (both)", sub: "both", stored: logout, from: bob + "/b", to: alice, typ: "get", want: "3600"},
		{name: "online user", sub: "both", stored: logout, available: true, from: bob + "/b", to: alice, typ: "get", want: "0"},
		{name: "connected without presence counts as offline", sub: "both", stored: logout, bound: true, from: bob + "/b", to: alice, typ: "get", want: "3600"},
		{name: "contact alice is subscribed to, not from", sub: "to", stored: logout, from: bob + "/b", to: alice, typ: "get", wantErr: "forbidden"},
		{name: "contact without subscription", sub: "none", stored: logout, from: bob + "/b", to: alice, typ: "get", wantErr: "forbidden"},
		{name: "stranger", stored: logout, from: bob + "/b", to: alice, typ: "get", wantErr: "forbidden"},
		{name: "stranger is refused also when online", available: true, from: bob + "/b", to: alice, typ: "get", wantErr: "forbidden"},
		{name: "no logout recorded", sub: "both", from: bob + "/b", to: alice, typ: "get", wantErr: "item-not-found"},
		{name: "damaged record", stored: "yesterday", from: alice + "/a", typ: "get", wantErr: "internal-server-error"},
		{name: "clock went back", stored: strconv.FormatInt(t0.Add(time.Hour).Unix(), 10), from: alice + "/a", typ: "get", want: "0"},
		{name: "unknown account", from: bob + "/b", to: "carol@example.org", typ: "get", wantErr: "service-unavailable"},
		{name: "set", from: alice + "/a", typ: "set", wantErr: "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h, _, c := setup(t)
			st := h.Storage()
			if tt.sub != "" {
				if _, err := st.Roster().Put(ctx, alice, storage.RosterItem{Contact: bob, Subscription: tt.sub}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if tt.stored != "" {
				if err := st.KV().Put(ctx, alice, kvNS, kvKey, []byte(tt.stored)); err != nil {
					t.Fatal(err)
				}
			}
			if tt.available {
				s := h.Connect(ctx, alice+"/phone")
				s.State().SetAvailable(xmlstream.New(stanza.NSClient, "presence"), 0)
			}
			if tt.bound {
				h.Connect(ctx, alice+"/bot")
			}
			c.t = c.t.Add(tt.advance)
			res, err := h.IQ(ctx, tt.from, tt.to, tt.typ, xmlstream.New(NS, "query"))
			if tt.wantErr != "" {
				if se := stanza.AsError(err); err == nil || se.Condition != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Name != (xmlstream.Name{Space: NS, Local: "query"}) || res.Attr("seconds") != tt.want || res.FirstElement() != nil || res.Text() != "" {
				t.Errorf("result %s, want seconds=%s and nothing else", res, tt.want)
			}
		})
	}
}

func TestLogoutIsRecorded(t *testing.T) {
	ctx := context.Background()
	h, _, c := setup(t)
	kv := h.Storage().KV()
	stored := func() string {
		v, err := kv.Get(ctx, alice, kvNS, kvKey)
		if errors.Is(err, storage.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	phone := h.Connect(ctx, alice+"/phone")
	laptop := h.Connect(ctx, alice+"/laptop")

	// Replacing a resource is no logout.
	c.t = t0.Add(10 * time.Second)
	phone2 := h.Connect(ctx, alice+"/phone")
	if !phone.Replaced() || stored() != "" {
		t.Fatalf("replaced session: stored %q, want nothing", stored())
	}
	h.Disconnect(ctx, phone2)
	if got := stored(); got != "" {
		t.Fatalf("one of two sessions ended: stored %q, want nothing", got)
	}
	// The last session ending is the logout, kept to the minute.
	c.t = t0.Add(2*time.Minute + 42*time.Second)
	h.Disconnect(ctx, laptop)
	want := strconv.FormatInt(t0.Add(2*time.Minute).Unix(), 10)
	if got := stored(); got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	c.t = t0.Add(5 * time.Minute)
	res, err := h.IQ(ctx, alice+"/phone", "", "get", xmlstream.New(NS, "query"))
	if err != nil || res.Attr("seconds") != "180" {
		t.Fatalf("query after logout = %v, %v; want 180 seconds", res, err)
	}
	if h.Logs() != "" {
		t.Errorf("unexpected log output: %s", h.Logs())
	}
}

func TestLogoutOfDeletedAccount(t *testing.T) {
	ctx := context.Background()
	h, _, _ := setup(t)
	s := h.Connect(ctx, alice+"/a")
	// An anonymous account is deleted when its session ends, possibly
	// before this module's hook runs: nothing to record, nothing to log.
	if err := h.Storage().Users().Delete(ctx, alice); err != nil {
		t.Fatal(err)
	}
	h.Disconnect(ctx, s)
	if h.Logs() != "" {
		t.Errorf("unexpected log output: %s", h.Logs())
	}
}

func TestLastStorageFailure(t *testing.T) {
	ctx := context.Background()
	broken := errors.New("disk on fire")

	h, _, _ := setup(t)
	h.Storage().FaultyKV().SetFail(broken)
	_, err := h.IQ(ctx, alice+"/a", "", "get", xmlstream.New(NS, "query"))
	if !errors.Is(err, broken) || stanza.AsError(err).Condition != "internal-server-error" {
		t.Fatalf("query: error = %v, want the storage error as internal-server-error", err)
	}
	// A failed write is logged, not lost silently.
	s := h.Connect(ctx, alice+"/a")
	h.Disconnect(ctx, s)
	if h.Logs() == "" {
		t.Error("a failed logout record was not logged")
	}
}

func TestLastFeatures(t *testing.T) {
	h, _, _ := setup(t)
	for _, target := range []module.Target{module.Server, module.Account} {
		if got := h.Features(target); len(got) != 1 || got[0] != NS {
			t.Errorf("features of %v = %v, want [%s]", target, got, NS)
		}
	}
}
