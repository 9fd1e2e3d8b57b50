package carbons

import (
	"context"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

func chat(from, to, body string, extra ...*xmlstream.Element) *xmlstream.Element {
	m := xmlstream.New("jabber:client", "message", "from", from, "to", to, "type", "chat")
	m.AddChild(xmlstream.New("jabber:client", "body").AddText(body))
	for _, e := range extra {
		m.AddChild(e)
	}
	return m
}

func TestCarbons(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	h.AddUser("alice@example.org")
	m := New()
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	phone := h.Connect(ctx, "alice@example.org/phone")
	desk := h.Connect(ctx, "alice@example.org/desk")
	old := h.Connect(ctx, "alice@example.org/old") // never enables carbons
	for _, s := range []*modtest.Session{phone, desk} {
		if _, err := h.IQ(ctx, s.JID().String(), "alice@example.org", "set", xmlstream.New(NS, "enable")); err != nil {
			t.Fatal(err)
		}
	}

	// Sent from the phone: the desk gets a <sent/> carbon, the phone and
	// the session without carbons get nothing.
	out := chat("alice@example.org/phone", "bob@example.net", "hi")
	h.Message(ctx, module.MessageEvent{From: jid.MustParse("alice@example.org/phone"), To: jid.MustParse("bob@example.net"), Stanza: out, Outbound: true})
	got := desk.Take()
	if len(got) != 1 || got[0].Child(NS, "sent") == nil || got[0].Attr("from") != "alice@example.org" {
		t.Fatalf("desk got %v", got)
	}
	fwd := got[0].Child(NS, "sent").Child(stanza.NSForward, "forwarded").FirstElement()
	if fwd == nil || fwd.Attr("to") != "bob@example.net" {
		t.Fatalf("forwarded message %v", got[0])
	}
	if len(phone.Take()) != 0 || len(old.Take()) != 0 {
		t.Fatal("the sender or a session without carbons got a copy")
	}

	// Received on the desk: the phone gets a <received/> carbon.
	in := chat("bob@example.net/x", "alice@example.org/desk", "yo")
	h.Message(ctx, module.MessageEvent{From: jid.MustParse("bob@example.net/x"), To: jid.MustParse("alice@example.org/desk"), Stanza: in})
	if got := phone.Take(); len(got) != 1 || got[0].Child(NS, "received") == nil {
		t.Fatalf("phone got %v", got)
	}

	// Hints keep messages out; disabling stops copies.
	for _, extra := range []*xmlstream.Element{xmlstream.New(NS, "private"), xmlstream.New(stanza.NSHints, "no-copy")} {
		h.Message(ctx, module.MessageEvent{From: jid.MustParse("alice@example.org/phone"), To: jid.MustParse("bob@example.net"), Stanza: chat("alice@example.org/phone", "bob@example.net", "x", extra), Outbound: true})
	}
	headline := chat("alice@example.org/phone", "bob@example.net", "x")
	headline.SetAttr("type", "headline")
	h.Message(ctx, module.MessageEvent{From: jid.MustParse("alice@example.org/phone"), To: jid.MustParse("bob@example.net"), Stanza: headline, Outbound: true})
	if got := desk.Take(); len(got) != 0 {
		t.Fatalf("hinted or headline messages were copied: %v", got)
	}
	h.IQ(ctx, desk.JID().String(), "alice@example.org", "set", xmlstream.New(NS, "disable"))
	h.Message(ctx, module.MessageEvent{From: jid.MustParse("alice@example.org/phone"), To: jid.MustParse("bob@example.net"), Stanza: chat("alice@example.org/phone", "bob@example.net", "z"), Outbound: true})
	if got := desk.Take(); len(got) != 0 {
		t.Fatal("a session that disabled carbons still got copies")
	}
}
