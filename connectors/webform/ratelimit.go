package webform

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client key. Buckets that have refilled are
// swept once a minute, so memory follows the number of clients seen in about
// the last minute rather than growing forever.
type limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	clients   map[string]*rate.Limiter
	lastSweep time.Time
}

const sweepEvery = time.Minute

func newLimiter(rl RateLimit, now func() time.Time) *limiter {
	if rl.Disabled {
		return nil
	}
	return &limiter{
		limit:   rate.Limit(float64(rl.PerMinute) / 60),
		burst:   rl.Burst,
		now:     now,
		clients: map[string]*rate.Limiter{},
	}
}

// allow takes one token for key. When none is left it returns false and how
// long until the next token, rounded up to whole seconds for Retry-After.
// A nil limiter (disabled) allows everything.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		for k, b := range l.clients {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.clients[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.clients[key] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.TokensAt(now)
	secs := math.Ceil(missing / float64(l.limit))
	return false, time.Duration(max(secs, 1)) * time.Second
}

// clientKey names the client a request is charged to: its IP address, or
// for IPv6 its /64 network, since one subscriber usually holds a whole /64
// and could otherwise rotate addresses to escape the limit.
func clientKey(r *http.Request, trustForwardedFor bool) string {
	addr := remoteAddr(r.RemoteAddr)
	if trustForwardedFor {
		if a := forwardedFor(r.Header.Values("X-Forwarded-For")); a.IsValid() {
			addr = a
		}
	}
	if !addr.IsValid() {
		return r.RemoteAddr
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, err := addr.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return addr.String()
}

func remoteAddr(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, _ := netip.ParseAddr(host)
	return a
}

// forwardedFor returns the right-most address of X-Forwarded-For: the one
// our own proxy appended. Entries to its left were written by the client or
// by proxies we do not know, and can be forged.
func forwardedFor(values []string) netip.Addr {
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			p := strings.TrimSpace(parts[j])
			if p == "" {
				continue
			}
			return remoteAddr(p)
		}
	}
	return netip.Addr{}
}
