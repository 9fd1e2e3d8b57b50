package throttle

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) get() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestLogins(n int) (*Logins, *clock) {
	c := &clock{now: time.Unix(1_000_000, 0)}
	return newLogins(n, c.get, 1000), c
}

// Guesses in flight count: 300 racing for one address get 5 checks.
func TestLoginsReserveBeforeCheck(t *testing.T) {
	l, _ := newTestLogins(5)
	var started atomic.Int32
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []*Guess
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g, ok := l.Begin(fmt.Sprintf("user%d@localhost", i), "192.0.2.1"); ok {
				started.Add(1)
				mu.Lock()
				held = append(held, g)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := started.Load(); n != 5 {
		t.Fatalf("%d guesses from one address started at once, want 5", n)
	}
	for _, g := range held {
		g.Failed()
	}
	if _, ok := l.Begin("other@localhost", "192.0.2.1"); ok {
		t.Fatal("a sixth guess started after five wrong ones")
	}
}

func TestLoginsSuccessRefunds(t *testing.T) {
	l, _ := newTestLogins(2)
	for i := range 10 {
		g, ok := l.Begin("alice@localhost", "192.0.2.1")
		if !ok {
			t.Fatalf("login %d refused though every earlier one succeeded", i)
		}
		g.Succeeded()
	}
	g, _ := l.Begin("bob@localhost", "192.0.2.1")
	g.Cancel()
	for i := range 2 {
		if g, ok := l.Begin(fmt.Sprintf("x%d@localhost", i), "192.0.2.1"); !ok {
			t.Fatal("a cancelled guess kept its token")
		} else {
			g.Failed()
		}
	}
}

// Strangers from many addresses spend the account's bucket; the owner
// at an address that logged in before is not refused, a new address is.
func TestLoginsPerAccountNoLockout(t *testing.T) {
	l, _ := newTestLogins(5)
	g, _ := l.Begin("alice@localhost", "198.51.100.1")
	g.Succeeded()
	checked := 0
	for a := range 30 {
		for range 5 {
			if g, ok := l.Begin("alice@localhost", fmt.Sprintf("203.0.113.%d", a)); ok {
				checked++
				g.Failed()
			}
		}
	}
	if checked != 5 {
		t.Fatalf("%d guesses against one account from 30 addresses checked, want 5", checked)
	}
	if g, ok := l.Begin("alice@localhost", "198.51.100.1"); !ok {
		t.Fatal("the owner at a known address was locked out by strangers")
	} else {
		g.Succeeded()
	}
	if _, ok := l.Begin("alice@localhost", "198.51.100.2"); ok {
		t.Fatal("a new address got a guess at an account whose bucket is empty")
	}
}

// Behind one NAT address: a neighbour's five wrong guesses do not make a
// user who logged in from there before wait, and the trusted pair has
// its own limit.
func TestLoginsSharedAddress(t *testing.T) {
	l, c := newTestLogins(5)
	g, _ := l.Begin("bob@localhost", "192.0.2.7")
	g.Succeeded()
	for i := range 5 {
		g, ok := l.Begin(fmt.Sprintf("guess%d@localhost", i), "192.0.2.7")
		if !ok {
			t.Fatalf("guess %d refused", i)
		}
		g.Failed()
	}
	if _, ok := l.Begin("carol@localhost", "192.0.2.7"); ok {
		t.Fatal("the address's limit did not engage")
	}
	g, ok := l.Begin("bob@localhost", "192.0.2.7")
	if !ok {
		t.Fatal("bob, known at this address, was refused after a neighbour's failures")
	}
	g.Succeeded()
	for range 5 {
		g, ok := l.Begin("bob@localhost", "192.0.2.7")
		if !ok {
			t.Fatal("trusted pair refused within its own limit")
		}
		g.Failed()
	}
	if _, ok := l.Begin("bob@localhost", "192.0.2.7"); ok {
		t.Fatal("a trusted pair has no limit of its own")
	}
	c.add(TrustFor + time.Hour)
	if l.trusted.has(l.trusted.key("bob@localhost", "192.0.2.7")) {
		t.Fatal("trust outlived TrustFor")
	}
}

func TestTrustSetBounded(t *testing.T) {
	l, _ := newTestLogins(5)
	for i := range 5000 {
		l.trusted.add(l.trusted.key(fmt.Sprintf("u%d@localhost", i), "192.0.2.1"))
	}
	if n := l.trusted.len(); n != 1000 {
		t.Fatalf("%d pairs remembered, want the capacity 1000", n)
	}
	if !l.trusted.has(l.trusted.key("u4999@localhost", "192.0.2.1")) || l.trusted.has(l.trusted.key("u0@localhost", "192.0.2.1")) {
		t.Fatal("eviction is not least recently used first")
	}
}

func TestConcurrent(t *testing.T) {
	c := NewConcurrent(2)
	if !c.Acquire("a") || !c.Acquire("a") || c.Acquire("a") {
		t.Fatal("limit of 2 not applied")
	}
	if !c.Acquire("b") {
		t.Fatal("another key was limited")
	}
	c.Release("a")
	if !c.Acquire("a") {
		t.Fatal("a released slot was not reusable")
	}
	c.Release("a")
	c.Release("a")
	c.Release("b")
	if c.Len() != 0 {
		t.Fatalf("%d keys kept after every release", c.Len())
	}
	off := NewConcurrent(0)
	for range 100 {
		if !off.Acquire("x") {
			t.Fatal("a disabled limit refused")
		}
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"::ffff:192.0.2.1":          "::ffff:192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":           "2001:db8:1:3::/64",
		"fe80::1%eth0":              "fe80::/64",
		"not an address":            "not an address",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// A reload changes the limit of a Concurrent already counting: what is in
// progress counts against the new limit, also after running without one.
func TestConcurrentSetMax(t *testing.T) {
	c := NewConcurrent(0)
	for range 3 {
		c.Acquire("a")
	}
	c.SetMax(2)
	if c.Acquire("a") {
		t.Fatal("3 in progress, limit lowered to 2, yet a fourth was let in")
	}
	c.Release("a")
	c.Release("a")
	if !c.Acquire("a") {
		t.Fatal("1 in progress under a limit of 2 was refused")
	}
	c.SetMax(0)
	if !c.Acquire("a") || !c.Acquire("a") {
		t.Fatal("a limit turned off still refuses")
	}
}

func TestLoginsSetPerMinute(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newLogins(5, func() time.Time { return now }, 100)
	l.SetPerMinute(1)
	wrong := func() bool {
		g, ok := l.Begin("u@localhost", "192.0.2.1")
		if ok {
			g.Failed()
		}
		return ok
	}
	if !wrong() {
		t.Fatal("the first guess was refused")
	}
	if wrong() {
		t.Fatal("a second wrong guess within the minute after lowering the limit to 1")
	}
	l.SetPerMinute(0)
	if !wrong() {
		t.Fatal("limit turned off, guess still refused")
	}
}
