package blocking

import (
	"bytes"
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// TestSealedBlocklistHoldsWhileAway: a block list sealed under alice's
// key stores no blocked JID in clear and is still enforced, by blind
// index, once her key is gone; her next login shows it again.
func TestSealedBlocklistHoldsWhileAway(t *testing.T) {
	ctx := context.Background()
	const mallory = "mallory-marker@evil.example"
	h := modtest.NewHost("example.org")
	h.AddUser(alice)
	m := New()
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	h.Unlock(alice)
	h.Connect(ctx, alice+"/phone")
	if _, err := h.IQ(ctx, alice+"/phone", "", "set", parse(t, `<block xmlns="urn:xmpp:blocking"><item jid="`+mallory+`"/><item jid="spam-marker.example"/></block>`)); err != nil {
		t.Fatal(err)
	}
	h.Lock(alice)
	m.cache.invalidate(jid.MustParse(alice)) // as after a restart: read from storage
	for _, ns := range []string{kvNS, kvNS + "#sealed"} {
		entries, err := h.Store().KV().List(ctx, alice, ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for _, marker := range []string{"mallory-marker", "spam-marker"} {
				if bytes.Contains([]byte(e.Key), []byte(marker)) || bytes.Contains(e.Value, []byte(marker)) {
					t.Errorf("%q is stored in clear in %s", marker, ns)
				}
			}
		}
	}
	msg := xmlstream.New(stanza.NSClient, "message", "type", "chat")
	for from, blocked := range map[string]bool{
		mallory + "/laptop":           true,
		"someone@spam-marker.example": true,
		"x@sub.spam-marker.example":   true,
		"friend@good.example":         false,
	} {
		stop, _ := h.Filter(ctx, jid.MustParse(from), jid.MustParse(alice), msg)
		if stop != blocked {
			t.Errorf("while alice is away, a message from %s: stopped %v, want %v", from, stop, blocked)
		}
	}
	if _, err := m.Blocked(ctx, jid.MustParse(alice)); err == nil {
		t.Error("the block list was read as a list while alice is away")
	}
	h.Unlock(alice)
	got, err := m.Blocked(ctx, jid.MustParse(alice))
	if err != nil || len(got) != 2 || got[0] != mallory {
		t.Errorf("block list after alice's return = %v, %v", got, err)
	}
}
