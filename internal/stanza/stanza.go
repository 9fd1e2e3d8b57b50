package stanza

import (
	"parley/internal/xmlstream"
)

// IsStanza reports whether el is one of the three stanza kinds in the
// content namespace ns (jabber:client or jabber:server).
func IsStanza(el *xmlstream.Element, ns string) bool {
	if el.Name.Space != ns {
		return false
	}
	switch el.Name.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// CanBounce reports whether an error may be returned for el. RFC 6120
// §8.3.1: an entity must not answer an error stanza with an error (that is
// how bounce loops start), and IQ results are not answered either.
func CanBounce(el *xmlstream.Element) bool {
	switch el.Attr("type") {
	case "error":
		return false
	case "result":
		return el.Name.Local != "iq"
	}
	return true
}

// ErrorReply returns the error response to el with from and to swapped
// and the original payload kept, as RFC 6120 §8.3.1 recommends so the
// sender can match it. It returns nil when el must not be answered.
func ErrorReply(el *xmlstream.Element, se *Error) *xmlstream.Element {
	if !CanBounce(el) {
		return nil
	}
	reply := &xmlstream.Element{Name: el.Name}
	for _, a := range el.Attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "from":
			reply.Attrs = append(reply.Attrs, xmlstream.Attr{Name: xmlstream.Name{Local: "to"}, Value: a.Value})
		case a.Name.Space == "" && a.Name.Local == "to":
			reply.Attrs = append(reply.Attrs, xmlstream.Attr{Name: xmlstream.Name{Local: "from"}, Value: a.Value})
		case a.Name.Space == "" && a.Name.Local == "type":
		default:
			reply.Attrs = append(reply.Attrs, a)
		}
	}
	reply.SetAttr("type", "error")
	// An IQ error carries at most the request payload; message and
	// presence keep their children so that clients can show what failed.
	for _, c := range el.Children {
		if c.Elem != nil && c.Elem.Name.Space == el.Name.Space && c.Elem.Name.Local == "error" {
			continue
		}
		reply.Children = append(reply.Children, c)
	}
	reply.AddChild(se.Element(el.Name.Space))
	return reply
}

// Result builds the IQ result for the request iq with an optional payload.
func Result(iq *xmlstream.Element, payload *xmlstream.Element) *xmlstream.Element {
	res := xmlstream.New(iq.Name.Space, "iq", "type", "result", "id", iq.Attr("id"))
	if v := iq.Attr("from"); v != "" {
		res.SetAttr("to", v)
	}
	if v := iq.Attr("to"); v != "" {
		res.SetAttr("from", v)
	}
	if payload != nil {
		res.AddChild(payload)
	}
	return res
}

// CheckIQ applies RFC 6120 §8.2.3 to an IQ: an 'id', a known type, and
// exactly one payload in a get or set. Other stanzas pass.
func CheckIQ(el *xmlstream.Element) *Error {
	if el.Name.Local != "iq" {
		return nil
	}
	if el.Attr("id") == "" {
		return BadRequest("an IQ needs an 'id'")
	}
	switch el.Attr("type") {
	case "get", "set":
		n := 0
		for range el.Elements() {
			n++
		}
		if n != 1 {
			return BadRequest("an IQ get or set has exactly one payload element")
		}
	case "result", "error":
	default:
		return BadRequest("unknown IQ type")
	}
	return nil
}
