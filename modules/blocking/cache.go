package blocking

import (
	"container/list"
	"net"
	"strings"
	"sync"

	"parley/internal/jid"
)

// blocklist is one user's blocked JIDs, in canonical string form or, for
// a sealed list, as their blind indexes (index maps a JID to its entry).
// Its set is never changed after it is built, so filters read it without
// a lock; only the memo of a blind list takes one.
type blocklist struct {
	set   map[string]struct{}
	index func(string) string // nil: the set holds the JIDs themselves

	// memo keeps recent answers of a blind list by address: an HMAC per
	// candidate address costs microseconds per stanza, and a
	// conversation brings the same sender again and again.
	mu   sync.Mutex
	memo map[jid.JID]bool
}

// memoSize bounds a list's memo; past it the memo starts over.
const memoSize = 256

func newBlocklist(keys []string) *blocklist {
	b := &blocklist{set: make(map[string]struct{}, len(keys))}
	for _, k := range keys {
		b.set[k] = struct{}{}
	}
	return b
}

// newBlindBlocklist is a list of blind indexes, which blocks enforces
// without anyone's key: a blocklist holds while its owner is away.
func newBlindBlocklist(indexes []string, index func(string) string) *blocklist {
	b := newBlocklist(indexes)
	b.index = index
	return b
}

func (b *blocklist) has(s string) bool {
	if b.index != nil {
		s = b.index(s)
	}
	_, ok := b.set[s]
	return ok
}

// blocks applies the matching rules of XEP-0191 §4 (those of XEP-0016):
// a full JID matches only itself, a bare JID all of its resources, a
// domain/resource only that resource of the domain, and a domain matches
// itself, every address at it and every address at its subdomains.
func (b *blocklist) blocks(j jid.JID) bool {
	if len(b.set) == 0 || j.IsZero() {
		return false
	}
	if b.index == nil {
		return b.match(j)
	}
	b.mu.Lock()
	blocked, ok := b.memo[j]
	b.mu.Unlock()
	if ok {
		return blocked
	}
	blocked = b.match(j)
	b.mu.Lock()
	switch {
	case b.memo == nil:
		b.memo = map[jid.JID]bool{}
	case len(b.memo) >= memoSize:
		clear(b.memo)
	}
	b.memo[j] = blocked
	b.mu.Unlock()
	return blocked
}

func (b *blocklist) match(j jid.JID) bool {
	if j.Local() != "" {
		if j.Resource() != "" && b.has(j.String()) {
			return true
		}
		if b.has(j.Bare().String()) {
			return true
		}
	} else if j.Resource() != "" && b.has(j.Domain()+"/"+j.Resource()) {
		return true
	}
	d := j.Domain()
	if b.has(d) {
		return true
	}
	if strings.HasPrefix(d, "[") || net.ParseIP(d) != nil {
		return false // an IP address has no subdomains
	}
	for {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return false
		}
		d = d[i+1:]
		if b.has(d) {
			return true
		}
	}
}

// cacheWeight bounds the cache: a user's entry weighs one plus the number
// of JIDs in the blocklist, so the bound holds about that many strings
// (some megabytes) however the lists are spread. Most users block no one
// and weigh 1, so the hot users of a busy server all fit.
const cacheWeight = 100_000

type cacheEntry struct {
	owner  jid.JID
	bl     *blocklist
	weight int
}

// cache keeps recently used blocklists so that filtering a stanza does not
// cost a database read, evicting the least recently used beyond the bound.
type cache struct {
	mu      sync.Mutex
	max     int
	weight  int
	gen     uint64
	byOwner map[jid.JID]*list.Element
	lru     *list.List // of *cacheEntry, most recently used first
}

func newCache(max int) *cache {
	return &cache{max: max, byOwner: make(map[jid.JID]*list.Element), lru: list.New()}
}

func (c *cache) get(owner jid.JID) (*blocklist, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byOwner[owner]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).bl, true
}

// generation is read before a blocklist is loaded from storage and passed
// to add: if any list changed meanwhile, the loaded one may be stale and
// is not kept.
func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *cache) add(owner jid.JID, bl *blocklist, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.byOwner[owner]; ok {
		return
	}
	w := 1 + len(bl.set)
	if w > c.max {
		return
	}
	c.byOwner[owner] = c.lru.PushFront(&cacheEntry{owner: owner, bl: bl, weight: w})
	c.weight += w
	for c.weight > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *cache) invalidate(owner jid.JID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.byOwner[owner]; ok {
		c.remove(e)
	}
}

func (c *cache) remove(e *list.Element) {
	ce := c.lru.Remove(e).(*cacheEntry)
	delete(c.byOwner, ce.owner)
	c.weight -= ce.weight
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byOwner)
}
