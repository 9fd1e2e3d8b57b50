package muc

import (
	"context"
	"slices"
	"strings"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// withRoom runs fn on the live room of rj under its lock, or answers el
// with item-not-found when there is no such room.
func (m *Module) withRoom(ctx context.Context, rj jid.JID, el *xmlstream.Element, out *outbox, fn func(r *room)) {
	for range 3 {
		r, err := m.room(ctx, rj)
		if err != nil {
			out.errorReply(el, m.storageError(err, "loading a room"))
			return
		}
		if r == nil {
			out.errorReply(el, stanza.ItemNotFound("no such room"))
			return
		}
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			continue
		}
		fn(r)
		r.mu.Unlock()
		return
	}
	out.errorReply(el, stanza.ResourceConstraint("the room keeps changing; try again"))
}

func notAcceptable(text string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: text}
}

func (m *Module) message(ctx context.Context, from, to jid.JID, el *xmlstream.Element, out *outbox) {
	typ := el.Attr("type")
	if to.Local() == "" {
		return // messages to the service itself have no meaning
	}
	if typ == "error" {
		// An occupant's client (or its server) bouncing room traffic
		// may be gone; nothing is ever answered to an error.
		m.kickIfGone(ctx, from, to.Bare(), el, out)
		return
	}
	m.withRoom(ctx, to.Bare(), el, out, func(r *room) {
		switch {
		case to.Resource() != "":
			r.private(from, to.Resource(), el, out)
		case typ == "groupchat":
			r.groupchat(ctx, from, el, out)
		case el.Child(NSUser, "x") != nil:
			r.userX(ctx, from, el, out)
		case voiceRequestForm(el) != nil:
			r.voiceRequest(ctx, from, el, out)
		default:
			out.errorReply(el, notAcceptable("only groupchat messages go to a room"))
		}
	})
}

// groupchat handles a message to all occupants (§7.4) or a subject change
// (§8.1).
func (r *room) groupchat(ctx context.Context, from jid.JID, el *xmlstream.Element, out *outbox) {
	o := r.occupantBySession(from)
	switch {
	case o == nil:
		out.errorReply(el, notAcceptable("only occupants may send messages to the room"))
		return
	case o.role == roleVisitor:
		out.errorReply(el, stanza.Forbidden("you have no voice in this room"))
		return
	}
	subject := el.Child(el.Name.Space, "subject")
	// §8.1: with a body or a thread, a subject is part of a message, not
	// a change of the room's subject.
	change := subject != nil && el.Child(el.Name.Space, "body") == nil && el.Child(el.Name.Space, "thread") == nil
	if change {
		if !r.cfg.ChangeSubject && o.role != roleModerator {
			out.errorReply(el, stanza.Forbidden("you may not change the subject"))
			return
		}
		r.cfg.Subject, r.cfg.SubjectBy, r.cfg.SubjectAt = subject.Text(), o.nick, r.m.now().UTC()
		if err := r.save(ctx); err != nil {
			out.errorReply(el, r.m.storageError(err, "saving a subject"))
			return
		}
	}
	msg := xmlstream.New(el.Name.Space, "message", "type", "groupchat", "from", r.nickJID(o.nick).String())
	if id := el.Attr("id"); id != "" {
		msg.SetAttr("id", id)
	}
	for c := range el.Elements() {
		// What a client could forge: the room's own ids are added below,
		// and only the room speaks in the room's name (a muc#user item
		// with a real JID, a moderation announcement).
		switch {
		case c.Name.Space == NSOccupantID, c.Name.Space == NSSID && c.Name.Local == "stanza-id" && c.Attr("by") == r.jid.String(),
			isUserX(c), c.Name.Space == NSModerate, c.Name.Space == NSModerate0, c.Name.Space == NSRetract && c.Name.Local == "retracted":
			continue
		}
		sub(msg, c.Copy())
	}
	sub(msg, xmlstream.New(NSOccupantID, "occupant-id", "id", r.occupantID(o.bare)))
	stamp := r.m.now().UTC()
	body := el.Child(el.Name.Space, "body") != nil
	id := ""
	if r.archiving() && body {
		// Messages with a body are what a reader of the archive looks
		// for; chat states and the like pass without being kept.
		id = newID()
		sub(msg, xmlstream.New(NSSID, "stanza-id", "id", id, "by", r.jid.String()))
		if _, err := r.m.store.AppendMessage(ctx, r.jid.String(), storage.MUCMessage{ID: id, Stamp: stamp, Data: archived(msg, from)}); err != nil {
			out.errorReply(el, r.m.storageError(err, "archiving a room message"))
			return
		}
	}
	if !change {
		r.history = append(r.history, historyEntry{stamp: stamp, msg: msg, id: id})
		if len(r.history) > historySize {
			r.history = r.history[len(r.history)-historySize:]
		}
	}
	for _, rec := range r.occupants {
		for _, s := range rec.sessions {
			c := msg.Copy()
			c.SetAttr("to", s.String())
			out.add(c)
		}
	}
}

// private relays a message between two occupants (§7.5), from the
// sender's room nick to every session of the recipient.
func (r *room) private(from jid.JID, nick string, el *xmlstream.Element, out *outbox) {
	o := r.occupantBySession(from)
	if o == nil {
		out.errorReply(el, notAcceptable("only occupants may send private messages"))
		return
	}
	if el.Attr("type") == "groupchat" {
		out.errorReply(el, stanza.BadRequest("a private message cannot be of type groupchat"))
		return
	}
	target := r.occupants[nick]
	if target == nil {
		out.errorReply(el, stanza.ItemNotFound("no occupant has that nickname"))
		return
	}
	for _, s := range target.sessions {
		c := el.Copy()
		c.SetAttr("from", r.nickJID(o.nick).String())
		c.SetAttr("to", s.String())
		if c.Child(NSUser, "x") == nil {
			// §7.5: lets the client tell a private message from a chat.
			sub(c, xmlstream.New(NSUser, "x"))
		}
		out.add(c)
	}
}

// userX handles invitations and declines (§7.8.2, §7.8.3).
func (r *room) userX(ctx context.Context, from jid.JID, el *xmlstream.Element, out *outbox) {
	x := el.Child(NSUser, "x")
	if d := x.Child(NSUser, "decline"); d != nil {
		to, err := jid.Parse(d.Attr("to"))
		if err != nil {
			out.errorReply(el, stanza.JIDMalformed("the decline has no valid 'to'"))
			return
		}
		msg := xmlstream.New(stanza.NSClient, "message", "from", r.jid.String(), "to", to.String())
		dx := sub(msg, xmlstream.New(NSUser, "x"))
		dec := sub(dx, xmlstream.New(NSUser, "decline", "from", from.Bare().String()))
		if reason := d.Child(NSUser, "reason"); reason != nil {
			sub(dec, reason.Copy())
		}
		out.add(msg)
		return
	}
	o := r.occupantBySession(from)
	aff := r.affiliation(from)
	if o == nil {
		out.errorReply(el, notAcceptable("only occupants may invite"))
		return
	}
	// §7.8.2: in a members-only room only admins and owners invite,
	// unless the room lets occupants; elsewhere allowinvites decides.
	admin := aff == storage.AffOwner || aff == storage.AffAdmin
	if !admin && !r.cfg.AllowInvites {
		out.errorReply(el, stanza.Forbidden("you may not invite people to this room"))
		return
	}
	for inv := range x.Elements() {
		if inv.Name.Space != NSUser || inv.Name.Local != "invite" {
			continue
		}
		to, err := jid.Parse(inv.Attr("to"))
		if err != nil {
			out.errorReply(el, stanza.JIDMalformed("the invitation has no valid 'to'"))
			return
		}
		if r.cfg.MembersOnly && r.affiliation(to) == storage.AffNone {
			if err := r.setAffiliation(ctx, storage.MUCAffiliation{JID: to.Bare().String(), Affiliation: storage.AffMember}); err != nil {
				out.errorReply(el, r.m.storageError(err, "adding an invitee as member"))
				return
			}
		}
		msg := xmlstream.New(stanza.NSClient, "message", "from", r.jid.String(), "to", to.String(), "id", newID())
		ix := sub(msg, xmlstream.New(NSUser, "x"))
		invFrom := r.nickJID(o.nick)
		if r.cfg.NonAnonymous {
			invFrom = from.Bare()
		}
		i := sub(ix, xmlstream.New(NSUser, "invite", "from", invFrom.String()))
		if reason := inv.Child(NSUser, "reason"); reason != nil {
			sub(i, reason.Copy())
		}
		// The password is not included (§7.8.2 asks for it): the room
		// keeps only its hash. The inviter tells it another way.
		out.add(msg)
	}
}

// voiceRequestForm returns the muc#request form of §7.13 a message
// carries, nil when it has none.
func voiceRequestForm(el *xmlstream.Element) *dataform.Form {
	x := el.Child(dataform.NS, "x")
	if x == nil {
		return nil
	}
	f, err := dataform.Parse(x)
	if err != nil || f.FormType != NSRequest {
		return nil
	}
	return f
}

// voiceRequest passes a visitor's request for voice to the moderators
// (§7.13) as the form they approve (§8.6); a moderator's answer comes
// back the same way.
func (r *room) voiceRequest(ctx context.Context, from jid.JID, el *xmlstream.Element, out *outbox) {
	o := r.occupantBySession(from)
	if o == nil {
		out.errorReply(el, notAcceptable("only occupants may ask for voice"))
		return
	}
	req := voiceRequestForm(el)
	if req.Has("muc#request_allow") && r.isModerator(o) {
		r.voiceAnswer(ctx, from, el, req, out)
		return
	}
	if o.role != roleVisitor {
		return // already has voice: nothing to ask
	}
	for _, mod := range r.occupants {
		if mod.role != roleModerator {
			continue
		}
		form := dataform.New(dataform.TypeForm, NSRequest)
		form.Title = "Voice request"
		form.Add("muc#role", "Requested role", roleParticipant)
		if r.canSeeJIDs(mod) {
			form.Add("muc#jid", "User ID", from.String())
		}
		form.Add("muc#roomnick", "Room Nickname", o.nick)
		form.AddBool("muc#request_allow", "Grant voice to this person?", false)
		x := form.Element()
		for _, s := range mod.sessions {
			msg := xmlstream.New(stanza.NSClient, "message", "from", r.jid.String(), "to", s.String(), "id", newID())
			sub(msg, x.Copy())
			out.add(msg)
		}
	}
}

// voiceAnswer applies a moderator's decision on a voice request (§8.6):
// approval makes the visitor a participant like a role change through
// muc#admin would, with the same checks and presence broadcast; a
// refusal changes nothing.
func (r *room) voiceAnswer(ctx context.Context, from jid.JID, el *xmlstream.Element, req *dataform.Form, out *outbox) {
	if req.Type != dataform.TypeSubmit || el.Child(dataform.NS, "x").Attr("type") == "" {
		out.errorReply(el, stanza.BadRequest("the voice request answer must be a submitted form"))
		return
	}
	allow, _, err := req.Bool("muc#request_allow")
	if err != nil {
		out.errorReply(el, err.(*stanza.Error))
		return
	}
	if role := strings.TrimSpace(req.Value("muc#role")); role != "" && role != roleParticipant {
		out.errorReply(el, stanza.BadRequest("only voice (the participant role) can be requested"))
		return
	}
	if !allow {
		return
	}
	target := r.occupants[strings.TrimSpace(req.Value("muc#roomnick"))]
	if j, err := jid.Parse(strings.TrimSpace(req.Value("muc#jid"))); target == nil && err == nil {
		target = r.occupantBySession(j)
	}
	if target == nil {
		out.errorReply(el, stanza.ItemNotFound("no occupant has that nickname"))
		return
	}
	if target.role != roleVisitor {
		return // voice was given meanwhile, or the occupant became more
	}
	it := xmlstream.New(NSAdmin, "item", "nick", target.nick, "role", roleParticipant)
	c, se := r.planChange(from, it)
	if se != nil {
		out.errorReply(el, se)
		return
	}
	if apply := c.apply(ctx, r, out); apply != nil {
		apply()
	}
}

// goneConditions are the stanza errors that say the session a room sent
// to is not there any more (XEP-0045 §18.1: "a delivery-related error"):
// it was never there or vanished, its server cannot be reached, or
// nothing answers for it. An error with no readable condition counts
// too: a client that cannot say what failed will not keep up with the
// room either. Other errors (a policy the client applies, a stanza it
// did not like) say the client is there and only refused one stanza.
var goneConditions = map[string]bool{
	"":                        true,
	"gone":                    true,
	"item-not-found":          true,
	"jid-malformed":           true,
	"recipient-unavailable":   true,
	"redirect":                true,
	"remote-server-not-found": true,
	"remote-server-timeout":   true,
	"service-unavailable":     true,
}

// kickIfGone removes the session that answered room traffic with an
// error meaning it is gone, with status 333 (XEP-0045 §7.2.x, "kick due
// to error"), so that it stops being counted and sent to; it reports
// whether it did.
func (m *Module) kickIfGone(ctx context.Context, from, room jid.JID, el *xmlstream.Element, out *outbox) bool {
	if !goneConditions[stanza.ErrorCondition(el)] {
		return false
	}
	r, err := m.room(ctx, room)
	if err != nil || r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return false
	}
	return r.kickGone(ctx, from, el, out)
}

func (r *room) kickGone(ctx context.Context, full jid.JID, el *xmlstream.Element, out *outbox) bool {
	o := r.occupantBySession(full)
	if o == nil {
		return false
	}
	status := xmlstream.New(stanza.NSClient, "status").AddText("Kicked: " + errorWords(el))
	if len(o.sessions) > 1 {
		// The occupant stays with its other sessions; only the gone one
		// hears that it left.
		o.sessions = slices.DeleteFunc(o.sessions, func(s jid.JID) bool { return s.Equal(full) })
		gone := &occupant{nick: o.nick, bare: o.bare, sessions: []jid.JID{full}, role: o.role}
		out.add(r.presenceOf(gone, full, gone, "unavailable", []string{"110", "333"}))
		return true
	}
	p := xmlstream.New(stanza.NSClient, "presence")
	sub(p, status)
	o.presence = p
	r.remove(ctx, o, []string{"333"}, out)
	return true
}

// errorWords says in words why a session was removed.
func errorWords(el *xmlstream.Element) string {
	if c := stanza.ErrorCondition(el); c != "" {
		return strings.ReplaceAll(c, "-", " ")
	}
	return "error"
}
