// Package storage defines parley's persistence boundary: narrow repository
// interfaces that the protocol code depends on, plus the helpers every driver
// shares (schema migrations, input validation). Drivers live in the
// sub-packages sqlite and postgres; backend picks one from configuration.
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
	Ping(ctx context.Context) error
	Close() error
}
