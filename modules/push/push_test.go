package push

import (
	"bytes"
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// TestRegistrationsSealed: an enabled registration works while its owner
// is away (a push goes to the app server), yet neither the app server's
// JID nor the node is stored in clear; disable removes it.
func TestRegistrationsSealed(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("x.org")
	h.AddUser("alice@x.org")
	m := New(Options{})
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	phone := h.Connect(ctx, "alice@x.org/phone")
	enable := xmlstream.New(NS, "enable", "jid", "push.marker-app.example", "node", "node-marker-42")
	if _, err := h.IQ(ctx, "alice@x.org/phone", "", "set", enable); err != nil {
		t.Fatal(err)
	}
	h.Disconnect(ctx, phone)

	for _, ns := range []string{NS, NS + "#sealed"} {
		entries, err := h.Store().KV().List(ctx, "alice@x.org", ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for _, marker := range []string{"marker-app", "node-marker-42"} {
				if bytes.Contains([]byte(e.Key), []byte(marker)) || bytes.Contains(e.Value, []byte(marker)) {
					t.Errorf("namespace %s stores %q in clear: %q", ns, marker, e.Key)
				}
			}
		}
	}

	// A fresh module (a restart) reads the sealed registration and pushes.
	h = h.Restart()
	m2 := New(Options{})
	if err := m2.Start(h); err != nil {
		t.Fatal(err)
	}
	msg := xmlstream.New(stanza.NSClient, "message", "type", "chat", "to", "alice@x.org").AddChild(xmlstream.New(stanza.NSClient, "body").AddText("hi"))
	m2.notify(ctx, module.MessageEvent{From: jid.MustParse("bob@y.org/b"), To: jid.MustParse("alice@x.org"), Stanza: msg})
	pushed := h.TakeDelivered()
	if len(pushed) != 1 || pushed[0].Attr("to") != "push.marker-app.example" {
		t.Fatalf("pushed %v, want one notification to the app server", pushed)
	}

	disable := xmlstream.New(NS, "disable", "jid", "push.marker-app.example")
	if _, err := h.IQ(ctx, "alice@x.org/phone", "", "set", disable); err != nil {
		t.Fatal(err)
	}
	m2.notify(ctx, module.MessageEvent{From: jid.MustParse("bob@y.org/b"), To: jid.MustParse("alice@x.org"), Stanza: msg})
	if pushed := h.TakeDelivered(); len(pushed) != 0 {
		t.Errorf("pushed %d after disable", len(pushed))
	}
}

// TestClearRegistrationsStillWork: a registration stored in clear by an
// earlier version still pushes, and the owner's next login seals it.
func TestClearRegistrationsStillWork(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("x.org")
	h.AddUser("alice@x.org")
	if err := h.Store().KV().Put(ctx, "alice@x.org", NS, key("push.old.example", "n1"), []byte(`{"jid":"push.old.example","node":"n1"}`)); err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	msg := xmlstream.New(stanza.NSClient, "message", "type", "chat", "to", "alice@x.org").AddChild(xmlstream.New(stanza.NSClient, "body").AddText("hi"))
	m.notify(ctx, module.MessageEvent{From: jid.MustParse("bob@y.org/b"), To: jid.MustParse("alice@x.org"), Stanza: msg})
	if pushed := h.TakeDelivered(); len(pushed) != 1 || pushed[0].Attr("to") != "push.old.example" {
		t.Fatalf("pushed %v", pushed)
	}
	h.Unlock("alice@x.org")
	if err := m.kv.Reseal(ctx, "alice@x.org"); err != nil {
		t.Fatal(err)
	}
	if clear, _ := h.Store().KV().List(ctx, "alice@x.org", NS); len(clear) != 0 {
		t.Errorf("%d registrations still in clear after the login", len(clear))
	}
	m.notify(ctx, module.MessageEvent{From: jid.MustParse("bob@y.org/b"), To: jid.MustParse("alice@x.org"), Stanza: msg})
	if pushed := h.TakeDelivered(); len(pushed) != 1 {
		t.Errorf("pushed %d after sealing, want 1", len(pushed))
	}
}
