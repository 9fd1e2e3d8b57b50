package entitytime

import (
	"context"
	"testing"
	"time"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

func TestEntityTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		name    string
		now     time.Time
		typ     string
		to      string
		want    string
		wantErr string
	}{
		{name: "utc clock", now: time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC), typ: "get", to: "example.org",
			want: `<time xmlns="urn:xmpp:time"><tzo>+00:00</tzo><utc>2026-03-04T05:06:07.000000Z</utc></time>`},
		{name: "local zone is converted and hidden", now: time.Date(2026, 1, 1, 0, 30, 0, 0, paris), typ: "get", to: "example.org",
			want: `<time xmlns="urn:xmpp:time"><tzo>+00:00</tzo><utc>2025-12-31T23:30:00.000000Z</utc></time>`},
		{name: "set is not handled", now: time.Unix(0, 0), typ: "set", to: "example.org", wantErr: "service-unavailable"},
		{name: "not answered for an account", now: time.Unix(0, 0), typ: "get", to: "alice@example.org", wantErr: "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := modtest.NewHost("example.org")
			h.AddUser("alice@example.org")
			m := New()
			m.now = func() time.Time { return tt.now }
			if err := m.Start(h); err != nil {
				t.Fatal(err)
			}
			res, err := h.IQ(context.Background(), "alice@example.org/phone", tt.to, tt.typ, xmlstream.New(NS, "time"))
			if tt.wantErr != "" {
				if se := stanza.AsError(err); err == nil || se.Condition != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.String(); got != tt.want {
				t.Errorf("result\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEntityTimeFeatures(t *testing.T) {
	h := modtest.NewHost("example.org")
	if err := New().Start(h); err != nil {
		t.Fatal(err)
	}
	if got := h.Features(module.Server); len(got) != 1 || got[0] != NS {
		t.Errorf("server features = %v, want [%s]", got, NS)
	}
	if got := h.Features(module.Account); len(got) != 0 {
		t.Errorf("account features = %v, want none", got)
	}
}
