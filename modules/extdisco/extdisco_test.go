package extdisco

import (
	"context"
	"slices"
	"testing"
	"time"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

func TestCredentialsMatchTheTURNRESTAPI(t *testing.T) {
	// The password as Python's hmac module computes it for coturn.
	user, pass := Credentials("north", "alice", time.Unix(1700000000, 0))
	if user != "1700000000:alice" || pass != "Cd/49soE35ICqcJF/bCTn8Z4OyE=" {
		t.Fatalf("got %s / %s", user, pass)
	}
}

func start(t *testing.T) (*modtest.Host, *Module) {
	t.Helper()
	h := modtest.NewHost("example.org")
	h.AddUser("alice@example.org")
	m := New(Options{Host: "turn.example.org", Secret: "north", TTL: time.Hour, Services: []Service{
		{"stun", "udp", 3478}, {"turn", "udp", 3478}, {"turn", "tcp", 3478}, {"turns", "tcp", 5349},
	}})
	m.now = func() time.Time { return time.Unix(1700000000, 0) }
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	return h, m
}

func TestServices(t *testing.T) {
	h, _ := start(t)
	if !slices.Contains(h.Features(module.Server), NS) {
		t.Fatal("feature not advertised")
	}
	tests := []struct {
		typ  string
		want string
	}{
		{"", `<services xmlns="urn:xmpp:extdisco:2">` +
			`<service type="stun" host="turn.example.org" port="3478" transport="udp"/>` +
			`<service type="turn" host="turn.example.org" port="3478" transport="udp" username="1700003600:alice" password="wjwSXO2ch1B6VaLTLMy2Avn5O9o=" expires="2023-11-14T23:13:20Z" restricted="1"/>` +
			`<service type="turn" host="turn.example.org" port="3478" transport="tcp" username="1700003600:alice" password="wjwSXO2ch1B6VaLTLMy2Avn5O9o=" expires="2023-11-14T23:13:20Z" restricted="1"/>` +
			`<service type="turns" host="turn.example.org" port="5349" transport="tcp" username="1700003600:alice" password="wjwSXO2ch1B6VaLTLMy2Avn5O9o=" expires="2023-11-14T23:13:20Z" restricted="1"/>` +
			`</services>`},
		{"stun", `<services xmlns="urn:xmpp:extdisco:2" type="stun"><service type="stun" host="turn.example.org" port="3478" transport="udp"/></services>`},
		{"ftp", `<services xmlns="urn:xmpp:extdisco:2" type="ftp"/>`},
	}
	for _, tt := range tests {
		q := xmlstream.New(NS, "services")
		if tt.typ != "" {
			q.SetAttr("type", tt.typ)
		}
		res, err := h.IQ(context.Background(), "alice@example.org/phone", "example.org", "get", q)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.String(); got != tt.want {
			t.Errorf("type %q:\n got %s\nwant %s", tt.typ, got, tt.want)
		}
	}
}

func TestCredentialsRequest(t *testing.T) {
	h, _ := start(t)
	ask := func(from, host, typ, port string) (*xmlstream.Element, error) {
		svc := xmlstream.New(NS, "service", "host", host, "type", typ)
		if port != "" {
			svc.SetAttr("port", port)
		}
		return h.IQ(context.Background(), from, "example.org", "get", xmlstream.New(NS, "credentials").AddChild(svc))
	}
	res, err := ask("alice@example.org/phone", "turn.example.org", "turns", "")
	if err != nil {
		t.Fatal(err)
	}
	s := res.Child(NS, "service")
	if s == nil || s.Attr("type") != "turns" || s.Attr("port") != "5349" || s.Attr("username") != "1700003600:alice" || s.Attr("password") == "" {
		t.Fatalf("credentials %s", res)
	}
	for _, c := range []struct{ from, host, typ, port, cond string }{
		{"alice@example.org/phone", "other.example.org", "turn", "", "item-not-found"},
		{"alice@example.org/phone", "turn.example.org", "turn", "9999", "item-not-found"},
		{"mallory@elsewhere.example/x", "turn.example.org", "turn", "", "forbidden"},
		{"example.org", "turn.example.org", "turn", "", "forbidden"},
	} {
		_, err := ask(c.from, c.host, c.typ, c.port)
		if se := stanza.AsError(err); err == nil || se.Condition != c.cond {
			t.Errorf("%+v: error %v, want %s", c, err, c.cond)
		}
	}
	// Services requests are refused to strangers too.
	if _, err := h.IQ(context.Background(), "mallory@elsewhere.example/x", "example.org", "get", xmlstream.New(NS, "services")); stanza.AsError(err).Condition != "forbidden" {
		t.Errorf("services for a stranger: %v", err)
	}
}
