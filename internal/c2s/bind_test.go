package c2s

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"parley/internal/module"
	"parley/internal/router"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// bindAs binds a resource on a conn configured by cfg and returns the
// full JID the server answered with.
func bindAs(t *testing.T, cfg *Config, asked string) string {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	cfg.MaxOutput, cfg.Log = 1<<20, slog.New(slog.DiscardHandler)
	cfg.Router = router.New([]string{"localhost"}, module.NewRegistry(), nil, cfg.Log)
	c := newConn(cfg, server, false, func() {})
	defer c.cancel()
	c.out = stream.NewOutQueue(server, cfg.MaxOutput, time.Second)
	c.authUser, c.domain = "alice", "localhost"
	req := "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
	if asked != "" {
		req += "<resource>" + asked + "</resource>"
	}
	el, err := xmlstream.ParseElement([]byte(req+"</bind></iq>"), "")
	if err != nil {
		t.Fatal(err)
	}
	answer := make(chan string, 1)
	go func() {
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), "</iq>") {
			n, err := client.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		answer <- got.String()
	}()
	if bound, err := c.handlePreBind(el); !bound || err != nil {
		t.Fatalf("bind: %v, %v", bound, err)
	}
	got := <-answer
	_, after, ok := strings.Cut(got, "<jid>")
	j, _, ok2 := strings.Cut(after, "</jid>")
	if !ok || !ok2 {
		t.Fatalf("no jid in the bind answer %q", got)
	}
	return j
}

// TestRandomResources: with random_resources the requested resource is
// replaced, differently each time; without it the request is kept.
func TestRandomResources(t *testing.T) {
	if got := bindAs(t, &Config{}, "Conversations.laptop"); got != "alice@localhost/Conversations.laptop" {
		t.Fatalf("without random_resources: bound %q", got)
	}
	seen := map[string]bool{}
	for range 3 {
		got := bindAs(t, &Config{RandomResources: true}, "Conversations.laptop")
		res, ok := strings.CutPrefix(got, "alice@localhost/")
		if !ok || res == "" || strings.Contains(res, "Conversations") || seen[res] {
			t.Fatalf("with random_resources: bound %q (seen %v)", got, seen)
		}
		seen[res] = true
	}
}
