package router

import (
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/xmlstream"
)

// IQ results and errors addressed to the server or an account reach the
// IQ result handlers in order until one takes them, and are never bounced.
func TestIQResultsGoToHandlers(t *testing.T) {
	tests := []struct {
		name, typ, to string
		wantSeen      []string // handlers that saw it
	}{
		{"result to the domain, taken by the first", "result", "example.org", []string{"first"}},
		{"error to an account, passed on", "error", "alice@example.org", []string{"first", "second"}},
		{"result to an account", "result", "alice@example.org", []string{"first", "second"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, reg := newRouter(t)
			var seen []string
			reg.OnIQResult(func(_ context.Context, from, to jid.JID, el *xmlstream.Element) bool {
				seen = append(seen, "first")
				if from.String() != "bob@example.org/pc" || to.String() != tt.to {
					t.Errorf("handler got from %s to %s", from, to)
				}
				return el.Attr("id") == "mine" && to.IsDomain()
			})
			reg.OnIQResult(func(context.Context, jid.JID, jid.JID, *xmlstream.Element) bool {
				seen = append(seen, "second")
				return false
			})
			bob := newSession("bob@example.org/pc")
			r.Bind(context.Background(), bob)
			r.Route(context.Background(), xmlstream.New("jabber:client", "iq", "type", tt.typ, "id", "mine", "from", "bob@example.org/pc", "to", tt.to))
			if len(seen) != len(tt.wantSeen) {
				t.Fatalf("handlers saw %v, want %v", seen, tt.wantSeen)
			}
			for i := range seen {
				if seen[i] != tt.wantSeen[i] {
					t.Errorf("handlers saw %v, want %v", seen, tt.wantSeen)
				}
			}
			if got := bob.take(); len(got) != 0 {
				t.Errorf("the sender got %v", got)
			}
		})
	}
}
