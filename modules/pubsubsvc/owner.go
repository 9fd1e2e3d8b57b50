package pubsubsvc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

// ownerRequest handles the pubsub#owner namespace (§8): configure,
// default, delete, purge, subscriptions and affiliations.
func (m *Module) ownerRequest(ctx context.Context, r request) (*xmlstream.Element, error) {
	a := action(r.payload)
	if a == nil {
		return nil, stanza.BadRequest("no pubsub action")
	}
	if a.Name.Local == "default" && r.typ == "get" {
		return m.defaults(), nil
	}
	service, node := r.owner(), a.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	st, err := m.mustNode(ctx, service, node)
	if err != nil {
		return nil, err
	}
	if !isOwner(st, r.from) {
		return nil, ownerOnly()
	}
	switch {
	case a.Name.Local == "configure" && r.typ == "get":
		c := xmlstream.New(NSOwner, "configure", "node", node).AddChild(st.Form(nil, models))
		return wrap(NSOwner, c), nil
	case a.Name.Local == "configure":
		return nil, m.configure(ctx, service, node, r.from, a)
	case a.Name.Local == "delete" && r.typ == "set":
		return nil, m.deleteNode(ctx, service, node, st, a)
	case a.Name.Local == "purge" && r.typ == "set":
		return nil, m.purge(ctx, service, node, st)
	case a.Name.Local == "subscriptions" && r.typ == "get":
		out := xmlstream.New(NSOwner, "subscriptions", "node", node)
		for _, sub := range st.Subscriptions {
			out.AddChild(pubsub.SubscriptionElement(NSOwner, "", sub))
		}
		return wrap(NSOwner, out), nil
	case a.Name.Local == "subscriptions":
		_, err := m.change(ctx, service, node, func(st *pubsub.State) error {
			if !isOwner(*st, r.from) {
				return ownerOnly()
			}
			return pubsub.ChangeSubscriptions(st, a, m.opts.MaxSubscriptions)
		})
		return nil, err
	case a.Name.Local == "affiliations" && r.typ == "get":
		out := xmlstream.New(NSOwner, "affiliations", "node", node)
		for _, o := range slices.Sorted(maps.Keys(st.Affiliations)) {
			out.AddChild(xmlstream.New(NSOwner, "affiliation", "jid", o, "affiliation", st.Affiliations[o]))
		}
		return wrap(NSOwner, out), nil
	case a.Name.Local == "affiliations":
		return nil, m.affiliations(ctx, service, node, r.from, a)
	}
	return nil, stanza.FeatureNotImplemented(a.Name.Local + " is not supported")
}

// configure applies a submitted node configuration form (§8.2.4) and,
// with notify_config, tells the subscribers.
func (m *Module) configure(ctx context.Context, service, node string, from jid.JID, a *xmlstream.Element) error {
	x := formIn(a)
	if x == nil {
		return stanza.BadRequest("configure needs a data form")
	}
	f, err := dataform.Parse(x)
	if err != nil {
		return err
	}
	if f.Type == dataform.TypeCancel {
		return nil
	}
	if f.Type != dataform.TypeSubmit {
		return stanza.BadRequest("the form must be submitted")
	}
	st, err := m.change(ctx, service, node, func(st *pubsub.State) error {
		if !isOwner(*st, from) {
			return ownerOnly()
		}
		if se := st.Apply(f, m.opts.MaxItems, models); se != nil {
			return se
		}
		return nil
	})
	if err != nil {
		return err
	}
	if st.NotifyConfig {
		ev := xmlstream.New(NSEvent, "configuration", "node", node)
		if !st.NoPayloads {
			form := st.Form(nil, models)
			form.SetAttr("type", dataform.TypeResult)
			ev.AddChild(form)
		}
		m.notify(ctx, service, node, st, ev)
	}
	return nil
}

// deleteNode deletes a node (§8.4), telling its subscribers, with the
// redirect the owner gave.
func (m *Module) deleteNode(ctx context.Context, service, node string, st pubsub.State, a *xmlstream.Element) error {
	l := m.lock(service, node)
	l.Lock()
	err := m.ps.DeleteNode(ctx, service, node)
	l.Unlock()
	m.track(service, node, pubsub.State{})
	if errors.Is(err, storage.ErrNotFound) {
		return stanza.ItemNotFound("no such node")
	}
	if err != nil {
		return fmt.Errorf("pubsub service: deleting %q: %w", node, err)
	}
	if st.NotifyDelete {
		ev := xmlstream.New(NSEvent, "delete", "node", node)
		if rd := a.Child(NSOwner, "redirect"); rd != nil && rd.Attr("uri") != "" {
			ev.AddChild(xmlstream.New(NSEvent, "redirect", "uri", rd.Attr("uri")))
		}
		m.notify(ctx, service, node, st, ev)
	}
	return nil
}

// purge deletes every item of a node (§8.5).
func (m *Module) purge(ctx context.Context, service, node string, st pubsub.State) error {
	if !st.PersistItems {
		return pubsub.Unsupported(stanza.FeatureNotImplemented("the node keeps no items"), "persistent-items")
	}
	items, err := m.ps.Items(ctx, service, node, storage.PubSubQuery{})
	if err != nil {
		return fmt.Errorf("pubsub service: items of %q: %w", node, err)
	}
	for _, it := range items {
		if err := m.ps.Retract(ctx, service, node, it.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("pubsub service: purging %q: %w", node, err)
		}
	}
	if st.NotifyRetract {
		m.notify(ctx, service, node, st, xmlstream.New(NSEvent, "purge", "node", node))
	}
	return nil
}

// affiliations applies an owner's affiliation changes (§8.9.2): all or
// none, and never leaving the node without an owner. An outcast loses
// its subscriptions.
func (m *Module) affiliations(ctx context.Context, service, node string, from jid.JID, a *xmlstream.Element) error {
	_, err := m.change(ctx, service, node, func(st *pubsub.State) error {
		if !isOwner(*st, from) {
			return ownerOnly()
		}
		for c := range a.Elements() {
			if c.Name.Space != NSOwner || c.Name.Local != "affiliation" {
				continue
			}
			j, err := jid.Parse(c.Attr("jid"))
			if err != nil {
				return stanza.JIDMalformed("an affiliation's jid is not a JID")
			}
			aff := c.Attr("affiliation")
			if !pubsub.ValidAffiliation(aff) {
				return stanza.BadRequest("unknown affiliation " + aff)
			}
			st.SetAffiliation(j, aff)
			if aff == pubsub.Outcast {
				for _, sub := range st.Of(j) {
					if sj, err := jid.Parse(sub.JID); err == nil {
						st.Unsubscribe(sj, sub.SubID)
					}
				}
			}
		}
		if len(st.Owners()) == 0 {
			return &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "a node keeps at least one owner"}
		}
		return nil
	})
	return err
}
