package xmlstream

import (
	"strings"
	"unicode/utf8"
)

// unescape resolves references in raw character data (attr false) or in an
// attribute value (attr true) and applies XML's line-end normalization and,
// for attributes, attribute-value normalization. Values needing no change
// are returned as is, which keeps them as substrings of the stanza.
func (d *Decoder) unescape(raw string, attr bool) (string, *Error) {
	k := 0
	for ; k < len(raw); k++ {
		c := raw[k]
		if c == '&' || c == '\r' || (attr && (c == '\n' || c == '\t')) {
			break
		}
	}
	if k == len(raw) {
		return raw, nil
	}
	b := append(d.scratch[:0], raw[:k]...)
	for k < len(raw) {
		c := raw[k]
		switch c {
		case '&':
			r, n, err := parseRef(raw[k:])
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
			k += n
			continue
		case '\r':
			if k+1 < len(raw) && raw[k+1] == '\n' {
				k++
			}
			c = '\n'
		}
		if attr && (c == '\n' || c == '\t') {
			c = ' '
		}
		b = append(b, c)
		k++
	}
	d.scratch = b
	return string(b), nil
}

// normalizeNewlines applies line-end normalization to CDATA content.
func normalizeNewlines(s string, scratch *[]byte) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	b := (*scratch)[:0]
	for k := 0; k < len(s); k++ {
		c := s[k]
		if c == '\r' {
			if k+1 < len(s) && s[k+1] == '\n' {
				k++
			}
			c = '\n'
		}
		b = append(b, c)
	}
	*scratch = b
	return string(b)
}

// parseRef decodes the reference at the start of s (s[0] == '&') and
// returns the character and the reference's length.
func parseRef(s string) (rune, int, *Error) {
	semi := strings.IndexByte(s, ';')
	if semi < 0 {
		return 0, 0, notWellFormed("& not starting a reference")
	}
	body := s[1:semi]
	if strings.HasPrefix(body, "#") {
		digits, base := body[1:], rune(10)
		if strings.HasPrefix(digits, "x") {
			digits, base = digits[1:], 16
		}
		if digits == "" {
			return 0, 0, notWellFormed("empty character reference")
		}
		var v rune
		for k := 0; k < len(digits); k++ {
			c := digits[k]
			var dv rune
			switch {
			case c >= '0' && c <= '9':
				dv = rune(c - '0')
			case base == 16 && c >= 'a' && c <= 'f':
				dv = rune(c-'a') + 10
			case base == 16 && c >= 'A' && c <= 'F':
				dv = rune(c-'A') + 10
			default:
				return 0, 0, notWellFormed("bad character reference")
			}
			v = v*base + dv
			if v > utf8.MaxRune {
				return 0, 0, notWellFormed("character reference out of range")
			}
		}
		if v >= 0xD800 && v <= 0xDFFF {
			return 0, 0, notWellFormed(txtSurrogateRef)
		}
		if !isChar(v) {
			return 0, 0, notWellFormed("character reference to character not allowed in XML")
		}
		return v, semi + 1, nil
	}
	switch body {
	case "lt":
		return '<', semi + 1, nil
	case "gt":
		return '>', semi + 1, nil
	case "amp":
		return '&', semi + 1, nil
	case "apos":
		return '\'', semi + 1, nil
	case "quot":
		return '"', semi + 1, nil
	}
	if end, err := scanName(body, 0); err != nil || end != len(body) {
		return 0, 0, notWellFormed("& not starting a reference")
	}
	return 0, 0, restricted("entity reference")
}
