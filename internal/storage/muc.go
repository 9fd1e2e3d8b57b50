package storage

import (
	"context"
	"strings"
	"time"
)

// Affiliations a multi-user chat room stores (XEP-0045 §5.2); "none" is
// the absence of a row.
const (
	AffOwner   = "owner"
	AffAdmin   = "admin"
	AffMember  = "member"
	AffOutcast = "outcast"
	AffNone    = "none"
)

// MUCRoom is a persistent room of a multi-user chat service (XEP-0045).
// Rooms are not accounts: they live in their own tables, keyed by the room's
// bare JID.
type MUCRoom struct {
	JID string // room@service, normalised by the caller
	// Config is the room configuration encoded by the module; storage
	// keeps it opaque so new options never need a migration.
	Config  []byte
	Created time.Time // UTC, microsecond precision; set by the driver on creation
}

// MUCAffiliation is one entity's long-lived relation to a room.
type MUCAffiliation struct {
	JID         string // bare JID or domain
	Affiliation string // AffOwner, AffAdmin, AffMember or AffOutcast (AffNone removes)
	Reason      string // "" when none
}

// MUCMessage is one archived groupchat message of a room.
type MUCMessage struct {
	ID    string    // the XEP-0359 stanza-id, unique within the room
	Stamp time.Time // UTC, microsecond precision; now when zero
	Data  []byte    // the stanza, serialised by the module
}

// MUCQuery selects a page of a room's messages. Start, End, AfterID,
// BeforeID and IDs are filters: together they make the result set that
// Count reports; After, Before and Last then page through it in archive
// order. Bounds are exclusive ids; a bound id that is not in the room
// fails with ErrNotFound (ids in the IDs filter need not exist).
type MUCQuery struct {
	Start, End        time.Time // inclusive; zero means unbounded
	AfterID, BeforeID string    // XEP-0313 after-id and before-id
	// IDs keeps only the messages with these ids (XEP-0313 #extended);
	// nil means no such filter, a non-nil empty list matches nothing.
	IDs []string

	After, Before string // the RSM cursors (XEP-0059)
	Max           int    // page size, > 0
	// Last takes the newest Max messages of the selection instead of the
	// oldest (implied by Before).
	Last bool
}

// MUCPage is a page of messages, oldest first.
type MUCPage struct {
	Messages []MUCMessage
	Complete bool // no selected message is left out of the page
	Count    int  // the size of the result set before paging
}

// MUC is the repository of persistent multi-user chat rooms, their
// affiliations and their message archive. Deleting a room deletes its
// affiliations and messages.
type MUC interface {
	// PutRoom creates a room or replaces its configuration; Created is
	// kept from the first PutRoom.
	PutRoom(ctx context.Context, r MUCRoom) error
	Room(ctx context.Context, room string) (MUCRoom, error) // ErrNotFound
	// Rooms lists the rooms of a service domain, sorted by JID (byte order).
	Rooms(ctx context.Context, service string) ([]MUCRoom, error)
	DeleteRoom(ctx context.Context, room string) error // ErrNotFound
	// SetAffiliation creates, replaces or (AffNone) removes one
	// affiliation; ErrNotFound when the room does not exist. Removing an
	// absent affiliation is not an error.
	SetAffiliation(ctx context.Context, room string, a MUCAffiliation) error
	// Affiliations lists a room's affiliations sorted by JID; ErrNotFound
	// when the room does not exist.
	Affiliations(ctx context.Context, room string) ([]MUCAffiliation, error)
	// AppendMessage archives a message and returns it with Stamp set:
	// ErrNotFound when the room does not exist, ErrExists when the id is
	// taken in that room.
	AppendMessage(ctx context.Context, room string, m MUCMessage) (MUCMessage, error)
	// Messages returns a page of the room's archive in archive order;
	// ErrNotFound when the room does not exist.
	Messages(ctx context.Context, room string, q MUCQuery) (MUCPage, error)
	// ReplaceMessage replaces the stored data of one message (moderation
	// leaves a tombstone); ErrNotFound when there is no such message.
	ReplaceMessage(ctx context.Context, room, id string, data []byte) error
	// DeleteMessagesBefore removes every message stamped before t
	// (retention) and returns how many went.
	DeleteMessagesBefore(ctx context.Context, t time.Time) (int, error)
}

// ValidateRoomJID checks a room's bare JID: it has a localpart like an
// account's.
func ValidateRoomJID(room string) error {
	if err := ValidateOwner(room); err != nil {
		return invalid("room %q: %v", room, err)
	}
	return nil
}

// ServiceOf returns the domain of a room JID.
func ServiceOf(room string) string {
	_, d, _ := strings.Cut(room, "@")
	return d
}

// ValidateMUCAffiliation checks an affiliation before it is stored.
func ValidateMUCAffiliation(a MUCAffiliation) error {
	if err := ValidateContact(a.JID); err != nil {
		return err
	}
	switch a.Affiliation {
	case AffOwner, AffAdmin, AffMember, AffOutcast, AffNone:
	default:
		return invalid("unknown affiliation %q", a.Affiliation)
	}
	return storableText("affiliation reason", a.Reason, MaxRosterTextBytes)
}

// ValidateMUCMessage checks a message before it is archived.
func ValidateMUCMessage(m MUCMessage) error {
	if m.ID == "" {
		return invalid("empty room message id")
	}
	if err := storableText("room message id", m.ID, MaxKeyBytes); err != nil {
		return err
	}
	return ValidateBlob("room message", m.Data)
}

// ValidateMUCQuery checks a query's page size and id bounds.
func ValidateMUCQuery(q MUCQuery) error {
	if q.Max <= 0 {
		return invalid("room archive page size %d is not positive", q.Max)
	}
	if len(q.IDs) > MaxArchiveQueryIDs {
		return invalid("%d ids in one room archive query, more than %d", len(q.IDs), MaxArchiveQueryIDs)
	}
	for _, id := range append([]string{q.After, q.Before, q.AfterID, q.BeforeID}, q.IDs...) {
		if err := storableText("room message id", id, MaxKeyBytes); err != nil {
			return err
		}
	}
	return nil
}
