// Package invites keeps account invitations (XEP-0401 with XEP-0379
// pre-authentication tokens): `parley invite create` makes them, and the
// registration module lets a stream that showed a valid token create an
// account while registration is closed.
//
// Invites live in one JSON file in data_dir, changed under an exclusive
// file lock, so that the admin command and the running server can both
// change it. Only a hash of each token is kept: a copy of the file lets
// nobody in.
package invites

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// FileName is the invites file inside data_dir.
const FileName = "invites.json"

// Invite is one invitation.
type Invite struct {
	ID      string    `json:"id"`   // short and public, for list and revoke
	Hash    string    `json:"hash"` // SHA-256 of the token, hex
	Host    string    `json:"host"` // the domain accounts are created on
	Uses    int       `json:"uses"` // accounts it may create in all
	Used    int       `json:"used"`
	Expires time.Time `json:"expires"`
	// Contact, when set, becomes a mutual contact of each account the
	// invite creates (the inviter).
	Contact string    `json:"contact,omitempty"`
	Created time.Time `json:"created"`
}

// Errors of Use and Revoke.
var (
	ErrInvalid  = errors.New("the invite is unknown, used up or expired")
	ErrNotFound = errors.New("no invite with that id")
)

// Store is the invites file of one data directory.
type Store struct{ path string }

func Open(dataDir string) *Store { return &Store{path: filepath.Join(dataDir, FileName)} }

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// update runs fn on the invites under the lock and writes them back
// when fn reports a change.
func (s *Store) update(fn func([]Invite) ([]Invite, bool, error)) error {
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("invites: locking %s: %w", s.path, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	var list []Invite
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("invites: %w", err)
	default:
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("invites: %s is damaged: %w", s.path, err)
		}
	}
	list, changed, err := fn(list)
	if err != nil || !changed {
		return err
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".part"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	return nil
}

// prune drops what can never be used again.
func prune(list []Invite, now time.Time) []Invite {
	return slices.DeleteFunc(list, func(i Invite) bool { return i.Used >= i.Uses || !now.Before(i.Expires) })
}

// Create makes an invite and returns its token, which is shown once.
func (s *Store) Create(host string, uses int, ttl time.Duration, contact string, now time.Time) (string, Invite, error) {
	if uses < 1 || ttl <= 0 {
		return "", Invite{}, errors.New("invites: an invite needs at least one use and a positive lifetime")
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", Invite{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	h := hash(token)
	inv := Invite{ID: h[:10], Hash: h, Host: host, Uses: uses, Expires: now.Add(ttl).UTC(), Contact: contact, Created: now.UTC()}
	err := s.update(func(list []Invite) ([]Invite, bool, error) {
		return append(prune(list, now), inv), true, nil
	})
	return token, inv, err
}

// List returns the invites that can still be used, oldest first.
func (s *Store) List(now time.Time) ([]Invite, error) {
	var out []Invite
	err := s.update(func(list []Invite) ([]Invite, bool, error) {
		n := len(list)
		list = prune(list, now)
		out = slices.Clone(list)
		return list, len(list) != n, nil
	})
	return out, err
}

// Revoke deletes the invite with id.
func (s *Store) Revoke(id string) error {
	return s.update(func(list []Invite) ([]Invite, bool, error) {
		n := len(list)
		list = slices.DeleteFunc(list, func(i Invite) bool { return i.ID == id })
		if len(list) == n {
			return nil, false, ErrNotFound
		}
		return list, true, nil
	})
}

// find looks a valid token up for host.
func find(list []Invite, token, host string, now time.Time) int {
	h := hash(token)
	return slices.IndexFunc(list, func(i Invite) bool {
		return i.Hash == h && i.Host == host && i.Used < i.Uses && now.Before(i.Expires)
	})
}

// Check reports whether token is a valid invite for host, without using it.
func (s *Store) Check(token, host string, now time.Time) (Invite, error) {
	var inv Invite
	err := s.update(func(list []Invite) ([]Invite, bool, error) {
		i := find(list, token, host, now)
		if i < 0 {
			return nil, false, ErrInvalid
		}
		inv = list[i]
		return nil, false, nil
	})
	return inv, err
}

// Use takes one use of token for host; Release gives it back when the
// account could not be created after all.
func (s *Store) Use(token, host string, now time.Time) (Invite, error) {
	var inv Invite
	err := s.update(func(list []Invite) ([]Invite, bool, error) {
		i := find(list, token, host, now)
		if i < 0 {
			return nil, false, ErrInvalid
		}
		list[i].Used++
		inv = list[i]
		return list, true, nil
	})
	return inv, err
}

// Release gives back a use taken by Use.
func (s *Store) Release(id string) error {
	return s.update(func(list []Invite) ([]Invite, bool, error) {
		i := slices.IndexFunc(list, func(i Invite) bool { return i.ID == id })
		if i < 0 || list[i].Used == 0 {
			return list, false, nil
		}
		list[i].Used--
		return list, true, nil
	})
}

// URI is the link that carries the invite (XEP-0401 §4).
func URI(host, token string) string { return "xmpp:" + host + "?register;preauth=" + token }
