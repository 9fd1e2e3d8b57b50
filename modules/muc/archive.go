package muc

import (
	"context"
	"errors"
	"slices"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/mamquery"
)

// Namespaces of the room archive (XEP-0313 on the room JID).
const (
	NSMAM         = mamquery.NS
	NSMAMExtended = mamquery.NSExtended
)

// Page sizes of a room archive query: archivePage when the client sets
// no RSM max, and never more than archiveMaxPage, so one query stays a
// bounded amount of work and output.
const (
	archivePage    = 50
	archiveMaxPage = 250
)

// archiveLimits are what the room archive supports: it has no 'with'
// filter (everyone in a room talks to the same room).
var archiveLimits = mamquery.Limits{DefaultMax: archivePage, MaxMax: archiveMaxPage, MaxIDs: storage.MaxArchiveQueryIDs}

// archiving says whether the room keeps its messages: only a stored
// room can, and its owners may turn it off.
func (c config) archiving() bool { return c.Persistent && !c.NoArchive }

func (r *room) archiving() bool { return r.cfg.archiving() }

// archived is the stored form of a broadcast groupchat message: as
// broadcast (with its stanza-id), plus the sender's real JID in a
// muc#user item that the archive shows only to those allowed to see
// real JIDs (XEP-0313 §5.2.3.1).
func archived(msg *xmlstream.Element, sender jid.JID) []byte {
	c := msg.Copy()
	sub(sub(c, xmlstream.New(NSUser, "x")), xmlstream.New(NSUser, "item", "jid", sender.String()))
	return []byte(c.String())
}

// withoutChildren returns a copy of el without the children drop accepts.
func withoutChildren(el *xmlstream.Element, drop func(*xmlstream.Element) bool) *xmlstream.Element {
	c := el.Copy()
	c.Children = slices.DeleteFunc(c.Children, func(n xmlstream.Node) bool { return n.Elem != nil && drop(n.Elem) })
	return c
}

func isUserX(c *xmlstream.Element) bool { return c.Name.Space == NSUser && c.Name.Local == "x" }

// isTombstone recognises a message that moderation replaced (XEP-0425).
func isTombstone(msg *xmlstream.Element) bool {
	return msg.Child(NSRetract, "retracted") != nil
}

// mayReadArchive says whether from may query the archive: members (and
// above) always, others only while they are in the room, and in a
// members-only room nobody but members.
func (r *room) mayReadArchive(from jid.JID) bool {
	aff := r.affiliation(from)
	switch {
	case aff == storage.AffOutcast:
		return false
	case rank(aff) >= rank(storage.AffMember):
		return true
	case r.cfg.MembersOnly:
		return false
	}
	return len(r.occupantsOf(from.Bare())) > 0
}

// mayKnowJIDs says whether from may learn occupants' real JIDs: in a
// non-anonymous room anyone, else moderators and those whose affiliation
// makes them moderators.
func (r *room) mayKnowJIDs(from jid.JID) bool {
	if r.cfg.NonAnonymous || rank(r.affiliation(from)) >= rank(storage.AffAdmin) {
		return true
	}
	return slices.ContainsFunc(r.occupantsOf(from.Bare()), r.isModerator)
}

// archiveForm answers a query get with the search form.
func (r *room) archiveForm(from jid.JID) (*xmlstream.Element, *stanza.Error) {
	if !r.mayReadArchive(from) {
		return nil, stanza.Forbidden("only occupants may read the room's archive")
	}
	return mamquery.Form(archiveLimits), nil
}

// archiveQuery answers a MAM query on the room (XEP-0313 §5.1.2): one
// message per result, queued before the returned <fin/>, which the
// router sends after them through the same session queue.
func (r *room) archiveQuery(ctx context.Context, from jid.JID, q *xmlstream.Element, out *outbox) (*xmlstream.Element, *stanza.Error) {
	if !r.mayReadArchive(from) {
		return nil, stanza.Forbidden("only occupants may read the room's archive")
	}
	if q.Attr("node") != "" {
		return nil, stanza.ItemNotFound("a room archive has no nodes")
	}
	mq, err := mamquery.Parse(q, archiveLimits)
	if err != nil {
		return nil, stanza.AsError(err)
	}
	sq := storage.MUCQuery{Start: mq.Start, End: mq.End, AfterID: mq.AfterID, BeforeID: mq.BeforeID, IDs: mq.IDs,
		After: mq.After, Before: mq.Before, Last: mq.Last, Max: max(mq.Max, 1)}
	page, err := r.m.store.Messages(ctx, r.jid.String(), sq)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, stanza.ItemNotFound("no archived message has that id")
	case errors.Is(err, storage.ErrInvalid):
		return nil, stanza.BadRequest("the query names an id that cannot exist")
	case err != nil:
		return nil, r.m.storageError(err, "querying a room archive")
	}
	msgs, cut := mamquery.CapBytes(page.Messages, func(am storage.MUCMessage) int { return len(am.Data) }, mq.Last, mamquery.MaxPageBytes)
	page.Complete = page.Complete && !cut
	if mq.Max == 0 {
		// RSM max 0 asks only for the count (XEP-0059 §2.7).
		msgs, page.Complete = nil, page.Count == 0
	}
	if mq.FlipPage {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	showJIDs := r.mayKnowJIDs(from)
	damaged := 0
	for _, am := range msgs {
		orig, err := xmlstream.ParseElement(am.Data, stanza.NSClient)
		if err != nil || orig.Name.Local != "message" {
			damaged++
			continue
		}
		if !showJIDs {
			orig = withoutChildren(orig, isUserX)
		}
		result := xmlstream.New(NSMAM, "result", "id", am.ID)
		if mq.QueryID != "" {
			result.SetAttr("queryid", mq.QueryID)
		}
		sub(result, stanza.Forwarded(orig, am.Stamp))
		msg := xmlstream.New(stanza.NSClient, "message", "from", r.jid.String(), "to", from.String(), "id", newID())
		sub(msg, result)
		out.add(msg)
	}
	if damaged > 0 {
		r.m.host.Logger().Error("muc: archived room messages are damaged and were left out", "room", r.jid.String(), "count", damaged)
	}
	first, last := "", ""
	if len(msgs) > 0 {
		first, last = msgs[0].ID, msgs[len(msgs)-1].ID
	}
	return mamquery.Fin(mq.QueryID, page.Complete, first, last, page.Count), nil
}
