package sealstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"parley/internal/seal"
	"parley/internal/storage"
	"parley/internal/vault"
)

// Roster seals roster items and inbound subscription requests. Clear rows
// written before sealing began (or for an account that has no key yet)
// are read as they are and sealed by the first write that touches them or
// by Reseal at the owner's next login.
type Roster struct {
	st     storage.Roster
	v      Vault
	owners *owners
}

func NewRoster(st storage.Roster, v Vault) *Roster {
	return &Roster{st: st, v: v, owners: newOwners()}
}

// sealedItem is what a sealed roster row holds.
type sealedItem struct {
	Contact string   `json:"c"`
	Name    string   `json:"n,omitempty"`
	Groups  []string `json:"g,omitempty"`
}

type sealedPending struct {
	Contact string `json:"c"`
	Stanza  []byte `json:"s"`
}

func (r *Roster) blind(owner, contact string) []byte {
	return r.v.Blind("roster", blindKey(owner, contact))
}

// The additional data binds a blob to its owner and row: copied to
// another row or account it does not open.
func itemAD(owner string, blind []byte) []byte {
	return seal.AD("parley roster item", owner, string(blind))
}

func pendingAD(owner string, blind []byte) []byte {
	return seal.AD("parley roster request", owner, string(blind))
}

// sealItem seals contact, name and groups of it; vault.ErrNoKey means
// the account has no key yet and the caller keeps the item in clear.
func (r *Roster) sealItem(ctx context.Context, owner string, it storage.RosterItem) (storage.SealedItem, error) {
	it, err := storage.NormaliseRosterItem(it)
	if err != nil {
		return storage.SealedItem{}, err
	}
	plain, err := json.Marshal(sealedItem{Contact: it.Contact, Name: it.Name, Groups: it.Groups})
	if err != nil {
		return storage.SealedItem{}, fmt.Errorf("sealstore: encoding a roster item: %w", err)
	}
	b := r.blind(owner, it.Contact)
	blob, err := sealFor(ctx, r.v, owner, plain, itemAD(owner, b))
	if err != nil {
		return storage.SealedItem{}, fmt.Errorf("sealstore: sealing a roster item of %s: %w", owner, err)
	}
	return storage.SealedItem{Blind: b, Sealed: blob, Subscription: it.Subscription, Ask: it.Ask, Approved: it.Approved}, nil
}

func (r *Roster) openItem(ctx context.Context, owner string, s storage.SealedItem) (storage.RosterItem, error) {
	plain, err := r.v.Open(ctx, owner, s.Sealed, itemAD(owner, s.Blind))
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("sealstore: opening a roster item of %s: %w", owner, err)
	}
	var si sealedItem
	if err := json.Unmarshal(plain, &si); err != nil {
		return storage.RosterItem{}, fmt.Errorf("sealstore: a sealed roster item of %s is damaged: %w", owner, err)
	}
	return storage.RosterItem{Contact: si.Contact, Name: si.Name, Groups: si.Groups,
		Subscription: s.Subscription, Ask: s.Ask, Approved: s.Approved}, nil
}

// Items returns the whole roster, sorted by contact, and its version. It
// needs the owner's key as soon as one item is sealed (vault.ErrLocked).
func (r *Roster) Items(ctx context.Context, owner string) ([]storage.RosterItem, int64, error) {
	// Clear rows first: rows only move from clear to sealed (a login
	// reseals), so one moved between the reads is seen twice, never
	// missed. The smaller version never claims a change the items miss
	// (a client may then get a push it already has).
	clearItems, v1, err := r.st.Items(ctx, owner)
	if err != nil {
		return nil, 0, err
	}
	sealed, v2, err := r.st.SealedItems(ctx, owner)
	if err != nil {
		return nil, 0, err
	}
	items := make([]storage.RosterItem, 0, len(sealed)+len(clearItems))
	for _, s := range sealed {
		it, err := r.openItem(ctx, owner, s)
		if lost(err) {
			continue // gone with an old key; the next Reseal deletes it
		}
		if err != nil {
			return nil, 0, err
		}
		items = append(items, it)
	}
	// A clear row sealed between the two reads shows up twice; the
	// stable sort keeps the sealed copy first, and Compact keeps it.
	items = append(items, clearItems...)
	slices.SortStableFunc(items, func(a, b storage.RosterItem) int { return cmp.Compare(a.Contact, b.Contact) })
	items = slices.CompactFunc(items, func(a, b storage.RosterItem) bool { return a.Contact == b.Contact })
	return items, min(v1, v2), nil
}

// find looks contact up among the sealed rows, then the clear ones, then
// the sealed ones again: a clear row sealed between the first two reads
// (a login reseals) is found by the third. sealed reports which kind
// was found; storage.ErrNotFound when neither.
func (r *Roster) find(ctx context.Context, owner, contact string) (s storage.SealedItem, it storage.RosterItem, sealed bool, err error) {
	b := r.blind(owner, contact)
	if s, err = r.st.SealedItem(ctx, owner, b); !errors.Is(err, storage.ErrNotFound) {
		return s, it, err == nil, err
	}
	if it, err = r.st.Item(ctx, owner, contact); !errors.Is(err, storage.ErrNotFound) {
		return s, it, false, err
	}
	s, err = r.st.SealedItem(ctx, owner, b)
	return s, it, err == nil, err
}

// Item returns contact's item with its name and groups: vault.ErrLocked
// when it is sealed and the owner's key is not held (State works then).
func (r *Roster) Item(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	s, it, sealed, err := r.find(ctx, owner, contact)
	if err != nil || !sealed {
		return it, err
	}
	if it, err = r.openItem(ctx, owner, s); err != nil {
		return storage.RosterItem{}, err
	}
	if it.Contact != contact {
		return storage.RosterItem{}, fmt.Errorf("sealstore: the roster item of %s under %s's index holds another contact", owner, contact)
	}
	return it, nil
}

// State returns contact's item without name and groups, which it does
// not need the owner's key for: the subscription state the server acts
// on while the owner is away. storage.ErrNotFound when contact is not in
// the roster.
func (r *Roster) State(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	s, it, sealed, err := r.find(ctx, owner, contact)
	if err != nil {
		return storage.RosterItem{}, err
	}
	if !sealed {
		it.Name, it.Groups = "", nil
		return it, nil
	}
	return storage.RosterItem{Contact: contact, Subscription: s.Subscription, Ask: s.Ask, Approved: s.Approved}, nil
}

// Put stores a whole item (a roster set by its owner), sealed, in place
// of whatever was stored for the contact; max is storage.Roster.Put's.
func (r *Roster) Put(ctx context.Context, owner string, it storage.RosterItem, max int) (int64, error) {
	defer r.owners.lock(owner)()
	return r.put(ctx, owner, it, max)
}

func (r *Roster) put(ctx context.Context, owner string, it storage.RosterItem, max int) (int64, error) {
	s, err := r.sealItem(ctx, owner, it)
	if errors.Is(err, vault.ErrNoKey) {
		if _, err := r.st.DeleteSealed(ctx, owner, r.blind(owner, it.Contact)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return 0, err
		}
		return r.st.Put(ctx, owner, it, max)
	}
	if err != nil {
		return 0, err
	}
	return r.st.PutSealed(ctx, owner, s, it.Contact, max)
}

// SetState changes contact's subscription state (sub, ask, approved) and
// nothing else, creating the item with no name and no groups when the
// contact is not in the roster. It works while the owner is away: a
// sealed name and groups it cannot read are left as they are.
func (r *Roster) SetState(ctx context.Context, owner, contact, sub string, ask, approved bool, max int) (int64, error) {
	if err := storage.ValidateSubscription(sub); err != nil {
		return 0, err
	}
	defer r.owners.lock(owner)()
	b := r.blind(owner, contact)
	v, err := r.st.SetSealedState(ctx, owner, b, sub, ask, approved)
	if !errors.Is(err, storage.ErrNotFound) {
		return v, err
	}
	// Not sealed: a clear item keeps its name and groups, which the
	// write seals (to the mail-drop key if need be); or a new item.
	it, err := r.st.Item(ctx, owner, contact)
	if errors.Is(err, storage.ErrNotFound) {
		it = storage.RosterItem{Contact: contact}
	} else if err != nil {
		return 0, err
	}
	it.Subscription, it.Ask, it.Approved = sub, ask, approved
	return r.put(ctx, owner, it, max)
}

// Delete removes contact's item, sealed or clear; storage.ErrNotFound
// when there was none.
func (r *Roster) Delete(ctx context.Context, owner, contact string) (int64, error) {
	defer r.owners.lock(owner)()
	v, err := r.st.DeleteSealed(ctx, owner, r.blind(owner, contact))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return r.st.Delete(ctx, owner, contact)
	case err != nil:
		return 0, err
	}
	// A clear copy beside the sealed one is only there if something
	// wrote around this layer (an old import); it goes too.
	if v2, err := r.st.Delete(ctx, owner, contact); err == nil {
		v = v2
	} else if !errors.Is(err, storage.ErrNotFound) {
		return 0, err
	}
	return v, nil
}

func (r *Roster) Count(ctx context.Context, owner string) (int, error) { return r.st.Count(ctx, owner) }

// AddPending keeps an inbound subscription request until the owner
// answers, sealed (to the mail-drop key while the owner is away).
func (r *Roster) AddPending(ctx context.Context, owner string, p storage.Pending) error {
	if err := storage.ValidatePending(p); err != nil {
		return err
	}
	defer r.owners.lock(owner)()
	return r.addPending(ctx, owner, p)
}

func (r *Roster) addPending(ctx context.Context, owner string, p storage.Pending) error {
	plain, err := json.Marshal(sealedPending{Contact: p.Contact, Stanza: p.Stanza})
	if err != nil {
		return fmt.Errorf("sealstore: encoding a request: %w", err)
	}
	b := r.blind(owner, p.Contact)
	blob, err := sealFor(ctx, r.v, owner, plain, pendingAD(owner, b))
	if errors.Is(err, vault.ErrNoKey) {
		if err := r.st.DeletePendingSealed(ctx, owner, b); err != nil {
			return err
		}
		return r.st.AddPendingIn(ctx, owner, p)
	}
	if err != nil {
		return fmt.Errorf("sealstore: sealing a request to %s: %w", owner, err)
	}
	return r.st.AddPendingSealed(ctx, owner, storage.SealedPending{Blind: b, Sealed: blob}, p.Contact)
}

// Pending returns the waiting requests, oldest first; vault.ErrLocked
// when one is sealed and the owner's key is not held.
func (r *Roster) Pending(ctx context.Context, owner string) ([]storage.Pending, error) {
	// Clear requests were all stored before the sealed ones, and are
	// read first: one sealed between the reads is seen twice, not missed.
	out, err := r.st.PendingIn(ctx, owner)
	if err != nil {
		return nil, err
	}
	sealed, err := r.st.PendingSealed(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, s := range sealed {
		p, err := r.openPending(ctx, owner, s)
		if lost(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = slices.DeleteFunc(out, func(c storage.Pending) bool { return c.Contact == p.Contact })
		out = append(out, p)
	}
	return out, nil
}

func (r *Roster) openPending(ctx context.Context, owner string, s storage.SealedPending) (storage.Pending, error) {
	plain, err := r.v.Open(ctx, owner, s.Sealed, pendingAD(owner, s.Blind))
	if err != nil {
		return storage.Pending{}, fmt.Errorf("sealstore: opening a request to %s: %w", owner, err)
	}
	var sp sealedPending
	if err := json.Unmarshal(plain, &sp); err != nil {
		return storage.Pending{}, fmt.Errorf("sealstore: a sealed request to %s is damaged: %w", owner, err)
	}
	return storage.Pending{Contact: sp.Contact, Stanza: sp.Stanza}, nil
}

// HasPending reports whether contact's request waits; it does not need
// the owner's key.
func (r *Roster) HasPending(ctx context.Context, owner, contact string) (bool, error) {
	// Clear first, as in Pending.
	clearPending, err := r.st.PendingIn(ctx, owner)
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(clearPending, func(p storage.Pending) bool { return p.Contact == contact }) {
		return true, nil
	}
	sealed, err := r.st.PendingSealed(ctx, owner)
	if err != nil {
		return false, err
	}
	b := r.blind(owner, contact)
	return slices.ContainsFunc(sealed, func(s storage.SealedPending) bool { return bytes.Equal(s.Blind, b) }), nil
}

// DeletePending forgets contact's request, sealed or clear.
func (r *Roster) DeletePending(ctx context.Context, owner, contact string) error {
	defer r.owners.lock(owner)()
	if err := r.st.DeletePendingSealed(ctx, owner, r.blind(owner, contact)); err != nil {
		return err
	}
	return r.st.DeletePendingIn(ctx, owner, contact)
}

// Reseal runs when a login unlocked owner's key: clear rows are sealed,
// mail-drop blobs sealed again under the data key (opening a mail-drop
// blob costs an X25519 agreement; a data-key blob only AES-GCM), and rows
// sealed under a key the account no longer has (an admin reset the
// password) are deleted: nobody can open them again. It goes on past a
// damaged row and returns every error.
func (r *Roster) Reseal(ctx context.Context, owner string) error {
	defer r.owners.lock(owner)()
	var errs []error
	clearItems, _, err := r.st.Items(ctx, owner)
	if err != nil {
		return err
	}
	for _, it := range clearItems {
		if _, err := r.put(ctx, owner, it, 0); err != nil {
			errs = append(errs, err)
		}
	}
	sealed, _, err := r.st.SealedItems(ctx, owner)
	if err != nil {
		return err
	}
	for _, s := range sealed {
		errs = append(errs, reseal(ctx, r.v, owner, s.Sealed, itemAD(owner, s.Blind),
			func(blob []byte) error { return r.st.Reseal(ctx, owner, s.Blind, blob) },
			func() error { _, err := r.st.DeleteSealed(ctx, owner, s.Blind); return err }))
	}
	pending, err := r.st.PendingIn(ctx, owner)
	if err != nil {
		return err
	}
	for _, p := range pending {
		errs = append(errs, r.addPending(ctx, owner, p))
	}
	sealedPending, err := r.st.PendingSealed(ctx, owner)
	if err != nil {
		return err
	}
	for _, s := range sealedPending {
		errs = append(errs, reseal(ctx, r.v, owner, s.Sealed, pendingAD(owner, s.Blind),
			func(blob []byte) error { return r.st.ResealPending(ctx, owner, s.Blind, blob) },
			func() error { return r.st.DeletePendingSealed(ctx, owner, s.Blind) }))
	}
	return errors.Join(errs...)
}
