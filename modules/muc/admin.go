package muc

import (
	"context"
	"slices"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// rank orders affiliations for the privilege checks of §5.2.
func rank(aff string) int {
	switch aff {
	case storage.AffOwner:
		return 4
	case storage.AffAdmin:
		return 3
	case storage.AffMember:
		return 2
	case storage.AffNone:
		return 1
	}
	return 0 // outcast
}

func (r *room) sortedOccupants() []*occupant {
	out := make([]*occupant, 0, len(r.occupants))
	for _, o := range r.occupants {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *occupant) int {
		switch {
		case a.nick < b.nick:
			return -1
		case a.nick > b.nick:
			return 1
		}
		return 0
	})
	return out
}

// getAdmin returns an affiliation or role list (§9.5, §8.5).
func (r *room) getAdmin(from jid.JID, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	item := q.Child(NSAdmin, "item")
	if item == nil {
		return nil, stanza.BadRequest("an <item/> says which list")
	}
	actorAff := r.affiliation(from)
	res := xmlstream.New(NSAdmin, "query")
	if role := item.Attr("role"); role != "" {
		if !r.isModerator(r.occupantBySession(from)) {
			return nil, stanza.Forbidden("only moderators see role lists")
		}
		for _, o := range r.sortedOccupants() {
			if o.role == role {
				sub(res, xmlstream.New(NSAdmin, "item", "nick", o.nick, "role", o.role, "affiliation", r.affiliation(o.bare), "jid", o.bare.String()))
			}
		}
		return res, nil
	}
	aff := item.Attr("affiliation")
	switch aff {
	case storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast:
	default:
		return nil, stanza.BadRequest("unknown affiliation list")
	}
	// OMEMO in members-only rooms needs members to learn each other's
	// JIDs: in a non-anonymous room they see them anyway, so the member,
	// admin and owner lists are open to members there.
	allowed := rank(actorAff) >= rank(storage.AffAdmin) ||
		(aff != storage.AffOutcast && r.cfg.NonAnonymous && actorAff == storage.AffMember)
	if !allowed {
		return nil, stanza.Forbidden("you may not see that list")
	}
	keys := make([]string, 0, len(r.affs))
	for k, a := range r.affs {
		if a.Affiliation == aff {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		it := sub(res, xmlstream.New(NSAdmin, "item", "affiliation", aff, "jid", k))
		if reason := r.affs[k].Reason; reason != "" {
			sub(it, xmlstream.New(NSAdmin, "reason")).AddText(reason)
		}
	}
	return res, nil
}

// setAdmin applies role and affiliation changes (§8, §9, §10), checking
// every item before changing anything.
func (r *room) setAdmin(ctx context.Context, from jid.JID, q *xmlstream.Element, out *outbox) *stanza.Error {
	var items []*xmlstream.Element
	for it := range q.Elements() {
		if it.Name.Space == NSAdmin && it.Name.Local == "item" {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return stanza.BadRequest("no <item/> to change")
	}
	var changes []func()
	for _, it := range items {
		ch, se := r.planChange(from, it)
		if se != nil {
			return se
		}
		changes = append(changes, ch.apply(ctx, r, out))
	}
	for _, c := range changes {
		if c != nil {
			c()
		}
	}
	return nil
}

type change struct {
	role, aff string
	target    *occupant // role changes
	who       jid.JID   // affiliation changes: bare JID or domain
	actor     *occupant
	reason    string
}

func (r *room) planChange(from jid.JID, it *xmlstream.Element) (change, *stanza.Error) {
	c := change{role: it.Attr("role"), aff: it.Attr("affiliation"), actor: r.occupantBySession(from)}
	c.reason = childText(it, NSAdmin, "reason")
	actorAff := r.affiliation(from)
	switch {
	case c.role != "" && c.aff == "":
		o := r.occupants[it.Attr("nick")]
		if o == nil {
			return c, stanza.ItemNotFound("no occupant has that nickname")
		}
		c.target = o
		if !r.isModerator(c.actor) {
			return c, stanza.Forbidden("only moderators change roles")
		}
		targetAff := r.affiliation(o.bare)
		switch c.role {
		case roleNone, roleVisitor, roleParticipant:
			// Kicking, muting or demoting an admin or owner, or anyone
			// above the actor, is not allowed (§8.2, §8.4, §9.7).
			if rank(targetAff) >= rank(storage.AffAdmin) || rank(targetAff) > rank(actorAff) {
				return c, stanza.NotAllowed("you may not change the role of that occupant")
			}
			if o.role == roleModerator && rank(actorAff) < rank(storage.AffAdmin) {
				return c, stanza.NotAllowed("only admins change a moderator's role")
			}
		case roleModerator:
			if rank(actorAff) < rank(storage.AffAdmin) {
				return c, stanza.Forbidden("only admins and owners grant moderator status")
			}
		default:
			return c, stanza.BadRequest("unknown role")
		}
		return c, nil
	case c.aff != "":
		switch c.aff {
		case storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast, storage.AffNone:
		default:
			return c, stanza.BadRequest("unknown affiliation")
		}
		who, err := jid.Parse(it.Attr("jid"))
		if it.Attr("jid") == "" {
			o := r.occupants[it.Attr("nick")]
			if o == nil {
				return c, stanza.BadRequest("an affiliation change needs a jid")
			}
			who, err = o.bare, nil
		}
		if err != nil {
			return c, stanza.JIDMalformed("the item's jid is not valid")
		}
		c.who = who.Bare()
		if rank(actorAff) < rank(storage.AffAdmin) {
			return c, stanza.Forbidden("only admins and owners change affiliations")
		}
		old := r.affiliation(c.who)
		if actorAff != storage.AffOwner && (rank(old) >= rank(storage.AffAdmin) || rank(c.aff) >= rank(storage.AffAdmin)) {
			return c, stanza.NotAllowed("only owners change admins and owners")
		}
		if old == storage.AffOwner && c.aff != storage.AffOwner && r.owners() == 1 {
			return c, stanza.Conflict("a room keeps at least one owner")
		}
		return c, nil
	}
	return c, stanza.BadRequest("an item changes a role or an affiliation")
}

func (r *room) owners() int {
	n := 0
	for _, a := range r.affs {
		if a.Affiliation == storage.AffOwner {
			n++
		}
	}
	return n
}

// actorElement is the <actor/> of a kick or ban (§8.2).
func (c change) actorElement() *xmlstream.Element {
	if c.actor == nil {
		return nil
	}
	return xmlstream.New(NSUser, "actor", "nick", c.actor.nick)
}

func (c change) extras() []*xmlstream.Element {
	var ex []*xmlstream.Element
	if a := c.actorElement(); a != nil {
		ex = append(ex, a)
	}
	if c.reason != "" {
		reason := xmlstream.New(NSUser, "reason")
		reason.AddText(c.reason)
		ex = append(ex, reason)
	}
	return ex
}

// apply returns the change to make once every item was checked. An
// affiliation is written to storage here, so a storage failure stops
// the request before anything is broadcast.
func (c change) apply(ctx context.Context, r *room, out *outbox) func() {
	if c.target != nil {
		return func() {
			if _, in := r.occupants[c.target.nick]; !in {
				return
			}
			if c.role == roleNone {
				r.remove(ctx, c.target, []string{"307"}, out, c.extras()...)
				return
			}
			c.target.role = c.role
			r.broadcastPresence(c.target, "", nil, []string{"110"}, out, c.extras()...)
		}
	}
	return func() {
		a := storage.MUCAffiliation{JID: c.who.String(), Affiliation: c.aff, Reason: c.reason}
		if err := r.setAffiliation(ctx, a); err != nil {
			r.m.storageError(err, "changing an affiliation")
			return
		}
		for _, o := range r.occupantsOf(c.who) {
			switch {
			case c.aff == storage.AffOutcast:
				r.remove(ctx, o, []string{"301"}, out, c.extras()...)
			case c.aff == storage.AffNone && r.cfg.MembersOnly:
				r.remove(ctx, o, []string{"321"}, out, c.extras()...)
			default:
				o.role = r.defaultRole(c.aff)
				r.broadcastPresence(o, "", nil, []string{"110"}, out)
			}
		}
	}
}
