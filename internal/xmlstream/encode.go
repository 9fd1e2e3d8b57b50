package xmlstream

import (
	"strconv"
	"unicode/utf8"
)

// Append appends the serialization of e to buf and returns the result.
// parentNS is the default namespace in force where e is written (for a
// stanza, the stream's content namespace); xmlns is written only where an
// element's namespace differs from the one in force.
//
// Element and attribute names are written as given and must be valid XML
// names. Text and attribute values are escaped; characters that XML 1.0
// cannot carry at all (invalid UTF-8, most C0 controls, U+FFFE, U+FFFF) are
// written as U+FFFD so that the output is always well-formed.
func (e *Element) Append(buf []byte, parentNS string) []byte {
	buf = append(buf, '<')
	buf = append(buf, e.Name.Local...)
	if e.Name.Space != parentNS {
		buf = append(buf, ` xmlns="`...)
		buf = appendEscaped(buf, e.Name.Space, true)
		buf = append(buf, '"')
	}
	for i, a := range e.Attrs {
		buf = append(buf, ' ')
		switch a.Name.Space {
		case "":
		case NSXML:
			buf = append(buf, "xml:"...)
		default:
			// Attributes sharing a namespace share one generated prefix;
			// the prefix number is the namespace's rank among the distinct
			// attribute namespaces, so it is stable without any map.
			n, first := attrPrefix(e.Attrs, i)
			if first {
				buf = append(buf, "xmlns:p"...)
				buf = strconv.AppendInt(buf, int64(n), 10)
				buf = append(buf, `="`...)
				buf = appendEscaped(buf, a.Name.Space, true)
				buf = append(buf, `" `...)
			}
			buf = append(buf, 'p')
			buf = strconv.AppendInt(buf, int64(n), 10)
			buf = append(buf, ':')
		}
		buf = append(buf, a.Name.Local...)
		buf = append(buf, `="`...)
		buf = appendEscaped(buf, a.Value, true)
		buf = append(buf, '"')
	}
	if len(e.Children) == 0 {
		return append(buf, "/>"...)
	}
	buf = append(buf, '>')
	for _, c := range e.Children {
		if c.Elem != nil {
			buf = c.Elem.Append(buf, e.Name.Space)
		} else {
			buf = appendEscaped(buf, c.Text, false)
		}
	}
	buf = append(buf, "</"...)
	buf = append(buf, e.Name.Local...)
	return append(buf, '>')
}

// attrPrefix returns the generated prefix number for attrs[i] and whether
// attrs[i] is the first attribute using that namespace.
func attrPrefix(attrs []Attr, i int) (n int, first bool) {
	space := attrs[i].Name.Space
	n = 0
	for j := 0; j < i; j++ {
		s := attrs[j].Name.Space
		if s == "" || s == NSXML {
			continue
		}
		seen := false
		for k := 0; k < j; k++ {
			if attrs[k].Name.Space == s {
				seen = true
				break
			}
		}
		if seen {
			continue
		}
		n++
		if s == space {
			return n, false
		}
	}
	return n + 1, true
}

// appendEscaped escapes s for text (attr false) or a double-quoted
// attribute value (attr true). CR is always escaped and TAB/LF are escaped
// in attributes because a parser would otherwise normalize them away.
func appendEscaped(buf []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		width := 1
		switch {
		case c == '<':
			esc = "&lt;"
		case c == '&':
			esc = "&amp;"
		case c == '>' && !attr:
			esc = "&gt;"
		case c == '"' && attr:
			esc = "&quot;"
		case c == '\r':
			esc = "&#xD;"
		case c == '\n' && attr:
			esc = "&#xA;"
		case c == '\t' && attr:
			esc = "&#x9;"
		case c < 0x20 && c != '\n' && c != '\t':
			esc = "\uFFFD"
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			width = n
			if (r == utf8.RuneError && n == 1) || !isChar(r) {
				esc = "\uFFFD"
			} else {
				i += n
				continue
			}
		default:
			i++
			continue
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		i += width
		last = i
	}
	return append(buf, s[last:]...)
}
