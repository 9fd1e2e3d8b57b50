package web

import (
	"bytes"
	"errors"
	"strings"

	"parley/internal/stanza"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// NSFraming is the namespace of RFC 7395's <open/> and <close/>.
const NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// Both transports hand c2s the byte stream it reads over TCP and take its
// byte stream apart again, so the session code is the same for all: the
// functions here translate between that stream and one element at a time.

// streamHeader is the client stream header c2s expects, made from the
// attributes of an RFC 7395 <open/> or a BOSH session request.
func streamHeader(to, from, lang string) []byte {
	b := []byte("<stream:stream xmlns='" + stanza.NSClient + "' xmlns:stream='" + stanza.NSStream + "' version='1.0'")
	for _, a := range [][2]string{{"to", to}, {"from", from}, {"xml:lang", lang}} {
		if a[1] != "" {
			b = append(b, ' ')
			b = append(b, a[0]...)
			b = append(b, "='"...)
			b = append(b, escapeAttr(a[1])...)
			b = append(b, '\'')
		}
	}
	return append(b, '>')
}

func escapeAttr(s string) []byte {
	e := xmlstream.New("", "x", "v", s).Append(nil, "")
	// <x v='...'/>: the value is between the quotes.
	return e[len("<x v='") : len(e)-len("'/>")]
}

// errFraming is a frame that is not what RFC 7395 allows; c2s answers it
// with a stream error.
func errFraming(text string) error {
	return &xmlstream.Error{Condition: "invalid-xml", Text: text}
}

// translateFrame turns one WebSocket text message into bytes of the
// client stream: <open/> becomes a stream header, <close/> the stream's
// end tag, and a stanza passes unchanged (c2s parses it).
func translateFrame(msg []byte) ([]byte, error) {
	t := bytes.TrimLeft(msg, " \t\r\n")
	if bytes.HasPrefix(t, []byte("<?xml")) {
		// Some clients prefix frames with an XML declaration; c2s does
		// not want one in the middle of the stream.
		if i := bytes.Index(t, []byte("?>")); i >= 0 {
			t = bytes.TrimLeft(t[i+2:], " \t\r\n")
		}
	}
	name := func(n string) bool {
		return bytes.HasPrefix(t, []byte("<"+n)) && len(t) > len(n)+1 && strings.IndexByte(" \t\r\n/>", t[len(n)+1]) >= 0
	}
	switch {
	case name("open"):
		el, err := xmlstream.ParseElement(t, NSFraming)
		if err != nil {
			return nil, err
		}
		if el.Name.Space != NSFraming {
			return nil, &xmlstream.Error{Condition: "invalid-namespace", Text: "<open/> must be in " + NSFraming}
		}
		lang, _ := el.AttrNS("http://www.w3.org/XML/1998/namespace", "lang")
		return streamHeader(el.Attr("to"), el.Attr("from"), lang), nil
	case name("close"):
		el, err := xmlstream.ParseElement(t, NSFraming)
		if err != nil {
			return nil, err
		}
		if el.Name.Space != NSFraming {
			return nil, &xmlstream.Error{Condition: "invalid-namespace", Text: "<close/> must be in " + NSFraming}
		}
		return []byte(stream.Close), nil
	case name("stream:stream"):
		return nil, errFraming("WebSocket streams open with <open/>, not <stream:stream>")
	}
	return msg, nil
}

// Kinds of what the server writes, as splitter hands it out.
const (
	outOpen  = iota // the stream header (frame: <open/>)
	outElem         // one top-level element, namespaces declared
	outClose        // the stream's end tag (frame: <close/>)
)

// splitter cuts the server's output stream into its header, top-level
// elements and end tag. The stream is parley's own serialisation, so it
// needs no full parser: '<' never appears raw in text or attribute
// values, and '>' may appear raw only inside quoted values.
type splitter struct {
	buf   []byte
	scan  int // where scanning resumes in buf
	start int // where the current top-level element starts
	depth int // open elements inside the stream
	// domain is the 'from' of the last stream header: the host the
	// client asked for.
	domain string
}

var errTagTooLong = errors.New("web: unterminated tag in the server's output")

// feed adds p and calls emit for each complete piece, with kind outOpen
// (frame: the <open/> to send), outElem (the element, ready to send) or
// outClose.
func (s *splitter) feed(p []byte, emit func(kind int, frame []byte) error) error {
	s.buf = append(s.buf, p...)
	for {
		lt := bytes.IndexByte(s.buf[s.scan:], '<')
		if lt < 0 {
			if s.depth == 0 {
				s.drop(len(s.buf)) // whitespace between elements
			}
			return nil
		}
		i := s.scan + lt
		end := tagEnd(s.buf, i)
		if end < 0 {
			if s.depth == 0 {
				s.drop(i)
			}
			return nil
		}
		tag := s.buf[i:end]
		s.scan = end
		switch {
		case bytes.HasPrefix(tag, []byte("<?")):
			s.drop(end)
		case bytes.HasPrefix(tag, []byte("</")):
			if s.depth == 0 {
				s.drop(end)
				if err := emit(outClose, []byte("<close xmlns='"+NSFraming+"'/>")); err != nil {
					return err
				}
				continue
			}
			s.depth--
			if s.depth == 0 {
				el := declare(s.buf[s.start:end])
				s.drop(end)
				if err := emit(outElem, el); err != nil {
					return err
				}
			}
		case s.depth == 0 && bytes.HasPrefix(tag, []byte("<stream:stream")):
			// A header; after SASL the server sends a new one.
			if d, ok := attrValue(tag, "from"); ok {
				s.domain = string(d)
			}
			frame := openFrame(tag)
			s.drop(end)
			if err := emit(outOpen, frame); err != nil {
				return err
			}
		default:
			if s.depth == 0 {
				s.start = i
			}
			if bytes.HasSuffix(tag, []byte("/>")) {
				if s.depth == 0 {
					el := declare(s.buf[s.start:end])
					s.drop(end)
					if err := emit(outElem, el); err != nil {
						return err
					}
				}
				continue
			}
			s.depth++
		}
	}
}

// drop forgets buf[:n], keeping what follows for the next feed.
func (s *splitter) drop(n int) {
	rest := copy(s.buf, s.buf[n:])
	s.buf = s.buf[:rest]
	s.scan -= n
	s.start -= n
	if s.scan < 0 {
		s.scan = 0
	}
	if s.start < 0 {
		s.start = 0
	}
}

// tagEnd returns the index after the '>' closing the tag at b[i], or -1
// when it is not complete yet.
func tagEnd(b []byte, i int) int {
	var quote byte
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return j + 1
		}
	}
	return -1
}

// declare makes a top-level element a document of its own, as RFC 7395
// §3.3.3 wants: inside the stream it inherited jabber:client or the
// stream prefix from the header.
func declare(el []byte) []byte {
	nameEnd := bytes.IndexAny(el, " \t\r\n/>")
	name := el[1:nameEnd]
	end := tagEnd(el, 0)
	var decl string
	switch {
	case bytes.HasPrefix(name, []byte("stream:")):
		decl = " xmlns:stream='" + stanza.NSStream + "'"
	case !bytes.Contains(el[:end], []byte(" xmlns=")):
		decl = " xmlns='" + stanza.NSClient + "'"
	default:
		return bytes.Clone(el)
	}
	out := make([]byte, 0, len(el)+len(decl))
	out = append(out, el[:nameEnd]...)
	out = append(out, decl...)
	return append(out, el[nameEnd:]...)
}

// openFrame turns the server's stream header into <open/>, keeping its
// from, to, id, version and xml:lang.
func openFrame(tag []byte) []byte {
	// The header is ours (stream.AppendHeader): its attributes are
	// single-quoted and escaped.
	b := []byte("<open xmlns='" + NSFraming + "'")
	for _, name := range []string{"from", "to", "id", "version", "xml:lang"} {
		if v, ok := attrValue(tag, name); ok {
			b = append(b, ' ')
			b = append(b, name...)
			b = append(b, "='"...)
			b = append(b, v...)
			b = append(b, '\'')
		}
	}
	return append(b, "/>"...)
}

// attrValue finds name='value' in a start tag of ours, value still
// escaped.
func attrValue(tag []byte, name string) ([]byte, bool) {
	key := []byte(" " + name + "=")
	i := bytes.Index(tag, key)
	if i < 0 || i+len(key) >= len(tag) {
		return nil, false
	}
	q := tag[i+len(key)]
	rest := tag[i+len(key)+1:]
	j := bytes.IndexByte(rest, q)
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}
