package storagetest

import (
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
