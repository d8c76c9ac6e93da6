package keyrate

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Buckets are per key, refill at the rate, and refilled buckets are
// forgotten so memory stays bounded.
func TestBucketsAndSweep(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(rate.Limit(6.0/60), 2, c.Now)
	for _, key := range []string{"a", "b"} {
		for i := range 2 {
			if ok, _ := l.Allow(key); !ok {
				t.Fatalf("%s: request %d refused", key, i+1)
			}
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("third request: ok=%v wait=%v, want refused for 10s", ok, wait)
	}
	c.Advance(5 * time.Second)
	if _, wait := l.Allow("a"); wait != 5*time.Second {
		t.Errorf("after 5 s: wait %v, want 5s", wait)
	}
	for i := range 100 {
		l.Allow(fmt.Sprintf("k%d", i))
	}
	c.Advance(time.Minute)
	l.Allow("z") // sweeps
	if n := l.Len(); n != 1 {
		t.Errorf("%d buckets after the sweep, want 1", n)
	}
	var disabled *Limiter
	if ok, _ := disabled.Allow("x"); !ok {
		t.Error("disabled limiter refused")
	}
}
