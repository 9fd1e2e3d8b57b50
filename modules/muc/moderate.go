package muc

import (
	"context"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// Namespaces of moderated message retraction (XEP-0425): version 0.3
// (:1, with XEP-0424's :1) and, for clients that still send it, the
// earlier form wrapped in XEP-0422 fastening (:0).
const (
	NSModerate    = "urn:xmpp:message-moderate:1"
	NSRetract     = "urn:xmpp:message-retract:1"
	NSModerate0   = "urn:xmpp:message-moderate:0"
	NSRetract0    = "urn:xmpp:message-retract:0"
	NSFasten      = "urn:xmpp:fasten:0"
	NSFallback    = "urn:xmpp:fallback:0"
	moderatedBody = "This message was retracted by a moderator."
)

// moderation is a parsed retraction request.
type moderation struct {
	id     string // the stanza-id the room gave the message
	reason string
}

// parseModerate reads <moderate xmlns='urn:xmpp:message-moderate:1'
// id='…'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>.
func parseModerate(el *xmlstream.Element) (moderation, *stanza.Error) {
	if el.Child(NSRetract, "retract") == nil {
		return moderation{}, stanza.FeatureNotImplemented("only retraction is supported as a moderation")
	}
	mod := moderation{id: el.Attr("id"), reason: childText(el, NSModerate, "reason")}
	if mod.id == "" {
		return mod, stanza.BadRequest("the moderation needs the message's stanza-id")
	}
	return mod, nil
}

// parseApplyTo reads the :0 form: <apply-to xmlns='urn:xmpp:fasten:0'
// id='…'><moderate xmlns='urn:xmpp:message-moderate:0'><retract
// xmlns='urn:xmpp:message-retract:0'/></moderate></apply-to>.
func parseApplyTo(el *xmlstream.Element) (moderation, *stanza.Error) {
	m := el.Child(NSModerate0, "moderate")
	if m == nil {
		return moderation{}, stanza.FeatureNotImplemented("only moderation can be applied to a room message")
	}
	if m.Child(NSRetract0, "retract") == nil {
		return moderation{}, stanza.FeatureNotImplemented("only retraction is supported as a moderation")
	}
	mod := moderation{id: el.Attr("id"), reason: childText(m, NSModerate0, "reason")}
	if mod.id == "" {
		return mod, stanza.BadRequest("the moderation needs the message's stanza-id")
	}
	return mod, nil
}

// moderate retracts an archived message on a moderator's request: the
// archive keeps a tombstone, the history forgets it, and every occupant
// is told in both the :1 and the :0 form, so clients of either kind
// remove it.
func (r *room) moderate(ctx context.Context, from jid.JID, mod moderation, out *outbox) *stanza.Error {
	moderator := r.occupantBySession(from)
	if !r.isModerator(moderator) {
		return stanza.Forbidden("only moderators may retract other occupants' messages")
	}
	if !r.archiving() {
		return stanza.ItemNotFound("this room keeps no archive to retract from")
	}
	page, err := r.m.store.Messages(ctx, r.jid.String(), storage.MUCQuery{IDs: []string{mod.id}, Max: 1})
	switch {
	case err != nil && (isNotFound(err) || isInvalid(err)):
		return stanza.ItemNotFound("no room message has that id")
	case err != nil:
		return r.m.storageError(err, "looking up a message to moderate")
	case len(page.Messages) == 0:
		return stanza.ItemNotFound("no room message has that id")
	}
	orig, err := xmlstream.ParseElement(page.Messages[0].Data, stanza.NSClient)
	if err != nil || orig.Name.Local != "message" {
		return stanza.ItemNotFound("that archived message is damaged")
	}
	if isTombstone(orig) {
		return nil // retracted already: nothing more to do
	}
	by := r.nickJID(moderator.nick).String()
	modID := r.occupantID(moderator.bare)
	stamp := xmpptime.Format(r.m.now())
	if err := r.m.store.ReplaceMessage(ctx, r.jid.String(), mod.id, []byte(tombstone(orig, by, modID, stamp, mod.reason).String())); err != nil {
		if isNotFound(err) {
			return stanza.ItemNotFound("no room message has that id")
		}
		return r.m.storageError(err, "replacing a moderated message")
	}
	for i, h := range r.history {
		if h.id == mod.id {
			r.history = append(r.history[:i:i], r.history[i+1:]...)
			break
		}
	}
	announce := announcement(r.jid, mod, by, modID)
	for _, o := range r.occupants {
		for _, s := range o.sessions {
			c := announce.Copy()
			c.SetAttr("to", s.String())
			out.add(c)
		}
	}
	return nil
}

// tombstone is what the archive keeps of a retracted message (XEP-0425
// §6): who wrote it and when, without anything of its content.
func tombstone(orig *xmlstream.Element, by, modID, stamp, reason string) *xmlstream.Element {
	t := xmlstream.New(stanza.NSClient, "message", "type", "groupchat", "from", orig.Attr("from"))
	if id := orig.Attr("id"); id != "" {
		t.SetAttr("id", id)
	}
	for c := range orig.Elements() {
		// The author's occupant id, the room's stanza-id and the real
		// JID for those allowed to see it stay; content goes.
		if c.Name.Space == NSOccupantID || c.Name.Space == NSSID || isUserX(c) {
			sub(t, c.Copy())
		}
	}
	retracted := sub(t, xmlstream.New(NSRetract, "retracted", "stamp", stamp))
	moderated := sub(retracted, xmlstream.New(NSModerate, "moderated", "by", by))
	sub(moderated, xmlstream.New(NSOccupantID, "occupant-id", "id", modID))
	if reason != "" {
		sub(retracted, xmlstream.New(NSRetract, "reason")).AddText(reason)
	}
	// The :0 tombstone, for clients that only know that form.
	moderated0 := sub(t, xmlstream.New(NSModerate0, "moderated", "by", by))
	sub(moderated0, xmlstream.New(NSOccupantID, "occupant-id", "id", modID))
	sub(moderated0, xmlstream.New(NSRetract0, "retracted", "stamp", stamp))
	if reason != "" {
		sub(moderated0, xmlstream.New(NSModerate0, "reason")).AddText(reason)
	}
	return t
}

// announcement tells occupants that a message was retracted (XEP-0425
// §4.1 and, in apply-to, the :0 form), with a fallback body for clients
// that know neither.
func announcement(room jid.JID, mod moderation, by, modID string) *xmlstream.Element {
	msg := xmlstream.New(stanza.NSClient, "message", "type", "groupchat", "from", room.String(), "id", newID())
	retract := sub(msg, xmlstream.New(NSRetract, "retract", "id", mod.id))
	moderated := sub(retract, xmlstream.New(NSModerate, "moderated", "by", by))
	sub(moderated, xmlstream.New(NSOccupantID, "occupant-id", "id", modID))
	if mod.reason != "" {
		sub(retract, xmlstream.New(NSRetract, "reason")).AddText(mod.reason)
	}
	applyTo := sub(msg, xmlstream.New(NSFasten, "apply-to", "id", mod.id))
	moderated0 := sub(applyTo, xmlstream.New(NSModerate0, "moderated", "by", by))
	sub(moderated0, xmlstream.New(NSRetract0, "retract"))
	if mod.reason != "" {
		sub(moderated0, xmlstream.New(NSModerate0, "reason")).AddText(mod.reason)
	}
	sub(msg, xmlstream.New(stanza.NSClient, "body")).AddText(moderatedBody)
	sub(msg, xmlstream.New(NSFallback, "fallback", "for", NSRetract))
	return msg
}
