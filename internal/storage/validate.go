package storage

import (
	"fmt"
	"strings"
	"time"
)

// DomainOf returns the domain part of a bare JID "local@domain". Drivers store
// it in its own column so List and Count by domain can use an index instead of
// pattern-matching the JID. Accounts always have a localpart, and neither part
// may contain '@' or '/' (RFC 7622), so anything else is a caller bug that
// would otherwise be persisted.
func DomainOf(bareJID string) (string, error) {
	local, domain, ok := strings.Cut(bareJID, "@")
	switch {
	case !ok:
		return "", fmt.Errorf("storage: JID %q has no localpart", bareJID)
	case local == "":
		return "", fmt.Errorf("storage: JID %q has an empty localpart", bareJID)
	case domain == "":
		return "", fmt.Errorf("storage: JID %q has an empty domain", bareJID)
	case strings.ContainsAny(domain, "@/"):
		return "", fmt.Errorf("storage: %q is not a bare JID", bareJID)
	}
	return domain, nil
}

// ValidateCredentials rejects sets the credentials table cannot hold, before
// any write starts, so a replace never half-succeeds: one row per hash.
func ValidateCredentials(creds []Credential) error {
	seen := make(map[string]bool, len(creds))
	for _, c := range creds {
		if c.Hash == "" {
			return fmt.Errorf("storage: credential without hash name")
		}
		if seen[c.Hash] {
			return fmt.Errorf("storage: duplicate credential for hash %q", c.Hash)
		}
		if c.Iterations < 0 {
			return fmt.Errorf("storage: credential %q has negative iteration count %d", c.Hash, c.Iterations)
		}
		seen[c.Hash] = true
	}
	return nil
}

// CreatedTime is the timestamp a driver persists for a new account: now when
// unset, and truncated to microseconds in UTC because that is the finest
// precision PostgreSQL keeps; both drivers round the same way so the
// conformance suite can compare exactly.
func CreatedTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
