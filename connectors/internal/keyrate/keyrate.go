// Package keyrate is a token bucket per key (a client address, a sender),
// shared by the channels that limit their end users. It owns nothing else.
package keyrate

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key. Buckets that have refilled are swept
// once a minute, so memory follows the number of keys seen recently rather
// than growing forever. A nil Limiter allows everything.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

const sweepEvery = time.Minute

// New returns a limiter that refills perSecond tokens a second up to burst.
func New(perSecond rate.Limit, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{limit: perSecond, burst: burst, now: now, buckets: map[string]*rate.Limiter{}}
}

// Allow takes one token for key. When none is left it returns false and
// how long until the next token, rounded up to whole seconds (for
// Retry-After).
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.TokensAt(now)
	secs := math.Ceil(missing / float64(l.limit))
	return false, time.Duration(max(secs, 1)) * time.Second
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
