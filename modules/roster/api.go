package roster

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/sealstore"
	"parley/internal/storage"
)

// receivesPresence: the contact gets the owner's presence.
func receivesPresence(it storage.RosterItem) bool {
	return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
}

// sendsPresence: the owner gets the contact's presence.
func sendsPresence(it storage.RosterItem) bool {
	return it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth
}

// contactOf is what other modules see of a stored item.
func contactOf(it storage.RosterItem) (module.Contact, error) {
	j, err := jid.Parse(it.Contact)
	if err != nil {
		return module.Contact{}, fmt.Errorf("roster: stored contact %q: %w", it.Contact, err)
	}
	return module.Contact{JID: j, Name: it.Name, Groups: it.Groups,
		ReceivesPresence: receivesPresence(it), SendsPresence: sendsPresence(it)}, nil
}

// api is the module.Roster the module gives the host.
type api struct{ store *sealstore.Roster }

func (a api) Contact(ctx context.Context, owner, contact jid.JID) (module.Contact, bool, error) {
	o, c := owner.Bare().String(), contact.Bare().String()
	it, err := a.store.Item(ctx, o, c)
	sealed := false
	if sealstore.Locked(err) {
		// The owner is away: the state is known, name and groups not.
		it, err = a.store.State(ctx, o, c)
		sealed = true
	}
	if errors.Is(err, storage.ErrNotFound) {
		return module.Contact{}, false, nil
	}
	if err != nil {
		return module.Contact{}, false, fmt.Errorf("roster: reading the roster of %s: %w", owner, err)
	}
	mc, err := contactOf(it)
	mc.Sealed = sealed
	return mc, err == nil, err
}

func (a api) Contacts(ctx context.Context, owner jid.JID) ([]module.Contact, error) {
	items, _, err := a.store.Items(ctx, owner.Bare().String())
	if err != nil {
		return nil, fmt.Errorf("roster: reading the roster of %s: %w", owner, err)
	}
	out := make([]module.Contact, 0, len(items))
	for _, it := range items {
		// A damaged entry must not hide the rest of the roster.
		if c, err := contactOf(it); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}
