// Package vault holds the per-user keys that seal a user's data at rest so
// that a copy of the server's disk does not open it (issue 16).
//
// Each account has a random 32-byte data key, stored only wrapped under a
// key derived (HKDF-SHA256) from the SCRAM ClientKey of each stored hash.
// The server learns a ClientKey only while the user logs in (recovered
// from the SCRAM proof, or computed from the password at PLAIN login), so
// it can unwrap the data key only then; the vault holds it in memory while
// the account has sessions plus a bounded grace, and wipes it after.
//
// Each account also has an X25519 mail-drop key pair: the public key is
// stored in clear, the private key sealed under the data key. What arrives
// while the user is away is sealed to the public key (ephemeral X25519,
// HKDF-SHA256, AES-256-GCM), which the server can write but not read back
// until the user logs in; callers reseal such blobs under the data key once
// it is held (OnUnlock, IsMailDrop).
package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"

	"parley/internal/seal"
	"parley/internal/storage"
)

var (
	// ErrLocked: the blob needs the user's key, which is not held (the
	// user is not logged in).
	ErrLocked = errors.New("vault: the user's key is not held (not logged in)")
	// ErrNoKey: the account has no keys yet (it never logged in, or
	// logged in only through a mechanism that cannot make them, since
	// sealing began). Callers keep data as before (under the server key);
	// it is sealed at the next login.
	ErrNoKey = errors.New("vault: the account has no key yet")
)

// Blob formats. They differ from internal/seal's versions (1 and 2) so a
// caller tells a vault blob from a record sealed under the server key by
// its first byte.
const (
	formatData     = 0x20 // 0x20 || seal blob under the data key
	formatMailDrop = 0x21 // 0x21 || public key id (4) || ephemeral public key (32) || salt (16) || AES-GCM ciphertext
	keyLen         = 32
	pubIDLen       = 4
	saltLen        = 16
)

// DefaultGrace is how long a key stays held after the account's last
// session ended when the caller gives none: about a stream-management
// resumption window.
const DefaultGrace = 5 * time.Minute

// Options configure a Vault.
type Options struct {
	// Grace is how long a key stays held after the last session ended
	// (or after a login that bound no session); DefaultGrace when zero.
	Grace  time.Duration
	Logger *slog.Logger
}

// Vault holds unwrapped keys of logged-in accounts. It is safe for
// concurrent use; Stop wipes every key and waits for the unlock jobs.
type Vault struct {
	keys  storage.Keys
	blind []byte
	macs  sync.Pool // HMAC-SHA256 states keyed with blind, reset for each use
	grace time.Duration
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	jobsDone *sync.Cond // signalled when jobs drops
	held     map[string]*entry
	pubs     map[string][]byte   // public keys, a bounded cache (they are not secret)
	drops    map[string]*dropKey // ephemeral agreements per recipient, reused briefly
	onUnlock []func(ctx context.Context, owner string)
	jobs     int
	stopped  bool
}

// entry is one account's state: its sessions and, while held, its keys.
type entry struct {
	refs   int
	data   []byte       // the data key; nil while locked
	sealer *seal.Sealer // AES-GCM under data, made once per unlock
	priv   []byte       // the mail-drop private key; nil while locked
	pubID  [pubIDLen]byte
	timer  *time.Timer
	// wrapped lists the hashes known to have a wrap of the held key,
	// so another login through one of them need not unwrap again.
	wrapped map[string]bool
}

// dropKey is an ephemeral X25519 agreement with one recipient's public
// key, reused for the messages sealed to them within dropKeyLife (each
// under its own key, derived with a random salt): one scalar
// multiplication per recipient and minute instead of two per message.
// The shared secret stays in memory that long, no longer than the
// messages' plaintext passed through anyway.
type dropKey struct {
	pub, ephPub, shared []byte
	expires             time.Time
}

const (
	dropKeyLife = time.Minute
	maxDropKeys = 4096
)

// maxPublicCache bounds the public key cache; past it the cache starts
// over (a look-up is one indexed read).
const maxPublicCache = 4096

// New returns a vault over keys; blindKey (32 bytes, a server key) keys
// the blind indexes.
func New(keys storage.Keys, blindKey []byte, opts Options) *Vault {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Vault{
		keys:   keys,
		blind:  append([]byte(nil), blindKey...),
		grace:  opts.Grace,
		log:    opts.Logger,
		ctx:    ctx,
		cancel: cancel,
		held:   map[string]*entry{},
		pubs:   map[string][]byte{},
		drops:  map[string]*dropKey{},
	}
	v.jobsDone = sync.NewCond(&v.mu)
	v.macs.New = func() any { return hmac.New(sha256.New, v.blind) }
	return v
}

// Stop cancels the unlock jobs, waits for them, stops every timer and
// wipes every key. The vault holds nothing after.
func (v *Vault) Stop() {
	v.cancel()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopped = true
	for v.jobs > 0 {
		v.jobsDone.Wait()
	}
	for owner, e := range v.held {
		e.wipe()
		delete(v.held, owner)
	}
	for owner, d := range v.drops {
		clear(d.shared)
		delete(v.drops, owner)
	}
}

// Settle waits until no unlock job runs (tests, and a clean shutdown
// order).
func (v *Vault) Settle() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.jobs > 0 {
		v.jobsDone.Wait()
	}
}

func (e *entry) wipe() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	clear(e.data)
	clear(e.priv)
	e.data, e.priv, e.sealer, e.wrapped = nil, nil, nil, nil
}

// OnUnlock registers f, run after an account's key becomes held, on a
// goroutine the vault owns, with a context cancelled at Stop: lazy
// resealing of what was sealed to the mail-drop or under the server key.
// Register before the server accepts logins.
func (v *Vault) OnUnlock(f func(ctx context.Context, owner string)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.onUnlock = append(v.onUnlock, f)
}

// Held reports whether owner's key is in memory.
func (v *Vault) Held(owner string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.held[owner]
	return e != nil && e.data != nil
}

// Acquire counts a session of owner: the key stays held while there is
// one. Call Release when it ends.
func (v *Vault) Acquire(owner string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return
	}
	e := v.held[owner]
	if e == nil {
		e = &entry{}
		v.held[owner] = e
	}
	e.refs++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// Release ends a session counted by Acquire; after the last one the key is
// wiped once the grace has passed without a new session.
func (v *Vault) Release(owner string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.held[owner]
	if e == nil || e.refs == 0 {
		return
	}
	e.refs--
	if e.refs == 0 {
		v.armLocked(owner, e)
	}
}

// armLocked starts the grace timer of an entry without sessions. v.mu is
// held.
func (v *Vault) armLocked(owner string, e *entry) {
	if e.timer != nil {
		e.timer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(v.grace, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		// A timer stopped too late still runs: only the current one
		// of an entry still without sessions wipes it.
		if cur := v.held[owner]; cur == e && e.timer == t && e.refs == 0 {
			e.wipe()
			delete(v.held, owner)
		}
	})
	e.timer = t
}

// Lock wipes owner's key now, whatever its sessions (account deleted,
// disabled, its password reset, or a test). It forgets the cached public
// key too: the account may get new keys from elsewhere (deleted and
// created again by `parley user`), and what arrives for it must not be
// sealed to the old ones.
func (v *Vault) Lock(owner string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.pubs, owner)
	// Dropped, not cleared: a concurrent Seal may be using it.
	delete(v.drops, owner)
	if e := v.held[owner]; e != nil {
		e.wipe()
		if e.refs == 0 {
			delete(v.held, owner)
		}
	}
}

// hold keeps owner's unwrapped keys (taking ownership of the slices) and
// starts the unlock jobs if the key was not held before.
func (v *Vault) hold(owner string, data, priv []byte, pub []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		clear(data)
		clear(priv)
		return
	}
	e := v.held[owner]
	if e == nil {
		e = &entry{}
		v.held[owner] = e
	}
	if e.data != nil && hmac.Equal(e.data, data) {
		clear(data)
		clear(priv)
		if e.refs == 0 {
			v.armLocked(owner, e)
		}
		return
	}
	s, err := seal.New(data)
	if err != nil { // only for a key of the wrong length
		v.log.Error("vault: holding a key", "account", owner, "err", err)
		return
	}
	clear(e.data)
	clear(e.priv)
	e.data, e.priv, e.sealer, e.wrapped = data, priv, s, map[string]bool{}
	e.pubID = publicID(pub)
	if e.refs == 0 {
		v.armLocked(owner, e)
	}
	for _, f := range v.onUnlock {
		v.jobs++
		go func() {
			defer func() {
				v.mu.Lock()
				v.jobs--
				v.jobsDone.Broadcast()
				v.mu.Unlock()
			}()
			f(v.ctx, owner)
		}()
	}
}

// heldWith reports whether owner's key is held and known to be wrapped
// for hash; if so it counts as a fresh unlock (the grace starts again
// when there is no session).
func (v *Vault) heldWith(owner, hash string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.held[owner]
	if e == nil || e.data == nil || !e.wrapped[hash] {
		return false
	}
	if e.refs == 0 {
		v.armLocked(owner, e)
	}
	return true
}

// markWrapped records that owner's held key has a wrap for hash.
func (v *Vault) markWrapped(owner, hash string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.held[owner]; e != nil && e.data != nil {
		e.wrapped[hash] = true
	}
}

// heldSealer returns the sealer of owner's data key, or ErrLocked.
func (v *Vault) heldSealer(owner string) (*seal.Sealer, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.held[owner]
	if e == nil || e.data == nil {
		return nil, ErrLocked
	}
	return e.sealer, nil
}

// heldKeys returns copies of owner's keys, or ErrLocked. Copies, so a
// wipe during a Seal or Open cannot race with their use; the caller clears
// them.
func (v *Vault) heldKeys(owner string) (data, priv []byte, pubID [pubIDLen]byte, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.held[owner]
	if e == nil || e.data == nil {
		return nil, nil, pubID, ErrLocked
	}
	return append([]byte(nil), e.data...), append([]byte(nil), e.priv...), e.pubID, nil
}

// Seal seals plain for owner (bare JID) bound to ad: under the data key
// when it is held, else to the owner's mail-drop public key (which needs
// no secret). ErrNoKey when the account has no keys.
func (v *Vault) Seal(ctx context.Context, owner string, plain, ad []byte) ([]byte, error) {
	if s, err := v.heldSealer(owner); err == nil {
		return sealData(s, owner, plain, ad), nil
	}
	pub, err := v.publicKey(ctx, owner)
	if err != nil {
		return nil, err
	}
	d, err := v.dropKey(owner, pub)
	if err != nil {
		return nil, err
	}
	return sealMailDrop(d, owner, plain, ad)
}

// dropKey returns the ephemeral agreement to seal to owner's public key
// with, made anew when there is none for that key or it expired.
func (v *Vault) dropKey(owner string, pub []byte) (*dropKey, error) {
	now := time.Now()
	v.mu.Lock()
	d := v.drops[owner]
	v.mu.Unlock()
	if d != nil && now.Before(d.expires) && bytes.Equal(d.pub, pub) {
		return d, nil
	}
	recipient, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("vault: mail-drop public key of %s: %w", owner, err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("vault: ephemeral key: %w", err)
	}
	shared, err := eph.ECDH(recipient)
	if err != nil {
		return nil, fmt.Errorf("vault: mail-drop key agreement: %w", err)
	}
	d = &dropKey{pub: pub, ephPub: eph.PublicKey().Bytes(), shared: shared, expires: now.Add(dropKeyLife)}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.drops) >= maxDropKeys {
		for o, old := range v.drops {
			if !now.Before(old.expires) {
				clear(old.shared)
				delete(v.drops, o)
			}
		}
	}
	if len(v.drops) < maxDropKeys {
		// The replaced one may be in use by a concurrent Seal: it is
		// dropped, not cleared; expired ones are cleared above.
		v.drops[owner] = d
	}
	return d, nil
}

// Open opens a blob made by Seal (either kind) for owner with the same ad;
// ErrLocked when the key is not held. A blob sealed under an older key of
// the account (before an admin reset) fails with seal.ErrWrongKey, an
// altered one with seal.ErrTampered.
func (v *Vault) Open(ctx context.Context, owner string, blob, ad []byte) ([]byte, error) {
	if !IsVault(blob) {
		return nil, fmt.Errorf("vault: not a vault blob: %w", seal.ErrTampered)
	}
	if blob[0] == formatData {
		s, err := v.heldSealer(owner)
		if err != nil {
			return nil, err
		}
		return openData(s, owner, blob, ad)
	}
	data, priv, pubID, err := v.heldKeys(owner)
	if err != nil {
		return nil, err
	}
	clear(data)
	defer clear(priv)
	return openMailDrop(priv, pubID, owner, blob, ad)
}

// IsMailDrop reports whether blob was sealed to the mail-drop public key,
// so a caller can reseal it under the data key once that is held.
func IsMailDrop(blob []byte) bool { return len(blob) > 0 && blob[0] == formatMailDrop }

// IsVault reports whether blob was made by Seal (either kind), as opposed
// to a record sealed under a server key by internal/seal.
func IsVault(blob []byte) bool {
	return len(blob) > 0 && (blob[0] == formatData || blob[0] == formatMailDrop)
}

// Blind is a keyed blind index (HMAC-SHA256 under a server key) of value
// in a purpose's domain, e.g. Blind("roster", contactBareJID): equal
// values give equal indexes, and without the server key nobody can tell
// which value one stands for, not even by trying candidates.
func (v *Vault) Blind(purpose, value string) []byte {
	m := v.macs.Get().(hash.Hash)
	defer v.macs.Put(m)
	m.Reset()
	m.Write(seal.AD("parley blind index", purpose, value))
	return m.Sum(nil)
}

// publicKey returns owner's mail-drop public key, from the cache or the
// store.
func (v *Vault) publicKey(ctx context.Context, owner string) ([]byte, error) {
	v.mu.Lock()
	pub, ok := v.pubs[owner]
	v.mu.Unlock()
	if ok {
		return pub, nil
	}
	k, err := v.keys.Get(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("vault: public key of %s: %w", owner, err)
	}
	v.cachePublic(owner, k.Public)
	return k.Public, nil
}

func (v *Vault) cachePublic(owner string, pub []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.pubs) >= maxPublicCache {
		clear(v.pubs)
	}
	if pub == nil {
		delete(v.pubs, owner)
		return
	}
	v.pubs[owner] = pub
}

func randomKey() []byte {
	k := make([]byte, keyLen)
	_, _ = rand.Read(k) // never fails (crypto/rand crashes instead)
	return k
}

// sealData seals under the data key, bound to the owner and ad.
func sealData(s *seal.Sealer, owner string, plain, ad []byte) []byte {
	blob := s.Seal(plain, seal.AD("parley vault data", owner, string(ad)))
	return append([]byte{formatData}, blob...)
}

func openData(s *seal.Sealer, owner string, blob, ad []byte) ([]byte, error) {
	plain, err := s.Open(blob[1:], seal.AD("parley vault data", owner, string(ad)))
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return plain, nil
}

func publicID(pub []byte) (id [pubIDLen]byte) {
	sum := sha256.Sum256(append([]byte("parley vault public key id"), pub...))
	copy(id[:], sum[:])
	return id
}

// zeroNonce is the nonce of every mail-drop blob: each is sealed under its
// own key (a random salt goes into its derivation), used once.
var zeroNonce [12]byte

// messageAEAD derives one message's AES-256-GCM key from the X25519
// shared secret, bound to both public keys (as HPKE's KEM context is) and
// to the message's salt.
func messageAEAD(shared, eph, pub, salt []byte) (cipher.AEAD, error) {
	ctx := make([]byte, 0, len(eph)+len(pub)+len(salt))
	ctx = append(append(append(ctx, eph...), pub...), salt...)
	k, err := hkdf.Key(sha256.New, shared, ctx, "parley vault mail-drop v1", keyLen)
	if err != nil {
		return nil, fmt.Errorf("vault: HKDF: %w", err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealMailDrop seals to the recipient of d: ephemeral-static X25519
// (HPKE-style), HKDF-SHA256 with a fresh salt per message, AES-256-GCM.
func sealMailDrop(d *dropKey, owner string, plain, ad []byte) ([]byte, error) {
	var salt [saltLen]byte
	_, _ = rand.Read(salt[:]) // never fails (crypto/rand crashes instead)
	aead, err := messageAEAD(d.shared, d.ephPub, d.pub, salt[:])
	if err != nil {
		return nil, err
	}
	id := publicID(d.pub)
	out := make([]byte, 0, 1+pubIDLen+len(d.ephPub)+saltLen+len(plain)+aead.Overhead())
	out = append(out, formatMailDrop)
	out = append(out, id[:]...)
	out = append(out, d.ephPub...)
	out = append(out, salt[:]...)
	return aead.Seal(out, zeroNonce[:], plain, seal.AD("parley vault mail-drop", owner, string(ad))), nil
}

func openMailDrop(priv []byte, pubID [pubIDLen]byte, owner string, blob, ad []byte) ([]byte, error) {
	head := 1 + pubIDLen + keyLen + saltLen
	if len(blob) < head+16 {
		return nil, fmt.Errorf("vault: %w", seal.ErrTampered)
	}
	if !hmac.Equal(blob[1:1+pubIDLen], pubID[:]) {
		return nil, fmt.Errorf("vault: %w", seal.ErrWrongKey)
	}
	key, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("vault: mail-drop private key of %s: %w", owner, err)
	}
	ephPub := blob[1+pubIDLen : 1+pubIDLen+keyLen]
	eph, err := ecdh.X25519().NewPublicKey(ephPub)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", seal.ErrTampered)
	}
	shared, err := key.ECDH(eph)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", seal.ErrTampered)
	}
	defer clear(shared)
	aead, err := messageAEAD(shared, ephPub, key.PublicKey().Bytes(), blob[1+pubIDLen+keyLen:head])
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, zeroNonce[:], blob[head:], seal.AD("parley vault mail-drop", owner, string(ad)))
	if err != nil {
		return nil, fmt.Errorf("vault: %w", seal.ErrTampered)
	}
	return plain, nil
}
