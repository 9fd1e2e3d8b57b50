// Package stream holds what client and server streams share (RFC 6120
// §4): the stream header we send, stream errors, and the bounded output
// queue every connection writes through.
package stream

import (
	"crypto/rand"
	"encoding/base64"
	"strings"

	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// Error is a stream error (RFC 6120 §4.9): the connection ends after it.
type Error struct {
	Condition string
	Text      string
}

func (e *Error) Error() string {
	if e.Text != "" {
		return "stream error " + e.Condition + ": " + e.Text
	}
	return "stream error " + e.Condition
}

// Stream error conditions used by the core (RFC 6120 §4.9.3).
func BadFormat(text string) *Error        { return &Error{"bad-format", text} }
func Conflict(text string) *Error         { return &Error{"conflict", text} }
func ConnectionTimeout() *Error           { return &Error{"connection-timeout", ""} }
func HostUnknown(text string) *Error      { return &Error{"host-unknown", text} }
func InvalidFrom(text string) *Error      { return &Error{"invalid-from", text} }
func InvalidNamespace(text string) *Error { return &Error{"invalid-namespace", text} }
func NotAuthorized(text string) *Error    { return &Error{"not-authorized", text} }
func PolicyViolation(text string) *Error  { return &Error{"policy-violation", text} }
func ResourceConstraint(text string) *Error {
	return &Error{"resource-constraint", text}
}
func SystemShutdown() *Error                   { return &Error{"system-shutdown", ""} }
func UnsupportedStanzaType(text string) *Error { return &Error{"unsupported-stanza-type", text} }
func UnsupportedVersion(text string) *Error    { return &Error{"unsupported-version", text} }
func InternalServerError() *Error              { return &Error{"internal-server-error", ""} }
func BadNamespacePrefix(text string) *Error    { return &Error{"bad-namespace-prefix", text} }
func ImproperAddressing(text string) *Error    { return &Error{"improper-addressing", text} }

// AppendError serialises the <stream:error/> element.
func AppendError(buf []byte, e *Error) []byte {
	el := xmlstream.New(stanza.NSStream, "error")
	el.AddChild(xmlstream.New(stanza.NSStreams, e.Condition))
	if e.Text != "" {
		t := xmlstream.New(stanza.NSStreams, "text")
		t.AddText(e.Text)
		el.AddChild(t)
	}
	return appendStreamNS(buf, el)
}

// appendStreamNS writes an element of the stream namespace with the
// 'stream:' prefix the header declared, which every client expects.
func appendStreamNS(buf []byte, el *xmlstream.Element) []byte {
	buf = append(buf, "<stream:"...)
	buf = append(buf, el.Name.Local...)
	buf = append(buf, '>')
	for c := range el.Elements() {
		buf = c.Append(buf, "")
	}
	buf = append(buf, "</stream:"...)
	buf = append(buf, el.Name.Local...)
	return append(buf, '>')
}

// AppendFeatures writes <stream:features> with the given children.
func AppendFeatures(buf []byte, contentNS string, features []*xmlstream.Element) []byte {
	buf = append(buf, "<stream:features>"...)
	for _, f := range features {
		buf = f.Append(buf, contentNS)
	}
	return append(buf, "</stream:features>"...)
}

// Header is the response stream header we send.
type Header struct {
	ContentNS string // jabber:client or jabber:server
	ID        string
	From      string
	To        string
	// NoVersion leaves out version and xml:lang: a component stream
	// (XEP-0114) predates stream features and has neither.
	NoVersion bool
}

// AppendHeader writes the XML declaration and our stream start tag.
func AppendHeader(buf []byte, h Header) []byte {
	buf = append(buf, "<?xml version='1.0'?><stream:stream xmlns='"...)
	buf = append(buf, h.ContentNS...)
	buf = append(buf, "' xmlns:stream='http://etherx.jabber.org/streams'"...)
	if !h.NoVersion {
		buf = append(buf, " version='1.0' xml:lang='en'"...)
	}
	if h.ID != "" {
		buf = appendAttr(buf, "id", h.ID)
	}
	if h.From != "" {
		buf = appendAttr(buf, "from", h.From)
	}
	if h.To != "" {
		buf = appendAttr(buf, "to", h.To)
	}
	return append(buf, '>')
}

// Close is the stream end tag.
const Close = "</stream:stream>"

func appendAttr(buf []byte, name, value string) []byte {
	buf = append(buf, ' ')
	buf = append(buf, name...)
	buf = append(buf, "='"...)
	buf = append(buf, attrEscaper.Replace(value)...)
	return append(buf, '\'')
}

var attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;")

// NewID returns a fresh unguessable stream id.
func NewID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
