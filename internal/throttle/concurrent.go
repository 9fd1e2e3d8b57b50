package throttle

import (
	"net/netip"
	"sync"
)

// Concurrent bounds how many of something are in progress at once per
// key, e.g. unauthenticated connections per source address. Memory is
// what is in progress: a key is forgotten when its count returns to 0.
type Concurrent struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

// NewConcurrent allows max at once per key; 0 or less means no limit.
func NewConcurrent(max int) *Concurrent {
	return &Concurrent{max: max, n: make(map[string]int)}
}

// SetMax changes the limit (a reload); what is in progress stays, and
// counts against the new limit, since counting goes on without one.
func (c *Concurrent) SetMax(max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
}

// Acquire counts one more for key and reports whether that was within the
// limit; only an Acquire that returned true is Released.
func (c *Concurrent) Acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

// Release ends one for key.
func (c *Concurrent) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}

// Len is the number of keys with something in progress.
func (c *Concurrent) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// AddressKey is what per-address limits count by: an IPv4 address as it
// is, an IPv6 address by its /64, which one subscriber usually holds
// whole and could otherwise use to make each attempt look like a new
// address.
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Unmap().Is4() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}
