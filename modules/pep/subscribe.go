package pep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

// Explicit subscriptions (XEP-0060 §6.1, XEP-0163 §4.3.3): besides the
// contacts whose clients announce +notify, anyone the node's access model
// lets in may subscribe to a node with <subscribe/>, from any server, and
// gets its notifications whatever its client announces, unless the
// subscription's pubsub#deliver option says not now. They are kept in the
// node's state (the engine's, sealed with it); subscriptions stored
// before that, one KV entry of the owner's per node and JID, are still
// read, and moved into the state when their node's subscriptions change.

// kvSubscriptions is the KV namespace of the subscriptions stored
// before they moved into the node state.
const kvSubscriptions = NS + "#subscriptions"

// MaxSubscriptions bounds the subscriptions to one node, so that
// strangers subscribing to open nodes cannot grow its storage without
// end.
const MaxSubscriptions = 1000

// legacySubscription is one subscription stored in the KV.
type legacySubscription struct {
	Node string `json:"node"`
	JID  string `json:"jid"`
}

// subscription is a subscription and the node it is to.
type subscription struct {
	Node string
	pubsub.Subscription
}

// subKey names a legacy subscription in the KV store.
func subKey(node, j string) string {
	sum := sha256.Sum256([]byte(node + "\x00" + j))
	return hex.EncodeToString(sum[:16])
}

// legacy lists the KV subscriptions to owner's node (all nodes for "").
func (m *Module) legacy(ctx context.Context, owner jid.JID, node string) ([]legacySubscription, error) {
	entries, err := m.host.Store().KV().List(ctx, owner.String(), kvSubscriptions)
	if err != nil {
		return nil, fmt.Errorf("pep: reading the subscriptions of %s: %w", owner, err)
	}
	var out []legacySubscription
	for _, e := range entries {
		var s legacySubscription
		if json.Unmarshal(e.Value, &s) != nil {
			continue // damaged: as if absent
		}
		if node == "" || s.Node == node {
			out = append(out, s)
		}
	}
	return out, nil
}

// subscriptions lists the subscriptions to owner's node, or to all of
// owner's nodes when node is "".
func (m *Module) subscriptions(ctx context.Context, owner jid.JID, node string) ([]subscription, error) {
	var out []subscription
	if node != "" {
		cfg, exists, err := m.nodeConfigOf(ctx, owner.String(), node)
		if err != nil {
			return nil, err
		}
		if exists {
			for _, s := range cfg.Subscriptions {
				out = append(out, subscription{Node: node, Subscription: s})
			}
		}
	} else {
		nodes, err := m.ps.Nodes(ctx, owner.String())
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("pep: listing nodes of %s: %w", owner, err)
		}
		for _, n := range nodes {
			st, err := decodeConfig(n.Config)
			if err != nil {
				continue // damaged: its subscriptions are lost with it
			}
			for _, s := range st.Subscriptions {
				out = append(out, subscription{Node: n.Name, Subscription: s})
			}
		}
	}
	old, err := m.legacy(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	for _, l := range old {
		out = append(out, subscription{Node: l.Node, Subscription: pubsub.Subscription{JID: l.JID}})
	}
	return out, nil
}

// changeState changes the state of owner's node with fn under the owner's
// lock, after moving the node's legacy subscriptions into it, and stores
// it. fn's error is returned as is, and nothing is stored then.
func (m *Module) changeState(ctx context.Context, owner jid.JID, node string, fn func(*nodeConfig) error) error {
	lock := m.ownerLock(owner.String())
	lock.Lock()
	defer lock.Unlock()
	st, exists, err := m.nodeConfigOf(ctx, owner.String(), node)
	if err != nil {
		return err
	}
	if !exists {
		return stanza.ItemNotFound("no such node")
	}
	old, err := m.legacy(ctx, owner, node)
	if err != nil {
		return err
	}
	for _, l := range old {
		if j, err := jid.Parse(l.JID); err == nil {
			if _, err := st.Subscribe(j, pubsub.Subscribed, 0); err != nil {
				return err
			}
		}
	}
	if err := fn(&st); err != nil {
		return err
	}
	if err := m.ps.Configure(ctx, owner.String(), node, st.Encode(), st.Limit(MaxItems)); err != nil {
		return fmt.Errorf("pep: storing the state of %q of %s: %w", node, owner, err)
	}
	for _, l := range old {
		if err := m.host.Store().KV().Delete(ctx, owner.String(), kvSubscriptions, subKey(l.Node, l.JID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			m.host.Logger().Warn("pep: removing a moved subscription failed", "err", err)
		}
	}
	return nil
}

// addSubscription subscribes j to owner's node (or finds its
// subscription) and returns it.
func (m *Module) addSubscription(ctx context.Context, owner jid.JID, node string, j jid.JID) (pubsub.Subscription, error) {
	var sub pubsub.Subscription
	err := m.changeState(ctx, owner, node, func(st *nodeConfig) (err error) {
		sub, err = st.Subscribe(j, pubsub.Subscribed, MaxSubscriptions)
		return err
	})
	return sub, err
}

// removeSubscription reports whether there was one to remove.
func (m *Module) removeSubscription(ctx context.Context, owner jid.JID, node string, j jid.JID, subid string) (bool, error) {
	removed := false
	err := m.changeState(ctx, owner, node, func(st *nodeConfig) error {
		removed = st.Unsubscribe(j, subid)
		return nil
	})
	if se := stanza.AsError(err); err != nil && se != nil && se.Condition == "item-not-found" {
		return false, nil
	}
	return removed, err
}

// dropSubscriptions forgets the legacy subscriptions to a deleted node;
// the others went with its state.
func (m *Module) dropSubscriptions(ctx context.Context, owner jid.JID, node string) {
	old, err := m.legacy(ctx, owner, node)
	if err != nil {
		m.host.Logger().Warn("pep: dropping the subscriptions of a deleted node failed", "err", err)
		return
	}
	for _, l := range old {
		if err := m.host.Store().KV().Delete(ctx, owner.String(), kvSubscriptions, subKey(l.Node, l.JID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			m.host.Logger().Warn("pep: dropping a subscription failed", "err", err)
		}
	}
}

// subscribe handles <subscribe/> (XEP-0060 §6.1), with <options/>
// beside it to configure the subscription at once (§6.3.7).
func (m *Module) subscribe(ctx context.Context, iq module.IQ, action *xmlstream.Element) (*xmlstream.Element, error) {
	node, who, se := pubsub.Subscriber(iq.From, action)
	if se != nil {
		return nil, se
	}
	if m.views[node] != nil {
		return nil, pubsub.Unsupported(stanza.FeatureNotImplemented("this node is a view of other data; it has no subscriptions"), "subscribe")
	}
	cfg, exists, err := m.nodeConfigOf(ctx, iq.To.String(), node)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, stanza.ItemNotFound("no such node")
	}
	if !isOwner(iq) {
		if se, err := m.mayAccess(ctx, iq.To, who.Bare(), cfg); err != nil {
			return nil, err
		} else if se != nil {
			return nil, se
		}
	}
	var sub pubsub.Subscription
	err = m.changeState(ctx, iq.To, node, func(st *nodeConfig) (err error) {
		sub, err = st.SubscribeWith(who, pubsub.Subscribed, MaxSubscriptions, formIn(iq.Payload.Child(NS, "options")))
		return err
	})
	if err != nil {
		return nil, err
	}
	if cfg.SendLast != SendLastNever && !sub.NoDeliver {
		m.sendLastTo(ctx, iq.To, node, who)
	}
	return xmlstream.New(NS, "pubsub").AddChild(pubsub.SubscriptionElement(NS, node, sub)), nil
}

// unsubscribe handles <unsubscribe/> (XEP-0060 §6.2).
func (m *Module) unsubscribe(ctx context.Context, iq module.IQ, action *xmlstream.Element) error {
	node, who, se := pubsub.Subscriber(iq.From, action)
	if se != nil {
		return se
	}
	removed, err := m.removeSubscription(ctx, iq.To, node, who, action.Attr("subid"))
	if err != nil {
		return err
	}
	if !removed {
		return pubsub.Cond(&stanza.Error{Type: stanza.Cancel, Condition: "unexpected-request", Text: "not subscribed"}, "not-subscribed")
	}
	return nil
}

// options gets or sets a subscription's options (XEP-0060 §6.3).
func (m *Module) options(ctx context.Context, iq module.IQ, action *xmlstream.Element) (*xmlstream.Element, error) {
	node, who, se := pubsub.Subscriber(iq.From, action)
	if se != nil {
		return nil, se
	}
	subid := action.Attr("subid")
	var sub pubsub.Subscription
	err := m.changeState(ctx, iq.To, node, func(st *nodeConfig) error {
		i, ok := st.Find(who, subid)
		if !ok {
			return pubsub.Cond(&stanza.Error{Type: stanza.Cancel, Condition: "unexpected-request", Text: "not subscribed"}, "not-subscribed")
		}
		if iq.Type == "set" {
			x := formIn(action)
			if x == nil {
				return pubsub.Cond(stanza.BadRequest("options need a form"), "invalid-options")
			}
			if se := pubsub.ApplyOptions(&st.Subscriptions[i], x); se != nil {
				return se
			}
		}
		sub = st.Subscriptions[i]
		return nil
	})
	if err != nil || iq.Type == "set" {
		return nil, err
	}
	out := xmlstream.New(NS, "options", "node", node, "jid", who.String(), "subid", sub.SubID)
	return xmlstream.New(NS, "pubsub").AddChild(out.AddChild(pubsub.OptionsForm(sub, dataform.TypeForm))), nil
}

// ownSubscriptions lists the requester's subscriptions to the account's
// nodes (XEP-0060 §5.6).
func (m *Module) ownSubscriptions(ctx context.Context, iq module.IQ, action *xmlstream.Element) (*xmlstream.Element, error) {
	node := action.Attr("node")
	subs, err := m.subscriptions(ctx, iq.To, node)
	if err != nil {
		return nil, err
	}
	out := xmlstream.New(NS, "subscriptions")
	if node != "" {
		out.SetAttr("node", node)
	}
	for _, s := range subs {
		if j, err := jid.Parse(s.JID); err == nil && j.Bare().Equal(iq.From.Bare()) {
			out.AddChild(pubsub.SubscriptionElement(NS, s.Node, s.Subscription))
		}
	}
	return xmlstream.New(NS, "pubsub").AddChild(out), nil
}

// ownerSubscriptions lists (get) or changes (set) the subscriptions to
// one of the owner's nodes (XEP-0060 §8.8).
func (m *Module) ownerSubscriptions(ctx context.Context, iq module.IQ, node string, action *xmlstream.Element) (*xmlstream.Element, error) {
	if iq.Type == "get" {
		subs, err := m.subscriptions(ctx, iq.To, node)
		if err != nil {
			return nil, err
		}
		out := xmlstream.New(NSOwner, "subscriptions", "node", node)
		for _, s := range subs {
			out.AddChild(pubsub.SubscriptionElement(NSOwner, "", s.Subscription))
		}
		return xmlstream.New(NSOwner, "pubsub").AddChild(out), nil
	}
	return nil, m.changeState(ctx, iq.To, node, func(st *nodeConfig) error {
		return pubsub.ChangeSubscriptions(st, action, MaxSubscriptions)
	})
}

// notifySubscribers sends an event to the explicit subscribers of node
// the access model still lets in and who want deliveries, except the
// sessions in done, which had it already.
//
// The subscriptions are cfg's, the state the change was made on: a
// deleted node's subscribers are told of its deletion.
func (m *Module) notifySubscribers(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, payload *xmlstream.Element, done map[string]bool) {
	subs := slices.Clone(cfg.Subscriptions)
	old, err := m.legacy(ctx, owner, node)
	if err != nil {
		m.host.Logger().Warn("pep: reading subscriptions for notifications failed", "err", err)
	}
	for _, l := range old {
		subs = append(subs, pubsub.Subscription{JID: l.JID})
	}
	for _, s := range subs {
		j, err := jid.Parse(s.JID)
		if err != nil || s.NoDeliver || !s.Subscribed() {
			continue
		}
		if !j.Bare().Equal(owner) {
			// Access may have been lost since the subscription: a
			// contact that unsubscribed from presence gets nothing.
			if se, err := m.mayAccess(ctx, owner, j.Bare(), cfg); err != nil || se != nil {
				continue
			}
		}
		for _, to := range m.recipients(j) {
			if !done[to.String()] {
				done[to.String()] = true
				m.host.Deliver(ctx, event(owner, to, payload.Copy()))
			}
		}
	}
}

// recipients are where a notification for subscriber j goes: a remote
// JID as it is (its server delivers), a local one to its available
// sessions, all of them for a bare JID.
func (m *Module) recipients(j jid.JID) []jid.JID {
	if !m.host.IsLocal(j.Domain()) {
		return []jid.JID{j}
	}
	var out []jid.JID
	for _, sess := range m.host.Sessions(j.Bare()) {
		if avail, _ := sess.State().Available(); avail && (j.IsBare() || sess.JID().Equal(j)) {
			out = append(out, sess.JID())
		}
	}
	return out
}

// sendLastTo sends a new subscriber the node's last item (XEP-0060
// §6.1.7).
func (m *Module) sendLastTo(ctx context.Context, owner jid.JID, node string, to jid.JID) {
	items, err := m.ps.Items(ctx, owner.String(), node, storage.PubSubQuery{Last: 1})
	if err != nil || len(items) == 0 {
		return
	}
	last := items[len(items)-1]
	p, err := xmlstream.ParseElement(last.Payload, "")
	if err != nil {
		m.host.Logger().Warn("pep: damaged stored item skipped", "err", err)
		return
	}
	for _, r := range m.recipients(to) {
		msg := event(owner, r, eventItems(node).AddChild(itemElement(last.ID, p.Copy())))
		msg.AddChild(stanza.Delay(owner.String(), last.Published))
		m.host.Deliver(ctx, msg)
	}
}
