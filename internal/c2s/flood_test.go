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
		t.Fatal("plain presence refused because of messages")
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

// Directed presence and IQs have limits too, generous enough for a
// client's login: fifty rooms joined, hundreds of avatars fetched.
func TestFloodPresenceAndIQ(t *testing.T) {
	var f flood
	now := time.Unix(1000, 0)
	join := xmlstream.New("jabber:client", "presence", "to", "room@conference.b/nick")
	get := xmlstream.New("jabber:client", "iq", "type", "get", "to", "c@b")
	answer := xmlstream.New("jabber:client", "iq", "type", "result", "to", "c@b")
	for i := range 50 {
		if f.check(join, now) != nil {
			t.Fatalf("joining room %d refused", i)
		}
	}
	for i := range 500 {
		if f.check(get, now) != nil {
			t.Fatalf("IQ %d of a login refused", i)
		}
	}
	refused := map[string]int{}
	for range 10000 {
		for _, el := range []*xmlstream.Element{join, get} {
			if se := f.check(el, now); se != nil {
				if se.Condition != "policy-violation" || se.Type != "wait" {
					t.Fatalf("flood refused with %v", se)
				}
				refused[el.Name.Local]++
			}
		}
	}
	if refused["presence"] < 9000 || refused["iq"] < 9000 {
		t.Fatalf("a flood of 10,000 got through: refused %v", refused)
	}
	// Answering others' requests has its own budget.
	if f.check(answer, now) != nil {
		t.Fatal("an IQ answer refused because of requests")
	}
}
