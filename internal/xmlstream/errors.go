package xmlstream

import "errors"

// Error is an XML problem on the stream. Condition is the RFC 6120 §4.9.3
// stream error condition the stream layer should send.
type Error struct{ Condition, Text string }

func (e *Error) Error() string {
	if e.Text == "" {
		return "xmlstream: " + e.Condition
	}
	return "xmlstream: " + e.Condition + ": " + e.Text
}

// ErrStreamEnd reports that the peer closed its stream with the end tag of
// the stream element.
var ErrStreamEnd = errors.New("xmlstream: end of stream")

// errNotStarted is a programmer error: Next before ReadHeader.
var errNotStarted = errors.New("xmlstream: Next called before ReadHeader")

// Stream error conditions produced by this package.
const (
	CondNotWellFormed       = "not-well-formed"
	CondRestrictedXML       = "restricted-xml"
	CondUnsupportedEncoding = "unsupported-encoding"
	CondPolicyViolation     = "policy-violation"
)

// Error texts that tests (notably the fuzz comparison with encoding/xml)
// need to recognise, because encoding/xml deliberately does not check these
// rules.
const (
	txtNSPrefix     = "namespace: " // prefix of every namespace well-formedness error
	txtAttrSpace    = "missing whitespace before attribute"
	txtDupAttr      = "duplicate attribute"
	txtStreamText   = "character data outside stanza"
	txtBadName      = "invalid name"
	txtSurrogateRef = "character reference to surrogate"
)

func notWellFormed(text string) *Error { return &Error{Condition: CondNotWellFormed, Text: text} }
func nsError(text string) *Error {
	return &Error{Condition: CondNotWellFormed, Text: txtNSPrefix + text}
}
func restricted(text string) *Error { return &Error{Condition: CondRestrictedXML, Text: text} }
func policy(text string) *Error     { return &Error{Condition: CondPolicyViolation, Text: text} }
