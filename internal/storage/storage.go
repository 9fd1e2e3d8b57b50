// Package storage defines parley's persistence boundary: narrow repository
// interfaces that the protocol code depends on, plus the helpers every driver
// shares (schema migrations, input validation). The repositories are
// implemented once, in SQL, in sqlstore; the drivers sqlite and postgres
// give it their dialect, open and tune the database and keep its
// migrations; backend picks one from configuration.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned (possibly wrapped) by every driver, so callers can
// branch with errors.Is without knowing which database is in use.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrExists   = errors.New("storage: already exists")
)

// Credential is the salted SCRAM verifier for one hash function ("SHA-1",
// "SHA-256", "SHA-512"). The plaintext password is never stored.
type Credential struct {
	Hash       string
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is a registered local user.
type Account struct {
	JID         string // bare JID "local@domain", already normalised by the caller
	Created     time.Time
	Credentials []Credential
}

// Users is the account repository.
//
// Drivers keep Created with microsecond precision and return it in UTC; a zero
// Created is replaced by the current time on Create. Get returns Credentials
// sorted by Hash (byte order) so results are deterministic.
type Users interface {
	Create(ctx context.Context, a Account) error                                  // ErrExists if the JID exists
	Get(ctx context.Context, bareJID string) (Account, error)                     // ErrNotFound
	SetCredentials(ctx context.Context, bareJID string, creds []Credential) error // replaces all; ErrNotFound
	// Delete removes the account; data of later features hangs off the
	// accounts table with ON DELETE CASCADE, so it goes with it. ErrNotFound.
	Delete(ctx context.Context, bareJID string) error
	List(ctx context.Context, domain string) ([]string, error) // bare JIDs of that domain, sorted by byte order; domain "" = all
	Count(ctx context.Context, domain string) (int, error)
}

// Store is an open database with all of parley's repositories.
type Store interface {
	Users() Users
	Roster() Roster
	Offline() Offline
	KV() KV
	Archive() Archive
	PubSub() PubSub
	// PubSubService is the same repository for the pubsub service
	// domains (XEP-0060): there the owner is the service's domain, which
	// is no account, and nothing is deleted with an account.
	PubSubService() PubSub
	MUC() MUC
	Ping(ctx context.Context) error
	Close() error
}

// ErrLimit is returned when a per-user cap would be passed.
var ErrLimit = errors.New("storage: limit reached")

// RosterItem is one contact in a user's roster (RFC 6121 §2.1.2).
type RosterItem struct {
	Contact      string   // bare JID of the contact, normalised by the caller
	Name         string   // "" when none
	Groups       []string // sorted, no duplicates (the driver sorts and dedups)
	Subscription string   // "none", "to", "from" or "both"
	Ask          bool     // we sent a subscription request the contact has not answered (pending out)
	Approved     bool     // the owner pre-approved the contact's subscription (RFC 6121 §3.4)
}

// Pending is an inbound subscription request kept until the owner answers
// (RFC 6121 §3.1.3), as the stanza that carried it.
type Pending struct {
	Contact string // bare JID of the requester
	Stanza  []byte // the presence stanza as received, serialised
}

// Roster is the roster repository. Each owner has a roster version that
// every Put and Delete increases by at least one (XEP-0237); it is 0 for a
// roster that never changed.
type Roster interface {
	Items(ctx context.Context, owner string) (items []RosterItem, version int64, err error) // sorted by Contact
	Item(ctx context.Context, owner, contact string) (RosterItem, error)                    // ErrNotFound
	// Put creates or replaces an item and returns the new roster version.
	// With max > 0, creating an item beyond max items fails with ErrLimit
	// (replacing an existing item always works).
	Put(ctx context.Context, owner string, item RosterItem, max int) (version int64, err error)
	Delete(ctx context.Context, owner, contact string) (version int64, err error) // ErrNotFound
	Count(ctx context.Context, owner string) (int, error)

	AddPendingIn(ctx context.Context, owner string, p Pending) error  // replaces an older request from the same contact
	PendingIn(ctx context.Context, owner string) ([]Pending, error)   // oldest first
	DeletePendingIn(ctx context.Context, owner, contact string) error // no error when absent
}

// OfflineMessage is a stanza kept for a user who was offline.
type OfflineMessage struct {
	ID     int64     // increasing in storage order, per store
	Stored time.Time // UTC, microsecond precision
	Data   []byte    // opaque to storage (the offline module seals it)
}

// Offline is the offline message repository (XEP-0160).
type Offline interface {
	// Push appends a message; with max > 0 it fails with ErrLimit when the
	// owner already has max messages.
	Push(ctx context.Context, owner string, data []byte, max int) (OfflineMessage, error)
	// PushAt is Push with the time the message counts as stored (zero:
	// now; rounded to microseconds), which the caller may have sealed
	// into data to bind the record to its row.
	PushAt(ctx context.Context, owner string, stored time.Time, data []byte, max int) (OfflineMessage, error)
	List(ctx context.Context, owner string) ([]OfflineMessage, error) // oldest first
	Delete(ctx context.Context, owner string, ids []int64) error      // ids that do not exist are ignored
	Count(ctx context.Context, owner string) (int, error)
	// Total is the number of messages waiting for all owners together.
	Total(ctx context.Context) (int, error)
	// DeleteBefore removes every message stored before t (retention) and
	// returns how many went.
	DeleteBefore(ctx context.Context, t time.Time) (int, error)
}

// KVEntry is one value of the per-user key-value store.
type KVEntry struct {
	Key   string
	Value []byte
}

// KV is a small per-user key-value store in namespaces, for features whose
// data is a few opaque values per user (vCard, private XML, block list,
// last activity). Keys and namespaces are at most 1024 bytes; values are
// at most 1 MiB.
type KV interface {
	Get(ctx context.Context, owner, ns, key string) ([]byte, error) // ErrNotFound
	Put(ctx context.Context, owner, ns, key string, value []byte) error
	Delete(ctx context.Context, owner, ns, key string) error       // ErrNotFound
	List(ctx context.Context, owner, ns string) ([]KVEntry, error) // sorted by key
	DeleteAll(ctx context.Context, owner, ns string) error         // no error when empty
}
