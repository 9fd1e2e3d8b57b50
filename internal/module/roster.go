package module

import (
	"context"
	"slices"

	"parley/internal/jid"
)

// Contact is one entry of an account's roster as other modules see it
// (RFC 6121 §2.1.2): who, with what name and groups, and which way
// presence flows.
type Contact struct {
	JID    jid.JID
	Name   string
	Groups []string
	// ReceivesPresence: the contact is subscribed to the owner's
	// presence (subscription "from" or "both"); the owner's presence,
	// and what presence-based access models (PEP) guard, goes to it.
	ReceivesPresence bool
	// SendsPresence: the owner is subscribed to the contact's presence
	// (subscription "to" or "both").
	SendsPresence bool
	// Sealed: Name and Groups are not known, sealed under the owner's
	// key, which the server holds only while the owner is logged in
	// (issue 16). A decision that needs them must fail, not guess.
	Sealed bool
}

// InGroup reports whether the contact is in roster group g.
func (c Contact) InGroup(g string) bool { return slices.Contains(c.Groups, g) }

// Roster is what the roster module tells other modules of an account's
// roster, so that none of them reads the roster table or re-implements
// the subscription rules.
type Roster interface {
	// Contact returns contact's entry in owner's roster (both bare);
	// ok is false when contact is not in it.
	Contact(ctx context.Context, owner, contact jid.JID) (c Contact, ok bool, err error)
	// Contacts lists owner's roster. It needs the owner's key once the
	// roster is sealed, and fails (vault.ErrLocked) while the owner is
	// away.
	Contacts(ctx context.Context, owner jid.JID) ([]Contact, error)
}

// NoRoster is the roster of a server without a roster module: nobody
// has contacts.
type NoRoster struct{}

func (NoRoster) Contact(context.Context, jid.JID, jid.JID) (Contact, bool, error) {
	return Contact{}, false, nil
}
func (NoRoster) Contacts(context.Context, jid.JID) ([]Contact, error) { return nil, nil }
