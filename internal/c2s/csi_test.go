package c2s

import (
	"testing"

	"parley/internal/xmlstream"
)

func TestCSIQueue(t *testing.T) {
	pres := func(from, show string) *xmlstream.Element {
		p := xmlstream.New("jabber:client", "presence", "from", from)
		if show != "" {
			p.AddChild(xmlstream.New("jabber:client", "show").AddText(show))
		}
		return p
	}
	state := func(from, s string) *xmlstream.Element {
		return xmlstream.New("jabber:client", "message", "from", from, "type", "chat").AddChild(xmlstream.New("http://jabber.org/protocol/chatstates", s))
	}
	body := xmlstream.New("jabber:client", "message", "from", "b@x/1", "type", "chat").AddChild(xmlstream.New("jabber:client", "body").AddText("hi"))
	sub := xmlstream.New("jabber:client", "presence", "from", "c@x", "type", "subscribe")

	var q csiQueue
	if q.hold(pres("a@x/1", "away")) {
		t.Fatal("held while active")
	}
	q.inactive = true
	for _, el := range []*xmlstream.Element{pres("a@x/1", "away"), pres("b@x/1", ""), pres("a@x/1", "dnd"), state("b@x/1", "composing"), state("b@x/1", "paused")} {
		if !q.hold(el) {
			t.Fatalf("not held: %s", el)
		}
	}
	for _, el := range []*xmlstream.Element{body, sub, xmlstream.New("jabber:client", "iq", "type", "get")} {
		if q.hold(el) {
			t.Fatalf("held something that matters: %s", el)
		}
	}
	got := q.take()
	if len(got) != 3 || q.spared != 2 {
		t.Fatalf("kept %d (spared %d), want 3 latest (2 spared)", len(got), q.spared)
	}
	if got[0].Child("jabber:client", "show").Text() != "dnd" || got[2].FirstElement().Name.Local != "paused" {
		t.Fatalf("not the latest per sender, or not in order: %v", got)
	}
	if q.take() != nil {
		t.Fatal("queue not emptied")
	}
}
