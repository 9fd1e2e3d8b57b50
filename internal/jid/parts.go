package jid

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// idnaLookup converts domainparts to their Unicode form (RFC 7622 §3.2.2).
// The lookup mapping applies width and case mapping like a client would;
// non-transitional processing keeps ß and ς distinct as IDNA2008 requires,
// and the Bidi rule is part of IDNA2008 label validity. A *idna.Profile is
// immutable and safe for concurrent use.
var idnaLookup = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
)

// enforceDomain validates and canonicalises a domainpart.
func enforceDomain(s string) (string, error) {
	strippedDot := false
	if strings.HasSuffix(s, ".") {
		s = s[:len(s)-1]
		strippedDot = true
	}
	if s == "" {
		return "", fmt.Errorf("%w: empty domainpart", ErrMalformed)
	}
	if s[0] == '[' {
		return enforceIPv6(s)
	}
	// Only dotted-quad IPv4 is an address; anything else is a DNS name.
	if c := s[0]; '0' <= c && c <= '9' {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a.String(), nil
		}
	}
	if out, ok := asciiDomain(s); ok {
		return out, nil
	}
	return slowDomain(s, strippedDot)
}

func enforceIPv6(s string) (string, error) {
	if len(s) < 2 || s[len(s)-1] != ']' {
		return "", fmt.Errorf("%w: domainpart %s: unterminated IPv6 literal", ErrMalformed, quote(s))
	}
	a, err := netip.ParseAddr(s[1 : len(s)-1])
	// Zones are local to one host and not part of the IP-literal grammar
	// (RFC 3986), so they cannot name an XMPP service.
	if err != nil || !a.Is6() || a.Zone() != "" {
		return "", fmt.Errorf("%w: domainpart %s: invalid IPv6 literal", ErrMalformed, quote(s))
	}
	return "[" + a.String() + "]", nil
}

// asciiDomain is the fast path for the overwhelmingly common plain
// LDH host name. It reports ok only where slowDomain is known to give the
// same result: letters, digits and inner hyphens, with labels that could be
// A-labels or otherwise hyphen-reserved ("xn--", "ab--") left to IDNA.
func asciiDomain(s string) (string, bool) {
	if len(s) > maxPartBytes {
		return "", false
	}
	upper := false
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			case 'A' <= c && c <= 'Z':
				upper = true
			default:
				return "", false
			}
			continue
		}
		label := s[start:i]
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		if len(label) >= 4 && label[2] == '-' && label[3] == '-' {
			return "", false
		}
		start = i + 1
	}
	if !upper {
		return s, true
	}
	return asciiLower(s), true
}

// slowDomain handles internationalised names and everything the fast path
// declines, including producing the error for invalid input.
// strippedDot says whether a trailing dot was already removed, since only
// one is allowed (a mapped ideographic full stop counts as a dot).
func slowDomain(s string, strippedDot bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: domainpart %s: invalid UTF-8", ErrMalformed, quote(s))
	}
	u, err := idnaLookup.ToUnicode(s)
	if err != nil {
		return "", fmt.Errorf("%w: domainpart %s: %w", ErrMalformed, quote(s), err)
	}
	u = norm.NFC.String(strings.ToLower(u))
	if !strippedDot && strings.HasSuffix(u, ".") {
		u = u[:len(u)-1]
	}
	if u == "" {
		return "", fmt.Errorf("%w: empty domainpart", ErrMalformed)
	}
	if len(u) > maxPartBytes {
		return "", fmt.Errorf("%w: domainpart longer than %d bytes", ErrMalformed, maxPartBytes)
	}
	for label := range strings.SplitSeq(u, ".") {
		if label == "" {
			return "", fmt.Errorf("%w: domainpart %s: empty label", ErrMalformed, quote(s))
		}
	}
	// IDNA already enforces STD3 rules; this re-check guards the properties
	// the rest of the server relies on (no separators, spaces or controls)
	// independently of the idna package's options.
	for _, r := range u {
		ok := r >= utf8.RuneSelf && !unicode.IsSpace(r) && !unicode.IsControl(r) && r != utf8.RuneError ||
			'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '.'
		if !ok {
			return "", fmt.Errorf("%w: domainpart %s: character %q not allowed", ErrMalformed, quote(s), r)
		}
	}
	return u, nil
}

// localProhibited are the characters RFC 7622 §3.3.1 forbids in a
// localpart on top of the PRECIS IdentifierClass.
const localProhibited = "\"&'/:<>@"

// enforceLocal applies UsernameCaseMapped plus the RFC 7622 exclusions.
func enforceLocal(s string) (string, error) {
	if out, ok := asciiLocal(s); ok {
		return out, nil
	}
	return slowLocal(s)
}

// asciiLocal is the fast path for printable ASCII localparts. For such
// input PRECIS UsernameCaseMapped reduces to ASCII lowercasing: width
// mapping and NFC do not touch ASCII, every printable non-space ASCII
// character is in IdentifierClass, and the Bidi rule only constrains
// strings containing right-to-left characters.
func asciiLocal(s string) (string, bool) {
	if s == "" || len(s) > maxPartBytes {
		return "", false
	}
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte(localProhibited, c) >= 0 {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return s, true
	}
	return asciiLower(s), true
}

func slowLocal(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: localpart %s: invalid UTF-8", ErrMalformed, quote(s))
	}
	out, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", fmt.Errorf("%w: localpart %s: %w", ErrMalformed, quote(s), err)
	}
	if out == "" {
		return "", fmt.Errorf("%w: empty localpart", ErrMalformed)
	}
	// Checked after mapping so that e.g. FULLWIDTH COMMERCIAL AT, which
	// width mapping turns into '@', cannot sneak a separator in.
	if i := strings.IndexAny(out, localProhibited); i >= 0 {
		return "", fmt.Errorf("%w: localpart %s: character %q not allowed", ErrMalformed, quote(s), out[i])
	}
	if len(out) > maxPartBytes {
		return "", fmt.Errorf("%w: localpart longer than %d bytes", ErrMalformed, maxPartBytes)
	}
	return out, nil
}

// enforceResource applies the OpaqueString profile (RFC 7622 §3.4).
func enforceResource(s string) (string, error) {
	if asciiResource(s) {
		return s, nil
	}
	return slowResource(s)
}

// asciiResource reports whether s is printable ASCII including space, for
// which OpaqueString is the identity: all of it is in FreeformClass, the
// space mapping only affects non-ASCII spaces, and NFC leaves ASCII as is.
func asciiResource(s string) bool {
	if s == "" || len(s) > maxPartBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func slowResource(s string) (string, error) {
	// Checked here because the PRECIS package silently replaces invalid
	// bytes with U+FFFD instead of rejecting them.
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: resourcepart %s: invalid UTF-8", ErrMalformed, quote(s))
	}
	out, err := precis.OpaqueString.String(s)
	if err != nil {
		return "", fmt.Errorf("%w: resourcepart %s: %w", ErrMalformed, quote(s), err)
	}
	if len(out) > maxPartBytes {
		return "", fmt.Errorf("%w: resourcepart longer than %d bytes", ErrMalformed, maxPartBytes)
	}
	return out, nil
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// quote renders untrusted input for an error message, cut short so that a
// hostile multi-kilobyte address cannot flood the logs.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}
