package pep

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// takeQueries removes the caps queries delivered so far and returns
// them; anything else delivered fails the test.
func (e *env) takeQueries() []*xmlstream.Element {
	e.t.Helper()
	got := e.h.TakeDelivered()
	for _, el := range got {
		if el.Name.Local != "iq" {
			e.t.Fatalf("delivered before any caps answer: %s", el)
		}
	}
	return got
}

// A client announces its caps in its presence; what is published during
// the disco round trip that follows reaches it once its features are
// known. Before, such notifications were dropped: nodes that never send
// their last item (XEP-0402 bookmarks) lost them for good, and the
// others came back as delayed last items.
func TestNotificationsWaitForTheCapsAnswer(t *testing.T) {
	e := newEnv(t)
	const avatar = "urn:xmpp:avatar:metadata"
	e.online(alice+"/new", nsBookmarks+"+notify", avatar+"+notify")
	e.online(bob+"/pc", avatar+"+notify")            // a contact, another client
	e.online(carol+"/pc", "urn:x", avatar+"+notify") // not a contact
	queries := e.takeQueries()
	if len(queries) != 3 {
		t.Fatalf("want 3 caps queries, got %v", queries)
	}
	e.mustPublish(alice+"/phone", nsBookmarks, item("room@chat.x.org", "b1"),
		"pubsub#persist_items", "true", "pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist")
	e.mustPublish(alice+"/phone", avatar, item("h1", "one"))
	if got := e.h.TakeDelivered(); len(got) != 0 {
		t.Fatalf("delivered before the caps were known: %q", summary(got))
	}
	for _, q := range queries {
		e.h.Deliver(e.ctx, q) // put back for answer()
	}
	want := []string{
		"from alice@x.org to alice@x.org/new: urn:xmpp:avatar:metadata/item:h1=one",
		"from alice@x.org to alice@x.org/new: urn:xmpp:bookmarks:1/item:room@chat.x.org=b1",
		"from alice@x.org to bob@x.org/pc: urn:xmpp:avatar:metadata/item:h1=one",
	}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("after the answers\n got %q\nwant %q", got, want)
	}
	if e.m.caps.heldBytes != 0 {
		t.Errorf("%d held bytes left after the answers", e.m.caps.heldBytes)
	}
}

// A client's features decide after the answer: what it does not want it
// does not get, and a session gone meanwhile gets nothing.
func TestHeldNotificationsFollowTheAnswer(t *testing.T) {
	e := newEnv(t)
	const avatar = "urn:xmpp:avatar:metadata"
	e.online(alice+"/other", "urn:xmpp:other+notify")
	gone := e.online(alice+"/gone", avatar+"+notify")
	queries := e.takeQueries()
	e.mustPublish(alice+"/phone", avatar, item("h1", "one"))
	e.h.Disconnect(e.ctx, gone)
	for _, q := range queries {
		e.h.Deliver(e.ctx, q)
	}
	if got := e.answer(); len(got) != 0 {
		t.Errorf("delivered %q", summary(got))
	}
}

// Held notifications of a waiter whose ver was answered, unverifiably,
// by another client wait for that waiter's own answer.
func TestHeldNotificationsSurviveAnotherClientsLie(t *testing.T) {
	e := newEnv(t)
	const avatar = "urn:xmpp:avatar:metadata"
	e.online(bob+"/liar", avatar+"+notify")
	e.online(bob+"/honest", avatar+"+notify")
	e.disco[bob+"/liar"] = []string{"urn:other+notify"}
	queries := e.takeQueries()
	if len(queries) != 1 || queries[0].Attr("to") != bob+"/liar" {
		t.Fatalf("want one query to bob/liar, got %v", queries)
	}
	e.mustPublish(alice+"/phone", avatar, item("h1", "one"))
	e.h.Deliver(e.ctx, queries[0])
	want := []string{"from alice@x.org to bob@x.org/honest: urn:xmpp:avatar:metadata/item:h1=one"}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// What is held is bounded, and released when a query expires.
func TestHeldNotificationsAreBounded(t *testing.T) {
	c := newCapsCache()
	ref := capsRef{hash: "sha-1", node: "n", ver: "v"}
	to := jid.MustParse(bob + "/pc")
	msg := xmlstream.New("jabber:client", "message", "to", to.String())
	size := len(msg.String())
	c.heldLimit = 2 * size
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if c.hold(ref, to, "node", msg) {
		t.Error("held without a query in flight")
	}
	if !c.want(ref, to, to, "q1", now, nil) {
		t.Fatal("no query wanted")
	}
	if c.hold(ref, jid.MustParse(bob+"/other"), "node", msg) {
		t.Error("held for a session that is not waiting")
	}
	for i, want := range []bool{true, true, false} {
		if got := c.hold(ref, to, "node", msg); got != want {
			t.Errorf("hold #%d = %v, want %v", i+1, got, want)
		}
	}
	if c.heldBytes != 2*size {
		t.Errorf("held %d bytes, want %d", c.heldBytes, 2*size)
	}
	// The query expires: a new one for another ver releases the old.
	c.want(capsRef{hash: "sha-1", ver: "w"}, to, to, "q2", now.Add(pendingTTL+1), nil)
	if c.heldBytes != 0 {
		t.Errorf("%d bytes still held after the query expired", c.heldBytes)
	}
}

// Publishing while the answer is being applied: every notification
// arrives once, in publish order, whichever side wins each race.
func TestNotificationsRacingTheCapsAnswer(t *testing.T) {
	for range 300 {
		e := newEnv(t)
		e.online(alice+"/new", nsBookmarks+"+notify")
		queries := e.takeQueries()
		const n = 30
		var wg sync.WaitGroup
		var perr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := e.publish(alice+"/phone", nsBookmarks, item(fmt.Sprintf("r%02d@chat.x.org", i), "b"),
					"pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist"); err != nil {
					perr = err
					return
				}
			}
		}()
		q := queries[0]
		res := xmlstream.New(stanza.NSClient, "iq", "type", "result", "id", q.Attr("id"), "from", q.Attr("to"), "to", q.Attr("from"))
		dq := discoQuery(e.disco[alice+"/new"])
		dq.SetAttr("node", q.FirstElement().Attr("node"))
		taken := e.h.IQResult(e.ctx, res.AddChild(dq))
		wg.Wait()
		if !taken || perr != nil {
			t.Fatalf("answer taken: %v; publishing: %v", taken, perr)
		}
		var ids []string
		for _, el := range e.h.TakeDelivered() {
			ids = append(ids, el.Child(NSEvent, "event").Child(NSEvent, "items").Child(NSEvent, "item").Attr("id"))
		}
		want := make([]string, n)
		for i := range n {
			want[i] = fmt.Sprintf("r%02d@chat.x.org", i)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("notifications\n got %q\nwant %q", ids, want)
		}
	}
}
