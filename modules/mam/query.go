package mam

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// formFields are the query form's fields (XEP-0313 §5.1 and #extended),
// with their XEP-0004 types, in the order the form shows them.
var formFields = []struct{ name, typ string }{
	{"with", "jid-single"},
	{"start", "text-single"},
	{"end", "text-single"},
	{"before-id", "text-single"},
	{"after-id", "text-single"},
	{"ids", "text-multi"},
}

// form answers a query get with the search form (XEP-0313 §5.1.1).
func (m *Module) form(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	x := xmlstream.New(NSData, "x", "type", "form")
	x.AddChild(xmlstream.New(NSData, "field", "var", "FORM_TYPE", "type", "hidden").
		AddChild(xmlstream.New(NSData, "value").AddText(NS)))
	for _, f := range formFields {
		x.AddChild(xmlstream.New(NSData, "field", "var", f.name, "type", f.typ))
	}
	return xmlstream.New(NS, "query").AddChild(x), nil
}

// fieldValues returns the text of a field's <value/> children.
func fieldValues(f *xmlstream.Element) []string {
	var out []string
	for v := range f.Elements() {
		if v.Name.Space == NSData && v.Name.Local == "value" {
			out = append(out, v.Text())
		}
	}
	return out
}

// parseForm reads the filters of a submitted query form.
func parseForm(x *xmlstream.Element, q *storage.ArchiveQuery) error {
	if t := x.Attr("type"); t != "submit" && t != "" {
		return stanza.BadRequest("the query form must be of type submit")
	}
	for f := range x.Elements() {
		if f.Name.Space != NSData || f.Name.Local != "field" {
			continue
		}
		name, values := f.Attr("var"), fieldValues(f)
		one := ""
		if len(values) > 0 {
			one = values[0]
		}
		if len(values) > 1 && name != "ids" {
			return stanza.BadRequest(fmt.Sprintf("field %s takes one value", name))
		}
		switch name {
		case "FORM_TYPE":
			if one != NS {
				return stanza.BadRequest("FORM_TYPE must be " + NS)
			}
		case "with":
			if one == "" {
				continue
			}
			j, err := jid.Parse(one)
			if err != nil {
				return stanza.JIDMalformed("the with field is not a JID")
			}
			q.With = j.String()
		case "start", "end":
			if one == "" {
				continue
			}
			// XEP-0082 DateTime; Go's RFC 3339 parser also takes the
			// optional fraction of a second.
			t, err := time.Parse(time.RFC3339, one)
			if err != nil {
				return stanza.BadRequest(fmt.Sprintf("field %s is not an XEP-0082 date and time", name))
			}
			if name == "start" {
				q.Start = t
			} else {
				q.End = t
			}
		case "before-id":
			q.BeforeID = one
		case "after-id":
			q.AfterID = one
		case "ids":
			if len(values) > storage.MaxArchiveQueryIDs {
				return stanza.PolicyViolation(fmt.Sprintf("at most %d ids per query", storage.MaxArchiveQueryIDs))
			}
			if len(values) > 0 {
				q.IDs = values
			}
		default:
			return stanza.FeatureNotImplemented("the archive cannot filter by " + strconv.Quote(name))
		}
	}
	return nil
}

// parseRSM reads the XEP-0059 paging request, if any.
func parseRSM(set *xmlstream.Element, q *storage.ArchiveQuery) error {
	q.Max = DefaultPage
	if set == nil {
		return nil
	}
	for c := range set.Elements() {
		if c.Name.Space != NSRSM {
			continue
		}
		switch c.Name.Local {
		case "max":
			n, err := strconv.Atoi(c.Text())
			if err != nil || n < 0 {
				return stanza.BadRequest("RSM max must be a non-negative integer")
			}
			q.Max = min(n, MaxPage)
		case "after":
			if c.Text() == "" {
				return stanza.BadRequest("RSM after needs an id")
			}
			q.After = c.Text()
		case "before":
			// Empty <before/> asks for the last page.
			q.Last = true
			q.Before = c.Text()
		case "index":
			return stanza.FeatureNotImplemented("RSM index is not supported; page with after and before")
		}
	}
	return nil
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
	var q storage.ArchiveQuery
	if x := iq.Payload.Child(NSData, "x"); x != nil {
		if err := parseForm(x, &q); err != nil {
			return nil, err
		}
	}
	if err := parseRSM(iq.Payload.Child(NSRSM, "set"), &q); err != nil {
		return nil, err
	}
	owner := iq.To
	m.writer.sync(ctx) // what the client has seen is in the archive
	page, err := m.archive.Query(ctx, owner.String(), q)
	if err != nil {
		return nil, storageError(err, "no archived message has that id")
	}
	msgs := page.Messages
	if iq.Payload.Child(NS, "flip-page") != nil {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	sess := m.session(iq.From)
	queryID := iq.Payload.Attr("queryid")
	tampered := 0
	for _, am := range msgs {
		plain, err := m.open(owner, am)
		if err != nil {
			tampered++
			continue
		}
		orig, err := xmlstream.ParseElement(plain, stanza.NSClient)
		if err != nil {
			tampered++
			continue
		}
		if sess != nil {
			sess.Deliver(resultMessage(iq.From, owner, queryID, am, orig))
		}
	}
	if tampered > 0 {
		// The owner is named so the admin can tell them; content never.
		m.host.Logger().Error("mam: archived messages were altered or damaged and were left out",
			"jid", owner.String(), "count", tampered)
	}
	complete := "false"
	if page.Complete {
		complete = "true"
	}
	fin := xmlstream.New(NS, "fin", "complete", complete)
	if queryID != "" {
		fin.SetAttr("queryid", queryID)
	}
	set := xmlstream.New(NSRSM, "set")
	// The cursors are the page's bounds even when a damaged message in
	// them was left out, so that paging goes on past it.
	if len(msgs) > 0 {
		set.AddChild(xmlstream.New(NSRSM, "first").AddText(msgs[0].ID))
		set.AddChild(xmlstream.New(NSRSM, "last").AddText(msgs[len(msgs)-1].ID))
	}
	set.AddChild(xmlstream.New(NSRSM, "count").AddText(strconv.Itoa(page.Count)))
	return fin.AddChild(set), nil
}

// resultMessage wraps an archived message for the requester (XEP-0313
// §5.1.2, with XEP-0297 forwarding and an XEP-0203 delay for its time).
func resultMessage(to, owner jid.JID, queryID string, am storage.ArchiveMessage, orig *xmlstream.Element) *xmlstream.Element {
	result := xmlstream.New(NS, "result", "id", am.ID)
	if queryID != "" {
		result.SetAttr("queryid", queryID)
	}
	fwd := xmlstream.New(NSForward, "forwarded").
		AddChild(xmlstream.New(NSDelay, "delay", "stamp", am.Stamp.UTC().Format(stampLayout))).
		AddChild(orig)
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
		el.AddChild(xmlstream.New(NS, end.name, "id", am.ID, "timestamp", am.Stamp.UTC().Format(stampLayout)))
	}
	return el, nil
}
