// Package throttle limits how often something may happen per key within a
// sliding minute, e.g. failed logins per account and per source address.
package throttle

import (
	"sync"
	"time"
)

// Limiter is a token bucket per key: each key may spend Burst events at
// once and regains them at Burst per Period. Memory is bounded: keys whose
// bucket is full again are forgotten on the next sweep.
type Limiter struct {
	burst  float64
	period time.Duration
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a limiter allowing burst events per period per key. A burst
// of 0 or less disables limiting.
func New(burst int, period time.Duration) *Limiter {
	return &Limiter{burst: float64(burst), period: period, now: time.Now, buckets: make(map[string]*bucket)}
}

// SetBurst changes the limit (a reload): buckets keep what they hold,
// capped at the new burst, and refill at the new rate.
func (l *Limiter) SetBurst(burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.burst = float64(burst)
	for _, b := range l.buckets {
		b.tokens = min(b.tokens, l.burst)
	}
}

// Allowed reports whether key may act now, without spending anything.
func (l *Limiter) Allowed(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.burst <= 0 {
		return true
	}
	b := l.refill(key, l.now())
	return b == nil || b.tokens >= 1
}

// Spend records one event for key and reports whether it was within the
// limit.
func (l *Limiter) Spend(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.burst <= 0 {
		return true
	}
	now := l.now()
	l.sweep(now)
	b := l.refill(key, now)
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Refund gives back one event spent for key, as when a reserved attempt
// turned out not to count. The bucket never holds more than Burst.
func (l *Limiter) Refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.burst <= 0 {
		return
	}
	if b := l.refill(key, l.now()); b != nil {
		b.tokens = min(b.tokens+1, l.burst)
	}
}

func (l *Limiter) refill(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		return nil
	}
	if el := now.Sub(b.at); el > 0 {
		b.tokens += el.Seconds() / l.period.Seconds() * l.burst
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.at = now
	}
	return b
}

// sweep forgets full buckets once a period, so that a scan over many
// source addresses cannot grow the map without bound.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.period {
		return
	}
	l.lastSweep = now
	for k := range l.buckets {
		if b := l.refill(k, now); b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// Len is the number of keys currently tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
