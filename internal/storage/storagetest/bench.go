package storagetest

import (
	"context"
	"fmt"
	"testing"

	"parley/internal/storage"
)

// BenchmarkGet measures Users.Get, which every login performs, on a store
// holding a few thousand accounts so index lookups are realistic.
func BenchmarkGet(b *testing.B, s storage.Store) {
	u := s.Users()
	jids := make([]string, 2000)
	for i := range jids {
		jids[i] = fmt.Sprintf("user%d@example.com", i)
		if err := u.Create(b.Context(), storage.Account{JID: jids[i], Credentials: credSet(byte(i))}); err != nil {
			b.Fatalf("Create(%s): %v", jids[i], err)
		}
	}
	b.Run("Serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := u.Get(b.Context(), jids[i%len(jids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := u.Get(b.Context(), jids[i%len(jids)]); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
}

// BenchmarkOfflinePush measures Offline.Push of a typical sealed message
// with a limit, the path every message to an offline user takes.
func BenchmarkOfflinePush(b *testing.B, s storage.Store) {
	const owners = 100
	jids := make([]string, owners)
	for i := range jids {
		jids[i] = fmt.Sprintf("user%d@example.com", i)
		if err := s.Users().Create(b.Context(), storage.Account{JID: jids[i]}); err != nil {
			b.Fatalf("Create(%s): %v", jids[i], err)
		}
	}
	data := make([]byte, 1024)
	o := s.Offline()
	b.Run("Serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := o.Push(b.Context(), jids[i%owners], data, 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("SerialWithLimit", func(b *testing.B) {
		// Room for everything: the measured cost is the count, not ErrLimit.
		i := 0
		for b.Loop() {
			if _, err := o.Push(b.Context(), jids[i%owners], data, 1<<30); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := o.Push(b.Context(), jids[i%owners], data, 0); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
}

// BenchmarkKVGet measures KV.Get of a vCard-sized value among a few
// thousand entries.
func BenchmarkKVGet(b *testing.B, s storage.Store) {
	const owners = 500
	jids := make([]string, owners)
	value := make([]byte, 2048)
	for i := range jids {
		jids[i] = fmt.Sprintf("user%d@example.com", i)
		if err := s.Users().Create(b.Context(), storage.Account{JID: jids[i]}); err != nil {
			b.Fatalf("Create(%s): %v", jids[i], err)
		}
		for _, ns := range []string{"vcard-temp", "jabber:iq:private", "urn:xmpp:blocking"} {
			if err := s.KV().Put(b.Context(), jids[i], ns, "", value); err != nil {
				b.Fatal(err)
			}
		}
	}
	kv := s.KV()
	b.Run("Serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := kv.Get(b.Context(), jids[i%owners], "vcard-temp", ""); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := kv.Get(b.Context(), jids[i%owners], "vcard-temp", ""); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
}

// BenchmarkArchive measures the archive path: AppendBatch as the archive
// module's writer calls it (one transaction of many owners' rows), and the
// query a client makes when it opens a conversation (the last page with one
// contact) and when it pages back through it.
func BenchmarkArchive(b *testing.B, s storage.Store) {
	const (
		owners = 200
		batch  = 256
		seeded = 500 // messages per owner before the query benchmarks
	)
	jids := make([]string, owners)
	for i := range jids {
		jids[i] = fmt.Sprintf("user%d@example.com", i)
		if err := s.Users().Create(b.Context(), storage.Account{JID: jids[i]}); err != nil {
			b.Fatalf("Create(%s): %v", jids[i], err)
		}
	}
	a := s.Archive()
	data := make([]byte, 300) // a sealed chat message
	next := 0
	entries := func(n int) []storage.ArchiveEntry {
		out := make([]storage.ArchiveEntry, n)
		for i := range out {
			next++
			out[i] = storage.ArchiveEntry{Owner: jids[next%owners], Message: storage.ArchiveMessage{
				ID:       fmt.Sprintf("id-%d", next),
				With:     jids[(next+1)%owners] + "/phone",
				Outgoing: next%2 == 0,
				Data:     data,
			}}
		}
		return out
	}
	b.Run("AppendBatch", func(b *testing.B) {
		for b.Loop() {
			if err := a.AppendBatch(b.Context(), entries(batch)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
	})
	for next < owners*seeded {
		if err := a.AppendBatch(b.Context(), entries(4096)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("QueryLastPage", func(b *testing.B) {
		i := 0
		for b.Loop() {
			o := jids[i%owners]
			with := storage.BareOf(jids[(i+1)%owners])
			if _, err := a.Query(b.Context(), o, storage.ArchiveQuery{With: with, Last: true, Max: 50}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("QueryPageBack", func(b *testing.B) {
		// Page backwards from the middle of one owner's archive, as a
		// client scrolling up does: a cursor lookup, the count, the page.
		o := jids[1]
		mid, err := a.Query(b.Context(), o, storage.ArchiveQuery{Max: seeded / 2})
		if err != nil || len(mid.Messages) == 0 {
			b.Fatalf("Query: %v (%d messages)", err, len(mid.Messages))
		}
		before := mid.Messages[len(mid.Messages)-1].ID
		for b.Loop() {
			if _, err := a.Query(b.Context(), o, storage.ArchiveQuery{Before: before, Max: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Benchmarks runs every benchmark of this package, each on a fresh store
// opened at a new location newDB returns, so a driver's test file needs
// one benchmark function.
func Benchmarks(b *testing.B, newDB func(testing.TB) string, open func(ctx context.Context, location string) (storage.Store, error)) {
	for _, bm := range []struct {
		name string
		run  func(*testing.B, storage.Store)
	}{
		{"UsersGet", BenchmarkGet},
		{"OfflinePush", BenchmarkOfflinePush},
		{"KVGet", BenchmarkKVGet},
		{"Archive", BenchmarkArchive},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s, err := open(b.Context(), newDB(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bm.run(b, s)
		})
	}
}

// Driver adapts a driver's Open, which returns its concrete store, to what
// the helpers here take, without putting a typed nil in the interface when
// Open fails.
func Driver[S Migratable](open func(ctx context.Context, location string) (S, error)) func(ctx context.Context, location string) (Migratable, error) {
	return func(ctx context.Context, location string) (Migratable, error) {
		s, err := open(ctx, location)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}
