// Package mamquery reads Message Archive Management queries (XEP-0313
// urn:xmpp:mam:2 and #extended, with XEP-0059 paging) and builds the
// search form and the <fin/> answer, for every archive that serves them:
// the personal one and the rooms'.
package mamquery

import (
	"fmt"
	"strconv"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// Namespaces.
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended"
	NSRSM      = "http://jabber.org/protocol/rsm"
)

// Query is a parsed query: the filters of its form, then the paging of
// its RSM <set/>.
type Query struct {
	QueryID string // the queryid attribute, echoed in results and <fin/>

	With              string    // normalised JID; "" matches everyone
	Start, End        time.Time // zero means unbounded
	AfterID, BeforeID string
	IDs               []string // nil: no filter

	After, Before string // RSM cursors
	Last          bool   // <before/> asks for the last page
	Max           int    // page size, already capped
	FlipPage      bool   // XEP-0313 <flip-page/>
}

// Limits tell Parse what the archive supports.
type Limits struct {
	DefaultMax int  // page size when the client sets none
	MaxMax     int  // larger requests are cut to it
	MaxIDs     int  // most ids one query may name
	With       bool // the archive filters by the other party
}

// fields are the form's fields (XEP-0313 §5.1 and #extended) in the
// order the form shows them; their types come from the registry.
var fields = []string{"with", "start", "end", "before-id", "after-id", "ids"}

// Form is the answer to a query get (XEP-0313 §5.1.1): the search form,
// with the with field only where the archive supports it.
func Form(l Limits) *xmlstream.Element {
	f := dataform.New(dataform.TypeForm, NS)
	for _, name := range fields {
		if name == "with" && !l.With {
			continue
		}
		f.Add(name, "")
	}
	return xmlstream.New(NS, "query").AddChild(f.Element())
}

// Parse reads a <query xmlns='urn:xmpp:mam:2'/>; its errors are stanza
// errors for the client.
func Parse(q *xmlstream.Element, l Limits) (Query, error) {
	out := Query{QueryID: q.Attr("queryid"), Max: l.DefaultMax}
	if x := q.Child(dataform.NS, "x"); x != nil {
		if err := parseForm(x, l, &out); err != nil {
			return out, err
		}
	}
	if err := parseRSM(q.Child(NSRSM, "set"), l, &out); err != nil {
		return out, err
	}
	out.FlipPage = q.Child(NS, "flip-page") != nil
	return out, nil
}

func parseForm(x *xmlstream.Element, l Limits, q *Query) error {
	f, err := dataform.Parse(x)
	if err != nil {
		return err
	}
	if f.Type != dataform.TypeSubmit {
		return stanza.BadRequest("the query form must be of type submit")
	}
	if f.FormType != "" && f.FormType != NS {
		return stanza.BadRequest("FORM_TYPE must be " + NS)
	}
	for _, fd := range f.Fields {
		name, values, one := fd.Var, fd.Values, fd.Value()
		if len(values) > 1 && name != "ids" {
			return stanza.BadRequest(fmt.Sprintf("field %s takes one value", name))
		}
		switch name {
		case "with":
			if !l.With {
				return stanza.FeatureNotImplemented("this archive cannot filter by with")
			}
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
			t, err := xmpptime.Parse(one)
			if err != nil {
				return stanza.BadRequest(fmt.Sprintf("field %s: %v", name, err))
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
			if len(values) > l.MaxIDs {
				return stanza.PolicyViolation(fmt.Sprintf("at most %d ids per query", l.MaxIDs))
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

func parseRSM(set *xmlstream.Element, l Limits, q *Query) error {
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
			q.Max = min(n, l.MaxMax)
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

// Fin is the IQ result payload that ends a query (XEP-0313 §5.3): first
// and last are the page's ids ("" for an empty page), count the size of
// the whole result set.
func Fin(queryID string, complete bool, first, last string, count int) *xmlstream.Element {
	fin := xmlstream.New(NS, "fin")
	if complete {
		fin.SetAttr("complete", "true")
	} else {
		fin.SetAttr("complete", "false")
	}
	if queryID != "" {
		fin.SetAttr("queryid", queryID)
	}
	set := xmlstream.New(NSRSM, "set")
	if first != "" {
		set.AddChild(xmlstream.New(NSRSM, "first").AddText(first))
		set.AddChild(xmlstream.New(NSRSM, "last").AddText(last))
	}
	set.AddChild(xmlstream.New(NSRSM, "count").AddText(strconv.Itoa(count)))
	return fin.AddChild(set)
}

// MaxPageBytes caps one page by the size of its messages, beside the
// count RSM max sets: fifty messages near the stanza size limit would be
// a dozen megabytes in one answer. A page cut short says so with
// complete='false' and cursors on what it holds, so the client pages on.
const MaxPageBytes = 1 << 20

// CapBytes keeps as many of a page's messages (oldest first, as the
// archive returns them) as fit in limit bytes, and always at least one. A
// page read forwards keeps its oldest messages, one read backwards (RSM
// before, q.Last) its newest, so the cursor the client pages on next
// (<last/> forwards, <first/> backwards) continues where the cut was.
// cut reports that messages were left out.
func CapBytes[T any](msgs []T, size func(T) int, backwards bool, limit int) (kept []T, cut bool) {
	total, n := 0, 0
	for i := range msgs {
		m := msgs[i]
		if backwards {
			m = msgs[len(msgs)-1-i]
		}
		total += size(m)
		if n > 0 && total > limit {
			break
		}
		n++
	}
	if n == len(msgs) {
		return msgs, false
	}
	if backwards {
		return msgs[len(msgs)-n:], true
	}
	return msgs[:n], true
}
