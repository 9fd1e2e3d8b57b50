package c2s

import (
	"testing"
	"time"

	"parley/internal/xmlstream"
)

func TestFlood(t *testing.T) {
	var f flood
	now := time.Unix(1000, 0)
	msg := xmlstream.New("jabber:client", "message", "to", "a@b")
	for i := range messageBurst {
		if f.check(msg, now) != nil {
			t.Fatalf("message %d within the burst refused", i)
		}
	}
	if se := f.check(msg, now); se == nil || se.Condition != "policy-violation" {
		t.Fatalf("message over the burst: %v", se)
	}
	// Other kinds have their own budget.
	sub := xmlstream.New("jabber:client", "presence", "to", "a@b", "type", "subscribe")
	if f.check(sub, now) != nil {
		t.Fatal("a subscription was refused because of messages")
	}
	if f.check(xmlstream.New("jabber:client", "presence"), now) != nil {
		t.Fatal("plain presence limited")
	}
	now = now.Add(time.Second)
	for i := range int(messageRate) {
		if f.check(msg, now) != nil {
			t.Fatalf("message %d after a second refused", i)
		}
	}
	if f.check(msg, now) == nil {
		t.Fatal("more than the rate came back in a second")
	}
	for range subscriptionBurst - 1 {
		f.check(sub, now)
	}
	if f.check(sub, now) == nil {
		t.Fatal("subscriptions over their burst allowed")
	}
}
