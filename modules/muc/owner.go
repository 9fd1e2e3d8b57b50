package muc

import (
	"context"
	"slices"
	"strconv"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// maxUsersChoices are the limits the configuration form offers
// (muc#roomconfig_maxusers is a list-single, XEP-0045 §15.5.3); a room's
// current limit is offered too when it is not one of them.
var maxUsersChoices = []int{10, 20, 30, 50, 100, 200, 500, 1000}

// getConfig returns the configuration form (§10.2) to an owner.
func (r *room) getConfig(from jid.JID) (*xmlstream.Element, *stanza.Error) {
	if r.affiliation(from) != storage.AffOwner {
		return nil, stanza.Forbidden("only owners configure the room")
	}
	f := dataform.New(dataform.TypeForm, NSRoomConfig)
	f.Title = "Configuration of " + r.jid.String()
	f.Add("muc#roomconfig_roomname", "Name", r.cfg.Name)
	f.Add("muc#roomconfig_roomdesc", "Description", r.cfg.Desc)
	f.AddBool("muc#roomconfig_persistentroom", "Persistent", r.cfg.Persistent)
	f.AddBool("muc#roomconfig_publicroom", "Listed in the directory", r.cfg.Public)
	f.AddBool("muc#roomconfig_membersonly", "Members only", r.cfg.MembersOnly)
	f.AddBool("muc#roomconfig_moderatedroom", "Moderated", r.cfg.Moderated)
	f.AddBool("muc#roomconfig_passwordprotectedroom", "Password protected", r.cfg.protected())
	// The password is kept only as a hash, so the form cannot show it:
	// the field comes empty, and an empty answer keeps the password
	// (passwordprotectedroom off removes it).
	f.Add("muc#roomconfig_roomsecret", "Password (empty: unchanged)", "")
	f.Add("muc#roomconfig_whois", "Who may see real JIDs", map[bool]string{true: "anyone", false: "moderators"}[r.cfg.NonAnonymous])
	current := "none"
	if r.cfg.MaxUsers > 0 {
		current = strconv.Itoa(r.cfg.MaxUsers)
	}
	maxUsers := f.Add("muc#roomconfig_maxusers", "Maximum number of occupants", current)
	choices := slices.Clone(maxUsersChoices)
	if r.cfg.MaxUsers > 0 && !slices.Contains(choices, r.cfg.MaxUsers) {
		choices = append(choices, r.cfg.MaxUsers)
		slices.Sort(choices)
	}
	for _, n := range choices {
		maxUsers.AddOption(strconv.Itoa(n), strconv.Itoa(n))
	}
	maxUsers.AddOption("No limit", "none")
	f.AddBool("muc#roomconfig_changesubject", "Occupants may change the subject", r.cfg.ChangeSubject)
	f.AddBool("muc#roomconfig_allowinvites", "Occupants may invite", r.cfg.AllowInvites)
	f.AddBool("muc#roomconfig_enablearchiving", "Archive messages (persistent rooms)", !r.cfg.NoArchive)
	return xmlstream.New(NSOwner, "query").AddChild(f.Element()), nil
}

// applyForm sets the submitted options on cfg; fields not in the form
// keep their values (an empty form accepts the defaults, §10.1.2).
func applyForm(cfg *config, f *dataform.Form) *stanza.Error {
	bools := map[string]*bool{
		"muc#roomconfig_persistentroom": &cfg.Persistent,
		"muc#roomconfig_publicroom":     &cfg.Public,
		"muc#roomconfig_membersonly":    &cfg.MembersOnly,
		"muc#roomconfig_moderatedroom":  &cfg.Moderated,
		"muc#roomconfig_changesubject":  &cfg.ChangeSubject,
		"muc#roomconfig_allowinvites":   &cfg.AllowInvites,
	}
	for _, fd := range f.Fields {
		if len(fd.Values) == 0 {
			continue
		}
		k, v := fd.Var, fd.Value()
		if p := bools[k]; p != nil {
			b, _, err := f.Bool(k)
			if err != nil {
				return err.(*stanza.Error)
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
			if v != "" {
				cfg.PasswordHash = hashPassword(v)
			}
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
			b, _, err := f.Bool(k)
			if err != nil {
				return err.(*stanza.Error)
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
	if b, ok, _ := f.Bool("muc#roomconfig_passwordprotectedroom"); ok && !b {
		cfg.PasswordHash = ""
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
	x := q.Child(dataform.NS, "x")
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
	f, err := dataform.Parse(x)
	if err != nil {
		return err.(*stanza.Error)
	}
	if f.FormType != "" && f.FormType != NSRoomConfig {
		return stanza.BadRequest("not a muc#roomconfig form")
	}
	old := r.cfg
	cfg := r.cfg
	if se := applyForm(&cfg, f); se != nil {
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
