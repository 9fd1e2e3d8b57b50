// Package jid parses, validates and canonicalises XMPP addresses (JIDs) as
// specified in RFC 7622.
//
// A JID value is always in canonical form: every constructor enforces the
// PRECIS profiles, so two JIDs denote the same entity exactly when they are
// equal with ==, and a JID can be used directly as a map key.
package jid

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed is wrapped by every error returned by Parse, New and
// WithResource, so callers can test with errors.Is.
var ErrMalformed = errors.New("jid: malformed")

// maxPartBytes is the RFC 7622 limit on each part after enforcement.
const maxPartBytes = 1023

// JID is an XMPP address in canonical form. The zero value is the empty
// address (IsZero reports true); it is not a valid JID for addressing.
type JID struct {
	local, domain, resource string
}

// Parse splits s per RFC 7622 §3.1 and enforces the rules for each part.
// The resourcepart starts after the first '/', so it may itself contain '@'
// and '/'; the localpart ends at the first '@' before that '/'.
func Parse(s string) (JID, error) {
	rest := s
	var local, resource string
	hasLocal, hasResource := false, false
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		resource = rest[i+1:]
		rest = rest[:i]
		hasResource = true
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		local = rest[:i]
		rest = rest[i+1:]
		hasLocal = true
	}
	if hasLocal && local == "" {
		return JID{}, fmt.Errorf("%w: %s: empty localpart before '@'", ErrMalformed, quote(s))
	}
	if hasResource && resource == "" {
		return JID{}, fmt.Errorf("%w: %s: empty resourcepart after '/'", ErrMalformed, quote(s))
	}
	j, err := New(local, rest, resource)
	if err != nil {
		return JID{}, fmt.Errorf("parsing %s: %w", quote(s), err)
	}
	return j, nil
}

// New builds a JID from its parts. An empty local or resource means the
// part is absent; the domain is required.
func New(local, domain, resource string) (JID, error) {
	var j JID
	var err error
	if j.domain, err = enforceDomain(domain); err != nil {
		return JID{}, err
	}
	if local != "" {
		if j.local, err = enforceLocal(local); err != nil {
			return JID{}, err
		}
	}
	if resource != "" {
		if j.resource, err = enforceResource(resource); err != nil {
			return JID{}, err
		}
	}
	return j, nil
}

// MustParse is Parse for addresses known to be valid at compile time; it
// panics on error.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return j
}

// Local returns the localpart, or "" if there is none.
func (j JID) Local() string { return j.local }

// Domain returns the domainpart.
func (j JID) Domain() string { return j.domain }

// Resource returns the resourcepart, or "" if there is none.
func (j JID) Resource() string { return j.resource }

// Bare returns the JID without its resourcepart.
func (j JID) Bare() JID { return JID{local: j.local, domain: j.domain} }

// IsBare reports whether the JID has no resourcepart.
func (j JID) IsBare() bool { return j.resource == "" }

// IsZero reports whether j is the zero value (no address at all).
func (j JID) IsZero() bool { return j == JID{} }

// IsDomain reports whether j is a bare domain (no localpart and no
// resourcepart), such as a server or component address.
func (j JID) IsDomain() bool { return j.local == "" && j.resource == "" && j.domain != "" }

// WithResource returns j with its resourcepart replaced by r. An empty r
// yields the bare JID, matching New's treatment of an absent resource.
func (j JID) WithResource(r string) (JID, error) {
	if r == "" {
		return j.Bare(), nil
	}
	res, err := enforceResource(r)
	if err != nil {
		return JID{}, err
	}
	return JID{local: j.local, domain: j.domain, resource: res}, nil
}

// String returns the canonical textual form, which Parse accepts and maps
// back to an equal JID.
func (j JID) String() string {
	if j.local == "" && j.resource == "" {
		return j.domain
	}
	var b strings.Builder
	b.Grow(len(j.local) + len(j.domain) + len(j.resource) + 2)
	if j.local != "" {
		b.WriteString(j.local)
		b.WriteByte('@')
	}
	b.WriteString(j.domain)
	if j.resource != "" {
		b.WriteByte('/')
		b.WriteString(j.resource)
	}
	return b.String()
}

// Equal reports whether j and o are the same address. Because parts are
// stored canonically this is plain comparison.
func (j JID) Equal(o JID) bool { return j == o }
