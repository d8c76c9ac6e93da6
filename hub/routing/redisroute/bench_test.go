package redisroute_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/redisroute"
)

// BenchmarkRedisEnqueueAccept measures enqueue+accept pairs per second on
// one client, sequentially, and beside it, in the same run and on the same
// client, the physical limit: sequential PING round trips per second and
// trivial EVALSHA round trips per second. A pair costs two round trips
// (one script each), so its ceiling is half the PING rate; limit-ratio is
// pairs/s over that ceiling.
//
// Each iteration runs one pair, one PING and one EVALSHA, each timed on
// its own, so that a neighbour's load on this shared machine weighs on
// figure and limit alike; ns/op is reported for the pair alone.
func BenchmarkRedisEnqueueAccept(b *testing.B) {
	c := redisClient(b)
	r := redisroute.New(c, redisroute.Config{Prefix: testPrefix(b, c)})
	ctx := b.Context()
	// Capacity beyond any b.N: every pair leaves one more assignment.
	if _, err := r.Heartbeat(ctx, routing.Agent{InstanceID: "i", AgentID: "a1", Teams: []string{"support"}, Capacity: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	trivial := redis.NewScript("return 1")
	if err := trivial.Load(ctx, c).Err(); err != nil {
		b.Fatal(err)
	}
	var pairT, pingT, evalT time.Duration
	n := 0
	for b.Loop() {
		id := fmt.Sprint("t", n)
		t0 := time.Now()
		evs, err := r.Enqueue(ctx, routing.Ticket{InstanceID: "i", TicketID: id, Team: "support"})
		if err != nil || len(evs) != 2 || evs[1].Kind != routing.EventOffered {
			b.Fatalf("enqueue %s: %v %v", id, evs, err)
		}
		if _, err := r.Accept(ctx, "i", id, "a1"); err != nil {
			b.Fatalf("accept %s: %v", id, err)
		}
		t1 := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := trivial.EvalSha(ctx, c, nil).Err(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		pairT += t1.Sub(t0)
		pingT += t2.Sub(t1)
		evalT += t3.Sub(t2)
		n++
	}
	perSec := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	b.ReportMetric(float64(pairT.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(perSec(pairT), "pairs/s")
	b.ReportMetric(perSec(pingT), "ping/s")
	b.ReportMetric(perSec(evalT), "evalsha/s")
	b.ReportMetric(perSec(pairT)/(perSec(pingT)/2), "limit-ratio")
}
