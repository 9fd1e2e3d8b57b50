package pubsubsvc

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

// discoInfo answers disco#info on the service (§5.1) or a node (§5.3).
func (m *Module) discoInfo(ctx context.Context, r request, node string) (*xmlstream.Element, error) {
	q := xmlstream.New(nsInfo, "query")
	if node == "" {
		q.AddChild(xmlstream.New(nsInfo, "identity", "category", "pubsub", "type", "service", "name", "Publish-Subscribe"))
		for _, f := range Features {
			q.AddChild(xmlstream.New(nsInfo, "feature", "var", f))
		}
		return q, nil
	}
	st, created, ok, err := m.nodeCreated(ctx, r.owner(), node)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, stanza.ItemNotFound("no such node")
	}
	q.SetAttr("node", node)
	q.AddChild(xmlstream.New(nsInfo, "identity", "category", "pubsub", "type", "leaf"))
	q.AddChild(xmlstream.New(nsInfo, "feature", "var", NS))
	if st.Type == nsSocial || st.Type == "urn:xmpp:microblog:0" || st.Type == "http://www.w3.org/2005/Atom" {
		q.AddChild(xmlstream.New(nsInfo, "feature", "var", nsSocial))
	}
	return q.AddChild(st.MetaData(created)), nil
}

// discoItems lists the nodes (§5.2) or a node's item ids (§5.5) the
// requester may see.
func (m *Module) discoItems(ctx context.Context, r request, node string) (*xmlstream.Element, error) {
	q := xmlstream.New(nsItems, "query")
	if node == "" {
		nodes, err := m.ps.Nodes(ctx, r.owner()) // sorted by name
		if err != nil {
			return nil, fmt.Errorf("pubsub service: listing the nodes of %s: %w", r.owner(), err)
		}
		for _, n := range nodes {
			st, err := pubsub.DecodeState(n.Config)
			if err != nil || (st.AccessModel == pubsub.AccessWhitelist && m.access(ctx, r.from, st) != nil) {
				continue // a private node is not shown to strangers
			}
			it := xmlstream.New(nsItems, "item", "jid", r.owner(), "node", n.Name)
			if st.Title != "" {
				it.SetAttr("name", st.Title)
			}
			q.AddChild(it)
		}
		return q, nil
	}
	st, err := m.mustNode(ctx, r.owner(), node)
	if err != nil {
		return nil, err
	}
	if err := m.access(ctx, r.from, st); err != nil {
		return nil, err
	}
	items, err := m.ps.Items(ctx, r.owner(), node, storage.PubSubQuery{})
	if err != nil {
		return nil, fmt.Errorf("pubsub service: items of %q: %w", node, err)
	}
	q.SetAttr("node", node)
	for i := len(items) - 1; i >= 0; i-- {
		q.AddChild(xmlstream.New(nsItems, "item", "jid", r.owner(), "name", items[i].ID))
	}
	return q, nil
}

// user handles requests in the pubsub namespace.
func (m *Module) user(ctx context.Context, r request) (*xmlstream.Element, error) {
	a := action(r.payload)
	if a == nil {
		return nil, stanza.BadRequest("no pubsub action")
	}
	service := r.owner()
	if r.typ == "get" {
		switch a.Name.Local {
		case "items":
			return m.items(ctx, r, a)
		case "subscriptions":
			subs, err := m.subscriptionsOf(ctx, service, r.from, a.Attr("node"))
			return wrap(NS, subs), err
		case "affiliations":
			affs, err := m.affiliationsOf(ctx, service, r.from, a.Attr("node"))
			return wrap(NS, affs), err
		case "options":
			return m.options(ctx, r, a)
		case "default":
			// The default subscription options (§6.4).
			return wrap(NS, xmlstream.New(NS, "default").AddChild(pubsub.OptionsForm(pubsub.Subscription{}, dataform.TypeForm))), nil
		}
		return nil, pubsub.Unsupported(stanza.FeatureNotImplemented(a.Name.Local+" is not supported"), "retrieve-"+a.Name.Local)
	}
	switch a.Name.Local {
	case "create":
		node, err := m.create(ctx, service, r.from, a.Attr("node"), formIn(r.payload.Child(NS, "configure")))
		if err != nil || node == "" {
			return nil, err
		}
		return wrap(NS, xmlstream.New(NS, "create", "node", node)), nil // instant node (§8.1.2)
	case "publish":
		return m.publish(ctx, r, a)
	case "retract":
		return nil, m.retract(ctx, r, a)
	case "subscribe":
		return m.subscribe(ctx, r, a)
	case "unsubscribe":
		node, who, se := pubsub.Subscriber(r.from, a)
		if se != nil {
			return nil, se
		}
		_, err := m.change(ctx, service, node, func(st *pubsub.State) error {
			if !st.Unsubscribe(who, a.Attr("subid")) {
				return pubsub.Cond(&stanza.Error{Type: stanza.Cancel, Condition: "unexpected-request", Text: "not subscribed"}, "not-subscribed")
			}
			return nil
		})
		return nil, err
	case "options":
		return m.options(ctx, r, a)
	}
	return nil, stanza.FeatureNotImplemented(a.Name.Local + " is not supported")
}

func wrap(space string, el *xmlstream.Element) *xmlstream.Element {
	if el == nil {
		return nil
	}
	return xmlstream.New(space, "pubsub").AddChild(el)
}

// defaults is the default node configuration form (§8.3).
func (m *Module) defaults() *xmlstream.Element {
	return wrap(NSOwner, xmlstream.New(NSOwner, "default").AddChild(m.defaultConfig().Form(nil, models)))
}

// items retrieves items (§6.5).
func (m *Module) items(ctx context.Context, r request, a *xmlstream.Element) (*xmlstream.Element, error) {
	node := a.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	st, err := m.mustNode(ctx, r.owner(), node)
	if err != nil {
		return nil, err
	}
	if st.Affiliation(r.from) == pubsub.PublishOnly {
		return nil, stanza.Forbidden("publish-only affiliates may not retrieve items")
	}
	if err := m.access(ctx, r.from, st); err != nil {
		return nil, err
	}
	q, se := pubsub.ItemsQuery(a)
	if se != nil {
		return nil, se
	}
	items, err := m.ps.Items(ctx, r.owner(), node, q)
	if errors.Is(err, storage.ErrInvalid) {
		return nil, stanza.BadRequest("too many item ids")
	}
	if err != nil {
		return nil, fmt.Errorf("pubsub service: items of %q: %w", node, err)
	}
	out := xmlstream.New(NS, "items", "node", node)
	for i := len(items) - 1; i >= 0; i-- { // newest first
		p, err := xmlstream.ParseElement(items[i].Payload, "")
		if err != nil {
			return nil, fmt.Errorf("pubsub service: damaged item %q of %q: %w", items[i].ID, node, err)
		}
		out.AddChild(xmlstream.New(NS, "item", "id", items[i].ID, "publisher", items[i].Publisher).AddChild(p))
	}
	return wrap(NS, out), nil
}

// publish handles a publish (§7.1), creating the node when it is
// missing (auto-create) and checking publish-options as preconditions.
func (m *Module) publish(ctx context.Context, r request, a *xmlstream.Element) (*xmlstream.Element, error) {
	service, node := r.owner(), a.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	var item *xmlstream.Element
	n := 0
	for c := range a.Elements() {
		if c.Name.Space == NS && c.Name.Local == "item" {
			item = c
			n++
		}
	}
	if n > 1 {
		return nil, pubsub.Cond(stanza.BadRequest("publish one item at a time"), "invalid-payload")
	}
	opts := formIn(r.payload.Child(NS, "publish-options"))
	l := m.lock(service, node)
	l.Lock()
	defer l.Unlock()
	st, exists, err := m.node(ctx, service, node)
	if err != nil {
		return nil, err
	}
	if !exists {
		if _, err := m.create(ctx, service, r.from, node, opts); err != nil {
			return nil, err
		}
		if st, err = m.mustNode(ctx, service, node); err != nil {
			return nil, err
		}
	} else if opts != nil {
		f, err := dataform.Parse(opts)
		if err != nil {
			return nil, err
		}
		if f.FormType == pubsub.FormPublishOptions && !st.Meets(f, m.opts.MaxItems) {
			return nil, pubsub.Cond(stanza.Conflict("the node's configuration does not match the publish options"), "precondition-not-met")
		}
	}
	if !st.MayPublish(r.from) {
		return nil, stanza.Forbidden("you may not publish to this node")
	}
	var payload *xmlstream.Element
	id := ""
	if item != nil {
		id = item.Attr("id")
		k := 0
		for c := range item.Elements() {
			payload = c
			k++
		}
		if k > 1 {
			return nil, pubsub.Cond(stanza.BadRequest("an item carries one payload"), "invalid-payload")
		}
	}
	if payload == nil && st.PersistItems {
		return nil, pubsub.Cond(stanza.BadRequest("a persistent node needs a payload"), "payload-required")
	}
	if id == "" {
		id = pubsub.NewID()
	}
	it := storage.PubSubItem{ID: id, Publisher: r.from.Bare().String(), Published: m.now().UTC()}
	if payload != nil {
		it.Payload = payload.Append(nil, "")
	}
	if len(it.Payload) > m.opts.MaxItemBytes {
		return nil, pubsub.Cond(&stanza.Error{Type: stanza.Modify, Condition: "not-acceptable",
			Text: fmt.Sprintf("the item has %d bytes, more than the %d this service keeps", len(it.Payload), m.opts.MaxItemBytes)}, "payload-too-big")
	}
	if st.PersistItems {
		if err := m.checkQuota(ctx, service, node, st, it); err != nil {
			return nil, err
		}
		if _, err := m.ps.Publish(ctx, service, node, it, st.Limit(m.opts.MaxItems)); errors.Is(err, storage.ErrInvalid) {
			return nil, pubsub.Cond(&stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "the item id is invalid"}, "item-forbidden")
		} else if err != nil {
			return nil, fmt.Errorf("pubsub service: publishing to %q: %w", node, err)
		}
	}
	if !st.NoNotifications {
		if ev, err := itemsEvent(node, st, it); err == nil {
			m.notify(ctx, service, node, st, ev)
		}
	}
	return wrap(NS, xmlstream.New(NS, "publish", "node", node).AddChild(xmlstream.New(NS, "item", "id", id))), nil
}

// retract deletes an item (§7.2) and tells the subscribers when the node
// or the request says so.
func (m *Module) retract(ctx context.Context, r request, a *xmlstream.Element) error {
	service, node := r.owner(), a.Attr("node")
	if node == "" {
		return pubsub.NodeRequired()
	}
	it := a.Child(NS, "item")
	if it == nil || it.Attr("id") == "" {
		return pubsub.Cond(stanza.BadRequest("retract needs an item id"), "item-required")
	}
	id := it.Attr("id")
	st, err := m.mustNode(ctx, service, node)
	if err != nil {
		return err
	}
	switch st.Affiliation(r.from) {
	case pubsub.Owner, pubsub.Publisher:
	default:
		// Others may retract only what they published.
		items, err := m.ps.Items(ctx, service, node, storage.PubSubQuery{IDs: []string{id}})
		if err != nil {
			return fmt.Errorf("pubsub service: items of %q: %w", node, err)
		}
		if len(items) == 1 && items[0].Publisher != r.from.Bare().String() {
			return stanza.Forbidden("you may only retract your own items")
		}
		if len(items) == 1 && !st.MayPublish(r.from) {
			return stanza.Forbidden("you may not retract from this node")
		}
	}
	if err := m.ps.Retract(ctx, service, node, id); errors.Is(err, storage.ErrNotFound) {
		return stanza.ItemNotFound("no such item")
	} else if err != nil {
		return fmt.Errorf("pubsub service: retracting from %q: %w", node, err)
	}
	notify := st.NotifyRetract
	if v := a.Attr("notify"); v != "" {
		notify = v == "true" || v == "1"
	}
	if notify {
		m.notify(ctx, service, node, st, xmlstream.New(NSEvent, "items", "node", node).AddChild(xmlstream.New(NSEvent, "retract", "id", id)))
	}
	return nil
}

// subscribe handles <subscribe/> (§6.1): at once for those the access
// model lets in, pending the owners' approval on an authorize node.
func (m *Module) subscribe(ctx context.Context, r request, a *xmlstream.Element) (*xmlstream.Element, error) {
	service := r.owner()
	node, who, se := pubsub.Subscriber(r.from, a)
	if se != nil {
		return nil, se
	}
	var sub pubsub.Subscription
	asked := false
	st, err := m.change(ctx, service, node, func(st *pubsub.State) error {
		state := pubsub.Subscribed
		if err := m.access(ctx, who, *st); err != nil {
			se := stanza.AsError(err)
			if st.AccessModel != pubsub.AccessAuthorize || se.Condition != "not-authorized" {
				return err
			}
			state = pubsub.Pending
		}
		if st.Affiliation(who) == pubsub.PublishOnly {
			return stanza.Forbidden("publish-only affiliates may not subscribe")
		}
		_, had := st.Find(who, "")
		var err error
		sub, err = st.SubscribeWith(who, state, m.opts.MaxSubscriptions, formIn(r.payload.Child(NS, "options")))
		asked = !had && sub.State == pubsub.Pending
		return err
	})
	if err != nil {
		return nil, err
	}
	if asked {
		m.askOwners(ctx, service, node, st, sub)
	} else if sub.Subscribed() && !sub.NoDeliver {
		m.sendLast(ctx, service, node, st, who)
	}
	return wrap(NS, pubsub.SubscriptionElement(NS, node, sub)), nil
}

// options gets or sets a subscription's options (§6.3).
func (m *Module) options(ctx context.Context, r request, a *xmlstream.Element) (*xmlstream.Element, error) {
	node, who, se := pubsub.Subscriber(r.from, a)
	if se != nil {
		return nil, se
	}
	var sub pubsub.Subscription
	find := func(st *pubsub.State) (int, error) {
		i, ok := st.Find(who, a.Attr("subid"))
		if !ok {
			return 0, pubsub.Cond(&stanza.Error{Type: stanza.Cancel, Condition: "unexpected-request", Text: "not subscribed"}, "not-subscribed")
		}
		return i, nil
	}
	if r.typ == "get" {
		st, err := m.mustNode(ctx, r.owner(), node)
		if err != nil {
			return nil, err
		}
		i, err := find(&st)
		if err != nil {
			return nil, err
		}
		sub = st.Subscriptions[i]
		out := xmlstream.New(NS, "options", "node", node, "jid", who.String(), "subid", sub.SubID)
		return wrap(NS, out.AddChild(pubsub.OptionsForm(sub, dataform.TypeForm))), nil
	}
	_, err := m.change(ctx, r.owner(), node, func(st *pubsub.State) error {
		i, err := find(st)
		if err != nil {
			return err
		}
		x := formIn(a)
		if x == nil {
			return pubsub.Cond(stanza.BadRequest("options need a form"), "invalid-options")
		}
		if se := pubsub.ApplyOptions(&st.Subscriptions[i], x); se != nil {
			return se
		}
		return nil
	})
	return nil, err
}

// askOwners sends each owner the authorization form of a pending
// subscription (§8.6).
func (m *Module) askOwners(ctx context.Context, service, node string, st pubsub.State, sub pubsub.Subscription) {
	for _, o := range owners(st) {
		f := dataform.New(dataform.TypeForm, dataform.PubSubSubAuth)
		f.Title = "PubSub subscriber request"
		f.Instructions = "To approve this entity's subscription request, click the OK button. To deny the request, click the cancel button."
		f.Add("pubsub#subid", "Subscription id", sub.SubID)
		f.Add("pubsub#node", "Node ID", node)
		f.Add("pubsub#subscriber_jid", "Subscriber Address", sub.JID)
		f.AddBool("pubsub#allow", "Allow this JID to subscribe to this pubsub node?", false)
		msg := xmlstream.New("jabber:client", "message", "from", service, "to", o.String(), "id", pubsub.NewID())
		m.host.Deliver(ctx, msg.AddChild(f.Element()))
	}
}

// message takes an owner's answer to an authorization request (§8.6).
func (m *Module) message(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	x := el.Child(dataform.NS, "x")
	if x == nil || el.Attr("type") == "error" {
		return
	}
	f, err := dataform.Parse(x)
	if err != nil || f.FormType != dataform.PubSubSubAuth || f.Type != dataform.TypeSubmit {
		return
	}
	service, node := to.Domain(), f.Value("pubsub#node")
	who, err := jid.Parse(f.Value("pubsub#subscriber_jid"))
	if err != nil || node == "" {
		return
	}
	allow, err := dataform.ParseBool(f.Value("pubsub#allow"))
	if err != nil {
		return
	}
	var decided *pubsub.Subscription
	st, err := m.change(ctx, service, node, func(st *pubsub.State) error {
		if !isOwner(*st, from) {
			return ownerOnly()
		}
		i, ok := st.Find(who, f.Value("pubsub#subid"))
		if !ok || st.Subscriptions[i].State != pubsub.Pending {
			return errNothing
		}
		sub := st.Subscriptions[i]
		if allow {
			st.Subscriptions[i].State = pubsub.Subscribed
			sub.State = pubsub.Subscribed
		} else {
			st.Unsubscribe(who, sub.SubID)
			sub.State = pubsub.None
		}
		decided = &sub
		return nil
	})
	if err != nil {
		if !errors.Is(err, errNothing) {
			m.host.Logger().Debug("pubsub service: authorization answer not applied", "err", err)
		}
		return
	}
	// The subscriber learns the outcome (§8.6.3).
	ev := xmlstream.New(NSEvent, "subscription", "node", node, "jid", who.String(), "subscription", decided.State)
	if decided.State == pubsub.Subscribed {
		ev.SetAttr("subid", decided.SubID)
	}
	m.host.Deliver(ctx, event(service, who, ev))
	if decided.State == pubsub.Subscribed && !decided.NoDeliver {
		m.sendLast(ctx, service, node, st, who)
	}
}

// errNothing: an authorization answer about no pending subscription.
var errNothing = errors.New("no pending subscription")
