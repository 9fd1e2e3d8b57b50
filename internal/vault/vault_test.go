package vault

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"parley/internal/sasl"
	"parley/internal/seal"
	"parley/internal/storage"
	"parley/internal/storage/sqlite"
)

const owner = "juliet@example.org"

type fixture struct {
	t     testing.TB
	store storage.Store
	v     *Vault
	creds []storage.Credential
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	st, err := sqlite.OpenMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, store: st, creds: credentials(t, "secret")}
	if err := st.Users().Create(context.Background(), storage.Account{JID: owner, Credentials: f.creds}); err != nil {
		t.Fatal(err)
	}
	f.v = New(st.Keys(), bytes.Repeat([]byte{7}, 32), opts)
	t.Cleanup(f.v.Stop)
	return f
}

func credentials(t testing.TB, password string) []storage.Credential {
	t.Helper()
	var out []storage.Credential
	for _, h := range sasl.Hashes {
		c, err := sasl.NewCredentials(h, password, 4096)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storage.Credential{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	return out
}

func (f *fixture) clientKey(hash, password string) []byte {
	f.t.Helper()
	for _, c := range f.creds {
		if c.Hash == hash {
			ck, err := sasl.ClientKey(c.Hash, password, c.Salt, c.Iterations)
			if err != nil {
				f.t.Fatal(err)
			}
			return ck
		}
	}
	f.t.Fatalf("no %s credential", hash)
	return nil
}

func (f *fixture) keys() storage.UserKeys {
	f.t.Helper()
	k, err := f.store.Keys().Get(context.Background(), owner)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

func TestUnlockEachHash(t *testing.T) {
	ctx := context.Background()
	for _, hash := range sasl.Hashes {
		t.Run(hash, func(t *testing.T) {
			f := newFixture(t, Options{})
			if _, err := f.v.Seal(ctx, owner, []byte("x"), nil); !errors.Is(err, ErrNoKey) {
				t.Fatalf("Seal before any key = %v, want ErrNoKey", err)
			}
			// The first login makes the keys, wrapped for its hash only.
			if err := f.v.UnlockClientKey(ctx, owner, hash, f.clientKey(hash, "secret")); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.v.Wraps(ctx, owner); !slices.Equal(got, []string{hash}) {
				t.Fatalf("wraps = %v, want [%s]", got, hash)
			}
			blob, err := f.v.Seal(ctx, owner, []byte("hello"), []byte("ad"))
			if err != nil || IsMailDrop(blob) || !IsVault(blob) {
				t.Fatalf("Seal = %x, %v; want a data-key blob", blob, err)
			}
			f.v.Lock(owner)
			if f.v.Held(owner) {
				t.Fatal("held after Lock")
			}
			if _, err := f.v.Open(ctx, owner, blob, []byte("ad")); !errors.Is(err, ErrLocked) {
				t.Fatalf("Open while locked = %v, want ErrLocked", err)
			}
			// The next login of the same hash unwraps the same key.
			if err := f.v.UnlockClientKey(ctx, owner, hash, f.clientKey(hash, "secret")); err != nil {
				t.Fatal(err)
			}
			if got, err := f.v.Open(ctx, owner, blob, []byte("ad")); err != nil || string(got) != "hello" {
				t.Fatalf("Open = %q, %v", got, err)
			}
		})
	}
}

func TestWrongClientKeyStaysLocked(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	before := f.keys()
	f.v.Lock(owner)
	err := f.v.UnlockClientKey(ctx, owner, "SHA-256", f.clientKey("SHA-256", "not the secret"))
	if !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("unlock with a wrong ClientKey = %v, want seal.ErrWrongKey", err)
	}
	if f.v.Held(owner) {
		t.Fatal("held after a wrong key")
	}
	if err := f.v.UnlockPassword(ctx, owner, "not the secret", f.creds); err == nil {
		t.Fatal("unlock with a wrong password worked")
	}
	if after := f.keys(); !bytes.Equal(before.Public, after.Public) || !bytes.Equal(before.Wraps["SHA-1"], after.Wraps["SHA-1"]) {
		t.Fatal("a failed unlock replaced the keys")
	}
}

// An account whose keys lack a wrap for the hash a client logs in with
// (imported, first login through SHA-1) runs locked: a new key would lose
// what is sealed. The next password login adds the missing wraps.
func TestMissingWrapRunsLockedUntilPassword(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-1", f.clientKey("SHA-1", "secret")); err != nil {
		t.Fatal(err)
	}
	blob, _ := f.v.Seal(ctx, owner, []byte("kept"), nil)
	pub := f.keys().Public
	f.v.Lock(owner)
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-512", f.clientKey("SHA-512", "secret")); !errors.Is(err, ErrLocked) {
		t.Fatalf("unlock without a wrap = %v, want ErrLocked", err)
	}
	if !bytes.Equal(f.keys().Public, pub) {
		t.Fatal("a login without a wrap made new keys")
	}
	// While another session holds the key, a login through the hash
	// without a wrap adds it.
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-1", f.clientKey("SHA-1", "secret")); err != nil {
		t.Fatal(err)
	}
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-256", f.clientKey("SHA-256", "secret")); err != nil {
		t.Fatalf("a login without a wrap while the key is held = %v", err)
	}
	if got, _ := f.v.Wraps(ctx, owner); !slices.Equal(got, []string{"SHA-1", "SHA-256"}) {
		t.Fatalf("wraps = %v, want SHA-1 and SHA-256", got)
	}
	f.v.Lock(owner)
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.v.Wraps(ctx, owner); !slices.Equal(got, sasl.Hashes) {
		t.Fatalf("wraps after a password login = %v, want all", got)
	}
	f.v.Lock(owner)
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-512", f.clientKey("SHA-512", "secret")); err != nil {
		t.Fatal(err)
	}
	if got, err := f.v.Open(ctx, owner, blob, nil); err != nil || string(got) != "kept" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	blob, _ := f.v.Seal(ctx, owner, []byte("survives"), nil)

	// The user changes it while logged in: same data key, new wraps.
	f.creds = credentials(t, "new secret")
	if lost, err := f.v.SetPassword(ctx, owner, "new secret", f.creds); err != nil || lost {
		t.Fatalf("SetPassword while held = %v, %v", lost, err)
	}
	f.v.Lock(owner)
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-256", f.clientKey("SHA-256", "secret")); err == nil {
		t.Fatal("the old password still unwraps")
	}
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-256", f.clientKey("SHA-256", "new secret")); err != nil {
		t.Fatal(err)
	}
	if got, err := f.v.Open(ctx, owner, blob, nil); err != nil || string(got) != "survives" {
		t.Fatalf("Open after a password change = %q, %v", got, err)
	}

	// An admin resets it while the user is away: new keys, data lost.
	f.v.Lock(owner)
	f.creds = credentials(t, "reset")
	if lost, err := f.v.SetPassword(ctx, owner, "reset", f.creds); err != nil || !lost {
		t.Fatalf("SetPassword while locked = %v, %v; want lost", lost, err)
	}
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-1", f.clientKey("SHA-1", "reset")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Open(ctx, owner, blob, nil); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("Open of data under the old key = %v, want seal.ErrWrongKey", err)
	}
}

func TestMailDrop(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	f.v.Lock(owner)
	ad := seal.AD("offline", "42")
	blob, err := f.v.Seal(ctx, owner, []byte("while away"), ad)
	if err != nil || !IsMailDrop(blob) {
		t.Fatalf("Seal while locked = %x, %v; want a mail-drop blob", blob, err)
	}
	if bytes.Contains(blob, []byte("while away")) {
		t.Fatal("plaintext in the blob")
	}
	if _, err := f.v.Open(ctx, owner, blob, ad); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while locked = %v, want ErrLocked", err)
	}
	if err := f.v.UnlockClientKey(ctx, owner, "SHA-256", f.clientKey("SHA-256", "secret")); err != nil {
		t.Fatal(err)
	}
	if got, err := f.v.Open(ctx, owner, blob, ad); err != nil || string(got) != "while away" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Bound to its additional data and its owner; altered bytes fail.
	if _, err := f.v.Open(ctx, owner, blob, seal.AD("offline", "43")); !errors.Is(err, seal.ErrTampered) {
		t.Fatalf("Open with another ad = %v", err)
	}
	other := "romeo@example.org"
	if err := f.store.Users().Create(ctx, storage.Account{JID: other, Credentials: f.creds}); err != nil {
		t.Fatal(err)
	}
	if err := f.v.UnlockPassword(ctx, other, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Open(ctx, other, blob, ad); err == nil {
		t.Fatal("another account opened the blob")
	}
	bad := slices.Clone(blob)
	bad[len(bad)-1] ^= 1
	if _, err := f.v.Open(ctx, owner, bad, ad); !errors.Is(err, seal.ErrTampered) {
		t.Fatalf("Open of an altered blob = %v", err)
	}
}

func TestDataKeyADBinding(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	blob, _ := f.v.Seal(ctx, owner, []byte("bound"), []byte("row 1"))
	if _, err := f.v.Open(ctx, owner, blob, []byte("row 2")); !errors.Is(err, seal.ErrTampered) {
		t.Fatalf("Open with another ad = %v, want seal.ErrTampered", err)
	}
	if _, err := f.v.Open(ctx, owner, []byte{2, 1, 2, 3}, nil); err == nil {
		t.Fatal("a server-key record opened as a vault blob")
	}
}

func TestGraceWipes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{Grace: 20 * time.Millisecond})
	f.v.Acquire(owner)
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	f.v.mu.Lock()
	data := f.v.held[owner].data
	f.v.mu.Unlock()
	if bytes.Equal(data, make([]byte, keyLen)) {
		t.Fatal("no key held")
	}
	// With a session the grace does not run.
	time.Sleep(60 * time.Millisecond)
	if !f.v.Held(owner) {
		t.Fatal("key wiped while a session is open")
	}
	f.v.Release(owner)
	deadline := time.Now().Add(5 * time.Second)
	for f.v.Held(owner) {
		if time.Now().After(deadline) {
			t.Fatal("key still held long after the grace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bytes.Equal(data, make([]byte, keyLen)) {
		t.Fatal("the key's bytes were not zeroed")
	}
}

func TestOnUnlockAndStop(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	var (
		mu     sync.Mutex
		owners []string
	)
	release := make(chan struct{})
	f.v.OnUnlock(func(ctx context.Context, o string) {
		mu.Lock()
		owners = append(owners, o)
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done(): // Stop cancels a job that would run on
		}
	})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	close(release)
	f.v.Settle()
	// A second unlock of a key already held starts no job.
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	f.v.Settle()
	mu.Lock()
	if !slices.Equal(owners, []string{owner}) {
		t.Fatalf("jobs ran for %v", owners)
	}
	mu.Unlock()
	f.v.mu.Lock()
	data := f.v.held[owner].data
	f.v.mu.Unlock()
	f.v.Stop()
	if f.v.Held(owner) || !bytes.Equal(data, make([]byte, keyLen)) {
		t.Fatal("Stop left a key")
	}
}

func TestBlind(t *testing.T) {
	f := newFixture(t, Options{})
	a := f.v.Blind("archive with", "romeo@example.net")
	if !bytes.Equal(a, f.v.Blind("archive with", "romeo@example.net")) {
		t.Fatal("blind index not deterministic")
	}
	if bytes.Equal(a, f.v.Blind("roster", "romeo@example.net")) || bytes.Equal(a, f.v.Blind("archive with", "romeo@example.net/x")) {
		t.Fatal("blind index does not separate purposes or values")
	}
	other := New(f.store.Keys(), bytes.Repeat([]byte{8}, 32), Options{})
	defer other.Stop()
	if bytes.Equal(a, other.Blind("archive with", "romeo@example.net")) {
		t.Fatal("blind index does not depend on the key")
	}
}

// TestLockForgetsPublicKey: keys replaced by another process (an account
// deleted and created again by `parley user` while the server runs)
// reach this vault once it locks the account: what it seals for the user
// after is to the new mail-drop key, not to the one it had cached.
func TestLockForgetsPublicKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	if err := f.v.UnlockPassword(ctx, owner, "secret", f.creds); err != nil {
		t.Fatal(err)
	}
	f.v.Lock(owner)
	if _, err := f.v.Seal(ctx, owner, []byte("caches the public key"), nil); err != nil {
		t.Fatal(err)
	}
	other := New(f.store.Keys(), nil, Options{})
	defer other.Stop()
	f.creds = credentials(t, "again")
	if lost, err := other.SetPassword(ctx, owner, "again", f.creds); err != nil || !lost {
		t.Fatalf("the other process's reset = %v, %v", lost, err)
	}
	f.v.Lock(owner)
	blob, err := f.v.Seal(ctx, owner, []byte("after"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.v.UnlockPassword(ctx, owner, "again", f.creds); err != nil {
		t.Fatal(err)
	}
	if got, err := f.v.Open(ctx, owner, blob, nil); err != nil || string(got) != "after" {
		t.Fatalf("what was sealed after the keys were replaced = %q, %v", got, err)
	}
}
