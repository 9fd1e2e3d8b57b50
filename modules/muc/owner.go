package muc

import (
	"context"
	"strconv"
	"strings"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// getConfig returns the configuration form (§10.2) to an owner.
func (r *room) getConfig(from jid.JID) (*xmlstream.Element, *stanza.Error) {
	if r.affiliation(from) != storage.AffOwner {
		return nil, stanza.Forbidden("only owners configure the room")
	}
	q := xmlstream.New(NSOwner, "query")
	form := sub(q, xmlstream.New(NSData, "x", "type", "form"))
	sub(form, xmlstream.New(NSData, "title")).AddText("Configuration of " + r.jid.String())
	addField(form, "FORM_TYPE", "hidden", "", NSRoomConfig)
	addField(form, "muc#roomconfig_roomname", "text-single", "Name", r.cfg.Name)
	addField(form, "muc#roomconfig_roomdesc", "text-single", "Description", r.cfg.Desc)
	addField(form, "muc#roomconfig_persistentroom", "boolean", "Persistent", boolValue(r.cfg.Persistent))
	addField(form, "muc#roomconfig_publicroom", "boolean", "Listed in the directory", boolValue(r.cfg.Public))
	addField(form, "muc#roomconfig_membersonly", "boolean", "Members only", boolValue(r.cfg.MembersOnly))
	addField(form, "muc#roomconfig_moderatedroom", "boolean", "Moderated", boolValue(r.cfg.Moderated))
	addField(form, "muc#roomconfig_passwordprotectedroom", "boolean", "Password protected", boolValue(r.cfg.Password != ""))
	addField(form, "muc#roomconfig_roomsecret", "text-private", "Password", r.cfg.Password)
	whois := addFieldEl(form, "muc#roomconfig_whois", "list-single", "Who may see real JIDs", map[bool]string{true: "anyone", false: "moderators"}[r.cfg.NonAnonymous])
	for _, o := range []string{"moderators", "anyone"} {
		sub(sub(whois, xmlstream.New(NSData, "option", "label", o)), xmlstream.New(NSData, "value")).AddText(o)
	}
	max := "none"
	if r.cfg.MaxUsers > 0 {
		max = strconv.Itoa(r.cfg.MaxUsers)
	}
	addField(form, "muc#roomconfig_maxusers", "text-single", "Maximum number of occupants", max)
	addField(form, "muc#roomconfig_changesubject", "boolean", "Occupants may change the subject", boolValue(r.cfg.ChangeSubject))
	addField(form, "muc#roomconfig_allowinvites", "boolean", "Occupants may invite", boolValue(r.cfg.AllowInvites))
	addField(form, "muc#roomconfig_enablearchiving", "boolean", "Archive messages (persistent rooms)", boolValue(!r.cfg.NoArchive))
	return q, nil
}

func addFieldEl(form *xmlstream.Element, v, typ, label, value string) *xmlstream.Element {
	addField(form, v, typ, label, value)
	var last *xmlstream.Element
	for f := range form.Elements() {
		last = f
	}
	return last
}

// formValues reads a submitted form into var -> values.
func formValues(x *xmlstream.Element) map[string][]string {
	vals := map[string][]string{}
	for f := range x.Elements() {
		if f.Name.Space != NSData || f.Name.Local != "field" {
			continue
		}
		var vs []string
		for v := range f.Elements() {
			if v.Name.Local == "value" {
				vs = append(vs, v.Text())
			}
		}
		vals[f.Attr("var")] = vs
	}
	return vals
}

func parseBool(s string) (bool, bool) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// applyForm sets the submitted options on cfg; fields not in the form
// keep their values (an empty form accepts the defaults, §10.1.2).
func applyForm(cfg *config, vals map[string][]string) *stanza.Error {
	bools := map[string]*bool{
		"muc#roomconfig_persistentroom": &cfg.Persistent,
		"muc#roomconfig_publicroom":     &cfg.Public,
		"muc#roomconfig_membersonly":    &cfg.MembersOnly,
		"muc#roomconfig_moderatedroom":  &cfg.Moderated,
		"muc#roomconfig_changesubject":  &cfg.ChangeSubject,
		"muc#roomconfig_allowinvites":   &cfg.AllowInvites,
	}
	for k, vs := range vals {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		if p := bools[k]; p != nil {
			b, ok := parseBool(v)
			if !ok {
				return stanza.BadRequest(k + " is not a boolean")
			}
			*p = b
			continue
		}
		switch k {
		case "muc#roomconfig_roomname":
			cfg.Name = v
		case "muc#roomconfig_roomdesc":
			cfg.Desc = v
		case "muc#roomconfig_roomsecret":
			cfg.Password = v
		case "muc#roomconfig_whois":
			switch v {
			case "anyone":
				cfg.NonAnonymous = true
			case "moderators":
				cfg.NonAnonymous = false
			default:
				return stanza.BadRequest("muc#roomconfig_whois must be anyone or moderators")
			}
		case "muc#roomconfig_enablearchiving", "mam":
			// "mam" is the name some services and clients use.
			b, ok := parseBool(v)
			if !ok {
				return stanza.BadRequest(k + " is not a boolean")
			}
			cfg.NoArchive = !b
		case "muc#roomconfig_maxusers":
			if v == "" || v == "none" || v == "0" {
				cfg.MaxUsers = 0
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return stanza.BadRequest("muc#roomconfig_maxusers must be a number or none")
			}
			cfg.MaxUsers = n
		}
	}
	if pw, ok := vals["muc#roomconfig_passwordprotectedroom"]; ok && len(pw) > 0 {
		if b, _ := parseBool(pw[0]); !b {
			cfg.Password = ""
		}
	}
	return nil
}

// setOwner handles a configuration submission or cancellation (§10.1,
// §10.2) and room destruction (§10.9).
func (r *room) setOwner(ctx context.Context, from jid.JID, q *xmlstream.Element, out *outbox) *stanza.Error {
	if r.affiliation(from) != storage.AffOwner {
		return stanza.Forbidden("only owners configure the room")
	}
	if d := q.Child(NSOwner, "destroy"); d != nil {
		r.destroy(ctx, d, out)
		return nil
	}
	x := q.Child(NSData, "x")
	if x == nil {
		return stanza.BadRequest("a configuration form or <destroy/> is needed")
	}
	switch x.Attr("type") {
	case "cancel":
		if r.locked {
			// §10.1.3: cancelling the initial configuration destroys
			// the room.
			r.destroy(ctx, xmlstream.New(NSOwner, "destroy"), out)
		}
		return nil
	case "submit":
	default:
		return stanza.BadRequest("the form must be submitted or cancelled")
	}
	vals := formValues(x)
	if ft, ok := vals["FORM_TYPE"]; ok && (len(ft) != 1 || ft[0] != NSRoomConfig) {
		return stanza.BadRequest("not a muc#roomconfig form")
	}
	old := r.cfg
	cfg := r.cfg
	if se := applyForm(&cfg, vals); se != nil {
		return se
	}
	r.cfg = cfg
	wasLocked := r.locked
	r.locked = false
	if cfg.Persistent {
		if err := r.save(ctx); err != nil {
			r.cfg, r.locked = old, wasLocked
			return r.m.storageError(err, "saving a room configuration")
		}
	} else if err := r.unstore(ctx); err != nil {
		return r.m.storageError(err, "removing a room")
	}
	// §10.2.1: a room that became members-only loses its non-members.
	if cfg.MembersOnly && !old.MembersOnly {
		for _, o := range r.sortedOccupants() {
			if r.affiliation(o.bare) == storage.AffNone {
				r.remove(ctx, o, []string{"322"}, out)
			}
		}
	}
	// §10.2.1: occupants hear of changes that matter for privacy.
	var codes []string
	if cfg.NonAnonymous != old.NonAnonymous {
		codes = append(codes, map[bool]string{true: "172", false: "173"}[cfg.NonAnonymous])
	} else {
		codes = append(codes, "104")
	}
	if cfg.archiving() != old.archiving() {
		// §10.2.1: 170 logging on, 171 logging off.
		codes = append(codes, map[bool]string{true: "170", false: "171"}[cfg.archiving()])
	}
	if !r.gone {
		r.notifyConfigChange(codes, out)
	}
	return nil
}

// notifyConfigChange tells every occupant that the configuration
// changed, with status codes (§10.2.1).
func (r *room) notifyConfigChange(codes []string, out *outbox) {
	msg := xmlstream.New(stanza.NSClient, "message", "type", "groupchat", "from", r.jid.String())
	x := sub(msg, xmlstream.New(NSUser, "x"))
	for _, c := range codes {
		sub(x, xmlstream.New(NSUser, "status", "code", c))
	}
	for _, o := range r.occupants {
		for _, s := range o.sessions {
			c := msg.Copy()
			c.SetAttr("id", newID())
			c.SetAttr("to", s.String())
			out.add(c)
		}
	}
}

// destroy removes the room, telling every occupant (§10.9).
func (r *room) destroy(ctx context.Context, d *xmlstream.Element, out *outbox) {
	dx := xmlstream.New(NSUser, "destroy")
	if j := d.Attr("jid"); j != "" {
		dx.SetAttr("jid", j)
	}
	if reason := d.Child(NSOwner, "reason"); reason != nil {
		sub(dx, xmlstream.New(NSUser, "reason")).AddText(reason.Text())
	}
	for _, o := range r.sortedOccupants() {
		delete(r.occupants, o.nick)
		for _, s := range o.sessions {
			out.add(r.presenceOf(o, s, o, "unavailable", []string{"110"}, dx))
		}
	}
	r.cfg.Persistent = false
	if err := r.unstore(ctx); err != nil {
		r.m.host.Logger().Error("muc: destroying a stored room failed", "err", err)
	}
	r.gone = true
	r.m.drop(r)
}
