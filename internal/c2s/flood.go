package c2s

import (
	"time"

	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// Flood limits per session, for every kind of stanza. They are far above
// what a person or a busy client sends (a group of phones syncing is tens
// per second at most) and stop a script from pushing thousands of
// stanzas through one session. The bursts cover a client's login: joining
// fifty rooms is fifty directed presences, and fetching the avatars,
// vCards and capabilities of a few hundred contacts and occupants is a
// few hundred IQs, after which the sustained rate lets the rest through.
const (
	messageRate       = 50.0 // per second, sustained
	messageBurst      = 200
	subscriptionRate  = 1.0 / 6 // ten a minute
	subscriptionBurst = 20
	presenceRate      = 20.0 // broadcast and directed, probes
	presenceBurst     = 300
	iqRate            = 60.0 // requests; answers have a budget of their own
	iqBurst           = 600
)

// bucket is a token bucket owned by one connection's goroutine.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.at.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// flood is the per-session flood state.
type flood struct {
	messages, subscriptions, presences, requests, answers bucket
}

// check returns the error for a stanza over its kind's limit, nil when it
// may pass.
func (f *flood) check(el *xmlstream.Element, now time.Time) *stanza.Error {
	switch el.Name.Local {
	case "message":
		if !f.messages.take(now, messageRate, messageBurst) {
			return &stanza.Error{Type: stanza.Wait, Condition: "policy-violation", Text: "too many messages; slow down"}
		}
	case "presence":
		switch el.Attr("type") {
		case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
			if !f.subscriptions.take(now, subscriptionRate, subscriptionBurst) {
				return &stanza.Error{Type: stanza.Wait, Condition: "policy-violation", Text: "too many subscription requests; slow down"}
			}
		default:
			if !f.presences.take(now, presenceRate, presenceBurst) {
				return &stanza.Error{Type: stanza.Wait, Condition: "policy-violation", Text: "too many presence stanzas; slow down"}
			}
		}
	case "iq":
		b := &f.requests
		if t := el.Attr("type"); t == "result" || t == "error" {
			b = &f.answers
		}
		if !b.take(now, iqRate, iqBurst) {
			return &stanza.Error{Type: stanza.Wait, Condition: "policy-violation", Text: "too many IQs; slow down"}
		}
	}
	return nil
}
