package mam

import (
	"context"

	"parley/internal/durable"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// archivable says whether a message is worth keeping: something a person
// wrote (a body, or an OMEMO payload that hides one), not chat states,
// receipts or markers alone, and not what the sender hinted must not be
// stored (XEP-0334), while a <store/> hint asks for keeping.
func archivable(el *xmlstream.Element) bool {
	content := false
	for c := range el.Elements() {
		switch {
		case c.Name.Space == stanza.NSHints && (c.Name.Local == stanza.HintNoStore || c.Name.Local == stanza.HintNoPermanentStore):
			return false
		case c.Name.Space == stanza.NSHints && c.Name.Local == stanza.HintStore,
			c.Name.Space == el.Name.Space && c.Name.Local == "body",
			(c.Name.Space == nsOMEMO || c.Name.Space == nsOMEMO2) && c.Name.Local == "encrypted":
			content = true
		}
	}
	return content
}

// stripStanzaIDs removes the stanza ids that claim to be by owner: only
// the owner's server may say what its archive calls a message, and a
// sender could otherwise make a client skip or confuse messages
// (XEP-0359 §5).
func stripStanzaIDs(el *xmlstream.Element, owner jid.JID) {
	kept := el.Children[:0]
	for _, n := range el.Children {
		if n.Elem != nil && n.Elem.Name.Space == NSSID && n.Elem.Name.Local == "stanza-id" && byOwner(n.Elem.Attr("by"), owner) {
			continue
		}
		kept = append(kept, n)
	}
	clear(el.Children[len(kept):])
	el.Children = kept
}

// byOwner compares a 'by' attribute with owner the way JIDs compare, so
// a differently written spelling of the owner is stripped too.
func byOwner(by string, owner jid.JID) bool {
	j, err := jid.Parse(by)
	return err == nil && j.Equal(owner)
}

// hook archives a message: outbound into the sender's archive, inbound
// into the recipient's, where it also gets its stanza id.
func (m *Module) hook(ctx context.Context, ev module.MessageEvent) {
	owner, with := ev.To.Bare(), ev.From
	if ev.Outbound {
		owner, with = ev.From.Bare(), ev.To
		if with.Bare().Equal(owner) {
			// To oneself: the inbound side archives it, once, with
			// the stanza id the receiving resources see.
			return
		}
	} else {
		stripStanzaIDs(ev.Stanza, owner)
	}
	if with.IsZero() || !archivable(ev.Stanza) {
		return
	}
	ok, err := m.wants(ctx, owner, with)
	if err != nil {
		// The database cannot say what the owner prefers right now; the
		// message is archived rather than lost (the batch waits for the
		// database like any other).
		m.fails.Report("reading archive preferences; archiving the message", err)
		ok = true
	}
	if !ok {
		return
	}
	c := ev.Stanza.Copy()
	stripStanzaIDs(c, owner)
	// The archive shows both addresses as they were, also for outbound
	// messages whose 'from' the client left out.
	c.SetAttr("from", ev.From.String())
	c.SetAttr("to", ev.To.String())
	am := storage.ArchiveMessage{With: with.String(), Stamp: storage.CreatedTime(m.now()), Outgoing: ev.Outbound}
	// The copy carries its own archive id, as the delivered stanza does.
	sid := xmlstream.New(NSSID, "stanza-id", "by", owner.String())
	c.AddChild(sid)
	// 96 random bits: a collision within one archive is not a concern,
	// and the batch would skip it rather than fail.
	am.ID = newID()
	sid.SetAttr("id", am.ID)
	am = m.sealEntry(ctx, owner, am, with.String(), c.Append(nil, stanza.NSClient))
	// The sender's acknowledgement waits for the batch holding it.
	m.writer.add(storage.ArchiveEntry{Owner: owner.String(), Message: am}, durable.Hold(ctx))
	if !ev.Outbound {
		ev.Stanza.AddChild(xmlstream.New(NSSID, "stanza-id", "id", am.ID, "by", owner.String()))
	}
}
