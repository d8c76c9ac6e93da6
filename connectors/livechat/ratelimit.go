package livechat

import "time"

// bucket is a token bucket; the caller holds the lock that guards it.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token if there is one; otherwise it says how long until
// the next token.
func (b *bucket) take(now time.Time, perMinute, burst int) (ok bool, wait time.Duration) {
	rate := float64(perMinute) / float64(time.Minute) // tokens per nanosecond
	switch d := now.Sub(b.last); {
	case b.last.IsZero():
		b.tokens, b.last = float64(burst), now
	case d > 0: // a clock going back earns nothing
		b.tokens = min(b.tokens+float64(d)*rate, float64(burst))
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate)
}
