package modtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/storage"
)

// Store is an in-memory storage.Store with the semantics the drivers
// document (ErrNotFound, sorted lists, validated keys). Offline is not
// faked: a module test that needs it should not use this package.
type Store struct {
	users  *Users
	roster *Roster
	kv     *KV
	// archive is made on first use (see Archive), so NewStore need not
	// know about it.
	archiveOnce sync.Once
	archive     *Archive
	pubsub      *PubSub
	// muc is made on first use, like archive.
	mucOnce sync.Once
	muc     *MUC
}

var _ storage.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	users := &Users{m: map[string]storage.Account{}}
	return &Store{users: users, roster: &Roster{m: map[string]map[string]storage.RosterItem{}}, kv: &KV{m: map[kvKey][]byte{}, users: users},
		pubsub: newPubSub(users)}
}

func (s *Store) Users() storage.Users       { return s.users }
func (s *Store) Roster() storage.Roster     { return s.roster }
func (s *Store) Offline() storage.Offline   { panic("modtest: Offline is not in the fake store") }
func (s *Store) KV() storage.KV             { return s.kv }
func (s *Store) Ping(context.Context) error { return nil }
func (s *Store) Close() error               { return nil }
func (s *Store) FakeKV() *KV                { return s.kv }
func (s *Store) FakeRoster() *Roster        { return s.roster }
func (s *Store) FakeUsers() *Users          { return s.users }

// Users is the in-memory account repository.
type Users struct {
	mu sync.Mutex
	m  map[string]storage.Account
}

func (u *Users) Create(_ context.Context, a storage.Account) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[a.JID]; ok {
		return fmt.Errorf("modtest: create %s: %w", a.JID, storage.ErrExists)
	}
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	u.m[a.JID] = a
	return nil
}

func (u *Users) Get(_ context.Context, bare string) (storage.Account, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, ok := u.m[bare]
	if !ok {
		return storage.Account{}, fmt.Errorf("modtest: get %s: %w", bare, storage.ErrNotFound)
	}
	return a, nil
}

func (u *Users) SetCredentials(_ context.Context, bare string, creds []storage.Credential) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, ok := u.m[bare]
	if !ok {
		return fmt.Errorf("modtest: set credentials %s: %w", bare, storage.ErrNotFound)
	}
	a.Credentials = slices.Clone(creds)
	u.m[bare] = a
	return nil
}

func (u *Users) Delete(_ context.Context, bare string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[bare]; !ok {
		return fmt.Errorf("modtest: delete %s: %w", bare, storage.ErrNotFound)
	}
	delete(u.m, bare)
	return nil
}

func (u *Users) List(_ context.Context, domain string) ([]string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for j := range u.m {
		if domain == "" || domainOf(j) == domain {
			out = append(out, j)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (u *Users) Count(ctx context.Context, domain string) (int, error) {
	l, err := u.List(ctx, domain)
	return len(l), err
}

func domainOf(bare string) string {
	if _, d, ok := strings.Cut(bare, "@"); ok {
		return d
	}
	return bare
}

// Roster is the in-memory roster repository; pending requests are kept in
// order of arrival.
type Roster struct {
	mu      sync.Mutex
	m       map[string]map[string]storage.RosterItem
	ver     map[string]int64
	pending map[string][]storage.Pending
}

func (r *Roster) Items(_ context.Context, owner string) ([]storage.RosterItem, int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []storage.RosterItem
	for _, it := range r.m[owner] {
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b storage.RosterItem) int { return strings.Compare(a.Contact, b.Contact) })
	return out, r.ver[owner], nil
}

func (r *Roster) Item(_ context.Context, owner, contact string) (storage.RosterItem, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	it, ok := r.m[owner][contact]
	if !ok {
		return storage.RosterItem{}, fmt.Errorf("modtest: roster item %s of %s: %w", contact, owner, storage.ErrNotFound)
	}
	return it, nil
}

func (r *Roster) Put(_ context.Context, owner string, item storage.RosterItem, max int) (int64, error) {
	item, err := storage.NormaliseRosterItem(item)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[owner] == nil {
		r.m[owner] = map[string]storage.RosterItem{}
	}
	if _, exists := r.m[owner][item.Contact]; !exists && max > 0 && len(r.m[owner]) >= max {
		return 0, fmt.Errorf("modtest: roster of %s: %w", owner, storage.ErrLimit)
	}
	r.m[owner][item.Contact] = item
	return r.bump(owner), nil
}

func (r *Roster) bump(owner string) int64 {
	if r.ver == nil {
		r.ver = map[string]int64{}
	}
	r.ver[owner]++
	return r.ver[owner]
}

func (r *Roster) Delete(_ context.Context, owner, contact string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[owner][contact]; !ok {
		return 0, fmt.Errorf("modtest: roster delete %s of %s: %w", contact, owner, storage.ErrNotFound)
	}
	delete(r.m[owner], contact)
	return r.bump(owner), nil
}

func (r *Roster) Count(_ context.Context, owner string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m[owner]), nil
}

func (r *Roster) AddPendingIn(_ context.Context, owner string, p storage.Pending) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string][]storage.Pending{}
	}
	l := slices.DeleteFunc(r.pending[owner], func(q storage.Pending) bool { return q.Contact == p.Contact })
	r.pending[owner] = append(l, p)
	return nil
}

func (r *Roster) PendingIn(_ context.Context, owner string) ([]storage.Pending, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pending[owner]), nil
}

func (r *Roster) DeletePendingIn(_ context.Context, owner, contact string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[owner] = slices.DeleteFunc(r.pending[owner], func(q storage.Pending) bool { return q.Contact == contact })
	return nil
}

type kvKey struct{ owner, ns, key string }

// KV is the in-memory key-value store. Like the SQL drivers, whose rows
// hang off the accounts table, Put, List and DeleteAll fail with
// ErrNotFound for an owner without an account. SetFail makes every call
// fail, to test how a module copes with a broken database; Calls counts
// the calls, to test caching.
type KV struct {
	mu    sync.Mutex
	m     map[kvKey][]byte
	users *Users
	fail  error
	calls int
}

// SetFail makes every later call fail with err (nil heals the store).
func (k *KV) SetFail(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = err
}

// Calls returns how many calls the store has served so far.
func (k *KV) Calls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

func (k *KV) check(owner, ns, key string) error {
	k.calls++
	if k.fail != nil {
		return k.fail
	}
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateNamespace(ns); err != nil {
		return err
	}
	return storage.ValidateKey(key)
}

// owned fails with ErrNotFound when owner has no account.
func (k *KV) owned(owner string) error {
	k.users.mu.Lock()
	defer k.users.mu.Unlock()
	if _, ok := k.users.m[owner]; !ok {
		return fmt.Errorf("modtest: no account %s: %w", owner, storage.ErrNotFound)
	}
	return nil
}

func (k *KV) Get(_ context.Context, owner, ns, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(owner, ns, key); err != nil {
		return nil, err
	}
	v, ok := k.m[kvKey{owner, ns, key}]
	if !ok {
		return nil, fmt.Errorf("modtest: get %s %q of %s: %w", ns, key, owner, storage.ErrNotFound)
	}
	return slices.Clone(v), nil
}

func (k *KV) Put(_ context.Context, owner, ns, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(owner, ns, key); err != nil {
		return err
	}
	if err := storage.ValidateBlob("KV value", value); err != nil {
		return err
	}
	if err := k.owned(owner); err != nil {
		return err
	}
	k.m[kvKey{owner, ns, key}] = append([]byte{}, value...)
	return nil
}

func (k *KV) Delete(_ context.Context, owner, ns, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(owner, ns, key); err != nil {
		return err
	}
	if _, ok := k.m[kvKey{owner, ns, key}]; !ok {
		return fmt.Errorf("modtest: delete %s %q of %s: %w", ns, key, owner, storage.ErrNotFound)
	}
	delete(k.m, kvKey{owner, ns, key})
	return nil
}

func (k *KV) List(_ context.Context, owner, ns string) ([]storage.KVEntry, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(owner, ns, ""); err != nil {
		return nil, err
	}
	if err := k.owned(owner); err != nil {
		return nil, err
	}
	var out []storage.KVEntry
	for kk, v := range k.m {
		if kk.owner == owner && kk.ns == ns {
			out = append(out, storage.KVEntry{Key: kk.key, Value: slices.Clone(v)})
		}
	}
	slices.SortFunc(out, func(a, b storage.KVEntry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (k *KV) DeleteAll(_ context.Context, owner, ns string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(owner, ns, ""); err != nil {
		return err
	}
	if err := k.owned(owner); err != nil {
		return err
	}
	for kk := range k.m {
		if kk.owner == owner && kk.ns == ns {
			delete(k.m, kk)
		}
	}
	return nil
}
