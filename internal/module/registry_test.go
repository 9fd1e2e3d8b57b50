package module

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/xmlstream"
)

func TestHandleHTTP(t *testing.T) {
	r := NewRegistry()
	if r.HTTPHandler() != nil {
		t.Fatal("a handler without registrations")
	}
	text := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, s) })
	}
	r.HandleHTTP("/upload/", text("upload"))
	r.HandleHTTP("/other/", text("other"))
	for _, tt := range []struct{ path, want string }{
		{"/upload/x", "upload"},
		{"/other/y", "other"},
		{"/nothing", "404 page not found\n"},
	} {
		w := httptest.NewRecorder()
		r.HTTPHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if got := w.Body.String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, got, tt.want)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a second handler for a pattern did not panic")
			}
		}()
		r.HandleHTTP("/upload/", text("again"))
	}()
	if r.HTTPSAddr() != nil {
		t.Error("an address before SetHTTPSAddr")
	}
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5443}
	r.SetHTTPSAddr(a)
	if r.HTTPSAddr() != a {
		t.Errorf("HTTPSAddr = %v", r.HTTPSAddr())
	}
}

func TestOutboundPresenceHooks(t *testing.T) {
	r := NewRegistry()
	el := xmlstream.New("jabber:client", "presence", "from", "a@x.org/r")
	r.RunOutboundPresence(context.Background(), jid.MustParse("a@x.org/r"), el) // none registered
	if el.FirstElement() != nil {
		t.Fatalf("changed without hooks: %s", el)
	}
	var order []string
	for _, name := range []string{"first", "second"} {
		r.OnOutboundPresence(func(_ context.Context, from jid.JID, el *xmlstream.Element) {
			if from.String() != "a@x.org/r" {
				t.Errorf("%s hook: from %s", name, from)
			}
			order = append(order, name)
			el.AddChild(xmlstream.New("urn:test", name))
		})
	}
	r.RunOutboundPresence(context.Background(), jid.MustParse("a@x.org/r"), el)
	if len(order) != 2 || order[0] != "first" || order[1] != "second" {
		t.Errorf("hooks ran as %v", order)
	}
	if el.Child("urn:test", "first") == nil || el.Child("urn:test", "second") == nil {
		t.Errorf("hooks' changes lost: %s", el)
	}
}

func TestComponentSubdomains(t *testing.T) {
	r := NewRegistry()
	var got []string
	h := func(name string) ComponentHandler {
		return func(context.Context, jid.JID, jid.JID, *xmlstream.Element) { got = append(got, name) }
	}
	r.AddComponent(Component{Domain: "muc.example.org"}, h("muc"))
	r.AddComponent(Component{Domain: "irc.example.org", Subdomains: true}, h("irc"))
	r.AddComponent(Component{Domain: "own.irc.example.org"}, h("own"))
	for _, d := range []string{"muc.example.org", "irc.example.org", "a.b.irc.example.org", "own.irc.example.org", "x.own.irc.example.org"} {
		c := r.Component(d)
		if c == nil {
			t.Fatalf("no handler for %s", d)
		}
		c(context.Background(), jid.JID{}, jid.JID{}, nil)
	}
	want := "muc irc irc own irc"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("handlers %q, want %q", s, want)
	}
	for _, d := range []string{"x.muc.example.org", "example.org", "irc.example.org.evil", "evilirc.example.org"} {
		if r.Component(d) != nil {
			t.Errorf("%s has a handler", d)
		}
	}
}
