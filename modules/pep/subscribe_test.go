package pep

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"parley/internal/dataform"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

func (e *env) sub(from, to, action, node, j string) (*xmlstream.Element, error) {
	return e.iq(from, to, "set", xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, action, "node", node, "jid", j)))
}

// subscribers lists what the owner sees of a node's subscriptions.
func (e *env) subscribers(owner, node string) []string {
	e.t.Helper()
	res, err := e.iq(owner+"/phone", "", "get", xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "subscriptions", "node", node)))
	if err != nil {
		e.t.Fatalf("owner's subscriptions of %s: %v", node, err)
	}
	var out []string
	for s := range res.Child(NSOwner, "subscriptions").Elements() {
		out = append(out, s.Attr("jid")+"="+s.Attr("subscription"))
	}
	slices.Sort(out)
	return out
}

// TestExplicitSubscriptions: <subscribe/> on a PEP node (XEP-0163 §4.3.3,
// XEP-0060 §6.1) stores a subscription the access model allows, sends the
// last item, brings every later notification whatever the client's caps
// say, is listed to the subscriber and to the owner, and ends with
// <unsubscribe/>, the node's deletion or the loss of access.
func TestExplicitSubscriptions(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:example:status"
	e.online(alice + "/phone")
	e.online(bob + "/pc") // no +notify for the node: only the subscription brings items
	e.online(carol + "/pc")
	e.answer()
	e.mustPublish(alice+"/phone", node, item("1", "first"))
	e.answer()

	// Presence access: carol, no contact of alice's, may not.
	if _, err := e.sub(carol+"/pc", alice, "subscribe", node, carol); condition(err) != "not-authorized+presence-subscription-required" {
		t.Errorf("stranger's subscribe: %q", condition(err))
	}
	if _, err := e.sub(bob+"/pc", alice, "subscribe", "urn:nothing", bob); condition(err) != "item-not-found" {
		t.Errorf("subscribe to a missing node: %q", condition(err))
	}
	res, err := e.sub(bob+"/pc", alice, "subscribe", node, bob)
	if err != nil {
		t.Fatalf("contact's subscribe: %v", err)
	}
	if sub := res.Child(NS, "subscription"); sub == nil || sub.Attr("subscription") != "subscribed" || sub.Attr("jid") != bob || sub.Attr("node") != node {
		t.Errorf("subscribe result: %v", res)
	}
	if got, want := summary(e.answer()), []string{"from alice@x.org to bob@x.org/pc: " + node + "/item:1=first (delayed)"}; !slices.Equal(got, want) {
		t.Errorf("last item on subscribe\n got %q\nwant %q", got, want)
	}
	// Subscribing again changes nothing.
	if _, err := e.sub(bob+"/pc", alice, "subscribe", node, bob); err != nil {
		t.Errorf("second subscribe: %v", err)
	}
	e.answer()

	e.mustPublish(alice+"/phone", node, item("2", "second"))
	if got, want := summary(e.answer()), []string{"from alice@x.org to bob@x.org/pc: " + node + "/item:2=second"}; !slices.Equal(got, want) {
		t.Errorf("notification to the subscriber\n got %q\nwant %q", got, want)
	}
	if got := e.subscribers(alice, node); !slices.Equal(got, []string{bob + "=subscribed"}) {
		t.Errorf("owner's list: %v", got)
	}
	if _, err := e.iq(bob+"/pc", alice, "get", xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "subscriptions", "node", node))); condition(err) != "forbidden" {
		t.Errorf("non-owner reading the subscriptions: %q", condition(err))
	}
	mine, err := e.iq(bob+"/pc", alice, "get", xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "subscriptions")))
	if err != nil || mine.Child(NS, "subscriptions").Child(NS, "subscription").Attr("node") != node {
		t.Errorf("bob's own subscriptions: %v %v", mine, err)
	}

	// Open access: anyone, on any server, may subscribe; a remote
	// subscriber's notification goes out to its server.
	e.mustPublish(alice+"/phone", "urn:xmpp:example:open", item("o1", "open"), fieldAccessModel, AccessOpen)
	e.answer()
	if _, err := e.sub(carol+"/pc", alice, "subscribe", "urn:xmpp:example:open", carol+"/pc"); err != nil {
		t.Fatalf("open node, full JID: %v", err)
	}
	if _, err := e.sub("dave@remote.example/x", alice, "subscribe", "urn:xmpp:example:open", "dave@remote.example"); err != nil {
		t.Fatalf("open node, remote: %v", err)
	}
	e.answer()
	e.h.TakeRouted()
	e.mustPublish(alice+"/phone", "urn:xmpp:example:open", item("o2", "open2"))
	want := []string{
		"from alice@x.org to carol@x.org/pc: urn:xmpp:example:open/item:o2=open2",
		"from alice@x.org to dave@remote.example: urn:xmpp:example:open/item:o2=open2",
	}
	if got := summary(append(e.answer(), e.h.TakeRouted()...)); !slices.Equal(got, want) {
		t.Errorf("open node notifications\n got %q\nwant %q", got, want)
	}

	// Access lost: alice stops sharing her presence with bob.
	e.roster(alice, bob, storage.SubTo)
	e.mustPublish(alice+"/phone", node, item("3", "third"))
	if got := summary(e.answer()); len(got) != 0 {
		t.Errorf("notifications after access was lost: %q", got)
	}
	e.roster(alice, bob, storage.SubBoth)

	// Unsubscribe.
	if _, err := e.sub(bob+"/pc", alice, "unsubscribe", node, bob); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if _, err := e.sub(bob+"/pc", alice, "unsubscribe", node, bob); condition(err) != "unexpected-request+not-subscribed" {
		t.Errorf("second unsubscribe: %q", condition(err))
	}
	e.mustPublish(alice+"/phone", node, item("4", "fourth"))
	if got := summary(e.answer()); len(got) != 0 {
		t.Errorf("notifications after unsubscribing: %q", got)
	}

	// Deleting a node ends its subscriptions, after telling them.
	del := xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "delete", "node", "urn:xmpp:example:open"))
	if _, err := e.iq(alice+"/phone", "", "set", del); err != nil {
		t.Fatal(err)
	}
	if got := summary(e.answer()); !slices.Contains(got, "from alice@x.org to carol@x.org/pc: delete urn:xmpp:example:open") {
		t.Errorf("delete not told to the subscriber: %q", got)
	}
	e.mustPublish(alice+"/phone", "urn:xmpp:example:open", item("o3", "again"), fieldAccessModel, AccessOpen)
	if got := e.subscribers(alice, "urn:xmpp:example:open"); len(got) != 0 {
		t.Errorf("subscriptions survived the node: %v", got)
	}
}

// TestRosterGroupsAccess: the roster access model with
// pubsub#roster_groups_allowed lets in only contacts in those groups of
// the owner's roster (XEP-0060 §4.5), for items, notifications and
// subscriptions; the configuration form offers the owner's groups.
func TestRosterGroupsAccess(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:example:friends"
	put := func(contact string, groups ...string) {
		if _, err := e.h.Storage().Roster().Put(e.ctx, alice, storage.RosterItem{Contact: contact, Subscription: storage.SubBoth, Groups: groups}, 0); err != nil {
			t.Fatal(err)
		}
	}
	put(bob, "Friends")
	put(carol, "Work")
	e.online(alice + "/phone")
	e.online(bob+"/pc", node+"+notify")
	e.online(carol+"/pc", node+"+notify")
	e.answer()
	e.mustPublish(alice+"/phone", node, item("1", "hello"), fieldAccessModel, AccessRoster, fieldRosterGroups, "Friends")
	if got, want := summary(e.answer()), []string{
		"from alice@x.org to bob@x.org/pc: " + node + "/item:1=hello",
	}; !slices.Equal(got, want) {
		t.Errorf("notifications\n got %q\nwant %q", got, want)
	}
	if _, err := e.items(bob+"/pc", alice, node, ""); err != nil {
		t.Errorf("a contact in the group: %v", err)
	}
	if _, err := e.items(carol+"/pc", alice, node, ""); condition(err) != "not-authorized+not-in-roster-group" {
		t.Errorf("a contact outside the group: %q", condition(err))
	}
	if _, err := e.sub(carol+"/pc", alice, "subscribe", node, carol); condition(err) != "not-authorized+not-in-roster-group" {
		t.Errorf("subscribe from outside the group: %q", condition(err))
	}
	res, err := e.iq(alice+"/phone", "", "get", xmlstream.New(NSOwner, "pubsub").AddChild(xmlstream.New(NSOwner, "configure", "node", node)))
	if err != nil {
		t.Fatal(err)
	}
	x := res.Child(NSOwner, "configure").Child(dataform.NS, "x")
	if err := dataform.Validate(x); err != nil {
		t.Errorf("configuration form: %v", err)
	}
	f, _ := dataform.Parse(x)
	fd := f.Field(fieldRosterGroups)
	if fd == nil || fd.Type != dataform.ListMulti || len(fd.Options) != 2 || !slices.Equal(fd.Values, []string{"Friends"}) {
		t.Errorf("roster groups field: %+v", fd)
	}
}

func optionsForm(deliver string) *xmlstream.Element {
	x := xmlstream.New(nsData, "x", "type", "submit")
	x.AddChild(xmlstream.New(nsData, "field", "var", "FORM_TYPE", "type", "hidden").AddChild(xmlstream.New(nsData, "value").AddText(dataform.PubSubSubOptions)))
	x.AddChild(xmlstream.New(nsData, "field", "var", "pubsub#deliver").AddChild(xmlstream.New(nsData, "value").AddText(deliver)))
	return x
}

// TestSubscriptionOptions: pubsub#deliver (XEP-0060 §6.3) stops and
// resumes a subscriber's notifications; a subscription stored in the KV
// before subscriptions moved into the node state still counts and moves
// there at the next change.
func TestSubscriptionOptions(t *testing.T) {
	e := newEnv(t)
	const node = "urn:xmpp:example:status"
	e.online(alice + "/phone")
	e.online(bob + "/pc")
	e.answer()
	e.mustPublish(alice+"/phone", node, item("1", "first"), fieldAccessModel, AccessOpen)
	res, err := e.sub(bob+"/pc", alice, "subscribe", node, bob)
	if err != nil {
		t.Fatal(err)
	}
	subid := res.Child(NS, "subscription").Attr("subid")
	if subid == "" {
		t.Fatalf("no subid: %v", res)
	}
	e.answer()
	get := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "options", "node", node, "jid", bob))
	r, err := e.iq(bob+"/pc", alice, "get", get)
	if err != nil || !strings.Contains(r.String(), "pubsub#deliver") || r.Child(NS, "options").Attr("subid") != subid {
		t.Fatalf("options form: %v, %v", r, err)
	}
	set := xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "options", "node", node, "jid", bob).AddChild(optionsForm("0")))
	if _, err := e.iq(bob+"/pc", alice, "set", set); err != nil {
		t.Fatalf("options set: %v", err)
	}
	e.mustPublish(alice+"/phone", node, item("2", "second"))
	if got := summary(e.answer()); len(got) != 0 {
		t.Errorf("notified with deliver off: %q", got)
	}
	set = xmlstream.New(NS, "pubsub").AddChild(xmlstream.New(NS, "options", "node", node, "jid", bob).AddChild(optionsForm("1")))
	if _, err := e.iq(bob+"/pc", alice, "set", set); err != nil {
		t.Fatal(err)
	}
	e.mustPublish(alice+"/phone", node, item("3", "third"))
	if got := summary(e.answer()); len(got) != 1 {
		t.Errorf("notifications with deliver on: %q", got)
	}

	// A subscription from before, in the KV.
	data, _ := json.Marshal(legacySubscription{Node: node, JID: carol})
	if err := e.h.Storage().KV().Put(e.ctx, alice, kvSubscriptions, subKey(node, carol), data); err != nil {
		t.Fatal(err)
	}
	if got := e.subscribers(alice, node); !slices.Equal(got, []string{bob + "=subscribed", carol + "=subscribed"}) {
		t.Errorf("subscribers with a legacy one: %v", got)
	}
	if _, err := e.sub(bob+"/pc", alice, "unsubscribe", node, bob); err != nil {
		t.Fatal(err)
	}
	if l, _ := e.h.Storage().KV().List(e.ctx, alice, kvSubscriptions); len(l) != 0 {
		t.Errorf("the legacy subscription stayed in the KV: %v", l)
	}
	if got := e.subscribers(alice, node); !slices.Equal(got, []string{carol + "=subscribed"}) {
		t.Errorf("subscribers after the move: %v", got)
	}
}
