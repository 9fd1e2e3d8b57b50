package private

import (
	"context"
	"errors"
	"testing"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// upper is a slot that refuses <bad/>, keeps nothing for <drop/> and
// reads back a marker.
type upper struct{ sets int }

func (u *upper) Get(_ context.Context, _ jid.JID, stored *xmlstream.Element) (*xmlstream.Element, error) {
	q := xmlstream.New(NS, "query").AddChild(xmlstream.New("urn:slot", "seen"))
	if stored != nil {
		for c := range stored.Elements() {
			q.AddChild(c)
		}
	}
	return q, nil
}

func (u *upper) Set(_ context.Context, _ jid.JID, q *xmlstream.Element) (*xmlstream.Element, error) {
	switch q.FirstElement().Name.Local {
	case "bad":
		return nil, stanza.BadRequest("bad")
	case "drop":
		u.sets++
		return nil, nil
	}
	u.sets++
	return q, nil
}

func TestSlots(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	h.AddUser(alice)
	m := New()
	u := &upper{}
	m.Handle("urn:slot", u)
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	do := func(typ, payload string) (*xmlstream.Element, error) {
		return h.IQ(ctx, alice+"/r", "", typ, parse(t, payload))
	}
	if _, err := do("set", q+`<keep xmlns="urn:slot"/></query>`); err != nil {
		t.Fatal(err)
	}
	res, err := do("get", q+`<keep xmlns="urn:slot"/></query>`)
	if err != nil || res.String() != parse(t, q+`<seen xmlns="urn:slot"/><keep xmlns="urn:slot"/></query>`).String() {
		t.Fatalf("get through the slot: %v %v", res, err)
	}
	// A refusal by the slot stores nothing, not even the other namespace.
	_, err = do("set", q+prefs+`<bad xmlns="urn:slot"/></query>`)
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "bad-request" {
		t.Fatalf("refused set: %v", err)
	}
	if v, _ := h.Store().KV().Get(ctx, alice, kvNS, "exodus:prefs"); v != nil {
		t.Errorf("stored %s despite the refusal", v)
	}
	// Keeping nothing deletes what was kept.
	if _, err := do("set", q+`<drop xmlns="urn:slot"/></query>`); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.Store().KV().Get(ctx, alice, kvNS, "urn:slot"); v != nil {
		t.Errorf("kept %s", v)
	}
	if stored, err := m.Stored(ctx, jid.MustParse(alice), "urn:slot"); err != nil || stored != nil {
		t.Errorf("Stored: %v %v", stored, err)
	}
	if err := m.Keep(ctx, jid.MustParse(alice), "urn:slot", parse(t, q+`<k xmlns="urn:slot"/></query>`)); err != nil {
		t.Fatal(err)
	}
	if stored, _ := m.Stored(ctx, jid.MustParse(alice), "urn:slot"); stored == nil || stored.FirstElement().Name.Local != "k" {
		t.Errorf("Keep then Stored: %v", stored)
	}
}
