package accounts

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/storage"
)

// The disabled flag lives in the account's own key-value space, so it
// goes with the account when that is deleted and needs no table.
const (
	nsAccount   = "urn:parley:account"
	keyDisabled = "disabled"
)

// Disabled reports whether an admin disabled bare's account.
func (s *Service) Disabled(ctx context.Context, bare jid.JID) (bool, error) {
	_, err := s.store.KV().Get(ctx, bare.String(), nsAccount, keyDisabled)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("accounts: reading whether %s is disabled: %w", bare, err)
}

// SetDisabled disables or enables bare's account; a disabled account
// cannot log in (its sessions are the caller's to end) and its key is
// forgotten at once, not after the grace: nothing more is sealed under it
// until the account is enabled and the user logs in. ErrNotFound when the
// account does not exist.
func (s *Service) SetDisabled(ctx context.Context, bare jid.JID, disabled bool) error {
	if _, err := s.store.Users().Get(ctx, bare.String()); err != nil {
		return err
	}
	var err error
	if disabled {
		err = s.store.KV().Put(ctx, bare.String(), nsAccount, keyDisabled, []byte("1"))
	} else if err = s.store.KV().Delete(ctx, bare.String(), nsAccount, keyDisabled); errors.Is(err, storage.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("accounts: marking %s disabled=%v: %w", bare, disabled, err)
	}
	if disabled && s.vault != nil {
		s.vault.Lock(bare.String())
	}
	return nil
}
