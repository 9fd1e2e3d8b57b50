package sealstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"parley/internal/seal"
	"parley/internal/storage"
	"parley/internal/vault"
)

// KV is a per-user map kept sealed in one namespace of storage.KV: each
// entry's storage key is the hex blind index of its key, and its value
// the sealed key and value. Entries of the clear namespace ns, where the
// map lived before sealing, are read as they are until Reseal moves them.
type KV struct {
	kv       storage.KV
	v        Vault
	ns       string // the clear namespace
	sealedNS string
	purpose  string
	owners   *owners
}

// NewKV returns the sealed map that replaces storage namespace ns.
func NewKV(kv storage.KV, v Vault, ns string) *KV {
	return &KV{kv: kv, v: v, ns: ns, sealedNS: ns + "#sealed", purpose: "kv " + ns, owners: newOwners()}
}

type sealedEntry struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

// Index returns the blind index of key in owner's map, as Keys lists it.
func (m *KV) Index(owner, key string) string {
	return hex.EncodeToString(m.v.Blind(m.purpose, blindKey(owner, key)))
}

func (m *KV) ad(owner, index string) []byte {
	return seal.AD("parley sealed kv", m.ns, owner, index)
}

// Indexes returns the blind index of every key of owner's map, without
// the owner's key: what a lookup while the owner is away compares with
// (a block list filter). An unknown owner has none.
func (m *KV) Indexes(ctx context.Context, owner string) ([]string, error) {
	// Clear first: entries only move from clear to sealed, so one moved
	// between the reads is seen twice (harmless in a set), never missed.
	clearEntries, err := m.kv.List(ctx, owner, m.ns)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sealed, err := m.kv.List(ctx, owner, m.sealedNS)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(sealed)+len(clearEntries))
	for _, e := range sealed {
		out = append(out, e.Key)
	}
	for _, e := range clearEntries {
		out = append(out, m.Index(owner, e.Key))
	}
	return out, nil
}

// Count is the number of entries, without the owner's key.
func (m *KV) Count(ctx context.Context, owner string) (int, error) {
	idx, err := m.Indexes(ctx, owner)
	return len(idx), err
}

// Get returns key's value: storage.ErrNotFound when there is none,
// vault.ErrLocked when it is sealed and the owner's key is not held.
func (m *KV) Get(ctx context.Context, owner, key string) ([]byte, error) {
	idx := m.Index(owner, key)
	blob, err := m.kv.Get(ctx, owner, m.sealedNS, idx)
	if errors.Is(err, storage.ErrNotFound) {
		v, err := m.kv.Get(ctx, owner, m.ns, key)
		if !errors.Is(err, storage.ErrNotFound) {
			return v, err
		}
		// Sealed between the two reads (a login reseals)?
		blob, err = m.kv.Get(ctx, owner, m.sealedNS, idx)
	}
	if err != nil {
		return nil, err
	}
	e, err := m.open(ctx, owner, idx, blob)
	if lost(err) {
		return nil, fmt.Errorf("sealstore: %s of %s was sealed under a key the account lost: %w", m.ns, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if e.Key != key {
		return nil, fmt.Errorf("sealstore: %s of %s: the entry under %q's index holds another key", m.ns, owner, key)
	}
	return e.Value, nil
}

func (m *KV) open(ctx context.Context, owner, index string, blob []byte) (sealedEntry, error) {
	plain, err := m.v.Open(ctx, owner, blob, m.ad(owner, index))
	if err != nil {
		return sealedEntry{}, fmt.Errorf("sealstore: opening %s of %s: %w", m.ns, owner, err)
	}
	var e sealedEntry
	if err := json.Unmarshal(plain, &e); err != nil {
		return sealedEntry{}, fmt.Errorf("sealstore: a sealed entry of %s of %s is damaged: %w", m.ns, owner, err)
	}
	return e, nil
}

// Put stores key's value sealed (to the mail-drop key while the owner is
// away; in clear, as before sealing, for an account that has no key yet).
func (m *KV) Put(ctx context.Context, owner, key string, value []byte) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	defer m.owners.lock(owner)()
	return m.put(ctx, owner, key, value)
}

func (m *KV) put(ctx context.Context, owner, key string, value []byte) error {
	plain, err := json.Marshal(sealedEntry{Key: key, Value: value})
	if err != nil {
		return fmt.Errorf("sealstore: encoding %s of %s: %w", m.ns, owner, err)
	}
	idx := m.Index(owner, key)
	blob, err := sealFor(ctx, m.v, owner, plain, m.ad(owner, idx))
	clear(plain)
	if errors.Is(err, vault.ErrNoKey) {
		if err := m.kv.Delete(ctx, owner, m.sealedNS, idx); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return m.kv.Put(ctx, owner, m.ns, key, value)
	}
	if err != nil {
		return fmt.Errorf("sealstore: sealing %s of %s: %w", m.ns, owner, err)
	}
	if err := m.kv.Put(ctx, owner, m.sealedNS, idx, blob); err != nil {
		return err
	}
	if err := m.kv.Delete(ctx, owner, m.ns, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// Delete removes key; storage.ErrNotFound when it was not there.
func (m *KV) Delete(ctx context.Context, owner, key string) error {
	defer m.owners.lock(owner)()
	errSealed := m.kv.Delete(ctx, owner, m.sealedNS, m.Index(owner, key))
	if errSealed != nil && !errors.Is(errSealed, storage.ErrNotFound) {
		return errSealed
	}
	errClear := m.kv.Delete(ctx, owner, m.ns, key)
	if errClear != nil && !errors.Is(errClear, storage.ErrNotFound) {
		return errClear
	}
	if errSealed != nil && errClear != nil {
		return errSealed
	}
	return nil
}

// DeleteAll empties owner's map.
func (m *KV) DeleteAll(ctx context.Context, owner string) error {
	defer m.owners.lock(owner)()
	if err := m.kv.DeleteAll(ctx, owner, m.sealedNS); err != nil {
		return err
	}
	return m.kv.DeleteAll(ctx, owner, m.ns)
}

// List returns every entry sorted by key; vault.ErrLocked when one is
// sealed and the owner's key is not held.
func (m *KV) List(ctx context.Context, owner string) ([]storage.KVEntry, error) {
	clearEntries, err := m.kv.List(ctx, owner, m.ns)
	if err != nil {
		return nil, err
	}
	sealed, err := m.kv.List(ctx, owner, m.sealedNS)
	if err != nil {
		return nil, err
	}
	out := make([]storage.KVEntry, 0, len(sealed)+len(clearEntries))
	for _, s := range sealed {
		e, err := m.open(ctx, owner, s.Key, s.Value)
		if lost(err) {
			continue // gone with an old key; the next Reseal deletes it
		}
		if err != nil {
			return nil, err
		}
		out = append(out, storage.KVEntry{Key: e.Key, Value: e.Value})
	}
	// A sealed entry wins over a clear one of the same key that a
	// concurrent Put had not deleted yet.
	out = append(out, clearEntries...)
	slices.SortStableFunc(out, func(a, b storage.KVEntry) int { return cmp.Compare(a.Key, b.Key) })
	return slices.CompactFunc(out, func(a, b storage.KVEntry) bool { return a.Key == b.Key }), nil
}

// Reseal seals the clear entries, seals mail-drop entries again under
// the data key and deletes entries under a lost key, once a login
// unlocked owner's key.
func (m *KV) Reseal(ctx context.Context, owner string) error {
	defer m.owners.lock(owner)()
	var errs []error
	clearEntries, err := m.kv.List(ctx, owner, m.ns)
	if err != nil {
		return err
	}
	for _, e := range clearEntries {
		errs = append(errs, m.put(ctx, owner, e.Key, e.Value))
	}
	sealed, err := m.kv.List(ctx, owner, m.sealedNS)
	if err != nil {
		return err
	}
	for _, s := range sealed {
		errs = append(errs, reseal(ctx, m.v, owner, s.Value, m.ad(owner, s.Key),
			func(blob []byte) error { return m.kv.Put(ctx, owner, m.sealedNS, s.Key, blob) },
			func() error { return m.kv.Delete(ctx, owner, m.sealedNS, s.Key) }))
	}
	return errors.Join(errs...)
}
