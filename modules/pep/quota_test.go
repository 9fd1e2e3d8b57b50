package pep

import (
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

func TestQuotaOnPublish(t *testing.T) {
	e := newEnv(t)
	text := strings.Repeat("x", 300)
	// Items are stored sealed (issue 16): the quota counts that.
	size := int64(len(item("1", text).FirstElement().Append(nil, ""))) + pubsub.SealOverhead
	e.m.WithQuota(func() int64 { return 3*size + 10 })
	used := func() int64 {
		t.Helper()
		n, err := e.h.Storage().PubSub().PayloadBytes(e.ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ten := []string{"pubsub#max_items", "10"}
	for _, id := range []string{"1", "2", "3"} {
		e.mustPublish(alice, "big", item(id, text), ten...)
	}
	_, err := e.publish(alice, "big", item("4", text), ten...)
	se := stanza.AsError(err)
	if se.Condition != "resource-constraint" || se.Type != stanza.Cancel || !strings.Contains(se.Text, "quota") {
		t.Fatalf("publish past the quota: %v, want cancel/resource-constraint saying quota", err)
	}
	if used() != 3*size {
		t.Errorf("the refused item was stored: %d bytes in use", used())
	}
	// A new node is refused as well, and is not left behind.
	if _, err := e.publish(alice, "other", item("1", text)); condition(err) != "resource-constraint" {
		t.Fatalf("publish to a new node past the quota: %v", err)
	}
	if _, err := e.h.Storage().PubSub().Node(e.ctx, alice, "other"); err == nil {
		t.Error("a refused publish created its node")
	}
	// An item that is only sent, never stored, takes no room.
	e.mustPublish(alice, "transient", item("1", text), "pubsub#persist_items", "false")
	// Replacing an item frees what it replaces.
	e.mustPublish(alice, "big", item("2", text), ten...)
	// Another user has a quota of their own.
	e.mustPublish(bob, "big", item("1", text), ten...)
	// Other modules' publishes (avatar conversion, bookmarks) count too.
	err = e.m.PublishItem(e.ctx, jid.MustParse(alice), "urn:xmpp:avatar:data", "h", item("", text).FirstElement())
	if condition(err) != "resource-constraint" {
		t.Fatalf("PublishItem past the quota: %v", err)
	}
	// Retracting makes room.
	ret := xmlstream.New(NS, "retract", "node", "big").AddChild(xmlstream.New(NS, "item", "id", "3"))
	if _, err := e.iq(alice, "", "set", xmlstream.New(NS, "pubsub").AddChild(ret)); err != nil {
		t.Fatal(err)
	}
	e.mustPublish(alice, "one", item("a", text)) // max_items 1 by default
	// In a node that keeps one item, a new item pushes the old one out:
	// that fits even at the quota.
	e.mustPublish(alice, "one", item("b", text))
	if _, err := e.publish(alice, "one", item("c", text+"more than freed")); condition(err) != "resource-constraint" {
		t.Errorf("a larger replacement past the quota: %v", err)
	}
	if n := used(); n > 3*size+10 {
		t.Errorf("%d bytes in use, past the quota of %d", n, 3*size+10)
	}
}

func TestNoQuota(t *testing.T) {
	e := newEnv(t)
	text := strings.Repeat("x", 5000)
	for _, id := range []string{"1", "2", "3", "4"} {
		e.mustPublish(alice, "big", item(id, text), "pubsub#max_items", "10")
	}
}
