package mam

import (
	"context"
	"errors"
	"slices"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
	"parley/modules/internal/mamquery"
	"parley/modules/internal/unverified"
)

// limits are what the account archive supports, for the shared parser.
var limits = mamquery.Limits{DefaultMax: DefaultPage, MaxMax: MaxPage, MaxIDs: storage.MaxArchiveQueryIDs, With: true}

// form answers a query get with the search form (XEP-0313 §5.1.1).
func (m *Module) form(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	return mamquery.Form(limits), nil
}

// session returns the bound session of full, or nil when it is gone.
func (m *Module) session(full jid.JID) session.Session {
	for _, s := range m.host.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

// query answers a query set: the results go to the requesting session
// first, one message each, and the returned <fin/> follows them. Both
// travel through the same session queue (the router sends the IQ result
// after this returns), so a client sees every result before the end.
func (m *Module) query(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	if iq.Payload.Attr("node") != "" {
		return nil, stanza.ItemNotFound("an account archive has no nodes")
	}
	mq, err := mamquery.Parse(iq.Payload, limits)
	if err != nil {
		return nil, err
	}
	q := storage.ArchiveQuery{With: mq.With, WithIndex: m.withIndex(mq.With), WithBareIndex: m.withIndex(storage.BareOf(mq.With)), Start: mq.Start, End: mq.End, AfterID: mq.AfterID, BeforeID: mq.BeforeID,
		IDs: mq.IDs, After: mq.After, Before: mq.Before, Last: mq.Last, Max: mq.Max}
	owner := iq.To
	m.writer.sync(ctx) // what the client has seen is in the archive
	page, err := m.archive.Query(ctx, owner.String(), q)
	if err != nil {
		return nil, storageError(err, "no archived message has that id")
	}
	msgs, cut := mamquery.CapBytes(page.Messages, func(am storage.ArchiveMessage) int { return len(am.Data) }, mq.Last, mamquery.MaxPageBytes)
	complete := page.Complete && !cut
	if mq.FlipPage {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	sess := m.session(iq.From)
	queryID := mq.QueryID
	var (
		tally  unverified.Tally
		locked int
	)
	for _, am := range msgs {
		orig, err := m.verified(ctx, owner, q.With, am)
		if errors.Is(err, vault.ErrLocked) {
			// Logged in without unlocking the key (a mechanism it
			// has no wrap for yet): sealed rows are not readable now.
			locked++
			continue
		}
		if err != nil {
			tally.Withhold(am.ID, am.Data, err)
			continue
		}
		if sess == nil {
			continue
		}
		// Paced by what the client reads: a page of large messages is
		// more than the output queue takes at once.
		if session.DeliverPaced(ctx, sess, resultMessage(iq.From, owner, queryID, am, orig), nil) != nil {
			break // the session is gone
		}
	}
	m.report.Report(owner, sess, tally)
	// A withheld message is not in the result set the client sees: the
	// count says so, rather than promise more than the pages will hold.
	page.Count = max(0, page.Count-tally.Withheld()-locked)
	// The cursors are the page's bounds even when a damaged message in
	// them was left out, so that paging goes on past it.
	first, last := "", ""
	if len(msgs) > 0 {
		first, last = msgs[0].ID, msgs[len(msgs)-1].ID
	}
	return mamquery.Fin(queryID, complete, first, last, page.Count), nil
}

// verified opens an archived message and checks that it belongs where the
// query found it: a row whose conversation column was changed opens (the
// seal binds the full JID it was written with) but no longer matches.
func (m *Module) verified(ctx context.Context, owner jid.JID, with string, am storage.ArchiveMessage) (*xmlstream.Element, error) {
	peer, plain, err := m.openEntry(ctx, owner, am)
	if err != nil {
		return nil, err
	}
	if with != "" && peer != with && storage.BareOf(peer) != with {
		return nil, seal.ErrTampered
	}
	orig, err := xmlstream.ParseElement(plain, stanza.NSClient)
	if err != nil {
		return nil, seal.ErrTampered
	}
	return orig, nil
}

// resultMessage wraps an archived message for the requester (XEP-0313
// §5.1.2, with XEP-0297 forwarding and an XEP-0203 delay for its time).
func resultMessage(to, owner jid.JID, queryID string, am storage.ArchiveMessage, orig *xmlstream.Element) *xmlstream.Element {
	result := xmlstream.New(NS, "result", "id", am.ID)
	if queryID != "" {
		result.SetAttr("queryid", queryID)
	}
	fwd := stanza.Forwarded(orig, am.Stamp)
	return xmlstream.New(stanza.NSClient, "message", "to", to.String(), "from", owner.String(), "id", newID()).
		AddChild(result.AddChild(fwd))
}

// metadata answers XEP-0313's archive metadata query: the first and last
// message's id and time, so a client can tell at once what it lacks.
func (m *Module) metadata(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	el := xmlstream.New(NS, "metadata")
	for _, end := range []struct {
		name string
		last bool
	}{{"start", false}, {"end", true}} {
		m.writer.sync(ctx)
		page, err := m.archive.Query(ctx, iq.To.String(), storage.ArchiveQuery{Max: 1, Last: end.last})
		if err != nil {
			return nil, storageError(err, "no archive")
		}
		if len(page.Messages) == 0 {
			return el, nil
		}
		am := page.Messages[0]
		el.AddChild(xmlstream.New(NS, end.name, "id", am.ID, "timestamp", xmpptime.Format(am.Stamp)))
	}
	return el, nil
}
