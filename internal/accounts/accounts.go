// Package accounts manages user accounts on top of storage: it turns a
// password into SCRAM credentials for every supported hash and forgets
// the password, and it answers the SASL layer's credential look-ups. The
// server and the `parley user` command share it, so both write accounts
// the same way.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"parley/internal/jid"
	"parley/internal/sasl"
	"parley/internal/storage"
	"parley/internal/vault"
)

// Service is the account manager of one store.
type Service struct {
	store      storage.Store
	vault      *vault.Vault
	iterations int
	now        func() time.Time
}

// New returns the account manager of store. v (nil: no sealing) gets the
// account's keys wrapped whenever a password is known (creation, change,
// PLAIN login) and unlocked at every login.
func New(store storage.Store, v *vault.Vault) *Service {
	return &Service{store: store, vault: v, iterations: sasl.DefaultIterations, now: time.Now}
}

// ErrBadPassword is returned for a password PRECIS refuses (e.g. empty).
var ErrBadPassword = errors.New("accounts: the password is empty or has characters that are not allowed")

func (s *Service) credentials(password string) ([]storage.Credential, error) {
	if password == "" {
		return nil, ErrBadPassword
	}
	out := make([]storage.Credential, 0, len(sasl.Hashes))
	for _, h := range sasl.Hashes {
		c, err := sasl.NewCredentials(h, password, s.iterations)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadPassword, err)
		}
		out = append(out, storage.Credential{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	return out, nil
}

func checkAccountJID(j jid.JID) error {
	if j.Local() == "" || !j.IsBare() {
		return fmt.Errorf("accounts: %q is not a bare JID of the form user@domain", j.String())
	}
	return nil
}

// Create adds an account; storage.ErrExists when it is taken.
func (s *Service) Create(ctx context.Context, bare jid.JID, password string) error {
	if err := checkAccountJID(bare); err != nil {
		return err
	}
	creds, err := s.credentials(password)
	if err != nil {
		return err
	}
	if err := s.store.Users().Create(ctx, storage.Account{JID: bare.String(), Created: s.now().UTC(), Credentials: creds}); err != nil {
		return fmt.Errorf("accounts: creating %s: %w", bare, err)
	}
	if s.vault != nil {
		if _, err := s.vault.SetPassword(ctx, bare.String(), password, creds); err != nil {
			return fmt.Errorf("accounts: keys of %s: %w", bare, err)
		}
	}
	return nil
}

// SetPassword replaces every credential of the account.
func (s *Service) SetPassword(ctx context.Context, bare jid.JID, password string) error {
	_, err := s.ChangePassword(ctx, bare, password)
	return err
}

// ChangePassword replaces every credential of the account and rewraps
// its data key under them. When the key is not held (the user is not
// logged in: an admin reset) the account gets new keys and sealedLost
// reports that what was sealed under the old ones can no longer be read.
func (s *Service) ChangePassword(ctx context.Context, bare jid.JID, password string) (sealedLost bool, err error) {
	if err := checkAccountJID(bare); err != nil {
		return false, err
	}
	creds, err := s.credentials(password)
	if err != nil {
		return false, err
	}
	if err := s.store.Users().SetCredentials(ctx, bare.String(), creds); err != nil {
		return false, fmt.Errorf("accounts: setting the password of %s: %w", bare, err)
	}
	if s.vault == nil {
		return false, nil
	}
	sealedLost, err = s.vault.SetPassword(ctx, bare.String(), password, creds)
	if err != nil {
		return sealedLost, fmt.Errorf("accounts: keys of %s: %w", bare, err)
	}
	return sealedLost, nil
}

// Delete removes the account and, through the store, its data.
func (s *Service) Delete(ctx context.Context, bare jid.JID) error {
	if err := s.store.Users().Delete(ctx, bare.String()); err != nil {
		return fmt.Errorf("accounts: deleting %s: %w", bare, err)
	}
	if s.vault != nil {
		s.vault.Lock(bare.String())
	}
	return nil
}

// List returns the bare JIDs of a domain ("" for all).
func (s *Service) List(ctx context.Context, domain string) ([]string, error) {
	return s.store.Users().List(ctx, domain)
}

// Exists reports whether bare is an account.
func (s *Service) Exists(ctx context.Context, bare jid.JID) (bool, error) {
	_, err := s.store.Users().Get(ctx, bare.String())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	}
	return false, err
}

// Lookup gives the SASL layer the credentials of localpart@domain for one
// hash, or sasl.ErrUnknownUser.
func (s *Service) Lookup(ctx context.Context, domain, localpart, hash string) (sasl.Credentials, error) {
	bare, err := jid.New(localpart, domain, "")
	if err != nil {
		return sasl.Credentials{}, sasl.ErrUnknownUser
	}
	a, err := s.store.Users().Get(ctx, bare.String())
	if errors.Is(err, storage.ErrNotFound) {
		return sasl.Credentials{}, sasl.ErrUnknownUser
	}
	if err != nil {
		return sasl.Credentials{}, fmt.Errorf("accounts: looking up %s: %w", bare, err)
	}
	for _, c := range a.Credentials {
		if c.Hash == hash {
			return sasl.Credentials{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
		}
	}
	// An account without credentials for this hash cannot log in with
	// it; to the client that is the same as an unknown user.
	return sasl.Credentials{}, sasl.ErrUnknownUser
}

// CreateAnonymous makes a throwaway account with no credentials at all
// (XEP-0175): nobody can ever log in to it again.
func (s *Service) CreateAnonymous(ctx context.Context, bare jid.JID) error {
	if err := s.store.Users().Create(ctx, storage.Account{JID: bare.String(), Created: s.now().UTC()}); err != nil {
		return fmt.Errorf("accounts: creating anonymous %s: %w", bare, err)
	}
	return nil
}

// UnlockClientKey unlocks the account's keys with the ClientKey a SCRAM
// login recovered. Failing to unlock does not fail the login: the user
// runs locked (what is sealed for them waits in the mail-drop), which the
// error says.
func (s *Service) UnlockClientKey(ctx context.Context, bare jid.JID, hash string, clientKey []byte) error {
	if s.vault == nil {
		return nil
	}
	return s.vault.UnlockClientKey(ctx, bare.String(), hash, clientKey)
}

// PasswordVerified is called at a PLAIN login with the password just
// checked: the account gains the credentials it lacks
// (CompleteCredentials), and when its key lacks a wrap for one of them
// (or it has no key yet) the key is unlocked from the password and
// wrapped for every hash. Otherwise the login unlocks it with the
// ClientKey PLAIN already computed (UnlockClientKey), without another
// PBKDF2. Failures leave the account locked, not the login failed.
func (s *Service) PasswordVerified(ctx context.Context, domain, localpart, password string) error {
	s.CompleteCredentials(ctx, domain, localpart, password)
	if s.vault == nil {
		return nil
	}
	bare, err := jid.New(localpart, domain, "")
	if err != nil {
		return err
	}
	a, err := s.store.Users().Get(ctx, bare.String())
	if err != nil {
		return fmt.Errorf("accounts: looking up %s: %w", bare, err)
	}
	if !s.vault.NeedsPassword(ctx, bare.String(), a.Credentials) {
		return nil
	}
	return s.vault.UnlockPassword(ctx, bare.String(), password, a.Credentials)
}

// CompleteCredentials gives localpart@domain credentials for every hash
// it lacks, from a password the caller has just verified. Accounts
// imported from a server that kept only SCRAM-SHA-1 (Prosody's default)
// thus gain SHA-256 and SHA-512 at their first PLAIN login. Failures are
// left for the next login: the login itself has already succeeded.
func (s *Service) CompleteCredentials(ctx context.Context, domain, localpart, password string) {
	bare, err := jid.New(localpart, domain, "")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a, err := s.store.Users().Get(ctx, bare.String())
	if err != nil || len(a.Credentials) == 0 {
		return // anonymous accounts have none and get none
	}
	have := map[string]bool{}
	for _, c := range a.Credentials {
		have[c.Hash] = true
	}
	creds := a.Credentials
	for _, h := range sasl.Hashes {
		if have[h] {
			continue
		}
		c, err := sasl.NewCredentials(h, password, s.iterations)
		if err != nil {
			return
		}
		creds = append(creds, storage.Credential{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	if len(creds) == len(a.Credentials) {
		return
	}
	_ = s.store.Users().SetCredentials(ctx, bare.String(), creds)
}
