package stanza

import (
	"errors"

	"parley/internal/xmlstream"
)

// Error types of RFC 6120 §8.3.2.
const (
	Auth     = "auth"
	Cancel   = "cancel"
	Continue = "continue"
	Modify   = "modify"
	Wait     = "wait"
)

// Error is a stanza error condition (RFC 6120 §8.3.3). Handlers return it
// as a Go error; the core turns it into the error reply.
type Error struct {
	Type      string // one of Auth, Cancel, Continue, Modify, Wait
	Condition string // e.g. "service-unavailable"
	Text      string // optional human-readable text, in English
	// Extra is an application-specific condition element, e.g. XEP-0363's
	// <file-too-large/>; nil when none.
	Extra *xmlstream.Element
}

func (e *Error) Error() string {
	if e.Text != "" {
		return "stanza error " + e.Condition + ": " + e.Text
	}
	return "stanza error " + e.Condition
}

// Constructors for the conditions the core and most modules need. The type
// for each follows the table in RFC 6120 §8.3.3.
func BadRequest(text string) *Error {
	return &Error{Type: Modify, Condition: "bad-request", Text: text}
}
func FeatureNotImplemented(text string) *Error {
	return &Error{Type: Cancel, Condition: "feature-not-implemented", Text: text}
}
func Forbidden(text string) *Error { return &Error{Type: Auth, Condition: "forbidden", Text: text} }
func ItemNotFound(text string) *Error {
	return &Error{Type: Cancel, Condition: "item-not-found", Text: text}
}
func JIDMalformed(text string) *Error {
	return &Error{Type: Modify, Condition: "jid-malformed", Text: text}
}
func NotAllowed(text string) *Error {
	return &Error{Type: Cancel, Condition: "not-allowed", Text: text}
}
func NotAuthorized(text string) *Error {
	return &Error{Type: Auth, Condition: "not-authorized", Text: text}
}
func PolicyViolation(text string) *Error {
	return &Error{Type: Modify, Condition: "policy-violation", Text: text}
}
func RecipientUnavailable() *Error {
	return &Error{Type: Wait, Condition: "recipient-unavailable"}
}
func RemoteServerNotFound() *Error {
	return &Error{Type: Cancel, Condition: "remote-server-not-found"}
}
func ResourceConstraint(text string) *Error {
	return &Error{Type: Wait, Condition: "resource-constraint", Text: text}
}
func ServiceUnavailable() *Error { return &Error{Type: Cancel, Condition: "service-unavailable"} }
func InternalServerError() *Error {
	return &Error{Type: Cancel, Condition: "internal-server-error"}
}
func Conflict(text string) *Error { return &Error{Type: Cancel, Condition: "conflict", Text: text} }
func UndefinedCondition(typ, text string) *Error {
	return &Error{Type: typ, Condition: "undefined-condition", Text: text}
}

// AsError maps any error to a stanza error: a *Error passes through, and
// anything else becomes internal-server-error so that storage or
// programming errors never leak their text to the network.
func AsError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return InternalServerError()
}

// Element builds the <error/> child for e; contentNS is the namespace of
// the stanza it goes into (jabber:client or jabber:server).
func (e *Error) Element(contentNS string) *xmlstream.Element {
	el := xmlstream.New(contentNS, "error", "type", e.Type)
	el.AddChild(xmlstream.New(NSStanzas, e.Condition))
	if e.Text != "" {
		t := xmlstream.New(NSStanzas, "text")
		t.Attrs = append(t.Attrs, xmlstream.Attr{Name: xmlstream.Name{Space: xmlstream.NSXML, Local: "lang"}, Value: "en"})
		t.AddText(e.Text)
		el.AddChild(t)
	}
	if e.Extra != nil {
		el.AddChild(e.Extra)
	}
	return el
}

// ErrorCondition returns the defined condition of an error stanza (RFC
// 6120 §8.3.3), "" when el carries no readable one.
func ErrorCondition(el *xmlstream.Element) string {
	e := el.Child(el.Name.Space, "error")
	if e == nil {
		return ""
	}
	for c := range e.Elements() {
		if c.Name.Space == NSStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}
