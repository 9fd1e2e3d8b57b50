package throttle

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Logins decides which password guesses may be checked, so that guessing
// is slow however it is spread, without handing strangers a way to lock
// an owner out. With N = the configured failures per minute:
//
//   - A guess is checked only after a token for it was taken, before the
//     password is looked at: guesses in flight count, so N streams racing
//     each other get N checks, not one each. A correct password gives its
//     token back; a wrong one keeps it spent; a refused guess is never
//     checked.
//   - An (account, address) pair from which the account logged in before
//     (remembered in memory only, for TrustFor, as a keyed hash) draws on
//     a bucket of its own, N per minute, and on nothing else: neither
//     strangers guessing the account from elsewhere nor a neighbour behind
//     the same address (a household's NAT) can make the owner wait.
//   - Every other guess needs a token from both the address's bucket and
//     the account's bucket: one address gets N wrong guesses a minute
//     across all accounts, one account gets N a minute across all
//     addresses.
type Logins struct {
	perAddress *Limiter
	perAccount *Limiter
	perPair    *Limiter
	trusted    *trustSet

	// inFlight counts the guesses begun and not yet ended; settled is
	// closed (and replaced) whenever one ends, waking BeginWait.
	mu       sync.Mutex
	inFlight int
	settled  chan struct{}
}

// TrustFor is how long a successful login makes its (account, address)
// pair trusted; every further success renews it.
const TrustFor = 7 * 24 * time.Hour

// maxTrusted bounds the remembered pairs (about 100 bytes each); the
// least recently used one is forgotten first.
const maxTrusted = 100_000

// NewLogins allows perMinute wrong guesses per minute per address, per
// account and per trusted pair.
func NewLogins(perMinute int) *Logins {
	return newLogins(perMinute, time.Now, maxTrusted)
}

func newLogins(perMinute int, now func() time.Time, capacity int) *Logins {
	l := &Logins{
		perAddress: New(perMinute, time.Minute),
		perAccount: New(perMinute, time.Minute),
		perPair:    New(perMinute, time.Minute),
		trusted:    newTrustSet(capacity, TrustFor, now),
		settled:    make(chan struct{}),
	}
	l.perAddress.now, l.perAccount.now, l.perPair.now = now, now, now
	return l
}

// SetPerMinute changes the allowance (a reload) for every bucket.
func (l *Logins) SetPerMinute(perMinute int) {
	l.perAddress.SetBurst(perMinute)
	l.perAccount.SetBurst(perMinute)
	l.perPair.SetBurst(perMinute)
}

// Guess is a reserved right to check one password. Exactly one of
// Succeeded, Failed or Cancel ends it.
type Guess struct {
	l     *Logins
	taken []reserved
	pair  string
}

type reserved struct {
	lim *Limiter
	key string
}

// Begin reserves a guess of account's password from addr; ok is false
// when a bucket it needs is empty, and then nothing is reserved.
func (l *Logins) Begin(account, addr string) (g *Guess, ok bool) {
	pair := l.trusted.key(account, addr)
	g = &Guess{l: l, pair: pair}
	if l.trusted.has(pair) {
		g.taken = []reserved{{l.perPair, pair}}
	} else {
		g.taken = []reserved{{l.perAddress, addr}, {l.perAccount, account}}
	}
	for i, r := range g.taken {
		if !r.lim.Spend(r.key) {
			for _, back := range g.taken[:i] {
				back.lim.Refund(back.key)
			}
			return nil, false
		}
	}
	l.mu.Lock()
	l.inFlight++
	l.mu.Unlock()
	return g, true
}

// BeginWait is Begin for a login that may wait up to maxWait while the
// tokens it needs are only held by guesses still being checked: most of
// those are right passwords that give their tokens back within
// milliseconds, so many people behind one address (a NAT, a server
// restart that makes every client reconnect at once) log in instead of
// being refused, while wrong guesses still get no more checks.
func (l *Logins) BeginWait(account, addr string, maxWait time.Duration) (*Guess, bool) {
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		busy, settled := l.inFlight > 0, l.settled
		l.mu.Unlock()
		if g, ok := l.Begin(account, addr); ok {
			return g, true
		}
		if !busy {
			return nil, false // the tokens are spent on wrong passwords
		}
		select {
		case <-settled:
		case <-deadline.C:
			return nil, false
		}
	}
}

// end records that a guess was settled and wakes the waiters.
func (l *Logins) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	close(l.settled)
	l.settled = make(chan struct{})
}

// Succeeded gives the tokens back and trusts the pair from now on.
func (g *Guess) Succeeded() {
	g.l.trusted.add(g.pair)
	g.Cancel()
}

// Failed keeps the tokens spent: it was a wrong password.
func (g *Guess) Failed() {
	if g.taken != nil {
		g.taken = nil
		g.l.end()
	}
}

// Cancel gives the tokens back: the password was not checked after all
// (the exchange broke off, storage failed).
func (g *Guess) Cancel() {
	if g.taken == nil {
		return
	}
	for _, r := range g.taken {
		r.lim.Refund(r.key)
	}
	g.taken = nil
	g.l.end()
}

// trustSet remembers pairs as HMACs under a key that lives only in this
// process, so memory holds no readable list of who logs in from where and
// a restart forgets everything.
type trustSet struct {
	secret   []byte
	ttl      time.Duration
	capacity int
	now      func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element
	lru   list.List // front: most recently used; values are *trusted
}

type trusted struct {
	key   string
	until time.Time
}

func newTrustSet(capacity int, ttl time.Duration, now func() time.Time) *trustSet {
	secret := make([]byte, 32)
	rand.Read(secret) // never fails (crypto/rand)
	return &trustSet{secret: secret, ttl: ttl, capacity: capacity, now: now, byKey: make(map[string]*list.Element)}
}

func (t *trustSet) key(account, addr string) string {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write([]byte(addr))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (t *trustSet) has(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byKey[key]
	if e == nil {
		return false
	}
	if t.now().After(e.Value.(*trusted).until) {
		t.lru.Remove(e)
		delete(t.byKey, key)
		return false
	}
	return true
}

func (t *trustSet) add(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	until := t.now().Add(t.ttl)
	if e := t.byKey[key]; e != nil {
		e.Value.(*trusted).until = until
		t.lru.MoveToFront(e)
		return
	}
	t.byKey[key] = t.lru.PushFront(&trusted{key: key, until: until})
	for t.lru.Len() > t.capacity {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.byKey, old.Value.(*trusted).key)
	}
}

func (t *trustSet) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
