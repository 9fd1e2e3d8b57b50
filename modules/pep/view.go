package pep

import (
	"bytes"
	"context"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

// View is a node of every account whose items PEP does not keep: another
// module makes them from its own data on each read and takes each
// publish into that data, so that two protocols can share one copy (the
// legacy bookmarks node 'storage:bookmarks' of XEP-0048 and XEP-0411 is
// a view of the XEP-0402 items).
//
// A view is private to its owner (whitelist access), holds one item and
// is never sent as a last published item; its configuration is fixed,
// and it can be neither deleted nor have its item retracted: the data
// behind it belongs to the module, which decides what clearing means.
type View interface {
	// Items returns what the node holds for owner now; exists is false
	// when the owner has no such data, which reads as no node.
	Items(ctx context.Context, owner jid.JID) (items []Item, exists bool, err error)
	// Publish takes item id (possibly "") of a client's publish. An
	// error refuses it, and must leave the data as it was; a
	// *stanza.Error is returned to the client as is.
	Publish(ctx context.Context, owner jid.JID, id string, payload *xmlstream.Element) error
}

// viewConfig is the configuration every view shows and publish options
// are checked against.
var viewConfig = nodeConfig{Config: pubsub.Config{AccessModel: AccessWhitelist, MaxItems: 1, PersistItems: true,
	SendLast: SendLastNever, NotifyRetract: true, NotifyDelete: true}}

// HandleView makes node a view served by v. Call it while the server
// starts (from a module's Start). What PEP itself stored under that name
// before the view existed is hidden from clients; ItemsOf still reads it
// and RetractItem removes it (silently), so that the view's module can
// take it over. PublishItem refuses a view.
func (m *Module) HandleView(node string, v View) { m.views[node] = v }

// NotifyView sends the items of owner's view node, as a publish would,
// to the owner's resources that want them (or may: see notify); items
// is only called when one does. The view's module calls it when the
// data behind the view changed other than by a publish to the view.
func (m *Module) NotifyView(ctx context.Context, owner jid.JID, node string, items func(context.Context) ([]Item, error)) {
	owner = owner.Bare()
	var to []session.Session
	for _, s := range m.host.Sessions(owner) {
		if avail, _ := s.State().Available(); !avail {
			continue
		}
		// A session whose caps are being asked for gets the
		// notification held for it (see notify).
		if in, _ := m.interest(ctx, s, node); in != unwanted {
			to = append(to, s)
		}
	}
	if len(to) == 0 {
		return
	}
	list, err := items(ctx)
	if err != nil {
		m.host.Logger().Warn("pep: reading a view for its notification failed", "node", node, "user", owner.String(), "err", err)
		return
	}
	ev := eventItems(node)
	for _, it := range list {
		ev.AddChild(itemElement(it.ID, it.Payload))
	}
	for _, s := range to {
		m.notify(ctx, s, node, event(owner, s.JID(), ev.Copy()))
	}
}

func fixedConfig() *stanza.Error {
	return &stanza.Error{Type: stanza.Cancel, Condition: "not-allowed",
		Text: "this node is a view of other data: its configuration is fixed and it cannot be deleted"}
}

// fits reports whether a configuration form leaves viewConfig as it is.
func fits(x *xmlstream.Element) *stanza.Error {
	if x == nil {
		return nil
	}
	f, err := dataform.Parse(x)
	if err != nil {
		return err.(*stanza.Error)
	}
	c := viewConfig
	if se := c.Apply(f, MaxItems, models); se != nil {
		return se
	}
	if !bytes.Equal(c.Encode(), viewConfig.Encode()) {
		return fixedConfig()
	}
	return nil
}

// setView takes a client's pubsub set on a view node (the owner's).
func (m *Module) setView(ctx context.Context, iq module.IQ, node string, action *xmlstream.Element, v View) (*xmlstream.Element, error) {
	switch action.Name.Local {
	case "create":
		// The node is always there; a create that asks for nothing else
		// than its configuration is a harmless no-op.
		if se := fits(formIn(iq.Payload.Child(NS, "configure"))); se != nil {
			return nil, se
		}
		return nil, nil
	case "retract":
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: "not-allowed",
			Text: "the item of this node cannot be retracted; publish the new content instead"}
	}
	item, payload, se := onePayload(action)
	if se != nil {
		return nil, se
	}
	if opts := formIn(iq.Payload.Child(NS, "publish-options")); opts != nil {
		f, err := dataform.Parse(opts)
		if err != nil {
			return nil, err
		}
		if f.FormType == formTypePublishOptions && !viewConfig.Meets(f, MaxItems) {
			return nil, pubsub.Cond(stanza.Conflict("the node's configuration does not match the publish options"), "precondition-not-met")
		}
	}
	if err := v.Publish(ctx, iq.To, item.Attr("id"), payload); err != nil {
		return nil, err
	}
	id := item.Attr("id")
	var items []Item
	m.NotifyView(ctx, iq.To, node, func(ctx context.Context) ([]Item, error) {
		var err error
		items, _, err = v.Items(ctx, iq.To)
		return items, err
	})
	if id == "" {
		if items == nil {
			items, _, _ = v.Items(ctx, iq.To)
		}
		if len(items) > 0 {
			id = items[0].ID
		}
	}
	res := xmlstream.New(NS, "pubsub")
	pub := xmlstream.New(NS, "publish", "node", node)
	if id != "" {
		pub.AddChild(xmlstream.New(NS, "item", "id", id))
	}
	return res.AddChild(pub), nil
}

// getView answers an items request on a view node.
func (m *Module) getView(ctx context.Context, iq module.IQ, node string, action *xmlstream.Element, v View) (*xmlstream.Element, error) {
	if !isOwner(iq) {
		// Whitelist access: the node does not exist for anyone else.
		return nil, pubsub.Cond(stanza.NotAllowed("the node is private"), "closed-node")
	}
	if v := action.Attr("max_items"); v != "" {
		if _, err := parseMaxItems(v, storage.MaxPubSubItems); err != nil {
			return nil, stanza.BadRequest("max_items: " + err.Error())
		}
	}
	items, exists, err := v.Items(ctx, iq.To)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, stanza.ItemNotFound("no such node")
	}
	var ids map[string]bool
	for it := range action.Elements() {
		if it.Name.Space == NS && it.Name.Local == "item" && it.Attr("id") != "" {
			if ids == nil {
				ids = map[string]bool{}
			}
			ids[it.Attr("id")] = true
		}
	}
	out := xmlstream.New(NS, "items", "node", node)
	for _, it := range items {
		if ids == nil || ids[it.ID] {
			out.AddChild(xmlstream.New(NS, "item", "id", it.ID).AddChild(it.Payload))
		}
	}
	return xmlstream.New(NS, "pubsub").AddChild(out), nil
}

// ownerView answers the owner namespace on a view node: its fixed
// configuration can be read, and submitted unchanged.
func (m *Module) ownerView(typ, node string, action *xmlstream.Element) (*xmlstream.Element, error) {
	switch {
	case action.Name.Local == "configure" && typ == "get":
		c := xmlstream.New(NSOwner, "configure", "node", node).AddChild(viewConfig.Form(nil, models))
		return xmlstream.New(NSOwner, "pubsub").AddChild(c), nil
	case action.Name.Local == "configure":
		x := formIn(action)
		if x == nil {
			return nil, stanza.BadRequest("configure needs a data form")
		}
		if t := x.Attr("type"); t == "cancel" {
			return nil, nil
		} else if t != "submit" {
			return nil, stanza.BadRequest("the form must be submitted")
		}
		if se := fits(x); se != nil {
			return nil, se
		}
		return nil, nil
	case action.Name.Local == "delete":
		return nil, fixedConfig()
	}
	return nil, stanza.FeatureNotImplemented(action.Name.Local + " is not supported")
}
