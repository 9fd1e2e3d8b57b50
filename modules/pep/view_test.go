package pep

import (
	"context"
	"slices"
	"testing"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// fakeView keeps one text per owner, as item "current".
type fakeView struct{ texts map[string]string }

func (v *fakeView) Items(_ context.Context, owner jid.JID) ([]Item, bool, error) {
	t, ok := v.texts[owner.String()]
	if !ok {
		return nil, false, nil
	}
	return []Item{{ID: "current", Payload: xmlstream.New("urn:test", "p").AddText(t)}}, true, nil
}

func (v *fakeView) Publish(_ context.Context, owner jid.JID, _ string, p *xmlstream.Element) error {
	if p.Text() == "bad" {
		return stanza.BadRequest("bad")
	}
	v.texts[owner.String()] = p.Text()
	return nil
}

func TestViewNode(t *testing.T) {
	e := newEnv(t)
	const node = "urn:test:view"
	// Data stored under the name before it became a view stays hidden.
	e.mustPublish(alice+"/x", node, item("old", "stale"))
	v := &fakeView{texts: map[string]string{}}
	e.m.HandleView(node, v)
	e.online(alice+"/phone", node+"+notify")
	e.online(alice + "/old")
	e.online(bob+"/pc", node+"+notify") // a contact: the view stays private
	e.answer()

	if _, err := e.items(alice+"/phone", "", node, ""); condition(err) != "item-not-found" {
		t.Errorf("items before any data: %v", err)
	}
	res, err := e.publish(alice+"/old", node, item("", "one"), fieldAccessModel, AccessWhitelist, fieldPersistItems, "true")
	if err != nil {
		t.Fatal(err)
	}
	if id := res.Child(NS, "publish").Child(NS, "item").Attr("id"); id != "current" {
		t.Errorf("publish result id %q", id)
	}
	if v.texts[alice] != "one" {
		t.Errorf("the view got %q", v.texts[alice])
	}
	want := []string{"from alice@x.org to alice@x.org/phone: urn:test:view/item:current=one"}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("notifications\n got %q\nwant %q", got, want)
	}
	got, err := e.items(alice+"/old", "", node, "1")
	if err != nil {
		t.Fatal(err)
	}
	if its := got.Child(NS, "items"); its == nil || its.Child(NS, "item").Attr("id") != "current" || its.Child(NS, "item").FirstElement().Text() != "one" {
		t.Errorf("items: %s", got)
	}
	if got, _ := e.items(alice+"/old", "", node, "", "other"); got.Child(NS, "items").FirstElement() != nil {
		t.Errorf("items by another id: %s", got)
	}
	// Nothing is stored by PEP itself, and nothing is pushed at login.
	if stored, _, _ := e.m.ItemsOf(e.ctx, jid.MustParse(alice), node); len(stored) != 1 || stored[0].ID != "old" {
		t.Errorf("PEP's own items of the view's name: %v", stored)
	}
	if err := e.m.PublishItem(e.ctx, jid.MustParse(alice), node, "x", xmlstream.New("urn:test", "p")); err == nil {
		t.Error("PublishItem wrote to a view")
	}

	e.online(alice+"/tablet", node+"+notify")
	if got := summary(e.answer()); len(got) != 0 {
		t.Errorf("last items of a view sent at login: %q", got)
	}
	// The view's module may drop the hidden data, which notifies nobody.
	for range 2 {
		if err := e.m.RetractItem(e.ctx, jid.MustParse(alice), node, "old"); err != nil {
			t.Fatal(err)
		}
	}
	if stored, _, _ := e.m.ItemsOf(e.ctx, jid.MustParse(alice), node); len(stored) != 0 {
		t.Errorf("hidden data left after RetractItem: %v", stored)
	}
	if got := summary(e.answer()); len(got) != 0 {
		t.Errorf("retracting hidden data notified: %q", got)
	}

	// Refusals change nothing.
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"bad payload": {func() error { _, err := e.publish(alice+"/old", node, item("", "bad")); return err }(), "bad-request"},
		"precondition": {func() error {
			_, err := e.publish(alice+"/old", node, item("", "two"), fieldAccessModel, AccessPresence)
			return err
		}(), "conflict+precondition-not-met"},
		"retract": {func() error {
			r := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "retract", "node", node).AddChild(xmlstream.New(NS, "item", "id", "current")))
			_, err := e.iq(alice+"/old", "", "set", r)
			return err
		}(), "not-allowed"},
		"delete": {func() error {
			_, err := e.iq(alice+"/old", "", "set", xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "delete", "node", node)))
			return err
		}(), "not-allowed"},
		"configure": {func() error {
			x := publishOptions(fieldAccessModel, AccessOpen).FirstElement()
			x.FirstElement().FirstElement().Children = nil
			x.FirstElement().FirstElement().AddText(formTypeNodeConfig)
			c := xmlstream.New(NSOwner, "configure", "node", node).AddChild(x)
			_, err := e.iq(alice+"/old", "", "set", xmlstream.New(NSOwner, "pubsub").AddChild(c))
			return err
		}(), "not-allowed"},
		"stranger reads": {func() error { _, err := e.items(carol+"/pc", alice, node, ""); return err }(), "not-allowed+closed-node"},
		"contact reads":  {func() error { _, err := e.items(bob+"/pc", alice, node, ""); return err }(), "not-allowed+closed-node"},
		"contact writes": {func() error {
			p := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "publish", "node", node).AddChild(item("", "x")))
			_, err := e.iq(bob+"/pc", alice, "set", p)
			return err
		}(), "forbidden"},
	} {
		if got := condition(tc.err); got != tc.want {
			t.Errorf("%s: %q, want %q (%v)", name, got, tc.want, tc.err)
		}
	}
	if v.texts[alice] != "one" {
		t.Errorf("a refusal changed the view: %q", v.texts[alice])
	}
	if got := summary(e.answer()); len(got) != 0 {
		t.Errorf("refusals notified: %q", got)
	}
	// The configuration reads as fixed and private; create is a no-op.
	cfg, err := e.iq(alice+"/old", "", "get", xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "configure", "node", node)))
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := dataform.Parse(cfg.Child(NSOwner, "configure").Child(nsData, "x")); f == nil || f.Value(fieldAccessModel) != AccessWhitelist {
		t.Errorf("configuration: %s", cfg)
	}
	if _, err := e.iq(alice+"/old", "", "set", xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "create", "node", node))); err != nil {
		t.Errorf("create: %v", err)
	}

	// A change the view's module makes is notified on its word.
	v.texts[alice] = "two"
	e.m.NotifyView(e.ctx, jid.MustParse(alice), node, func(ctx context.Context) ([]Item, error) {
		items, _, err := v.Items(ctx, jid.MustParse(alice))
		return items, err
	})
	want = []string{
		"from alice@x.org to alice@x.org/phone: urn:test:view/item:current=two",
		"from alice@x.org to alice@x.org/tablet: urn:test:view/item:current=two",
	}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("NotifyView\n got %q\nwant %q", got, want)
	}
	// Nobody interested: the items are not even read.
	e.m.NotifyView(e.ctx, jid.MustParse(carol), node, func(context.Context) ([]Item, error) {
		t.Error("items read with nobody to notify")
		return nil, nil
	})
}

// A view's notifications, too, wait for the caps of a session that just
// came online (see TestNotificationsWaitForTheCapsAnswer).
func TestViewNotificationWaitsForTheCapsAnswer(t *testing.T) {
	e := newEnv(t)
	const node = "urn:test:view"
	v := &fakeView{texts: map[string]string{alice: "one"}}
	e.m.HandleView(node, v)
	e.online(alice+"/phone", node+"+notify")
	queries := e.takeQueries()
	e.m.NotifyView(e.ctx, jid.MustParse(alice), node, func(ctx context.Context) ([]Item, error) {
		items, _, err := v.Items(ctx, jid.MustParse(alice))
		return items, err
	})
	if got := e.h.TakeDelivered(); len(got) != 0 {
		t.Fatalf("delivered before the caps were known: %q", summary(got))
	}
	for _, q := range queries {
		e.h.Deliver(e.ctx, q)
	}
	want := []string{"from alice@x.org to alice@x.org/phone: urn:test:view/item:current=one"}
	if got := summary(e.answer()); !slices.Equal(got, want) {
		t.Errorf("after the answer\n got %q\nwant %q", got, want)
	}
}
