package pep

import (
	"bytes"
	"strings"
	"testing"

	"parley/internal/storage"
)

// TestItemsAndConfigSealed: what PEP stores is sealed under the server's
// key (issue 16), bound to its place; rows stored in clear before keep
// being served.
func TestItemsAndConfigSealed(t *testing.T) {
	e := newEnv(t)
	e.mustPublish(alice, "urn:xmpp:microblog:0", item("post1", "SECRET-MARKER"), fieldAccessModel, "presence")
	raw := e.h.Storage().PubSub()
	its, err := raw.Items(e.ctx, alice, "urn:xmpp:microblog:0", storage.PubSubQuery{})
	if err != nil || len(its) != 1 {
		t.Fatalf("stored items: %v, %v", its, err)
	}
	if bytes.Contains(its[0].Payload, []byte("SECRET-MARKER")) || bytes.Contains(its[0].Payload, []byte("urn:test")) {
		t.Errorf("the payload is stored in clear: %q", its[0].Payload)
	}
	n, err := raw.Node(e.ctx, alice, "urn:xmpp:microblog:0")
	if err != nil || bytes.Contains(n.Config, []byte("presence")) {
		t.Errorf("the node configuration is stored in clear: %q, %v", n.Config, err)
	}
	if r, err := e.items(bob, alice, "urn:xmpp:microblog:0", ""); err != nil || !strings.Contains(r.String(), "SECRET-MARKER") {
		t.Fatalf("a contact reading the sealed item: %v, %v", r, err)
	}

	// A sealed payload moved to another item does not open.
	if _, err := raw.Publish(e.ctx, alice, "urn:xmpp:microblog:0", storage.PubSubItem{ID: "moved", Publisher: alice, Payload: its[0].Payload}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.items(bob, alice, "urn:xmpp:microblog:0", "", "moved"); condition(err) != "internal-server-error" {
		t.Errorf("a sealed payload moved to another id: %v, want an internal error", err)
	}

	// A node and an item stored in clear (before sealing) are served.
	if err := raw.CreateNode(e.ctx, alice, storage.PubSubNode{Name: "old", Config: []byte(`{"access_model":"open","max_items":1,"persist_items":true,"send_last_published_item":"never"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Publish(e.ctx, alice, "old", storage.PubSubItem{ID: "1", Publisher: alice, Payload: []byte(`<p xmlns="urn:test">CLEAR</p>`)}, 0); err != nil {
		t.Fatal(err)
	}
	if r, err := e.items(carol, alice, "old", ""); err != nil || !strings.Contains(r.String(), "CLEAR") {
		t.Fatalf("an item stored in clear: %v, %v", r, err)
	}
}
