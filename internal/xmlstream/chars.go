package xmlstream

import (
	"strings"
	"unicode/utf8"
)

// ASCII character classes, indexed by byte value.
const (
	clNameStart = 1 << iota // may start a Name (':' included; QName rules are checked separately)
	clName                  // may continue a Name
	clSpace                 // XML S production
)

var asciiClass = func() (t [128]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = clNameStart | clName
		t[c-'a'+'A'] = clNameStart | clName
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = clName
	}
	t['_'] = clNameStart | clName
	t[':'] = clNameStart | clName
	t['-'] = clName
	t['.'] = clName
	t[' '] = clSpace
	t['\t'] = clSpace
	t['\n'] = clSpace
	t['\r'] = clSpace
	return t
}()

func isSpace(c byte) bool { return c < utf8.RuneSelf && asciiClass[c]&clSpace != 0 }

// isNameStartRune implements NameStartChar of XML 1.0 fifth edition.
func isNameStartRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&clNameStart != 0
	}
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

// isNameRune implements NameChar of XML 1.0 fifth edition.
func isNameRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&clName != 0
	}
	return isNameStartRune(r) || r == 0xB7 || (r >= 0x300 && r <= 0x36F) || (r >= 0x203F && r <= 0x2040)
}

// isChar implements the Char production of XML 1.0.
func isChar(r rune) bool {
	switch {
	case r < 0x20:
		return r == '\t' || r == '\n' || r == '\r'
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	default:
		return r >= 0x10000 && r <= utf8.MaxRune
	}
}

// checkChars rejects invalid UTF-8 and characters XML 1.0 forbids anywhere
// in the document. Doing it once over a whole stanza keeps the per-token
// code free of encoding concerns.
func checkChars(s string) *Error {
	for i := 0; i < len(s); {
		// Fast path: eight bytes that are all printable ASCII.
		if i+8 <= len(s) {
			w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			const lo, hi = 0x2020202020202020, 0x8080808080808080
			// A byte has its high bit set after subtracting 0x20 only
			// if it was below 0x20 (or already >= 0x80).
			if (w|(w-lo))&hi == 0 {
				i += 8
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && asciiClass[c]&clSpace == 0 {
				return notWellFormed("character not allowed in XML")
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return notWellFormed("invalid UTF-8")
		}
		if !isChar(r) {
			return notWellFormed("character not allowed in XML")
		}
		i += n
	}
	return nil
}

// scanName returns the end of the Name starting at s[i]. Like a lexer it
// takes every byte that could belong to a name (all non-ASCII bytes
// included) and only then validates, so a stray non-name character inside
// a name is reported as a bad name rather than as confusing syntax.
func scanName(s string, i int) (int, *Error) {
	start := i
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf && asciiClass[c]&clName == 0 {
			break
		}
		i++
	}
	if i == start {
		return i, notWellFormed("expected a name")
	}
	name := s[start:i]
	for j, r := range name {
		if r == utf8.RuneError {
			// checkChars already rejects invalid UTF-8; a literal U+FFFD is
			// a valid name character.
			if _, n := utf8.DecodeRuneInString(name[j:]); n == 1 {
				return i, notWellFormed("invalid UTF-8")
			}
		}
		if j == 0 && !isNameStartRune(r) || !isNameRune(r) {
			return i, notWellFormed(txtBadName)
		}
	}
	return i, nil
}

// splitQName applies the Namespaces in XML QName production to a Name.
func splitQName(name string) (prefix, local string, err *Error) {
	colon := -1
	for i := 0; i < len(name); i++ {
		if name[i] == ':' {
			if colon >= 0 {
				return "", "", nsError("more than one colon in name")
			}
			colon = i
		}
	}
	if colon < 0 {
		return "", name, nil
	}
	prefix, local = name[:colon], name[colon+1:]
	if prefix == "" || local == "" {
		return "", "", nsError("empty prefix or local name")
	}
	if r, _ := utf8.DecodeRuneInString(local); !isNameStartRune(r) {
		return "", "", nsError("local name does not start with a name character")
	}
	return prefix, local, nil
}

func isNCName(s string) bool {
	if s == "" || strings.IndexByte(s, ':') >= 0 {
		return false
	}
	for j, r := range s {
		if j == 0 && !isNameStartRune(r) || !isNameRune(r) {
			return false
		}
	}
	return true
}
