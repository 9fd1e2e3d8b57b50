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
	// Admin makes each account the invite creates an admin (kept in
	// AdminsFile, beside the config's admins).
	Admin bool `json:"admin,omitempty"`
	// Revoked invites are kept (as used-up and expired ones are) for
	// Remember after they expire, so that their link can say it is gone
	// rather than unknown.
	Revoked bool `json:"revoked,omitempty"`
}

// Spec is what an invite is made with.
type Spec struct {
	Host    string
	Uses    int
	TTL     time.Duration
	Contact string // "" = none
	Admin   bool
}

// Remember is how long an invite that can no longer be used is kept
// after its expiry, to answer its link with "gone".
const Remember = 30 * 24 * time.Hour

// usable says whether the invite can still create an account.
func (i Invite) usable(now time.Time) bool {
	return !i.Revoked && i.Used < i.Uses && now.Before(i.Expires)
}

// Why says why an invite can no longer be used.
func (i Invite) Why(now time.Time) string {
	switch {
	case i.Revoked:
		return "it was withdrawn"
	case i.Used >= i.Uses:
		return "it has been used"
	case !now.Before(i.Expires):
		return "it has expired"
	}
	return ""
}

// Errors of Use, Lookup and Revoke.
var (
	ErrInvalid  = errors.New("the invite is unknown, used up or expired")
	ErrGone     = errors.New("the invite was used up, expired or withdrawn")
	ErrNotFound = errors.New("no invite with that id")
)

// Store is the invites file of one data directory, and the file of the
// admins that invites made.
type Store struct {
	path   string
	admins adminCache
}

func Open(dataDir string) *Store {
	return &Store{path: filepath.Join(dataDir, FileName), admins: adminCache{path: filepath.Join(dataDir, AdminsFile)}}
}

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// update runs fn on the invites under the lock and writes them back
// when fn reports a change.
func (s *Store) update(fn func([]Invite) ([]Invite, bool, error)) error {
	return updateJSON(s.path, fn)
}

// updateJSON runs fn on the list in the JSON file at path under an
// exclusive lock (processes too) and writes it back, whole, when fn
// reports a change.
func updateJSON[T any](path string, fn func([]T) ([]T, bool, error)) error {
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("invites: locking %s: %w", path, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	var list []T
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("invites: %w", err)
	default:
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("invites: %s is damaged: %w", path, err)
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
	tmp := path + ".part"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	return nil
}

// prune drops what can never be used again and was kept for Remember.
func prune(list []Invite, now time.Time) []Invite {
	return slices.DeleteFunc(list, func(i Invite) bool { return !i.usable(now) && now.After(i.Expires.Add(Remember)) })
}

// Create makes an invite and returns its token, which is shown once.
func (s *Store) Create(spec Spec, now time.Time) (string, Invite, error) {
	if spec.Uses < 1 || spec.TTL <= 0 {
		return "", Invite{}, errors.New("invites: an invite needs at least one use and a positive lifetime")
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", Invite{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	h := hash(token)
	inv := Invite{ID: h[:10], Hash: h, Host: spec.Host, Uses: spec.Uses, Expires: now.Add(spec.TTL).UTC(),
		Contact: spec.Contact, Admin: spec.Admin, Created: now.UTC()}
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
		for _, i := range list {
			if i.usable(now) {
				out = append(out, i)
			}
		}
		return list, len(list) != n, nil
	})
	return out, err
}

// Revoke withdraws the usable invite with id.
func (s *Store) Revoke(id string, now time.Time) error {
	return s.update(func(list []Invite) ([]Invite, bool, error) {
		i := slices.IndexFunc(list, func(i Invite) bool { return i.ID == id && i.usable(now) })
		if i < 0 {
			return nil, false, ErrNotFound
		}
		list[i].Revoked = true
		return list, true, nil
	})
}

// find looks a valid token up for host.
func find(list []Invite, token, host string, now time.Time) int {
	h := hash(token)
	return slices.IndexFunc(list, func(i Invite) bool {
		return i.Hash == h && i.Host == host && i.usable(now)
	})
}

// Lookup finds token's invite for any host, for its landing page: the
// invite and nil while it is usable, the invite and ErrGone for a while
// after it stopped being (see Remember), else ErrInvalid.
func (s *Store) Lookup(token string, now time.Time) (Invite, error) {
	h := hash(token)
	var inv Invite
	err := s.update(func(list []Invite) ([]Invite, bool, error) {
		i := slices.IndexFunc(list, func(i Invite) bool { return i.Hash == h })
		if i < 0 {
			return nil, false, ErrInvalid
		}
		inv = list[i]
		if !inv.usable(now) {
			return nil, false, ErrGone
		}
		return nil, false, nil
	})
	return inv, err
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

// PageURL is the invite's landing page under base (the HTTPS listener's
// https://host:port).
func PageURL(base, token string) string { return base + PagePath + token }

// PagePath is where the landing pages are served.
const PagePath = "/invite/"
