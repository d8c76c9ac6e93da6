package webform

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

func TestClientKey(t *testing.T) {
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trust   bool
		wantKey string
	}{
		{"IPv4", "203.0.113.7:5123", nil, false, "203.0.113.7"},
		{"IPv6 by /64", "[2001:db8:1:2:aaaa::1]:443", nil, false, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.7]:80", nil, false, "203.0.113.7"},
		{"XFF ignored by default", "10.0.0.1:80", []string{"198.51.100.9"}, false, "10.0.0.1"},
		{"XFF trusted: right-most", "10.0.0.1:80", []string{"1.1.1.1, 198.51.100.9"}, true, "198.51.100.9"},
		{"XFF trusted: last header line", "10.0.0.1:80", []string{"1.1.1.1", "198.51.100.9 "}, true, "198.51.100.9"},
		{"XFF trusted, IPv6", "10.0.0.1:80", []string{"2001:db8::5"}, true, "2001:db8::/64"},
		{"XFF garbage falls back", "10.0.0.1:80", []string{"1.1.1.1, not-an-ip"}, true, "10.0.0.1"},
		{"XFF empty falls back", "10.0.0.1:80", []string{" , "}, true, "10.0.0.1"},
		{"odd RemoteAddr kept", "pipe", nil, false, "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientKey(r, tt.trust); got != tt.wantKey {
				t.Errorf("clientKey = %q, want %q", got, tt.wantKey)
			}
		})
	}
}

// TestLimiterBucketsAndSweep: buckets are per key, refill at the rate, and
// refilled buckets are forgotten so memory stays bounded.
func TestLimiterBucketsAndSweep(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(RateLimit{PerMinute: 6, Burst: 2}, clock.Now)
	for _, key := range []string{"a", "b"} {
		for i := range 2 {
			if ok, _ := l.allow(key); !ok {
				t.Fatalf("%s: request %d refused", key, i+1)
			}
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("third request: ok=%v wait=%v, want refused for 10s", ok, wait)
	}
	clock.Advance(5 * time.Second)
	if _, wait := l.allow("a"); wait != 5*time.Second {
		t.Errorf("after 5 s: wait %v, want 5s", wait)
	}
	for i := range 100 {
		l.allow(fmt.Sprintf("k%d", i))
	}
	clock.Advance(time.Minute)
	l.allow("z") // sweeps
	l.mu.Lock()
	n := len(l.clients)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("%d buckets after the sweep, want 1", n)
	}
	var disabled *limiter
	if ok, _ := disabled.allow("x"); !ok {
		t.Error("disabled limiter refused")
	}
}
