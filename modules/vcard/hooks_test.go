package vcard

import (
	"context"
	"errors"
	"testing"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

func TestSetHooks(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	h.AddUser(alice)
	m := New()
	var stored []string
	m.OnSet(SetHook{
		Check: func(vc *xmlstream.Element) error {
			if vc.Child(NS, "BAD") != nil {
				return stanza.BadRequest("bad")
			}
			return nil
		},
		Stored: func(_ context.Context, owner jid.JID, vc *xmlstream.Element) {
			s := "cleared"
			if vc != nil {
				s = vc.Child(NS, "FN").Text()
			}
			stored = append(stored, owner.String()+" "+s)
		},
	})
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	set := func(raw string) error {
		_, err := h.IQ(ctx, alice+"/a", "", "set", parse(t, raw))
		return err
	}
	if err := set(short); err != nil {
		t.Fatal(err)
	}
	var se *stanza.Error
	if err := set(`<vCard xmlns="vcard-temp"><FN>x</FN><BAD/></vCard>`); !errors.As(err, &se) || se.Condition != "bad-request" {
		t.Fatalf("refused vCard: %v", err)
	}
	if vc, _, _ := m.Load(ctx, jid.MustParse(alice)); vc == nil || vc.String() != parse(t, short).String() {
		t.Errorf("stored %v after a refusal", vc)
	}
	if err := set(empty); err != nil {
		t.Fatal(err)
	}
	// Store, used by conversions, runs no hook.
	if err := m.Store(ctx, jid.MustParse(alice), parse(t, full)); err != nil {
		t.Fatal(err)
	}
	want := []string{alice + " Bob", alice + " cleared"}
	if len(stored) != len(want) || stored[0] != want[0] || stored[1] != want[1] {
		t.Errorf("hooks saw %q, want %q", stored, want)
	}
	if vc, found, _ := m.Load(ctx, jid.MustParse(alice)); !found || vc.String() != parse(t, full).String() {
		t.Errorf("Load after Store: %v", vc)
	}
}
