package modtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

func (h *Host) OnIQResult(fn module.IQResultHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.iqResults = append(h.iqResults, fn)
}

// IQResult offers an IQ result or error (as a client would send it, with
// 'from' and 'to' set) to the IQ result handlers like the router does,
// and reports whether one handled it.
func (h *Host) IQResult(ctx context.Context, el *xmlstream.Element) bool {
	from, to := jid.MustParse(el.Attr("from")), jid.MustParse(el.Attr("to"))
	h.mu.Lock()
	hooks := slices.Clone(h.iqResults)
	h.mu.Unlock()
	for _, fn := range hooks {
		if fn(ctx, from, to, el) {
			return true
		}
	}
	return false
}

func (s *Store) PubSub() storage.PubSub { return s.pubsub }
func (s *Store) FakePubSub() *PubSub    { return s.pubsub }

type psNodeKey struct{ owner, node string }

type psNode struct {
	storage.PubSubNode
	items []storage.PubSubItem // oldest first
}

// PubSub is the in-memory pubsub repository with the drivers' semantics
// (ErrNotFound for missing accounts and nodes, ErrExists, ordering by
// publication, item limits). SetFail makes every call fail.
type PubSub struct {
	mu    sync.Mutex
	users *Users
	nodes map[psNodeKey]*psNode
	fail  error
}

func newPubSub(users *Users) *PubSub {
	return &PubSub{users: users, nodes: map[psNodeKey]*psNode{}}
}

// SetFail makes every later call fail with err (nil heals the store).
func (p *PubSub) SetFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

func (p *PubSub) check(owner, node string) error {
	if p.fail != nil {
		return p.fail
	}
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if node == "\x00any" {
		return nil
	}
	return storage.ValidateNodeName(node)
}

func (p *PubSub) hasAccount(owner string) bool {
	p.users.mu.Lock()
	defer p.users.mu.Unlock()
	_, ok := p.users.m[owner]
	return ok
}

// dropDeleted forgets the nodes of accounts deleted since, as the
// drivers' ON DELETE CASCADE would.
func (p *PubSub) dropDeleted() {
	for k := range p.nodes {
		if !p.hasAccount(k.owner) {
			delete(p.nodes, k)
		}
	}
}

func (p *PubSub) node(owner, node string) (*psNode, error) {
	p.dropDeleted()
	n := p.nodes[psNodeKey{owner, node}]
	if n == nil {
		return nil, fmt.Errorf("modtest: pubsub node %q of %s: %w", node, owner, storage.ErrNotFound)
	}
	return n, nil
}

func (p *PubSub) CreateNode(_ context.Context, owner string, n storage.PubSubNode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, n.Name); err != nil {
		return err
	}
	if err := storage.ValidateBlob("pubsub node config", n.Config); err != nil {
		return err
	}
	if !p.hasAccount(owner) {
		return fmt.Errorf("modtest: create pubsub node of %s: %w", owner, storage.ErrNotFound)
	}
	p.dropDeleted()
	k := psNodeKey{owner, n.Name}
	if p.nodes[k] != nil {
		return fmt.Errorf("modtest: create pubsub node %q of %s: %w", n.Name, owner, storage.ErrExists)
	}
	n.Config = append([]byte{}, n.Config...)
	n.Created = storage.StoredTime()
	p.nodes[k] = &psNode{PubSubNode: n}
	return nil
}

func (p *PubSub) Node(_ context.Context, owner, node string) (storage.PubSubNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, node); err != nil {
		return storage.PubSubNode{}, err
	}
	n, err := p.node(owner, node)
	if err != nil {
		return storage.PubSubNode{}, err
	}
	out := n.PubSubNode
	out.Config = slices.Clone(n.Config)
	return out, nil
}

func (p *PubSub) Nodes(_ context.Context, owner string) ([]storage.PubSubNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, "\x00any"); err != nil {
		return nil, err
	}
	if !p.hasAccount(owner) {
		return nil, fmt.Errorf("modtest: pubsub nodes of %s: %w", owner, storage.ErrNotFound)
	}
	p.dropDeleted()
	var out []storage.PubSubNode
	for k, n := range p.nodes {
		if k.owner == owner {
			c := n.PubSubNode
			c.Config = slices.Clone(n.Config)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b storage.PubSubNode) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func trim(n *psNode, max int) {
	max = storage.EffectiveMaxItems(max)
	if len(n.items) > max {
		n.items = slices.Clone(n.items[len(n.items)-max:])
	}
}

func (p *PubSub) Configure(_ context.Context, owner, node string, config []byte, maxItems int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, node); err != nil {
		return err
	}
	if err := storage.ValidateMaxItems(maxItems); err != nil {
		return err
	}
	n, err := p.node(owner, node)
	if err != nil {
		return err
	}
	n.Config = append([]byte{}, config...)
	trim(n, maxItems)
	return nil
}

func (p *PubSub) DeleteNode(_ context.Context, owner, node string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, node); err != nil {
		return err
	}
	if _, err := p.node(owner, node); err != nil {
		return err
	}
	delete(p.nodes, psNodeKey{owner, node})
	return nil
}

func (p *PubSub) Publish(_ context.Context, owner, node string, it storage.PubSubItem, maxItems int) (storage.PubSubItem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, node); err != nil {
		return storage.PubSubItem{}, err
	}
	if err := storage.ValidatePubSubItem(it); err != nil {
		return storage.PubSubItem{}, err
	}
	if err := storage.ValidateMaxItems(maxItems); err != nil {
		return storage.PubSubItem{}, err
	}
	n, err := p.node(owner, node)
	if err != nil {
		return storage.PubSubItem{}, err
	}
	it.Payload = append([]byte{}, it.Payload...)
	it.Published = storage.StoredTime()
	n.items = slices.DeleteFunc(n.items, func(o storage.PubSubItem) bool { return o.ID == it.ID })
	n.items = append(n.items, it)
	trim(n, maxItems)
	return it, nil
}

func (p *PubSub) Retract(_ context.Context, owner, node, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, node); err != nil {
		return err
	}
	n, err := p.node(owner, node)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(n.items, func(o storage.PubSubItem) bool { return o.ID == id })
	if i < 0 {
		return fmt.Errorf("modtest: retract %q from %q of %s: %w", id, node, owner, storage.ErrNotFound)
	}
	n.items = slices.Delete(n.items, i, i+1)
	return nil
}

func (p *PubSub) Items(_ context.Context, owner, node string, q storage.PubSubQuery) ([]storage.PubSubItem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, node); err != nil {
		return nil, err
	}
	n, err := p.node(owner, node)
	if err != nil {
		return nil, err
	}
	var out []storage.PubSubItem
	for _, it := range n.items {
		if len(q.IDs) == 0 || slices.Contains(q.IDs, it.ID) {
			it.Payload = slices.Clone(it.Payload)
			out = append(out, it)
		}
	}
	if q.Last > 0 && len(out) > q.Last {
		out = out[len(out)-q.Last:]
	}
	return out, nil
}

func (p *PubSub) LastItems(_ context.Context, owner string) ([]storage.PubSubLast, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, "\x00any"); err != nil {
		return nil, err
	}
	p.dropDeleted()
	var out []storage.PubSubLast
	for k, n := range p.nodes {
		if k.owner == owner && len(n.items) > 0 {
			it := n.items[len(n.items)-1]
			it.Payload = slices.Clone(it.Payload)
			out = append(out, storage.PubSubLast{Node: k.node, Item: it})
		}
	}
	slices.SortFunc(out, func(a, b storage.PubSubLast) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

func (p *PubSub) PayloadBytes(_ context.Context, owner string) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(owner, "\x00any"); err != nil {
		return 0, err
	}
	p.dropDeleted()
	var n int64
	for k, nd := range p.nodes {
		if k.owner == owner {
			for _, it := range nd.items {
				n += int64(len(it.Payload))
			}
		}
	}
	return n, nil
}
