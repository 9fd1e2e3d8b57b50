package pubsub

import (
	"context"
	"fmt"
	"slices"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
)

// Allows reports whether a contact of an owner may see a node with the
// presence or roster access model: it needs the owner's presence (from
// or both), and for the roster model with groups, one of those groups.
func Allows(c Config, contact module.Contact) bool {
	if !contact.ReceivesPresence {
		return false
	}
	if c.AccessModel != AccessRoster || len(c.RosterGroups) == 0 {
		return true
	}
	return slices.ContainsFunc(c.RosterGroups, contact.InGroup)
}

// MayAccess applies a node's affiliations and access model to who, who
// is not an owner of the service (XEP-0060 §6.1.3, §6.5.9), for
// retrieving items or subscribing; it returns the error to send, or nil.
// owners are the accounts whose rosters the presence and roster models
// consult. For the authorize model, an approved subscription is access;
// a front door lets a subscribe through to ask for one.
func MayAccess(ctx context.Context, roster module.Roster, owners []jid.JID, who jid.JID, st State) (*stanza.Error, error) {
	switch st.Affiliation(who) {
	case Owner, Publisher, Member:
		return nil, nil
	case Outcast:
		return stanza.Forbidden("you are banned from this node"), nil
	}
	switch st.AccessModel {
	case AccessOpen:
		return nil, nil
	case AccessPresence, AccessRoster:
		for _, o := range owners {
			c, ok, err := roster.Contact(ctx, o.Bare(), who.Bare())
			if err != nil {
				return nil, fmt.Errorf("pubsub: %w", err)
			}
			if ok && Allows(st.Config, c) {
				return nil, nil
			}
		}
		if st.AccessModel == AccessRoster {
			return Cond(stanza.NotAuthorized("not in the owner's roster groups"), "not-in-roster-group"), nil
		}
		return Cond(stanza.NotAuthorized("a presence subscription is required"), "presence-subscription-required"), nil
	case AccessAuthorize:
		for _, sub := range st.Of(who) {
			if sub.Subscribed() {
				return nil, nil
			}
		}
		return Cond(stanza.NotAuthorized("the owner has not approved your subscription"), "not-subscribed"), nil
	default:
		return Cond(stanza.NotAllowed("the node is private"), "closed-node"), nil
	}
}
