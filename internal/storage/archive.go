package storage

import (
	"context"
	"strings"
	"time"
)

// Limits of the archive repository, checked by ValidateArchiveMessage and
// ValidateArchiveQuery before a driver touches the database.
const (
	// MaxArchiveIDBytes bounds a stanza id. Server-made ids are far
	// shorter; a longer id in a query cannot name an archived message.
	MaxArchiveIDBytes = 256
	// MaxArchiveQueryIDs bounds the ids filter of one query, so a client
	// cannot make one query arbitrarily expensive.
	MaxArchiveQueryIDs = 1000
	// MaxArchivePage bounds a page; modules choose far smaller pages.
	MaxArchivePage = 10000
)

// ArchiveMessage is one archived one-to-one message (XEP-0313).
type ArchiveMessage struct {
	// ID is the stanza id (XEP-0359) the archive module made; unique per
	// owner, it is also the RSM cursor.
	ID string
	// With is the other party: their full JID when known, else the bare
	// JID. Queries by a bare JID match every resource of it.
	With string
	// Stamp is when the message was archived, in UTC with microsecond
	// precision; a zero Stamp on Append means now.
	Stamp time.Time
	// Outgoing is true for a message the owner sent.
	Outgoing bool
	// Data is opaque to storage (the archive module seals it).
	Data []byte
	// WithIndex and WithBareIndex are blind indexes of the full and
	// the bare JID of the other party, for a row whose With is sealed
	// inside Data: With is "" then, and queries match the indexes.
	WithIndex, WithBareIndex []byte
	// Reseal marks a row its module wants to seal again (under a key
	// it did not hold when it wrote it); PendingReseal lists them.
	Reseal bool
}

// ArchiveQuery selects messages of one owner. The zero value matches all of
// them and returns an empty page (Max 0), which still reports Count.
//
// With, Start, End, AfterID, BeforeID and IDs are filters: together they
// make the result set that Count reports. After, Before and Last then page
// through that set in archive order (insertion order, which is not always
// timestamp order).
type ArchiveQuery struct {
	// With: "" matches everyone; a bare JID matches it and all its
	// resources; a full JID matches exactly that resource.
	With string
	// WithIndex, when set, also matches rows whose with_*_index is
	// it: the full JID's blind index when With is a full JID (or
	// WithFull), the bare JID's otherwise. A row matches the plain
	// With or the index.
	WithIndex []byte
	// WithFull says WithIndex is of a full JID when With is "".
	WithFull bool
	// WithBareIndex, with a full-JID WithIndex, is the bare JID's
	// index: the database finds the rows through it.
	WithBareIndex []byte
	// Start and End keep messages stamped at or after Start and at or
	// before End; zero means unbounded.
	Start, End time.Time
	// AfterID and BeforeID keep messages strictly after (before) the
	// message with that id (XEP-0313 after-id and before-id).
	AfterID, BeforeID string
	// IDs keeps only the messages with these ids (XEP-0313 #extended);
	// nil means no such filter, a non-nil empty list matches nothing.
	IDs []string

	// After and Before are the RSM cursors (XEP-0059): the page starts
	// strictly after After, or ends strictly before Before.
	After, Before string
	// Last pages backwards: the page is the Max messages closest to the
	// end (or to Before), as RSM <before/> asks. Before implies it.
	Last bool
	// Max is the page size; 0 returns no message, only Count and
	// Complete.
	Max int
}

// ArchivePage is the answer to a query.
type ArchivePage struct {
	// Messages are in archive order, oldest first, also when paging
	// backwards.
	Messages []ArchiveMessage
	// Complete is true when no message of the result set lies beyond
	// the page in the paging direction (XEP-0313 <fin complete='true'/>).
	Complete bool
	// Count is the size of the whole result set, before paging.
	Count int
}

// Archive is the message archive repository (XEP-0313).
//
// Every id a query names (AfterID, BeforeID, After, Before) must be an
// archived message of the owner, else the query fails with ErrNotFound:
// XEP-0313 answers an unknown id with item-not-found. Ids in the IDs
// filter need not exist. A query of an owner without an account fails
// with ErrNotFound too.
type Archive interface {
	// Append archives m for owner and returns it as stored (Stamp set and
	// rounded). ErrExists if owner already has a message with m.ID;
	// ErrNotFound if owner has no account.
	Append(ctx context.Context, owner string, m ArchiveMessage) (ArchiveMessage, error)
	Query(ctx context.Context, owner string, q ArchiveQuery) (ArchivePage, error)
	// DeleteBefore removes every message, of every owner, stamped before
	// t (retention) and returns how many went.
	DeleteBefore(ctx context.Context, t time.Time) (int, error)
	// AppendBatch stores many messages in one transaction, which is what
	// makes archiving cheap under load. Entries whose owner no longer
	// exists, or whose id the owner already has, are skipped; any other
	// problem fails the whole batch.
	AppendBatch(ctx context.Context, entries []ArchiveEntry) error
	// PendingReseal returns up to max of owner's messages marked
	// Reseal, oldest first.
	PendingReseal(ctx context.Context, owner string, max int) ([]ArchiveMessage, error)
	// Reseal replaces the Data, With, indexes and Reseal mark of
	// owner's messages with these ids; ids that no longer exist are
	// skipped.
	Reseal(ctx context.Context, owner string, msgs []ArchiveMessage) error
}

// BareOf returns the bare part of a JID string, as the archive stores it
// beside the full JID to filter by either.
func BareOf(j string) string {
	bare, _, _ := strings.Cut(j, "/")
	return bare
}

// ValidateArchiveMessage checks a message before Append.
func ValidateArchiveMessage(m ArchiveMessage) error {
	if err := validateArchiveID(m.ID); err != nil {
		return err
	}
	if m.ID == "" {
		return invalid("archived message without id")
	}
	if err := validateMessageWith(m); err != nil {
		return err
	}
	return ValidateBlob("archived message", m.Data)
}

// maxIndexBytes bounds a blind index (an HMAC-SHA256 is 32 bytes).
const maxIndexBytes = 64

// validateMessageWith accepts a plain With, or blind indexes with an
// empty With.
func validateMessageWith(m ArchiveMessage) error {
	if len(m.WithIndex) > maxIndexBytes || len(m.WithBareIndex) > maxIndexBytes {
		return invalid("blind index longer than %d bytes", maxIndexBytes)
	}
	if m.With == "" && len(m.WithIndex) > 0 && len(m.WithBareIndex) > 0 {
		return nil
	}
	return validateWith(m.With)
}

// ValidateArchiveQuery checks a query before it reaches the database.
func ValidateArchiveQuery(q ArchiveQuery) error {
	if q.With != "" {
		if err := validateWith(q.With); err != nil {
			return err
		}
	}
	if len(q.WithIndex) > maxIndexBytes || len(q.WithBareIndex) > maxIndexBytes {
		return invalid("blind index longer than %d bytes", maxIndexBytes)
	}
	if q.Max < 0 || q.Max > MaxArchivePage {
		return invalid("page size %d is not between 0 and %d", q.Max, MaxArchivePage)
	}
	if len(q.IDs) > MaxArchiveQueryIDs {
		return invalid("%d ids in one archive query, more than %d", len(q.IDs), MaxArchiveQueryIDs)
	}
	for _, id := range append([]string{q.AfterID, q.BeforeID, q.After, q.Before}, q.IDs...) {
		if err := validateArchiveID(id); err != nil {
			return err
		}
	}
	return nil
}

func validateArchiveID(id string) error {
	return storableText("stanza id", id, MaxArchiveIDBytes)
}

// validateWith accepts a bare or full JID (the resource may hold any
// storable text, '/' and '@' included).
func validateWith(with string) error {
	bare, resource, full := strings.Cut(with, "/")
	if err := ValidateContact(bare); err != nil {
		return err
	}
	if full && resource == "" {
		return invalid("JID %q has an empty resource", with)
	}
	return storableText("resource", resource, MaxJIDPartBytes)
}

// ArchiveEntry is one message for AppendBatch.
type ArchiveEntry struct {
	Owner   string
	Message ArchiveMessage
}

// PrepareArchiveEntries validates a batch and fills in what Append would
// (microsecond stamps, non-nil data); drivers call it first.
func PrepareArchiveEntries(entries []ArchiveEntry) ([]ArchiveEntry, error) {
	out := make([]ArchiveEntry, len(entries))
	for i, e := range entries {
		if err := ValidateOwner(e.Owner); err != nil {
			return nil, err
		}
		if err := ValidateArchiveMessage(e.Message); err != nil {
			return nil, err
		}
		e.Message.Stamp = CreatedTime(e.Message.Stamp)
		if e.Message.Data == nil {
			e.Message.Data = []byte{}
		}
		out[i] = e
	}
	return out, nil
}
