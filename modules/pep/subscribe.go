package pep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

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
// gets its notifications whatever its client announces. They are kept in
// the owner's KV namespace, one entry per node and JID.

// kvSubscriptions is the KV namespace of an owner's subscriptions.
const kvSubscriptions = NS + "#subscriptions"

// MaxSubscriptions bounds the subscriptions to one account's nodes, so
// that strangers subscribing to open nodes cannot grow its storage
// without end.
const MaxSubscriptions = 1000

// subscription is one stored subscription.
type subscription struct {
	Node string `json:"node"`
	JID  string `json:"jid"` // bare or full, as subscribed
}

// subKey names a subscription in the KV store; node names and JIDs may
// be long, so the pair is hashed and kept in the value.
func subKey(node, j string) string {
	sum := sha256.Sum256([]byte(node + "\x00" + j))
	return hex.EncodeToString(sum[:16])
}

// subscriptions lists owner's subscriptions, those of node only when
// node is not "".
func (m *Module) subscriptions(ctx context.Context, owner jid.JID, node string) ([]subscription, error) {
	entries, err := m.host.Store().KV().List(ctx, owner.String(), kvSubscriptions)
	if err != nil {
		return nil, fmt.Errorf("pep: reading the subscriptions of %s: %w", owner, err)
	}
	var out []subscription
	for _, e := range entries {
		var s subscription
		if json.Unmarshal(e.Value, &s) != nil {
			continue // damaged: as if absent
		}
		if node == "" || s.Node == node {
			out = append(out, s)
		}
	}
	return out, nil
}

func (m *Module) addSubscription(ctx context.Context, owner jid.JID, s subscription) error {
	kv := m.host.Store().KV()
	key := subKey(s.Node, s.JID)
	if _, err := kv.Get(ctx, owner.String(), kvSubscriptions, key); err == nil {
		return nil // subscribed already
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("pep: reading a subscription of %s: %w", owner, err)
	}
	all, err := m.subscriptions(ctx, owner, "")
	if err != nil {
		return err
	}
	if len(all) >= MaxSubscriptions {
		return &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
			Text: fmt.Sprintf("at most %d subscriptions to one account's nodes", MaxSubscriptions)}
	}
	data, _ := json.Marshal(s) // two strings always marshal
	if err := kv.Put(ctx, owner.String(), kvSubscriptions, key, data); err != nil {
		return fmt.Errorf("pep: storing a subscription to %s: %w", owner, err)
	}
	return nil
}

// removeSubscription reports whether there was one to remove.
func (m *Module) removeSubscription(ctx context.Context, owner jid.JID, node, j string) (bool, error) {
	err := m.host.Store().KV().Delete(ctx, owner.String(), kvSubscriptions, subKey(node, j))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pep: removing a subscription to %s: %w", owner, err)
	}
	return true, nil
}

// dropSubscriptions forgets every subscription to a deleted node.
func (m *Module) dropSubscriptions(ctx context.Context, owner jid.JID, node string) {
	subs, err := m.subscriptions(ctx, owner, node)
	if err != nil {
		m.host.Logger().Warn("pep: dropping the subscriptions of a deleted node failed", "err", err)
		return
	}
	for _, s := range subs {
		if _, err := m.removeSubscription(ctx, owner, s.Node, s.JID); err != nil {
			m.host.Logger().Warn("pep: dropping a subscription failed", "err", err)
		}
	}
}

// subscriber reads and checks the 'jid' of a subscribe or unsubscribe:
// one may only (un)subscribe oneself (XEP-0060 §6.1.3.1, §6.2.3.3).
func subscriber(iq module.IQ, action *xmlstream.Element) (jid.JID, *stanza.Error) {
	raw := action.Attr("jid")
	if raw == "" {
		return jid.JID{}, pubsub.Cond(stanza.BadRequest("a subscription needs the subscriber's jid"), "jid-required")
	}
	j, err := jid.Parse(raw)
	if err != nil || !j.Bare().Equal(iq.From.Bare()) {
		return jid.JID{}, pubsub.Cond(stanza.BadRequest("the jid is not the requester's"), "invalid-jid")
	}
	return j, nil
}

func subscriptionElement(space, node string, j string, state string) *xmlstream.Element {
	el := xmlstream.New(space, "subscription", "jid", j, "subscription", state)
	if node != "" {
		el.SetAttr("node", node)
	}
	return el
}

// subscribe handles <subscribe/> (XEP-0060 §6.1).
func (m *Module) subscribe(ctx context.Context, iq module.IQ, action *xmlstream.Element) (*xmlstream.Element, error) {
	node := action.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	who, se := subscriber(iq, action)
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
	if err := m.addSubscription(ctx, iq.To, subscription{Node: node, JID: who.String()}); err != nil {
		return nil, err
	}
	if cfg.SendLast != SendLastNever {
		m.sendLastTo(ctx, iq.To, node, who)
	}
	return xmlstream.New(NS, "pubsub").AddChild(subscriptionElement(NS, node, who.String(), "subscribed")), nil
}

// unsubscribe handles <unsubscribe/> (XEP-0060 §6.2).
func (m *Module) unsubscribe(ctx context.Context, iq module.IQ, action *xmlstream.Element) error {
	node := action.Attr("node")
	if node == "" {
		return pubsub.NodeRequired()
	}
	who, se := subscriber(iq, action)
	if se != nil {
		return se
	}
	removed, err := m.removeSubscription(ctx, iq.To, node, who.String())
	if err != nil {
		return err
	}
	if !removed {
		return pubsub.Cond(&stanza.Error{Type: stanza.Cancel, Condition: "unexpected-request", Text: "not subscribed"}, "not-subscribed")
	}
	return nil
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
			out.AddChild(subscriptionElement(NS, s.Node, s.JID, "subscribed"))
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
			out.AddChild(subscriptionElement(NSOwner, "", s.JID, "subscribed"))
		}
		return xmlstream.New(NSOwner, "pubsub").AddChild(out), nil
	}
	for c := range action.Elements() {
		if c.Name.Space != NSOwner || c.Name.Local != "subscription" {
			continue
		}
		j, err := jid.Parse(c.Attr("jid"))
		if err != nil {
			return nil, stanza.JIDMalformed("a subscription's jid is not a JID")
		}
		switch c.Attr("subscription") {
		case "none":
			if _, err := m.removeSubscription(ctx, iq.To, node, j.String()); err != nil {
				return nil, err
			}
		case "subscribed":
			if err := m.addSubscription(ctx, iq.To, subscription{Node: node, JID: j.String()}); err != nil {
				return nil, err
			}
		default:
			return nil, stanza.BadRequest("a subscription state is none or subscribed")
		}
	}
	return nil, nil
}

// notifySubscribers sends an event to the explicit subscribers of node
// the access model still lets in, except the sessions in done, which had
// it already.
func (m *Module) notifySubscribers(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, payload *xmlstream.Element, done map[string]bool) {
	subs, err := m.subscriptions(ctx, owner, node)
	if err != nil {
		m.host.Logger().Warn("pep: reading subscriptions for notifications failed", "err", err)
		return
	}
	for _, s := range subs {
		j, err := jid.Parse(s.JID)
		if err != nil {
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
