package muc

import (
	"context"
	"slices"
	"strconv"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// cleanPresence is the presence an occupant sent, as the room repeats it:
// without the MUC and occupant-id elements a client may not forge.
func cleanPresence(el *xmlstream.Element) *xmlstream.Element {
	p := xmlstream.New(el.Name.Space, "presence")
	for c := range el.Elements() {
		switch c.Name.Space {
		case NS, NSUser, NSOccupantID:
			continue
		}
		sub(p, c.Copy())
	}
	if t := el.Attr("type"); t != "" {
		p.SetAttr("type", t)
	}
	return p
}

// presence handles presence for a room: joining, leaving, changing nick
// or status.
func (m *Module) presence(ctx context.Context, from, to jid.JID, el *xmlstream.Element, out *outbox) {
	if to.Local() == "" {
		return // presence to the service itself means nothing
	}
	typ := el.Attr("type")
	switch typ {
	case "", "unavailable", "error":
	default:
		return // subscriptions and probes: rooms have no roster
	}
	// A room found gone was destroyed between lookup and lock; the
	// second lookup sees the truth.
	for range 3 {
		r, err := m.room(ctx, to.Bare())
		if err != nil {
			out.errorReply(el, m.storageError(err, "loading a room"))
			return
		}
		if typ != "" {
			// unavailable or error (a client bouncing room traffic):
			// either way the session is out of the room.
			if r == nil {
				return
			}
			r.mu.Lock()
			if !r.gone {
				// An error saying the session is gone removes it with
				// status 333, as for messages; any other error still
				// takes it out of the room.
				if typ != "error" || !goneConditions[stanza.ErrorCondition(el)] || !r.kickGone(ctx, from, el, out) {
					r.leave(ctx, from, el, out)
				}
			}
			r.mu.Unlock()
			return
		}
		if to.Resource() == "" {
			out.errorReply(el, stanza.JIDMalformed("a nickname is needed to enter a room"))
			return
		}
		created := false
		if r == nil {
			if !m.host.IsLocal(from.Domain()) {
				out.errorReply(el, stanza.NotAllowed("only users of this server may create rooms"))
				return
			}
			// §10.1.1: a client that speaks MUC gets a locked room to
			// configure (or accept as instant); an old client an
			// instant room at once.
			var se *stanza.Error
			if r, created, se = m.create(to.Bare(), from, el.Child(NS, "x") != nil); se != nil {
				out.errorReply(el, se)
				return
			}
		}
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			continue
		}
		r.available(from, to.Resource(), el, created, out)
		r.mu.Unlock()
		return
	}
	out.errorReply(el, stanza.ResourceConstraint("the room keeps changing; try again"))
}

// available handles available presence from full to room/nick.
func (r *room) available(full jid.JID, nick string, el *xmlstream.Element, created bool, out *outbox) {
	if o := r.occupantBySession(full); o != nil {
		if o.nick == nick {
			o.presence = cleanPresence(el)
			r.broadcastPresence(o, "", nil, []string{"110"}, out)
			return
		}
		r.changeNick(o, nick, el, out)
		return
	}
	r.join(full, nick, el, created, out)
}

// join admits full under nick after the checks of XEP-0045 §7.2.
func (r *room) join(full jid.JID, nick string, el *xmlstream.Element, created bool, out *outbox) {
	aff := r.affiliation(full)
	x := el.Child(NS, "x")
	existing := r.occupants[nick]
	switch {
	case aff == storage.AffOutcast:
		out.errorReply(el, stanza.Forbidden("you are banned from this room"))
		return
	case r.locked && aff != storage.AffOwner:
		out.errorReply(el, stanza.ItemNotFound("the room is not configured yet"))
		return
	case r.cfg.MembersOnly && aff == storage.AffNone:
		out.errorReply(el, &stanza.Error{Type: stanza.Auth, Condition: "registration-required", Text: "the room is members-only"})
		return
	case existing != nil && !existing.bare.Equal(full.Bare()):
		out.errorReply(el, stanza.Conflict("that nickname is taken in this room"))
		return
	case r.cfg.protected() && aff != storage.AffOwner && (x == nil || !passwordMatches(r.cfg.PasswordHash, childText(x, NS, "password"))):
		out.errorReply(el, stanza.NotAuthorized("a password is required"))
		return
	case existing == nil && r.cfg.MaxUsers > 0 && len(r.occupants) >= r.cfg.MaxUsers && aff != storage.AffOwner && aff != storage.AffAdmin:
		out.errorReply(el, &stanza.Error{Type: stanza.Wait, Condition: "service-unavailable", Text: "the room is full"})
		return
	}
	if existing != nil {
		// Another session of the same user takes the same nick: it
		// shares the occupant (XEP-0045 §7.2 allows it).
		existing.sessions = append(existing.sessions, full)
		r.sendRoster(full, existing, out)
		out.add(r.presenceOf(existing, full, existing, "", append([]string{"110"}, r.roomCodes()...)))
		if len(r.avatarHashes) > 0 {
			out.add(r.avatarPresence(full))
		}
		r.sendHistory(full, x, out)
		r.sendSubject(full, out)
		return
	}
	o := &occupant{nick: nick, bare: full.Bare(), sessions: []jid.JID{full}, role: r.defaultRole(aff), presence: cleanPresence(el)}
	r.sendRoster(full, o, out)
	r.occupants[nick] = o
	self := append([]string{"110"}, r.roomCodes()...)
	if created {
		self = append(self, "201")
	}
	r.broadcastPresence(o, "", nil, self, out)
	if len(r.avatarHashes) > 0 {
		out.add(r.avatarPresence(full))
	}
	r.sendHistory(full, x, out)
	r.sendSubject(full, out)
}

// sendRoster sends to a joining session the presence of everyone already
// in the room (§7.2.3), before its own.
func (r *room) sendRoster(to jid.JID, self *occupant, out *outbox) {
	nicks := make([]string, 0, len(r.occupants))
	for n := range r.occupants {
		nicks = append(nicks, n)
	}
	slices.Sort(nicks)
	for _, n := range nicks {
		if o := r.occupants[n]; o != self {
			out.add(r.presenceOf(o, to, self, "", nil))
		}
	}
}

func childText(el *xmlstream.Element, space, local string) string {
	if c := el.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

// sendHistory sends the discussion history the joining client asked for
// (§7.2.15): all that is kept unless <history/> limits it.
func (r *room) sendHistory(to jid.JID, x *xmlstream.Element, out *outbox) {
	maxStanzas, maxChars := len(r.history), -1
	var since time.Time
	if x != nil {
		if h := x.Child(NS, "history"); h != nil {
			if v, err := strconv.Atoi(h.Attr("maxstanzas")); err == nil && v >= 0 {
				maxStanzas = min(v, maxStanzas)
			}
			if v, err := strconv.Atoi(h.Attr("maxchars")); err == nil && v >= 0 {
				maxChars = v
			}
			if v, err := strconv.Atoi(h.Attr("seconds")); err == nil && v >= 0 {
				since = r.m.now().Add(-time.Duration(v) * time.Second)
			}
			if v, err := xmpptime.Parse(h.Attr("since")); err == nil && v.After(since) {
				since = v
			}
		}
	}
	start, chars := len(r.history), 0
	for i := len(r.history) - 1; i >= 0 && len(r.history)-i <= maxStanzas; i-- {
		h := r.history[i]
		if !since.IsZero() && h.stamp.Before(since) {
			break
		}
		if maxChars >= 0 {
			chars += len(h.msg.String())
			if chars > maxChars {
				break
			}
		}
		start = i
	}
	for _, h := range r.history[start:] {
		msg := h.msg.Copy()
		msg.SetAttr("to", to.String())
		sub(msg, stanza.Delay(r.jid.String(), h.stamp))
		out.add(msg)
	}
}

// sendSubject ends the join with the subject, empty when there is none
// (§7.2.16): clients take it as the end of the history.
func (r *room) sendSubject(to jid.JID, out *outbox) {
	from := r.jid
	if r.cfg.SubjectBy != "" {
		from = r.nickJID(r.cfg.SubjectBy)
	}
	msg := xmlstream.New(stanza.NSClient, "message", "type", "groupchat", "from", from.String(), "to", to.String(), "id", newID())
	sub(msg, xmlstream.New(stanza.NSClient, "subject")).AddText(r.cfg.Subject)
	if !r.cfg.SubjectAt.IsZero() {
		// When it was set, as a delay from the room (XEP-0203).
		sub(msg, stanza.Delay(r.jid.String(), r.cfg.SubjectAt))
	}
	out.add(msg)
}

// changeNick renames o (§7.6): unavailable with 303 and the new nick, then
// available under the new nick.
func (r *room) changeNick(o *occupant, nick string, el *xmlstream.Element, out *outbox) {
	if other := r.occupants[nick]; other != nil {
		out.errorReply(el, stanza.Conflict("that nickname is taken in this room"))
		return
	}
	newNick := xmlstream.New("", "item-nick", "nick", nick)
	r.broadcastPresence(o, "unavailable", []string{"303"}, []string{"110"}, out, newNick)
	delete(r.occupants, o.nick)
	o.nick = nick
	o.presence = cleanPresence(el)
	r.occupants[nick] = o
	r.broadcastPresence(o, "", nil, []string{"110"}, out)
}

// leave takes full out of the room (§7.14).
func (r *room) leave(ctx context.Context, full jid.JID, el *xmlstream.Element, out *outbox) {
	o := r.occupantBySession(full)
	if o == nil {
		return
	}
	if len(o.sessions) > 1 {
		o.sessions = slices.DeleteFunc(o.sessions, func(s jid.JID) bool { return s.Equal(full) })
		gone := &occupant{nick: o.nick, bare: o.bare, sessions: []jid.JID{full}, role: o.role, presence: cleanPresence(el)}
		out.add(r.presenceOf(gone, full, gone, "unavailable", []string{"110"}))
		return
	}
	p := cleanPresence(el)
	p.RemoveAttr("type")
	o.presence = p
	r.remove(ctx, o, nil, out)
}

// remove takes o out of the room with an unavailable presence carrying
// codes (e.g. 307 kicked), and forgets an emptied temporary room.
func (r *room) remove(ctx context.Context, o *occupant, codes []string, out *outbox, extra ...*xmlstream.Element) {
	delete(r.occupants, o.nick)
	r.broadcastPresence(o, "unavailable", codes, []string{"110"}, out, extra...)
	r.forgetIfEmpty(ctx)
}

// forgetIfEmpty drops an empty room from memory: a temporary one is gone
// for good (§10.9), a persistent one is loaded again when needed.
func (r *room) forgetIfEmpty(ctx context.Context) {
	if len(r.occupants) > 0 {
		return
	}
	if !r.cfg.Persistent || r.locked {
		if err := r.unstore(ctx); err != nil {
			r.m.host.Logger().Error("muc: removing an emptied room failed", "err", err)
		}
	}
	r.gone = true
	r.m.drop(r)
}
