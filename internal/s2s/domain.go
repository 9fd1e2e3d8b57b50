package s2s

import (
	"net/netip"
	"strings"

	"golang.org/x/net/idna"

	"parley/internal/jid"
)

// sameDomain reports whether the domain a peer wrote (an attribute of a
// dialback element) is canonical, the domain we keep: compared after
// PRECIS and IDNA normalisation, so that case or A-label spelling
// neither lets a peer through nor makes an honest answer unrecognised.
func sameDomain(attr, canonical string) bool {
	if attr == "" {
		return false
	}
	j, err := jid.New("", attr, "")
	return err == nil && j.Domain() == canonical
}

// isIPLiteral reports whether a canonical domain is an IP address.
func isIPLiteral(domain string) bool {
	if strings.HasPrefix(domain, "[") {
		return true
	}
	a, err := netip.ParseAddr(domain)
	return err == nil && a.Is4()
}

// asciiName is a canonical domain as DNS and certificates know it:
// internal/jid keeps domains in their Unicode form, while SRV lookups,
// the TLS server name and RFC 6125 identity checks use A-labels.
func asciiName(domain string) (string, error) {
	if isIPLiteral(domain) {
		return domain, nil
	}
	return idna.Lookup.ToASCII(domain)
}
