package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalid is wrapped by the errors the Roster, Offline and KV repositories
// return for arguments no database row could hold (malformed JIDs, unknown
// subscription states, oversized values), so callers can tell a request
// they should reject from a storage failure.
var ErrInvalid = errors.New("storage: invalid argument")

// Size limits shared by every driver. Checking them before the database is
// reached keeps a client from filling the disk through a single value, and
// gives both drivers the same error for the same input.
const (
	// MaxJIDPartBytes is RFC 7622's limit on a localpart or domainpart.
	MaxJIDPartBytes = 1023
	// MaxKeyBytes bounds KV namespaces and keys.
	MaxKeyBytes = 1024
	// MaxValueBytes bounds a KV value, an offline message and a pending
	// subscription stanza.
	MaxValueBytes = 1 << 20
	// MaxRosterTextBytes bounds a roster item's name and each group name.
	MaxRosterTextBytes = 1024
)

// Subscription states of a roster item (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// storableText rejects strings PostgreSQL's text type cannot hold (NUL,
// invalid UTF-8). SQLite would accept them, so without this check the two
// drivers would disagree, and PostgreSQL would fail with a raw driver error.
func storableText(what, s string, maxBytes int) error {
	switch {
	case len(s) > maxBytes:
		return invalid("%s is %d bytes, more than %d", what, len(s), maxBytes)
	case !utf8.ValidString(s):
		return invalid("%s %q is not valid UTF-8", what, s)
	case strings.IndexByte(s, 0) >= 0:
		return invalid("%s %q contains a NUL byte", what, s)
	}
	return nil
}

// ValidateOwner checks that owner has the shape of an account JID, which the
// per-user repositories key their rows by.
func ValidateOwner(owner string) error {
	if _, err := DomainOf(owner); err != nil {
		return fmt.Errorf("%w: owner: %w", ErrInvalid, err)
	}
	return validateJIDParts("owner", owner)
}

// ValidateContact checks that jid is a bare JID. Unlike an owner a contact
// may lack a localpart: servers and gateways can be in a roster.
func ValidateContact(jid string) error {
	local, domain, hasLocal := strings.Cut(jid, "@")
	if !hasLocal {
		local, domain = "", jid
	}
	switch {
	case domain == "":
		return invalid("contact %q has an empty domain", jid)
	case hasLocal && local == "":
		return invalid("contact %q has an empty localpart", jid)
	case strings.ContainsAny(domain, "@/"):
		return invalid("contact %q is not a bare JID", jid)
	}
	return validateJIDParts("contact", jid)
}

func validateJIDParts(what, jid string) error {
	local, domain, ok := strings.Cut(jid, "@")
	if !ok {
		local, domain = "", jid
	}
	if len(local) > MaxJIDPartBytes || len(domain) > MaxJIDPartBytes {
		return invalid("%s has a part longer than %d bytes", what, MaxJIDPartBytes)
	}
	return storableText(what, jid, 2*MaxJIDPartBytes+1)
}

// NormaliseRosterItem validates item and returns it as drivers store it:
// groups sorted in byte order without duplicates, in a new slice so the
// caller's is not reordered. No groups is returned as nil.
func NormaliseRosterItem(item RosterItem) (RosterItem, error) {
	if err := ValidateContact(item.Contact); err != nil {
		return RosterItem{}, err
	}
	switch item.Subscription {
	case SubNone, SubTo, SubFrom, SubBoth:
	default:
		return RosterItem{}, invalid("roster item %s: unknown subscription %q", item.Contact, item.Subscription)
	}
	if err := storableText("roster item name", item.Name, MaxRosterTextBytes); err != nil {
		return RosterItem{}, err
	}
	var groups []string
	if len(item.Groups) > 0 {
		groups = slices.Clone(item.Groups)
		slices.Sort(groups)
		groups = slices.Compact(groups)
	}
	for _, g := range groups {
		// RFC 6121 §2.3.3 makes an empty <group/> a client error; storing
		// one would only hand it back to every other resource.
		if g == "" {
			return RosterItem{}, invalid("roster item %s: empty group name", item.Contact)
		}
		if err := storableText("group name", g, MaxRosterTextBytes); err != nil {
			return RosterItem{}, err
		}
	}
	item.Groups = groups
	return item, nil
}

// EncodeGroups serialises normalised groups into the single text column both
// drivers use. JSON round-trips any valid UTF-8 exactly, whatever separators
// the names contain.
func EncodeGroups(groups []string) string {
	if len(groups) == 0 {
		return "[]"
	}
	b, err := json.Marshal(groups)
	if err != nil {
		// Marshalling a []string cannot fail.
		panic(fmt.Sprintf("storage: encode groups: %v", err))
	}
	return string(b)
}

// DecodeGroups is the inverse of EncodeGroups; no groups decode to nil.
func DecodeGroups(s string) ([]string, error) {
	var groups []string
	if err := json.Unmarshal([]byte(s), &groups); err != nil {
		return nil, fmt.Errorf("storage: decode roster groups %q: %w", s, err)
	}
	if len(groups) == 0 {
		return nil, nil
	}
	return groups, nil
}

// ValidatePending checks an inbound subscription request before it is kept.
func ValidatePending(p Pending) error {
	if err := ValidateContact(p.Contact); err != nil {
		return err
	}
	return ValidateBlob("pending stanza", p.Stanza)
}

// MaxBlindBytes bounds the keyed hash that stands for a sealed contact.
const MaxBlindBytes = 64

// ValidateSealedItem checks a sealed roster item before it is kept.
func ValidateSealedItem(it SealedItem) error {
	if err := ValidateBlind(it.Blind); err != nil {
		return err
	}
	if err := ValidateSubscription(it.Subscription); err != nil {
		return err
	}
	return ValidateBlob("sealed roster item", it.Sealed)
}

// ValidateSealedPending checks a sealed subscription request.
func ValidateSealedPending(p SealedPending) error {
	if err := ValidateBlind(p.Blind); err != nil {
		return err
	}
	return ValidateBlob("sealed pending request", p.Sealed)
}

// ValidateBlind checks the key of a sealed row.
func ValidateBlind(b []byte) error {
	if len(b) == 0 || len(b) > MaxBlindBytes {
		return invalid("a blind index is %d bytes, want 1 to %d", len(b), MaxBlindBytes)
	}
	return nil
}

// ValidateSubscription checks a subscription state.
func ValidateSubscription(sub string) error {
	switch sub {
	case SubNone, SubTo, SubFrom, SubBoth:
		return nil
	}
	return invalid("unknown subscription %q", sub)
}

// ValidateBlob enforces MaxValueBytes on an opaque value.
func ValidateBlob(what string, b []byte) error {
	if len(b) > MaxValueBytes {
		return invalid("%s is %d bytes, more than %d", what, len(b), MaxValueBytes)
	}
	return nil
}

// ValidateNamespace checks a KV namespace. It must not be empty: an empty
// namespace would be a feature that forgot to name itself.
func ValidateNamespace(ns string) error {
	if ns == "" {
		return invalid("empty KV namespace")
	}
	return storableText("KV namespace", ns, MaxKeyBytes)
}

// ValidateKey checks a KV key. The empty key is allowed, for features that
// keep one value per user.
func ValidateKey(key string) error {
	return storableText("KV key", key, MaxKeyBytes)
}

// StoredTime is the timestamp drivers persist for a new offline message:
// now, in UTC, at the microsecond precision both databases keep.
func StoredTime() time.Time { return CreatedTime(time.Time{}) }

// CeilMicro rounds t up to the next microsecond. Stored times are whole
// microseconds, so "stored < CeilMicro(t)" is exactly "stored before t";
// passing t itself would let each driver's truncation decide the boundary.
func CeilMicro(t time.Time) time.Time {
	tr := t.Truncate(time.Microsecond)
	if tr.Before(t) {
		tr = tr.Add(time.Microsecond)
	}
	return tr
}
