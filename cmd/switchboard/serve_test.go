package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// An agent with a live socket never lapses between two renewals of its
// presence: they come every 15 s, or every third of a shorter TTL.
func TestHeartbeatFollowsPresenceTTL(t *testing.T) {
	for _, tc := range []struct{ ttl, want time.Duration }{
		{45 * time.Second, 15 * time.Second},
		{2 * time.Minute, 15 * time.Second},
		{30 * time.Second, 10 * time.Second},
		{10 * time.Second, 3 * time.Second},
		{3 * time.Second, time.Second},
	} {
		if got := heartbeatFor(tc.ttl); got != tc.want {
			t.Errorf("presence TTL %s: heartbeat every %s, want %s", tc.ttl, got, tc.want)
		}
	}
}

func TestServeRefusesUnworkableTimings(t *testing.T) {
	for _, tc := range []struct {
		o    serveOptions
		want string
	}{
		{serveOptions{PresenceTTL: time.Second, OfferTimeout: 30 * time.Second}, "--presence-ttl 1s: must be at least 3s"},
		{serveOptions{PresenceTTL: 45 * time.Second, OfferTimeout: 0}, "--offer-timeout 0s: must be positive"},
	} {
		err := serve(context.Background(), &tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
}

// A duration in the environment that cannot be read stops the start with
// its name, rather than passing for the default.
func TestServeRefusesUnreadableEnvironment(t *testing.T) {
	t.Setenv("SWITCHBOARD_PRESENCE_TTL", "forty-five")
	so := &serveOptions{}
	so.PresenceTTL = so.envDuration("SWITCHBOARD_PRESENCE_TTL", 45*time.Second)
	so.OfferTimeout = 30 * time.Second
	err := serve(context.Background(), so)
	if err == nil || !strings.Contains(err.Error(), `SWITCHBOARD_PRESENCE_TTL="forty-five": not a duration`) {
		t.Fatalf("error %v", err)
	}
}
