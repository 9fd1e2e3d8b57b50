package bookmarks

import (
	"fmt"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	// NS is the PEP node and namespace of XEP-0402 bookmarks.
	NS = "urn:xmpp:bookmarks:1"
	// NSLegacy is XEP-0048's namespace, kept in private storage.
	NSLegacy = "storage:bookmarks"
)

// MaxBookmarks bounds how many rooms one legacy list may carry, the
// item limit of the PEP node it becomes.
const MaxBookmarks = 1000

// parseBool reads an XML Schema boolean; "" is false (XEP-0048 and
// XEP-0402 both default autojoin to false).
func parseBool(s string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// legacyConference is a XEP-0048 conference turned into a XEP-0402 item:
// its id (the room JID) and payload.
type legacyConference struct {
	id      string
	payload *xmlstream.Element
}

// fromLegacy converts a <conference xmlns='storage:bookmarks'/>. Name,
// autojoin, nick and password carry over; elements of other namespaces
// (clients' private additions) go into <extensions>, where XEP-0402
// keeps them.
func fromLegacy(c *xmlstream.Element) (legacyConference, error) {
	room, err := jid.Parse(c.Attr("jid"))
	if err != nil || c.Attr("jid") == "" || room.Resource() != "" {
		return legacyConference{}, stanza.BadRequest(fmt.Sprintf("bookmark jid %q is not a room address", c.Attr("jid")))
	}
	autojoin, err := parseBool(c.Attr("autojoin"))
	if err != nil {
		return legacyConference{}, stanza.BadRequest("bookmark autojoin: " + err.Error())
	}
	out := xmlstream.New(NS, "conference")
	if n := c.Attr("name"); n != "" {
		out.SetAttr("name", n)
	}
	if autojoin {
		out.SetAttr("autojoin", "true")
	}
	var ext *xmlstream.Element
	for k := range c.Elements() {
		switch {
		case k.Name.Space == NSLegacy && (k.Name.Local == "nick" || k.Name.Local == "password"):
			out.AddChild(xmlstream.New(NS, k.Name.Local).AddText(k.Text()))
		case k.Name.Space == NSLegacy:
			// Nothing else of XEP-0048's own is defined inside a conference.
		default:
			if ext == nil {
				ext = xmlstream.New(NS, "extensions")
			}
			ext.AddChild(k.Copy())
		}
	}
	if ext != nil {
		out.AddChild(ext)
	}
	return legacyConference{id: room.String(), payload: out}, nil
}

// toLegacy converts a XEP-0402 item back into a XEP-0048 conference; the
// content of <extensions> comes back as the conference's own children.
// ok is false for an item that is not a XEP-0402 conference.
func toLegacy(id string, c *xmlstream.Element) (*xmlstream.Element, bool) {
	if c == nil || c.Name.Space != NS || c.Name.Local != "conference" {
		return nil, false
	}
	out := xmlstream.New(NSLegacy, "conference", "jid", id)
	if n := c.Attr("name"); n != "" {
		out.SetAttr("name", n)
	}
	if b, _ := parseBool(c.Attr("autojoin")); b {
		out.SetAttr("autojoin", "true")
	}
	for k := range c.Elements() {
		if k.Name.Space != NS {
			continue
		}
		switch k.Name.Local {
		case "nick", "password":
			out.AddChild(xmlstream.New(NSLegacy, k.Name.Local).AddText(k.Text()))
		case "extensions":
			for e := range k.Elements() {
				out.AddChild(e.Copy())
			}
		}
	}
	return out, true
}
