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
