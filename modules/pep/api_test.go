package pep

import (
	"context"
	"slices"
	"testing"

	"parley/internal/jid"
	"parley/internal/xmlstream"
)

func TestChangeHooksSeeClientChangesOnly(t *testing.T) {
	e := newEnv(t)
	var seen []string
	e.m.OnChange("n", func(_ context.Context, c Change) {
		var kind string
		switch {
		case c.Payload != nil:
			kind = "publish " + c.ItemID + " " + c.Payload.Text()
		case c.Retracted:
			kind = "retract " + c.ItemID
		case c.NodeDeleted:
			kind = "delete"
		}
		seen = append(seen, c.Owner.String()+" "+kind)
	})
	e.m.OnChange("other", func(context.Context, Change) { t.Error("hook of another node ran") })
	e.mustPublish(alice+"/a", "n", item("1", "one"))
	r := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "retract", "node", "n").AddChild(xmlstream.New(NS, "item", "id", "1")))
	if _, err := e.iq(alice+"/a", "", "set", r); err != nil {
		t.Fatal(err)
	}
	// What the server does on the owner's behalf runs no hook.
	owner := jid.MustParse(alice)
	if err := e.m.PublishItem(e.ctx, owner, "n", "2", xmlstream.New("urn:test", "p").AddText("two")); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RetractItem(e.ctx, owner, "n", "2"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RetractItem(e.ctx, owner, "n", "missing"); err != nil {
		t.Errorf("retracting a missing item: %v", err)
	}
	if err := e.m.RetractItem(e.ctx, owner, "no-node", "1"); err != nil {
		t.Errorf("retracting from a missing node: %v", err)
	}
	d := xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "delete", "node", "n"))
	if _, err := e.iq(alice+"/a", "", "set", d); err != nil {
		t.Fatal(err)
	}
	want := []string{alice + " publish 1 one", alice + " retract 1", alice + " delete"}
	if !slices.Equal(seen, want) {
		t.Errorf("hooks saw %q, want %q", seen, want)
	}
}

func TestItemsOfAndPublishItem(t *testing.T) {
	e := newEnv(t)
	owner := jid.MustParse(alice)
	if items, exists, err := e.m.ItemsOf(e.ctx, owner, nsBookmarks); err != nil || exists || len(items) != 0 {
		t.Fatalf("missing node: %v %v %v", items, exists, err)
	}
	for _, id := range []string{"a@muc.x.org", "b@muc.x.org"} {
		if err := e.m.PublishItem(e.ctx, owner, nsBookmarks, id, xmlstream.New(nsBookmarks, "conference")); err != nil {
			t.Fatal(err)
		}
	}
	items, exists, err := e.m.ItemsOf(e.ctx, owner, nsBookmarks)
	if err != nil || !exists || len(items) != 2 || items[0].ID != "a@muc.x.org" || items[1].Payload.Name.Local != "conference" {
		t.Fatalf("items %+v %v %v", items, exists, err)
	}
	one, _, _ := e.m.ItemsOf(e.ctx, owner, nsBookmarks, "b@muc.x.org")
	if len(one) != 1 || one[0].ID != "b@muc.x.org" {
		t.Errorf("by id: %+v", one)
	}
	// The node the server created has the defaults of its name: private,
	// many items.
	cfg, _, err := e.m.nodeConfigOf(e.ctx, alice, nsBookmarks)
	if err != nil || cfg.AccessModel != AccessWhitelist || cfg.MaxItems != 0 {
		t.Errorf("config %+v %v", cfg, err)
	}
}
