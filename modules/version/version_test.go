package version

import (
	"context"
	"testing"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name    string
		version string
		hide    bool
		typ     string
		to      string
		want    string // serialised result payload
		wantErr string // stanza error condition
	}{
		{name: "shown", version: "1.2.3", typ: "get", to: "example.org",
			want: `<query xmlns="jabber:iq:version"><name>parley</name><version>1.2.3</version></query>`},
		{name: "hidden", version: "1.2.3", hide: true, typ: "get", to: "example.org",
			want: `<query xmlns="jabber:iq:version"><name>parley</name><version/></query>`},
		{name: "set is not handled", version: "1.2.3", typ: "set", to: "example.org", wantErr: "service-unavailable"},
		{name: "not answered for an account", version: "1.2.3", typ: "get", to: "", wantErr: "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := modtest.NewHost("example.org")
			h.AddUser("alice@example.org")
			if err := New(tt.version, tt.hide).Start(h); err != nil {
				t.Fatal(err)
			}
			res, err := h.IQ(context.Background(), "alice@example.org/phone", tt.to, tt.typ, xmlstream.New(NS, "query"))
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

func TestVersionFeatures(t *testing.T) {
	h := modtest.NewHost("example.org")
	if err := New("1", false).Start(h); err != nil {
		t.Fatal(err)
	}
	if got := h.Features(module.Server); len(got) != 1 || got[0] != NS {
		t.Errorf("server features = %v, want [%s]", got, NS)
	}
	if got := h.Features(module.Account); len(got) != 0 {
		t.Errorf("account features = %v, want none", got)
	}
}
