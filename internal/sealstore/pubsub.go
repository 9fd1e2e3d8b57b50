package sealstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"parley/internal/seal"
	"parley/internal/storage"
	"parley/internal/vault"
)

// PubSub seals the items of an owner's private PEP nodes (bookmarks,
// XEP-0402) under the owner's key: the payload and the item id (a
// bookmark's id is the room's JID) go into the sealed blob, and the
// stored id is a blind index of the real one, so retracting or fetching
// by id still works. Other nodes pass through: what others may read must
// be readable while the owner is away.
//
// Items of a private node are written only by their owner (or by an
// import, to the mail-drop key) and read only by their owner, who is
// logged in; LastItems leaves a sealed node out while the owner is away,
// since nobody else may see it.
type PubSub struct {
	storage.PubSub
	v       Vault
	private func(node string) bool
}

// NewPubSub wraps ps; private says which node names are sealed.
func NewPubSub(ps storage.PubSub, v Vault, private func(node string) bool) *PubSub {
	return &PubSub{PubSub: ps, v: v, private: private}
}

type sealedPubSubItem struct {
	ID        string `json:"i"`
	Publisher string `json:"p"`
	Payload   []byte `json:"x"`
}

func (p *PubSub) index(owner, node, id string) string {
	return hex.EncodeToString(p.v.Blind("pep "+node, blindKey(owner, id)))
}

func pubsubAD(owner, node, index string) []byte {
	return seal.AD("parley sealed pep item", owner, node, index)
}

func (p *PubSub) Publish(ctx context.Context, owner, node string, it storage.PubSubItem, maxItems int) (storage.PubSubItem, error) {
	if !p.private(node) {
		return p.PubSub.Publish(ctx, owner, node, it, maxItems)
	}
	if err := storage.ValidatePubSubItem(it); err != nil {
		return storage.PubSubItem{}, err
	}
	plain, err := json.Marshal(sealedPubSubItem{ID: it.ID, Publisher: it.Publisher, Payload: it.Payload})
	if err != nil {
		return storage.PubSubItem{}, fmt.Errorf("sealstore: encoding an item: %w", err)
	}
	idx := p.index(owner, node, it.ID)
	blob, err := sealFor(ctx, p.v, owner, plain, pubsubAD(owner, node, idx))
	clear(plain)
	if errors.Is(err, vault.ErrNoKey) {
		if err := p.PubSub.Retract(ctx, owner, node, idx); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return storage.PubSubItem{}, err
		}
		return p.PubSub.Publish(ctx, owner, node, it, maxItems)
	}
	if err != nil {
		return storage.PubSubItem{}, fmt.Errorf("sealstore: sealing an item of %s: %w", owner, err)
	}
	// The publisher is in the blob; the row names only the owner.
	stored, err := p.PubSub.Publish(ctx, owner, node, storage.PubSubItem{ID: idx, Publisher: owner, Payload: blob}, maxItems)
	if err != nil {
		return storage.PubSubItem{}, err
	}
	// A clear copy stored before sealing goes, now that the sealed one
	// is there.
	if err := p.PubSub.Retract(ctx, owner, node, it.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storage.PubSubItem{}, err
	}
	it.Published = stored.Published
	return it, nil
}

func (p *PubSub) Retract(ctx context.Context, owner, node, id string) error {
	if !p.private(node) {
		return p.PubSub.Retract(ctx, owner, node, id)
	}
	errSealed := p.PubSub.Retract(ctx, owner, node, p.index(owner, node, id))
	if errSealed != nil && !errors.Is(errSealed, storage.ErrNotFound) {
		return errSealed
	}
	errClear := p.PubSub.Retract(ctx, owner, node, id)
	if errSealed == nil && errors.Is(errClear, storage.ErrNotFound) {
		return nil
	}
	return errClear
}

func (p *PubSub) Items(ctx context.Context, owner, node string, q storage.PubSubQuery) ([]storage.PubSubItem, error) {
	if !p.private(node) {
		return p.PubSub.Items(ctx, owner, node, q)
	}
	if len(q.IDs) > 0 {
		ids := make([]string, 0, 2*len(q.IDs))
		for _, id := range q.IDs {
			ids = append(ids, p.index(owner, node, id), id)
		}
		q.IDs = ids
	}
	items, err := p.PubSub.Items(ctx, owner, node, q)
	if err != nil {
		return nil, err
	}
	out := items[:0]
	for _, it := range items {
		opened, err := p.open(ctx, owner, node, it)
		if lost(err) {
			continue // gone with an old key; the next Reseal deletes it
		}
		if err != nil {
			return nil, err
		}
		out = append(out, opened)
	}
	return out, nil
}

// open returns a stored item as published: a sealed one opened, one
// stored in clear before sealing as it is.
func (p *PubSub) open(ctx context.Context, owner, node string, it storage.PubSubItem) (storage.PubSubItem, error) {
	if !vault.IsVault(it.Payload) {
		return it, nil
	}
	plain, err := p.v.Open(ctx, owner, it.Payload, pubsubAD(owner, node, it.ID))
	if err != nil {
		return storage.PubSubItem{}, fmt.Errorf("sealstore: opening an item of %s in %s: %w", owner, node, err)
	}
	var s sealedPubSubItem
	if err := json.Unmarshal(plain, &s); err != nil {
		return storage.PubSubItem{}, fmt.Errorf("sealstore: a sealed item of %s in %s is damaged: %w", owner, node, err)
	}
	return storage.PubSubItem{ID: s.ID, Publisher: s.Publisher, Payload: s.Payload, Published: it.Published}, nil
}

func (p *PubSub) LastItems(ctx context.Context, owner string) ([]storage.PubSubLast, error) {
	last, err := p.PubSub.LastItems(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := last[:0]
	for _, l := range last {
		if p.private(l.Node) {
			it, err := p.open(ctx, owner, l.Node, l.Item)
			if Locked(err) || lost(err) {
				continue // the owner is away: nobody else may see it
			}
			if err != nil {
				return nil, err
			}
			l.Item = it
		}
		out = append(out, l)
	}
	return out, nil
}

// Reseal seals the items of owner's private nodes stored in clear before
// sealing, seals mail-drop items again under the data key (each
// published again, oldest first, so the order holds; their publication
// time becomes now), and deletes items under a lost key.
func (p *PubSub) Reseal(ctx context.Context, owner string) error {
	nodes, err := p.PubSub.Nodes(ctx, owner)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		if !p.private(n.Name) {
			continue
		}
		items, err := p.PubSub.Items(ctx, owner, n.Name, storage.PubSubQuery{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, it := range items {
			if vault.IsVault(it.Payload) {
				errs = append(errs, reseal(ctx, p.v, owner, it.Payload, pubsubAD(owner, n.Name, it.ID),
					func(blob []byte) error {
						// Published again: the order holds (oldest first), the time becomes now.
						_, err := p.PubSub.Publish(ctx, owner, n.Name, storage.PubSubItem{ID: it.ID, Publisher: owner, Payload: blob}, 0)
						return err
					},
					func() error { return p.PubSub.Retract(ctx, owner, n.Name, it.ID) }))
				continue
			}
			// Stored in clear before sealing.
			_, err := p.Publish(ctx, owner, n.Name, it, 0)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
