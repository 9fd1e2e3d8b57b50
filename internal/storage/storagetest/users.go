package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"parley/internal/storage"
)

// cred builds a credential whose bytes depend on seed, so tests can tell
// credential sets apart after a round trip.
func cred(hash string, seed byte) storage.Credential {
	fill := func(n int, off byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + off + byte(i)
		}
		return b
	}
	return storage.Credential{
		Hash:       hash,
		Salt:       fill(16, 0),
		Iterations: 4096 + int(seed),
		StoredKey:  fill(32, 1),
		ServerKey:  fill(32, 2),
	}
}

func credSet(seed byte) []storage.Credential {
	return []storage.Credential{cred("SHA-1", seed), cred("SHA-256", seed), cred("SHA-512", seed)}
}

// sortedCreds is what Get must return for creds: sorted by hash name.
func sortedCreds(creds []storage.Credential) []storage.Credential {
	out := slices.Clone(creds)
	sort.Slice(out, func(i, j int) bool { return out[i].Hash < out[j].Hash })
	return out
}

func credsEqual(a, b []storage.Credential) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Hash != y.Hash || x.Iterations != y.Iterations ||
			!bytes.Equal(x.Salt, y.Salt) || !bytes.Equal(x.StoredKey, y.StoredKey) || !bytes.Equal(x.ServerKey, y.ServerKey) {
			return false
		}
	}
	return true
}

func mustCreate(t *testing.T, u storage.Users, jid string, creds []storage.Credential) {
	t.Helper()
	if err := u.Create(t.Context(), storage.Account{JID: jid, Created: time.Now(), Credentials: creds}); err != nil {
		t.Fatalf("Create(%s): %v", jid, err)
	}
}

func mustGet(t *testing.T, u storage.Users, jid string) storage.Account {
	t.Helper()
	a, err := u.Get(t.Context(), jid)
	if err != nil {
		t.Fatalf("Get(%s): %v", jid, err)
	}
	return a
}

func runUsers(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		loc := time.FixedZone("UTC+5:30", 5*3600+1800)
		tests := []struct {
			name    string
			jid     string
			created time.Time
			creds   []storage.Credential
		}{
			{"three hashes unsorted", "alice@example.com", time.Date(2024, 2, 29, 23, 59, 59, 123456789, loc),
				[]storage.Credential{cred("SHA-512", 1), cred("SHA-1", 1), cred("SHA-256", 1)}},
			{"no credentials", "bob@example.com", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), nil},
			{"pre-1970 timestamp", "carol@example.org", time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC), credSet(2)},
			{"binary and empty bytes", "dave@example.org", time.Date(2030, 6, 1, 12, 0, 0, 1000, time.UTC),
				[]storage.Credential{
					{Hash: "SHA-256", Salt: []byte{0, 0xff, 0, '\'', '"', '\\'}, Iterations: 1, StoredKey: []byte{}, ServerKey: nil},
					{Hash: "SHA-1", Salt: nil, Iterations: 0, StoredKey: bytes.Repeat([]byte{0}, 20), ServerKey: []byte("\x00\x01")},
				}},
			{"unicode localpart", "ünïcødé@例え.jp", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), credSet(3)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if err := u.Create(t.Context(), storage.Account{JID: tc.jid, Created: tc.created, Credentials: tc.creds}); err != nil {
					t.Fatalf("Create: %v", err)
				}
				got := mustGet(t, u, tc.jid)
				if got.JID != tc.jid {
					t.Errorf("JID = %q, want %q", got.JID, tc.jid)
				}
				want := tc.created.UTC().Truncate(time.Microsecond)
				if !got.Created.Equal(want) || got.Created.Location() != time.UTC {
					t.Errorf("Created = %v (%v), want %v in UTC", got.Created, got.Created.Location(), want)
				}
				if !credsEqual(got.Credentials, sortedCreds(tc.creds)) {
					t.Errorf("Credentials = %+v, want %+v", got.Credentials, sortedCreds(tc.creds))
				}
			})
		}
	})

	t.Run("CreateZeroTimeUsesNow", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		before := time.Now().Add(-time.Second)
		if err := u.Create(t.Context(), storage.Account{JID: "zero@example.com"}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		after := time.Now().Add(time.Second)
		got := mustGet(t, u, "zero@example.com")
		if got.Created.Before(before) || got.Created.After(after) {
			t.Errorf("Created = %v, want between %v and %v", got.Created, before, after)
		}
	})

	t.Run("CreateDuplicate", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		mustCreate(t, u, "alice@example.com", credSet(1))
		err := u.Create(t.Context(), storage.Account{JID: "alice@example.com", Credentials: credSet(9)})
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second Create: err = %v, want ErrExists", err)
		}
		if got := mustGet(t, u, "alice@example.com"); !credsEqual(got.Credentials, credSet(1)) {
			t.Errorf("failed duplicate Create changed credentials to %+v", got.Credentials)
		}
	})

	t.Run("CreateInvalid", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		tests := []struct {
			name string
			a    storage.Account
		}{
			{"empty JID", storage.Account{JID: ""}},
			{"no localpart", storage.Account{JID: "example.com"}},
			{"empty localpart", storage.Account{JID: "@example.com"}},
			{"empty domain", storage.Account{JID: "alice@"}},
			{"full JID", storage.Account{JID: "alice@example.com/phone"}},
			{"two at signs", storage.Account{JID: "a@b@example.com"}},
			{"duplicate hash", storage.Account{JID: "dup@example.com", Credentials: []storage.Credential{cred("SHA-1", 1), cred("SHA-1", 2)}}},
			{"empty hash name", storage.Account{JID: "nohash@example.com", Credentials: []storage.Credential{{Salt: []byte{1}}}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := u.Create(t.Context(), tc.a)
				if err == nil || errors.Is(err, storage.ErrExists) {
					t.Fatalf("Create(%+v) err = %v, want a validation error", tc.a, err)
				}
				if _, err := u.Get(t.Context(), tc.a.JID); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("after rejected Create, Get err = %v, want ErrNotFound", err)
				}
			})
		}
		if n, err := u.Count(t.Context(), ""); err != nil || n != 0 {
			t.Errorf("Count after rejected creates = %d, %v; want 0", n, err)
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		mustCreate(t, u, "alice@example.com", credSet(1))
		for _, jid := range []string{"bob@example.com", "alice@example.org", "alice", "", "Alice@example.com"} {
			if _, err := u.Get(t.Context(), jid); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get(%q) err = %v, want ErrNotFound", jid, err)
			}
		}
	})

	t.Run("SetCredentials", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		mustCreate(t, u, "alice@example.com", credSet(1))
		mustCreate(t, u, "bob@example.com", credSet(2))
		steps := []struct {
			name  string
			creds []storage.Credential
		}{
			{"replace all", credSet(5)},
			{"fewer hashes", []storage.Credential{cred("SHA-256", 6)}},
			{"different hashes", []storage.Credential{cred("SHA-512", 7), cred("SHA-1", 7)}},
			{"none", nil},
			{"back to three", credSet(8)},
		}
		for _, st := range steps {
			if err := u.SetCredentials(t.Context(), "alice@example.com", st.creds); err != nil {
				t.Fatalf("%s: SetCredentials: %v", st.name, err)
			}
			if got := mustGet(t, u, "alice@example.com"); !credsEqual(got.Credentials, sortedCreds(st.creds)) {
				t.Errorf("%s: Credentials = %+v, want %+v", st.name, got.Credentials, sortedCreds(st.creds))
			}
		}
		if got := mustGet(t, u, "bob@example.com"); !credsEqual(got.Credentials, credSet(2)) {
			t.Errorf("other account's credentials changed to %+v", got.Credentials)
		}
	})

	t.Run("SetCredentialsErrors", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		mustCreate(t, u, "alice@example.com", credSet(1))
		err := u.SetCredentials(t.Context(), "nobody@example.com", credSet(2))
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetCredentials on missing account: err = %v, want ErrNotFound", err)
		}
		if _, err := u.Get(t.Context(), "nobody@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetCredentials on missing account created it: Get err = %v", err)
		}
		err = u.SetCredentials(t.Context(), "alice@example.com", []storage.Credential{cred("SHA-1", 3), cred("SHA-1", 4)})
		if err == nil {
			t.Fatal("SetCredentials with duplicate hash succeeded")
		}
		if got := mustGet(t, u, "alice@example.com"); !credsEqual(got.Credentials, credSet(1)) {
			t.Errorf("rejected SetCredentials changed credentials to %+v", got.Credentials)
		}
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		mustCreate(t, u, "alice@example.com", credSet(1))
		mustCreate(t, u, "bob@example.com", credSet(2))
		if err := u.Delete(t.Context(), "alice@example.com"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := u.Get(t.Context(), "alice@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		if err := u.Delete(t.Context(), "alice@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Delete: err = %v, want ErrNotFound", err)
		}
		// Re-creating the JID without credentials must not resurrect the
		// old ones: the cascade removed them.
		mustCreate(t, u, "alice@example.com", nil)
		if got := mustGet(t, u, "alice@example.com"); len(got.Credentials) != 0 {
			t.Errorf("credentials survived Delete: %+v", got.Credentials)
		}
		if got := mustGet(t, u, "bob@example.com"); !credsEqual(got.Credentials, credSet(2)) {
			t.Errorf("Delete touched another account: %+v", got.Credentials)
		}
	})

	t.Run("DeleteNotFound", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		if err := u.Delete(t.Context(), "nobody@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("ListAndCount", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		// Byte order, not locale order: upper case before lower case,
		// non-ASCII last, "." before letters.
		jids := []string{
			"zed@example.com", "alice@example.com", "Bob@example.com", "ärger@example.com",
			"a.b@example.com", "aa@example.com", "a@example.com",
			"alice@sub.example.com", "carol@example.co", "dave@example.org",
		}
		for _, j := range jids {
			mustCreate(t, u, j, nil)
		}
		byDomain := func(domain string) []string {
			var out []string
			for _, j := range jids {
				if d, _ := storage.DomainOf(j); domain == "" || d == domain {
					out = append(out, j)
				}
			}
			sort.Strings(out)
			return out
		}
		for _, domain := range []string{"", "example.com", "sub.example.com", "example.co", "example.org", "example.net", "com", "EXAMPLE.COM"} {
			want := byDomain(domain)
			got, err := u.List(t.Context(), domain)
			if err != nil {
				t.Fatalf("List(%q): %v", domain, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("List(%q) = %q, want %q", domain, got, want)
			}
			n, err := u.Count(t.Context(), domain)
			if err != nil {
				t.Fatalf("Count(%q): %v", domain, err)
			}
			if n != len(want) {
				t.Errorf("Count(%q) = %d, want %d", domain, n, len(want))
			}
		}
		if err := u.Delete(t.Context(), "aa@example.com"); err != nil {
			t.Fatal(err)
		}
		if n, err := u.Count(t.Context(), "example.com"); err != nil || n != len(byDomain("example.com"))-1 {
			t.Errorf("Count after Delete = %d, %v; want %d", n, err, len(byDomain("example.com"))-1)
		}
	})

	t.Run("EmptyStore", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		got, err := u.List(t.Context(), "")
		if err != nil || len(got) != 0 {
			t.Errorf("List on empty store = %q, %v", got, err)
		}
		if n, err := u.Count(t.Context(), ""); err != nil || n != 0 {
			t.Errorf("Count on empty store = %d, %v", n, err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		mustCreate(t, u, "alice@example.com", credSet(1))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"Create", func() error { return u.Create(ctx, storage.Account{JID: "bob@example.com"}) }},
			{"Get", func() error { _, err := u.Get(ctx, "alice@example.com"); return err }},
			{"SetCredentials", func() error { return u.SetCredentials(ctx, "alice@example.com", nil) }},
			{"Delete", func() error { return u.Delete(ctx, "alice@example.com") }},
			{"List", func() error { _, err := u.List(ctx, ""); return err }},
			{"Count", func() error { _, err := u.Count(ctx, ""); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with canceled context: err = %v, want context.Canceled", c.name, err)
			}
		}
		// Nothing may have happened.
		if got := mustGet(t, u, "alice@example.com"); !credsEqual(got.Credentials, credSet(1)) {
			t.Errorf("canceled calls changed alice: %+v", got.Credentials)
		}
		if _, err := u.Get(t.Context(), "bob@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("canceled Create stored bob: Get err = %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		const workers, perWorker = 8, 10
		mustCreate(t, u, "shared@example.com", credSet(0))
		var wg sync.WaitGroup
		errs := make(chan error, workers*perWorker*3)
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					jid := fmt.Sprintf("user%d-%d@example.com", w, i)
					if err := u.Create(context.Background(), storage.Account{JID: jid, Credentials: credSet(byte(w))}); err != nil {
						errs <- fmt.Errorf("Create(%s): %w", jid, err)
					}
					// Racing replacements of one account must each be
					// atomic: the final set is one writer's, never a mix.
					if err := u.SetCredentials(context.Background(), "shared@example.com", credSet(byte(w*perWorker+i))); err != nil {
						errs <- fmt.Errorf("SetCredentials: %w", err)
					}
					if _, err := u.Get(context.Background(), "shared@example.com"); err != nil {
						errs <- fmt.Errorf("Get: %w", err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n, err := u.Count(t.Context(), "example.com"); err != nil || n != workers*perWorker+1 {
			t.Errorf("Count = %d, %v; want %d", n, err, workers*perWorker+1)
		}
		got := mustGet(t, u, "shared@example.com")
		if len(got.Credentials) != 3 || !credsEqual(got.Credentials, credSet(got.Credentials[0].Salt[0])) {
			t.Errorf("shared account has a mixed credential set: %+v", got.Credentials)
		}
	})

	t.Run("ConcurrentDuplicateCreate", func(t *testing.T) {
		t.Parallel()
		u := open(t).Users()
		const racers = 8
		var wg sync.WaitGroup
		results := make(chan error, racers)
		for i := range racers {
			wg.Go(func() {
				results <- u.Create(context.Background(), storage.Account{JID: "race@example.com", Credentials: credSet(byte(i))})
			})
		}
		wg.Wait()
		close(results)
		won := 0
		for err := range results {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("racing Create: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d racing Creates succeeded, want exactly 1", won)
		}
	})

	t.Run("TwoInstances", func(t *testing.T) {
		t.Parallel()
		// Two stores on one database, as the server and the `parley user`
		// command are, writing at the same time.
		stores := []storage.Users{open(t).Users(), open(t).Users()}
		const perStore = 25
		mustCreate(t, stores[0], "shared@example.com", nil)
		var wg sync.WaitGroup
		errs := make(chan error, 2*2*perStore)
		for si, u := range stores {
			wg.Go(func() {
				for i := range perStore {
					jid := fmt.Sprintf("s%d-%d@example.com", si, i)
					if err := u.Create(context.Background(), storage.Account{JID: jid, Credentials: credSet(byte(i))}); err != nil {
						errs <- fmt.Errorf("store %d: Create(%s): %w", si, jid, err)
					}
					// A read-then-write transaction: the case that needs
					// the write lock from its start.
					if err := u.SetCredentials(context.Background(), "shared@example.com", credSet(byte(si*perStore+i))); err != nil {
						errs <- fmt.Errorf("store %d: SetCredentials: %w", si, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for si, u := range stores {
			if n, err := u.Count(t.Context(), ""); err != nil || n != 2*perStore+1 {
				t.Errorf("store %d sees Count = %d, %v; want %d", si, n, err, 2*perStore+1)
			}
		}
		// Each sees the other's writes, including later ones.
		if err := stores[1].Delete(t.Context(), "s0-0@example.com"); err != nil {
			t.Fatalf("Delete via second store: %v", err)
		}
		if _, err := stores[0].Get(t.Context(), "s0-0@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("first store still sees deleted account: err = %v", err)
		}
	})
}
