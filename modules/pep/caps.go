package pep

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = stanza.NSDiscoInf
)

// Bounds of the in-memory caps state. The cache is keyed by verification
// string, so it grows with the number of distinct client builds, not of
// users; the limits only stop a client from inventing strings to fill
// memory.
const (
	maxCachedVers = 4096
	maxPending    = 1024
	pendingTTL    = time.Minute
	// maxHeldBytes bounds the notifications kept, across all pending
	// queries, for sessions whose caps are being asked for.
	maxHeldBytes = 4 << 20
)

// capsRef is what a presence announces (XEP-0115 §4).
type capsRef struct {
	hash, node, ver string
}

func (r capsRef) key() string { return r.hash + "\x00" + r.ver }

// capsOf reads the caps element of a presence; ok is false without one,
// or for the legacy format without a hash, which cannot be verified.
func capsOf(presence *xmlstream.Element) (capsRef, bool) {
	if presence == nil {
		return capsRef{}, false
	}
	c := presence.Child(nsCaps, "c")
	if c == nil {
		return capsRef{}, false
	}
	r := capsRef{hash: c.Attr("hash"), node: c.Attr("node"), ver: c.Attr("ver")}
	if r.ver == "" || newHash(r.hash) == nil {
		return capsRef{}, false
	}
	return r, true
}

func newHash(name string) hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New()
	case "sha-256":
		return sha256.New()
	case "sha-512":
		return sha512.New()
	}
	return nil
}

// verString computes the verification string of a disco#info result
// (XEP-0115 §5.1) with the named hash; "" for an unknown hash.
func verString(hashName string, query *xmlstream.Element) string {
	h := newHash(hashName)
	if h == nil {
		return ""
	}
	var ids, features []string
	type ext struct {
		formType string
		fields   []string // "var<value<value<", sorted by var
	}
	var forms []ext
	for el := range query.Elements() {
		switch {
		case el.Name.Space == nsDiscoInfo && el.Name.Local == "identity":
			lang, _ := el.AttrNS(xmlstream.NSXML, "lang")
			ids = append(ids, el.Attr("category")+"/"+el.Attr("type")+"/"+lang+"/"+el.Attr("name"))
		case el.Name.Space == nsDiscoInfo && el.Name.Local == "feature":
			features = append(features, el.Attr("var"))
		case el.Name.Space == nsData && el.Name.Local == "x":
			f, err := dataform.Parse(el)
			if err != nil {
				// XEP-0115 §5.4: such a form makes the answer unverifiable.
				return ""
			}
			e := ext{formType: f.FormType}
			for _, fd := range f.Fields {
				v, vals := fd.Var, slices.Clone(fd.Values)
				slices.Sort(vals)
				e.fields = append(e.fields, v+"<"+strings.Join(vals, "<")+"<")
			}
			slices.Sort(e.fields)
			forms = append(forms, e)
		}
	}
	slices.Sort(ids)
	slices.Sort(features)
	slices.SortFunc(forms, func(a, b ext) int { return strings.Compare(a.formType, b.formType) })
	var b strings.Builder
	for _, s := range ids {
		b.WriteString(s + "<")
	}
	for _, s := range features {
		b.WriteString(s + "<")
	}
	for _, f := range forms {
		b.WriteString(f.formType + "<")
		for _, s := range f.fields {
			b.WriteString(s)
		}
	}
	h.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// pendingQuery is a disco#info query the module sent for a caps ver;
// waiters are the sessions announcing that ver that want their last
// items once it is known, and held the notifications published to them
// meanwhile.
type pendingQuery struct {
	ref     capsRef
	to      jid.JID // the full JID asked
	sent    time.Time
	waiters []jid.JID
	held    []heldEvent
	// claimed: its answer came and is being applied (see next); it
	// still holds notifications, and does not expire, until then.
	claimed bool
}

// heldEvent is a notification for a session whose caps were unknown when
// it was published: whether the session wants it is decided once they
// are. Dropping it instead would lose every item published during the
// disco round trip that follows a client's presence, and nodes that do
// not send their last item (XEP-0402 bookmarks) would never make up for
// it.
type heldEvent struct {
	to   jid.JID
	node string
	msg  *xmlstream.Element
	size int
}

// capsCache maps verified caps to feature sets. It lives in memory only:
// which clients a user runs is nobody's business after a restart.
type capsCache struct {
	mu       sync.Mutex
	features map[string]map[string]bool // capsRef.key() → features
	order    []string                   // insertion order, to evict the oldest
	pending  map[string]*pendingQuery   // IQ id → query
	byKey    map[string]string          // capsRef.key() → IQ id in flight
	// heldBytes is the size of all held notifications, at most
	// heldLimit: a client that never answers must not make the server
	// keep its contacts' items for it.
	heldBytes, heldLimit int
}

func newCapsCache() *capsCache {
	return &capsCache{features: map[string]map[string]bool{}, pending: map[string]*pendingQuery{}, byKey: map[string]string{},
		heldLimit: maxHeldBytes}
}

// lookup returns the features of ref and whether they are known.
func (c *capsCache) lookup(ref capsRef) (map[string]bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.features[ref.key()]
	return f, ok
}

// store keeps the features of ref; c.mu is held.
func (c *capsCache) store(ref capsRef, features map[string]bool) {
	k := ref.key()
	if _, ok := c.features[k]; ok {
		return
	}
	if len(c.order) >= maxCachedVers {
		delete(c.features, c.order[0])
		c.order = c.order[1:]
	}
	c.features[k] = features
	c.order = append(c.order, k)
}

// want records that waiter needs ref resolved. It returns true when the
// caller must send a query with the given id to 'to' (none is in flight
// for ref), false when one already is, the pending table is full, or
// ref became known since the caller looked (known, when not nil, says
// whether the waiter has its own answer): a query that ends between the
// caller's lookup and this call must not start another that nobody will
// answer, holding the notifications published meanwhile.
func (c *capsCache) want(ref capsRef, to, waiter jid.JID, id string, now time.Time, known func() bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.features[ref.key()]; ok {
		return false
	}
	if known != nil && known() {
		return false
	}
	for pid, p := range c.pending {
		if !p.claimed && now.Sub(p.sent) > pendingTTL {
			c.drop(pid, p)
		}
	}
	if pid, ok := c.byKey[ref.key()]; ok {
		p := c.pending[pid]
		if !slices.Contains(p.waiters, waiter) {
			p.waiters = append(p.waiters, waiter)
		}
		return false
	}
	if len(c.pending) >= maxPending {
		return false
	}
	c.pending[id] = &pendingQuery{ref: ref, to: to, sent: now, waiters: []jid.JID{waiter}}
	c.byKey[ref.key()] = id
	return true
}

// claim returns the query an IQ answers: same id and sent by the address
// that was asked, so nobody else can answer for a client; and answered
// once. The caller then applies the answer with next.
func (c *capsCache) claim(id string, from jid.JID) (capsRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[id]
	if !ok || p.claimed || !p.to.Equal(from) {
		return capsRef{}, false
	}
	p.claimed = true
	return p.ref, true
}

// next applies the answer to the claimed query id. While notifications
// are held it returns them, oldest first, for the caller to decide on,
// and is called again. Once none is left it forgets the query, stores
// features (when not nil) and runs done, all in one step, and returns
// the waiters with finished set. So every notification is either held
// and returned here or, published after that step, finds the features:
// none is lost, and none overtakes an older one.
func (c *capsCache) next(id string, features map[string]bool, done func()) (held []heldEvent, waiters []jid.JID, finished bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[id]
	if !ok {
		return nil, nil, true
	}
	if len(p.held) > 0 {
		held, p.held = p.held, nil
		for _, h := range held {
			c.heldBytes -= h.size
		}
		return held, nil, false
	}
	c.drop(id, p)
	if features != nil {
		c.store(p.ref, features)
	}
	if done != nil {
		done()
	}
	return nil, p.waiters, true
}

// drop forgets a pending query and releases what it held.
func (c *capsCache) drop(id string, p *pendingQuery) {
	delete(c.pending, id)
	delete(c.byKey, p.ref.key())
	for _, h := range p.held {
		c.heldBytes -= h.size
	}
}

// hold keeps msg, a notification of node for the session 'to' announcing
// ref, until the query for ref is answered. It reports false, and keeps
// nothing, when no query for ref is in flight or the budget is spent.
func (c *capsCache) hold(ref capsRef, to jid.JID, node string, msg *xmlstream.Element) bool {
	size := len(msg.Append(nil, ""))
	c.mu.Lock()
	defer c.mu.Unlock()
	pid, ok := c.byKey[ref.key()]
	if !ok {
		return false
	}
	p := c.pending[pid]
	if !slices.ContainsFunc(p.waiters, to.Equal) || c.heldBytes+size > c.heldLimit {
		return false
	}
	p.held = append(p.held, heldEvent{to: to, node: node, msg: msg, size: size})
	c.heldBytes += size
	return true
}
