package muc

import (
	"context"
	"slices"
	"strconv"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

func (m *Module) iq(ctx context.Context, from, to jid.JID, el *xmlstream.Element, out *outbox) {
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		if to.Resource() != "" {
			// An answer to an IQ forwarded to an occupant.
			m.withRoom(ctx, to.Bare(), el, out, func(r *room) { r.forwardIQ(from, to.Resource(), el, out) })
		}
		return
	}
	payload := el.FirstElement()
	if payload == nil {
		out.errorReply(el, stanza.BadRequest("an IQ get or set needs a payload"))
		return
	}
	reply := func(res *xmlstream.Element, se *stanza.Error) {
		if se != nil {
			out.errorReply(el, se)
			return
		}
		out.add(stanza.Result(el, res))
	}
	key := typ + " " + payload.Name.Space + " " + payload.Name.Local
	if to.Local() == "" {
		switch key {
		case "get " + NSDiscoInfo + " query":
			reply(m.serviceInfo(payload), nil)
		case "get " + NSDiscoItems + " query":
			reply(m.serviceItems(ctx, to, payload))
		case "get " + NSPing + " ping":
			reply(nil, nil)
		default:
			reply(nil, stanza.ServiceUnavailable())
		}
		return
	}
	m.withRoom(ctx, to.Bare(), el, out, func(r *room) {
		if to.Resource() != "" {
			r.occupantIQ(from, to.Resource(), el, payload, out)
			return
		}
		switch key {
		case "get " + NSDiscoInfo + " query":
			reply(r.info(payload), nil)
		case "get " + NSDiscoItems + " query":
			reply(r.items(from, payload), nil)
		case "get " + NSPing + " ping":
			reply(nil, nil)
		case "get " + NSOwner + " query":
			reply(r.getConfig(from))
		case "set " + NSOwner + " query":
			reply(nil, r.setOwner(ctx, from, payload, out))
		case "get " + NSAdmin + " query":
			reply(r.getAdmin(from, payload))
		case "set " + NSAdmin + " query":
			reply(nil, r.setAdmin(ctx, from, payload, out))
		case "get " + NSVCard + " vCard":
			reply(r.getVCard())
		case "set " + NSVCard + " vCard":
			reply(nil, r.setVCard(ctx, from, payload, out))
		case "get " + NSMAM + " query":
			if !r.archiving() {
				reply(nil, stanza.ServiceUnavailable())
				return
			}
			reply(r.archiveForm(from))
		case "set " + NSMAM + " query":
			if !r.archiving() {
				reply(nil, stanza.ServiceUnavailable())
				return
			}
			// The results are queued before the answer, and the outbox
			// keeps order.
			reply(r.archiveQuery(ctx, from, payload, out))
		case "set " + NSModerate + " moderate":
			mod, se := parseModerate(payload)
			if se == nil {
				se = r.moderate(ctx, from, mod, out)
			}
			reply(nil, se)
		case "set " + NSFasten + " apply-to":
			mod, se := parseApplyTo(payload)
			if se == nil {
				se = r.moderate(ctx, from, mod, out)
			}
			reply(nil, se)
		default:
			reply(nil, stanza.ServiceUnavailable())
		}
	})
}

// occupantIQ answers self-pings (XEP-0410) and passes other IQs to the
// occupant, from the sender's nick (§7.5 for IQs).
func (r *room) occupantIQ(from jid.JID, nick string, el, payload *xmlstream.Element, out *outbox) {
	sender := r.occupantBySession(from)
	if sender == nil {
		out.errorReply(el, notAcceptable("you are not in this room"))
		return
	}
	if sender.nick == nick && payload.Name.Space == NSPing {
		out.add(stanza.Result(el, nil))
		return
	}
	target := r.occupants[nick]
	if target == nil {
		out.errorReply(el, stanza.ItemNotFound("no occupant has that nickname"))
		return
	}
	c := el.Copy()
	c.SetAttr("from", r.nickJID(sender.nick).String())
	c.SetAttr("to", target.sessions[0].String())
	out.add(c)
}

// forwardIQ passes an occupant's answer back to the asker, whose nick is
// the answer's 'to'.
func (r *room) forwardIQ(from jid.JID, nick string, el *xmlstream.Element, out *outbox) {
	answerer := r.occupantBySession(from)
	asker := r.occupants[nick]
	if answerer == nil || asker == nil {
		return
	}
	c := el.Copy()
	c.SetAttr("from", r.nickJID(answerer.nick).String())
	c.SetAttr("to", asker.sessions[0].String())
	out.add(c)
}

func discoQuery(ns string, req *xmlstream.Element) *xmlstream.Element {
	q := xmlstream.New(ns, "query")
	if n := req.Attr("node"); n != "" {
		q.SetAttr("node", n)
	}
	return q
}

func (m *Module) serviceInfo(req *xmlstream.Element) *xmlstream.Element {
	q := discoQuery(NSDiscoInfo, req)
	sub(q, xmlstream.New(NSDiscoInfo, "identity", "category", "conference", "type", "text", "name", "Chatrooms"))
	// vcard-temp: rooms take owners' vCards (XEP-0486 §3.1 has clients
	// look for it on the service).
	for _, f := range []string{NSDiscoInfo, NSDiscoItems, NS, NSOccupantID, NSPing, NSVCard} {
		sub(q, xmlstream.New(NSDiscoInfo, "feature", "var", f))
	}
	return q
}

// serviceItems lists the public rooms (§6.3), live and stored.
func (m *Module) serviceItems(ctx context.Context, service jid.JID, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	type entry struct{ jid, name string }
	found := map[string]entry{}
	stored, err := m.store.Rooms(ctx, service.Domain())
	if err != nil {
		return nil, m.storageError(err, "listing rooms")
	}
	m.mu.Lock()
	live := make([]*room, 0, len(m.rooms))
	for j, r := range m.rooms {
		if j.Domain() == service.Domain() {
			live = append(live, r)
		}
	}
	m.mu.Unlock()
	for _, s := range stored {
		if r, err := m.room(ctx, jid.MustParse(s.JID)); err == nil && r != nil && !slices.Contains(live, r) {
			live = append(live, r)
		}
	}
	for _, r := range live {
		r.mu.Lock()
		if !r.gone && r.cfg.Public && !r.locked {
			found[r.jid.String()] = entry{r.jid.String(), r.cfg.Name}
		}
		r.mu.Unlock()
	}
	q := discoQuery(NSDiscoItems, req)
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		it := sub(q, xmlstream.New(NSDiscoItems, "item", "jid", k))
		if n := found[k].name; n != "" {
			it.SetAttr("name", n)
		}
	}
	return q, nil
}

// features of a room for disco#info (§6.4).
func (r *room) features() []string {
	pick := func(on bool, yes, no string) string {
		if on {
			return yes
		}
		return no
	}
	f := []string{
		NS, NSOccupantID, NSPing, NSVCard,
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.cfg.NonAnonymous, "muc_nonanonymous", "muc_semianonymous"),
		pick(r.cfg.protected(), "muc_passwordprotected", "muc_unsecured"),
	}
	if r.archiving() {
		// Stanza ids, the archive and moderation all need the archive.
		f = append(f, NSSID, NSMAM, NSMAMExtended, NSModerate, NSModerate0)
	}
	return f
}

func (r *room) info(req *xmlstream.Element) *xmlstream.Element {
	q := discoQuery(NSDiscoInfo, req)
	name := r.cfg.Name
	if name == "" {
		name = r.jid.Local()
	}
	sub(q, xmlstream.New(NSDiscoInfo, "identity", "category", "conference", "type", "text", "name", name))
	feats := r.features()
	slices.Sort(feats)
	for _, f := range feats {
		sub(q, xmlstream.New(NSDiscoInfo, "feature", "var", f))
	}
	form := dataform.New(dataform.TypeResult, NSRoomInfo)
	form.Add("muc#roominfo_description", "Description", r.cfg.Desc)
	form.Add("muc#roominfo_subject", "Subject", r.cfg.Subject)
	form.Add("muc#roominfo_occupants", "Number of occupants", strconv.Itoa(len(r.occupants)))
	form.AddBool("muc#roominfo_subjectmod", "Occupants may change the subject", r.cfg.ChangeSubject)
	if len(r.avatarHashes) > 0 {
		// XEP-0486 §3.3: present only when the room has an avatar.
		form.Add("muc#roominfo_avatarhash", "Avatar hash", r.avatarHashes...)
	}
	sub(q, form.Element())
	return q
}

// items lists occupants' room JIDs (§6.5) to occupants of a public room.
func (r *room) items(from jid.JID, req *xmlstream.Element) *xmlstream.Element {
	q := discoQuery(NSDiscoItems, req)
	if !r.cfg.Public && r.occupantBySession(from) == nil {
		return q
	}
	nicks := make([]string, 0, len(r.occupants))
	for n := range r.occupants {
		nicks = append(nicks, n)
	}
	slices.Sort(nicks)
	for _, n := range nicks {
		sub(q, xmlstream.New(NSDiscoItems, "item", "jid", r.nickJID(n).String(), "name", n))
	}
	return q
}
