package vault

import (
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"

	"parley/internal/sasl"
	"parley/internal/seal"
	"parley/internal/storage"
)

// wrapAD binds a wrapped data key to its owner and mechanism, so a wrap
// copied to another account or hash does not open.
func wrapAD(owner, hash string) []byte { return seal.AD("parley vault wrap", owner, hash) }

// kek derives the key-wrapping key of one hash from its ClientKey.
func kek(clientKey []byte, owner, hash string) (*seal.Sealer, error) {
	k, err := hkdf.Key(sha256.New, clientKey, []byte("parley vault kek v1"), string(wrapAD(owner, hash)), keyLen)
	if err != nil {
		return nil, fmt.Errorf("vault: HKDF: %w", err)
	}
	defer clear(k)
	return seal.New(k)
}

func wrap(clientKey, data []byte, owner, hash string) ([]byte, error) {
	s, err := kek(clientKey, owner, hash)
	if err != nil {
		return nil, err
	}
	return s.Seal(data, wrapAD(owner, hash)), nil
}

func unwrap(clientKey, wrapped []byte, owner, hash string) ([]byte, error) {
	s, err := kek(clientKey, owner, hash)
	if err != nil {
		return nil, err
	}
	data, err := s.Open(wrapped, wrapAD(owner, hash))
	if err != nil {
		return nil, fmt.Errorf("vault: unwrapping the key of %s (%s): %w", owner, hash, err)
	}
	return data, nil
}

func privateAD(owner string) []byte { return seal.AD("parley vault mail-drop private key", owner) }

// openPrivate unseals the mail-drop private key with the data key.
func openPrivate(data []byte, owner string, k storage.UserKeys) ([]byte, error) {
	s, err := seal.New(data)
	if err != nil {
		return nil, err
	}
	priv, err := s.Open(k.Private, privateAD(owner))
	if err != nil {
		return nil, fmt.Errorf("vault: mail-drop private key of %s: %w", owner, err)
	}
	return priv, nil
}

// clientKeys derives the ClientKey of password for every credential.
func clientKeys(password string, creds []storage.Credential) (map[string][]byte, error) {
	out := make(map[string][]byte, len(creds))
	for _, c := range creds {
		ck, err := sasl.ClientKey(c.Hash, password, c.Salt, c.Iterations)
		if err != nil {
			wipeAll(out)
			return nil, err
		}
		out[c.Hash] = ck
	}
	return out, nil
}

func wipeAll(m map[string][]byte) {
	for _, b := range m {
		clear(b)
	}
}

// create makes new keys for owner, wrapped for every ClientKey given, and
// stores them, replacing any. It returns the data and private keys.
func (v *Vault) create(ctx context.Context, owner string, cks map[string][]byte) (data, priv, pub []byte, err error) {
	data = randomKey()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vault: mail-drop key: %w", err)
	}
	priv = key.Bytes()
	pub = key.PublicKey().Bytes()
	s, err := seal.New(data)
	if err != nil {
		return nil, nil, nil, err
	}
	uk := storage.UserKeys{Public: pub, Private: s.Seal(priv, privateAD(owner)), Wraps: map[string][]byte{}}
	for hash, ck := range cks {
		if uk.Wraps[hash], err = wrap(ck, data, owner, hash); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := v.keys.Put(ctx, owner, uk); err != nil {
		clear(data)
		clear(priv)
		return nil, nil, nil, fmt.Errorf("vault: storing the keys of %s: %w", owner, err)
	}
	v.cachePublic(owner, pub)
	return data, priv, pub, nil
}

// keysOrCreate returns owner's stored keys; an account without any gets
// new ones, wrapped under cks and held (made is true then).
func (v *Vault) keysOrCreate(ctx context.Context, owner string, cks map[string][]byte) (k storage.UserKeys, made bool, err error) {
	k, err = v.keys.Get(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) {
		data, priv, pub, err := v.create(ctx, owner, cks)
		if err != nil {
			return k, false, err
		}
		v.hold(owner, data, priv, pub)
		return k, true, nil
	}
	if err != nil {
		return k, false, fmt.Errorf("vault: keys of %s: %w", owner, err)
	}
	// Keys replaced by another process (`parley user passwd` with no
	// server answering on the control socket) reach the cache at the
	// latest at the next login or Lock.
	v.cachePublic(owner, k.Public)
	return k, false, nil
}

// UnlockClientKey is called after a successful SCRAM login with the hash
// and the ClientKey the exchange recovered (the caller wipes it after).
// It unwraps and holds the account's keys. An account without keys gets
// them now, wrapped for this hash only (the others are added at the next
// login that knows the password); an account whose keys have no wrap for
// this hash stays locked (a new key would make the sealed data
// unreadable), unless another session holds the key: then the wrap is
// added.
func (v *Vault) UnlockClientKey(ctx context.Context, owner, hash string, clientKey []byte) (err error) {
	// The SCRAM proof showed the ClientKey is the account's: with the key
	// held and wrapped for this hash there is nothing to unwrap.
	if v.heldWith(owner, hash) {
		return nil
	}
	defer func() {
		if err == nil {
			v.markWrapped(owner, hash)
		}
	}()
	k, made, err := v.keysOrCreate(ctx, owner, map[string][]byte{hash: clientKey})
	if err != nil || made {
		return err
	}
	wrapped, ok := k.Wraps[hash]
	if !ok {
		return v.addWrap(ctx, owner, hash, clientKey)
	}
	data, err := unwrap(clientKey, wrapped, owner, hash)
	if err != nil {
		return err
	}
	priv, err := openPrivate(data, owner, k)
	if err != nil {
		clear(data)
		return err
	}
	v.hold(owner, data, priv, k.Public)
	return nil
}

// addWrap wraps the held key of owner under clientKey, for a login
// through a hash the key had no wrap for: the key is known (another
// session unlocked it), so the next login through that hash unlocks.
// ErrLocked when it is not held: the login runs locked.
func (v *Vault) addWrap(ctx context.Context, owner, hash string, clientKey []byte) error {
	data, priv, _, err := v.heldKeys(owner)
	if err != nil {
		return fmt.Errorf("vault: %s has no key wrap for %s: %w", owner, hash, ErrLocked)
	}
	clear(priv)
	defer clear(data)
	w, err := wrap(clientKey, data, owner, hash)
	if err != nil {
		return err
	}
	if err := v.keys.PutWrap(ctx, owner, hash, w); err != nil {
		return fmt.Errorf("vault: adding the %s wrap of %s: %w", hash, owner, err)
	}
	return nil
}

// NeedsPassword reports whether owner's key lacks a wrap for one of creds
// (or the account has no key yet), which only a login that knows the
// password (UnlockPassword) can mend. On a storage error it says yes:
// UnlockPassword then reports it.
func (v *Vault) NeedsPassword(ctx context.Context, owner string, creds []storage.Credential) bool {
	if len(creds) == 0 {
		return false
	}
	k, err := v.keys.Get(ctx, owner)
	if err != nil {
		return true
	}
	for _, c := range creds {
		if _, ok := k.Wraps[c.Hash]; !ok {
			return true
		}
	}
	return false
}

// UnlockPassword is called when the password of owner was just verified
// (PLAIN login): it unlocks with the ClientKey of a stored credential that
// has a wrap and adds the wraps that are missing (an account imported with
// one hash) or no longer open. An account without keys gets them, wrapped
// for every credential. It derives (PBKDF2) only the ClientKeys it needs:
// one, once every hash has its wrap.
func (v *Vault) UnlockPassword(ctx context.Context, owner, password string, creds []storage.Credential) error {
	if len(creds) == 0 {
		return nil // anonymous accounts have nothing to wrap under
	}
	k, err := v.keys.Get(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) {
		cks, err := clientKeys(password, creds)
		if err != nil {
			return err
		}
		defer wipeAll(cks)
		_, _, err = v.keysOrCreate(ctx, owner, cks)
		return err
	}
	if err != nil {
		return fmt.Errorf("vault: keys of %s: %w", owner, err)
	}
	v.cachePublic(owner, k.Public)
	var (
		data    []byte
		failed  = map[string]bool{}
		lastErr = fmt.Errorf("vault: %s has no key wrap for its credentials: %w", owner, ErrLocked)
	)
	for _, c := range creds {
		w, ok := k.Wraps[c.Hash]
		if !ok {
			continue
		}
		ck, err := sasl.ClientKey(c.Hash, password, c.Salt, c.Iterations)
		if err == nil {
			data, err = unwrap(ck, w, owner, c.Hash)
			clear(ck)
		}
		if err == nil {
			break
		}
		failed[c.Hash] = true
		lastErr = err
	}
	if data == nil {
		return lastErr
	}
	priv, err := openPrivate(data, owner, k)
	if err != nil {
		clear(data)
		return err
	}
	for _, c := range creds {
		if _, ok := k.Wraps[c.Hash]; ok && !failed[c.Hash] {
			continue
		}
		ck, err := sasl.ClientKey(c.Hash, password, c.Salt, c.Iterations)
		if err == nil {
			var nw []byte
			nw, err = wrap(ck, data, owner, c.Hash)
			clear(ck)
			if err == nil {
				err = v.keys.PutWrap(ctx, owner, c.Hash, nw)
			}
		}
		if err != nil {
			v.log.Warn("vault: adding a key wrap", "account", owner, "hash", c.Hash, "err", err)
		}
	}
	v.hold(owner, data, priv, k.Public)
	return nil
}

// SetPassword is called after owner's credentials were replaced by creds,
// made from password. When the key is held (the user changes their own
// password, or an admin does while they are logged in) the same data key
// is wrapped again under the new credentials. Otherwise the old key
// cannot be recovered: the account gets new keys and lost reports that
// data sealed under the old ones can no longer be read.
func (v *Vault) SetPassword(ctx context.Context, owner, password string, creds []storage.Credential) (lost bool, err error) {
	cks, err := clientKeys(password, creds)
	if err != nil {
		return false, err
	}
	defer wipeAll(cks)
	data, priv, _, heldErr := v.heldKeys(owner)
	if heldErr == nil {
		defer clear(data)
		defer clear(priv)
		k, err := v.keys.Get(ctx, owner)
		if err != nil {
			return false, fmt.Errorf("vault: keys of %s: %w", owner, err)
		}
		k.Wraps = make(map[string][]byte, len(cks))
		for hash, ck := range cks {
			if k.Wraps[hash], err = wrap(ck, data, owner, hash); err != nil {
				return false, err
			}
		}
		if err := v.keys.Put(ctx, owner, k); err != nil {
			return false, fmt.Errorf("vault: rewrapping the key of %s: %w", owner, err)
		}
		return false, nil
	}
	_, err = v.keys.Get(ctx, owner)
	switch {
	case err == nil:
		lost = true
	case !errors.Is(err, storage.ErrNotFound):
		return false, fmt.Errorf("vault: keys of %s: %w", owner, err)
	}
	ndata, npriv, _, err := v.create(ctx, owner, cks)
	if err != nil {
		return false, err
	}
	clear(ndata)
	clear(npriv)
	v.Lock(owner) // a key held from before the reset no longer matches
	return lost, nil
}

// Wraps lists the hashes owner's data key is wrapped for (tests, checks).
func (v *Vault) Wraps(ctx context.Context, owner string) ([]string, error) {
	k, err := v.keys.Get(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(k.Wraps)), nil
}
