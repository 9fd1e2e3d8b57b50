package blocking

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"parley/internal/jid"
)

func TestBlocks(t *testing.T) {
	tests := []struct {
		name  string
		list  []string
		jid   string
		block bool
	}{
		{"empty list", nil, "bob@example.org", false},
		{"bare blocks itself", []string{"bob@example.org"}, "bob@example.org", true},
		{"bare blocks every resource", []string{"bob@example.org"}, "bob@example.org/phone", true},
		{"bare does not block the domain", []string{"bob@example.org"}, "example.org", false},
		{"bare does not block a neighbour", []string{"bob@example.org"}, "carol@example.org", false},
		{"full blocks itself", []string{"bob@example.org/phone"}, "bob@example.org/phone", true},
		{"full does not block another resource", []string{"bob@example.org/phone"}, "bob@example.org/laptop", false},
		{"full does not block the bare JID", []string{"bob@example.org/phone"}, "bob@example.org", false},
		{"domain blocks itself", []string{"evil.net"}, "evil.net", true},
		{"domain blocks its accounts", []string{"evil.net"}, "x@evil.net", true},
		{"domain blocks full JIDs", []string{"evil.net"}, "x@evil.net/r", true},
		{"domain blocks its resources", []string{"evil.net"}, "evil.net/r", true},
		{"domain blocks subdomains", []string{"evil.net"}, "x@muc.evil.net/r", true},
		{"domain blocks deep subdomains", []string{"evil.net"}, "a.b.evil.net", true},
		{"suffix is not a subdomain", []string{"evil.net"}, "notevil.net", false},
		{"parent is not blocked by a subdomain", []string{"muc.evil.net"}, "evil.net", false},
		{"domain/resource blocks itself", []string{"evil.net/bot"}, "evil.net/bot", true},
		{"domain/resource does not block the domain", []string{"evil.net/bot"}, "evil.net", false},
		{"domain/resource does not block an account's resource", []string{"evil.net/bot"}, "x@evil.net/bot", false},
		{"IP address blocks itself", []string{"10.0.0.1"}, "x@10.0.0.1", true},
		{"IP address has no parent domains", []string{"0.1"}, "x@10.0.0.1", false},
		{"canonical forms match", []string{"bob@example.org"}, "BOB@Example.ORG/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			for _, k := range tt.list {
				keys = append(keys, jid.MustParse(k).String())
			}
			if got := newBlocklist(keys).blocks(jid.MustParse(tt.jid)); got != tt.block {
				t.Errorf("%v blocks %s = %v, want %v", tt.list, tt.jid, got, tt.block)
			}
		})
	}
}

func TestCacheBound(t *testing.T) {
	a, b, c, d := jid.MustParse("a@x"), jid.MustParse("b@x"), jid.MustParse("c@x"), jid.MustParse("d@x")
	list := func(n int) *blocklist {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = string(rune('a'+i)) + "@y"
		}
		return newBlocklist(keys)
	}
	c6 := newCache(6)
	c6.add(a, list(0), c6.generation()) // weight 1
	c6.add(b, list(2), c6.generation()) // weight 3
	c6.add(c, list(1), c6.generation()) // weight 2: total 6
	if c6.len() != 3 {
		t.Fatalf("len = %d, want 3", c6.len())
	}
	c6.get(a)                           // a is now the most recently used
	c6.add(d, list(3), c6.generation()) // weight 4: b (least recent) and c must go
	for _, tc := range []struct {
		j    jid.JID
		want bool
	}{{a, true}, {b, false}, {c, false}, {d, true}} {
		if _, ok := c6.get(tc.j); ok != tc.want {
			t.Errorf("%s cached = %v, want %v", tc.j, ok, tc.want)
		}
	}
	if c6.weight != 5 {
		t.Errorf("weight = %d, want 5", c6.weight)
	}

	// A list heavier than the whole cache is not kept.
	c6.add(b, list(6), c6.generation())
	if _, ok := c6.get(b); ok {
		t.Error("an oversized list was cached")
	}

	// A list loaded while another changed may be stale: not kept.
	gen := c6.generation()
	c6.invalidate(c)
	c6.add(b, list(0), gen)
	if _, ok := c6.get(b); ok {
		t.Error("a list loaded before an invalidation was cached")
	}
	c6.invalidate(a)
	if _, ok := c6.get(a); ok || c6.weight != 4 {
		t.Errorf("after invalidate: cached %v, weight %d; want false, 4", ok, c6.weight)
	}
}

// BenchmarkBlocks: what checking one stanza against a block list costs,
// with JIDs in clear (before sealing) and as blind indexes (an HMAC per
// candidate address). An empty list costs nothing either way.
func BenchmarkBlocks(b *testing.B) {
	keys := []string{"spam.example", "mallory@evil.example", "eve@evil.example/laptop"}
	key := bytes.Repeat([]byte{1}, 32)
	index := func(s string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("alice@x\x00" + s))
		return hex.EncodeToString(m.Sum(nil))
	}
	blind := make([]string, len(keys))
	for i, k := range keys {
		blind[i] = index(k)
	}
	from := jid.MustParse("friend@chat.good.example/phone")
	for _, bc := range []struct {
		name string
		bl   *blocklist
	}{{"clear", newBlocklist(keys)}, {"blind", newBlindBlocklist(blind, index)}, {"empty", newBlindBlocklist(nil, index)}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if bc.bl.blocks(from) {
					b.Fatal("blocked")
				}
			}
		})
	}
	// A new sender each time: the memo never answers.
	b.Run("blind-new-sender", func(b *testing.B) {
		bl := newBlindBlocklist(blind, index)
		for b.Loop() {
			bl.mu.Lock()
			clear(bl.memo)
			bl.mu.Unlock()
			if bl.blocks(from) {
				b.Fatal("blocked")
			}
		}
	})
}
