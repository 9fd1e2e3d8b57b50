package pubsub

import (
	"context"
	"fmt"

	"parley/internal/seal"
	"parley/internal/storage"
)

// Sealed wraps a pubsub repository so that node states and item
// payloads are stored sealed under the server's key (issue 16: they are
// served to others while their owner is away, so no user key can guard
// them, but a copy of the database alone no longer reads them). Each
// blob is bound to the door (kind), the owner (account or service
// domain), the node and, for an item, its id: moved to another row it
// fails to open.
//
// Rows stored before sealing (a JSON state starts with '{', an XML
// payload with '<', a sealed blob with its version byte) are read as
// they are and sealed when next written.
func Sealed(ps storage.PubSub, key []byte, kind string) (storage.PubSub, error) {
	s, err := seal.New(key)
	if err != nil {
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	return sealed{PubSub: ps, s: s, kind: kind}, nil
}

// KeyPurpose names the server key both doors seal with (module.Host.Key).
const KeyPurpose = "pubsub items and nodes"

// SealOverhead is how many bytes sealing adds to a payload: what a
// quota counting stored bytes sees beyond the payload itself.
const SealOverhead = 1 + 4 + 12 + 16

type sealed struct {
	storage.PubSub
	s    *seal.Sealer
	kind string
}

func (p sealed) nodeAD(owner, node string) []byte { return seal.AD(p.kind, "node", owner, node) }
func (p sealed) itemAD(owner, node, id string) []byte {
	return seal.AD(p.kind, "item", owner, node, id)
}

func (p sealed) open(blob, ad []byte, what string) ([]byte, error) {
	if seal.Format(blob) != seal.Version {
		return blob, nil // stored in clear before sealing
	}
	plain, err := p.s.Open(blob, ad)
	if err != nil {
		return nil, fmt.Errorf("pubsub: opening %s: %w", what, err)
	}
	return plain, nil
}

func (p sealed) CreateNode(ctx context.Context, owner string, n storage.PubSubNode) error {
	n.Config = p.s.Seal(n.Config, p.nodeAD(owner, n.Name))
	return p.PubSub.CreateNode(ctx, owner, n)
}

func (p sealed) Node(ctx context.Context, owner, node string) (storage.PubSubNode, error) {
	n, err := p.PubSub.Node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	n.Config, err = p.open(n.Config, p.nodeAD(owner, node), fmt.Sprintf("node %q of %s", node, owner))
	return n, err
}

func (p sealed) Nodes(ctx context.Context, owner string) ([]storage.PubSubNode, error) {
	ns, err := p.PubSub.Nodes(ctx, owner)
	if err != nil {
		return nil, err
	}
	for i := range ns {
		if ns[i].Config, err = p.open(ns[i].Config, p.nodeAD(owner, ns[i].Name), fmt.Sprintf("node %q of %s", ns[i].Name, owner)); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

func (p sealed) Configure(ctx context.Context, owner, node string, config []byte, maxItems int) error {
	return p.PubSub.Configure(ctx, owner, node, p.s.Seal(config, p.nodeAD(owner, node)), maxItems)
}

func (p sealed) Publish(ctx context.Context, owner, node string, it storage.PubSubItem, maxItems int) (storage.PubSubItem, error) {
	plain := it.Payload
	it.Payload = p.s.Seal(plain, p.itemAD(owner, node, it.ID))
	out, err := p.PubSub.Publish(ctx, owner, node, it, maxItems)
	out.Payload = plain
	return out, err
}

func (p sealed) Items(ctx context.Context, owner, node string, q storage.PubSubQuery) ([]storage.PubSubItem, error) {
	its, err := p.PubSub.Items(ctx, owner, node, q)
	if err != nil {
		return nil, err
	}
	for i := range its {
		if its[i].Payload, err = p.open(its[i].Payload, p.itemAD(owner, node, its[i].ID), fmt.Sprintf("item %q of %q of %s", its[i].ID, node, owner)); err != nil {
			return nil, err
		}
	}
	return its, nil
}

func (p sealed) LastItems(ctx context.Context, owner string) ([]storage.PubSubLast, error) {
	ls, err := p.PubSub.LastItems(ctx, owner)
	if err != nil {
		return nil, err
	}
	for i := range ls {
		l := &ls[i]
		if l.Item.Payload, err = p.open(l.Item.Payload, p.itemAD(owner, l.Node, l.Item.ID), fmt.Sprintf("item %q of %q of %s", l.Item.ID, l.Node, owner)); err != nil {
			return nil, err
		}
	}
	return ls, nil
}

// FreedBy is how many stored (sealed) bytes of items, a node's items
// oldest first as read, go when an item with id is published to the
// node keeping limit items: the item it replaces and the oldest beyond
// the limit. A quota counts them as freed, so that a user at the quota
// can still replace an item by one of the same size.
func FreedBy(items []storage.PubSubItem, id string, limit int) int64 {
	var freed int64
	kept := items[:0:0]
	for _, it := range items {
		if it.ID == id {
			freed += int64(len(it.Payload)) + SealOverhead
		} else {
			kept = append(kept, it)
		}
	}
	// The new item is the newest; the oldest beyond the limit go.
	for _, it := range kept[:max(0, len(kept)-(storage.EffectiveMaxItems(limit)-1))] {
		freed += int64(len(it.Payload)) + SealOverhead
	}
	return freed
}
