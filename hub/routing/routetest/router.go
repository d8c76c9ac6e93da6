package routetest

import (
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

// RunRouterSuite runs every Router behaviour against routers made by
// newRouter. Each subtest gets its own router and fake clock and runs in
// parallel with the others.
func RunRouterSuite(t *testing.T, newRouter func(t *testing.T, cfg routing.Config) routing.Router) {
	tests := []struct {
		name string
		run  func(t *testing.T, nr NewRouterFunc)
	}{
		{"QueueOrder", testQueueOrder},
		{"Eligibility", testEligibility},
		{"FewestTicketsWin", testFewestTicketsWin},
		{"TieGoesToOldestAssignment", testTieGoesToOldestAssignment},
		{"OfferExpiresToNextAgent", testOfferExpiresToNextAgent},
		{"ExpiredOfferKeepsHeadOfQueue", testExpiredOfferKeepsHead},
		{"PassersAskedLast", testPassersAskedLast},
		{"AcceptAndDeclineNeedLiveOwnOffer", testNeedLiveOwnOffer},
		{"Decline", testDecline},
		{"FollowUp", testFollowUp},
		{"AbsenceRequeuesUnanswered", testAbsenceRequeuesUnanswered},
		{"SweepInTimeOrder", testSweepInTimeOrder},
		{"FreedCapacityTakesOldestWaiting", testFreedCapacityTakesOldest},
		{"Assign", testAssign},
		{"Transfer", testTransfer},
		{"EnqueueIsIdempotent", testEnqueueIdempotent},
		{"TenantIsolation", testTenantIsolation},
		{"InvalidInput", testInvalidInput},
		{"ConcurrentSweepsExpireOnce", testConcurrentSweeps},
		{"ConcurrentEnqueueAccept", testConcurrentEnqueueAccept},
		{"ConcurrentFollowUps", testConcurrentFollowUps},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newRouter)
		})
	}
}

func testQueueOrder(t *testing.T, nr NewRouterFunc) {
	type tk struct {
		id   string
		prio int
	}
	cases := []struct {
		name  string
		in    []tk
		order []string
	}{
		{"fifo", []tk{{"t1", 0}, {"t2", 0}, {"t3", 0}}, []string{"t1", "t2", "t3"}},
		{"priority first", []tk{{"t1", 0}, {"t2", 5}, {"t3", 0}, {"t4", 5}, {"t5", -1}}, []string{"t2", "t4", "t1", "t3", "t5"}},
		{"extreme priorities", []tk{{"t1", -1 << 40}, {"t2", 1 << 40}, {"t3", 0}}, []string{"t2", "t3", "t1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nr, nil)
			for _, x := range c.in {
				f.want("enqueue", f.enq(x.id, "support", x.prio), "queued "+x.id)
			}
			queue := "support:"
			var offers []string
			for _, id := range c.order {
				queue += " " + id
				offers = append(offers, "offered "+id+" a1")
			}
			f.wantQueues(queue)
			// An agent arriving takes them in queue order.
			f.want("heartbeat", f.hb("a1", len(c.order), "support"), offers...)
			f.wantQueues()
		})
	}
}

func testEligibility(t *testing.T, nr NewRouterFunc) {
	cases := []struct {
		name    string
		setup   func(f *fixture)
		offered bool
	}{
		{"available team member", func(f *fixture) { f.hb("a1", 1, "support") }, true},
		{"member of several teams", func(f *fixture) { f.hb("a1", 1, "billing", "support") }, true},
		{"away", func(f *fixture) { f.hbStatus("a1", routing.Away, 1, "support") }, false},
		{"offline", func(f *fixture) { f.hbStatus("a1", routing.Offline, 1, "support") }, false},
		{"left", func(f *fixture) { f.hb("a1", 1, "support"); f.leave("a1") }, false},
		{"other team", func(f *fixture) { f.hb("a1", 1, "sales") }, false},
		{"removed from team", func(f *fixture) { f.hb("a1", 1, "support"); f.hb("a1", 1, "sales") }, false},
		{"full with an offer", func(f *fixture) { f.hb("a1", 1, "support"); f.enq("t0", "support", 0) }, false},
		{"full with an assignment", func(f *fixture) {
			f.hb("a1", 1, "support")
			f.enq("t0", "support", 0)
			f.accept("t0", "a1")
		}, false},
		{"room left", func(f *fixture) { f.hb("a1", 2, "support"); f.enq("t0", "support", 0) }, true},
		{"heartbeat lapsed, not yet swept", func(f *fixture) { f.hb("a1", 1, "support"); f.advance(presenceTTL + time.Second) }, false},
		{"heartbeat lapses exactly at TTL", func(f *fixture) { f.hb("a1", 1, "support"); f.advance(presenceTTL) }, false},
		{"heartbeat renewed", func(f *fixture) {
			f.hb("a1", 1, "support")
			f.advance(presenceTTL - time.Second)
			f.hb("a1", 1, "support")
			f.advance(presenceTTL - time.Second)
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nr, nil)
			c.setup(f)
			want := []string{"queued t1"}
			if c.offered {
				want = append(want, "offered t1 a1")
			}
			f.want("enqueue", f.enq("t1", "support", 0), want...)
		})
	}

	t.Run("heartbeat makes waiting tickets eligible", func(t *testing.T) {
		f := newFixture(t, nr, nil)
		f.hbStatus("a1", routing.Away, 1, "support")
		f.enq("t1", "support", 0)
		f.enq("t2", "support", 0)
		f.want("back to available", f.hb("a1", 1, "support"), "offered t1 a1")
		first := f.clock.Now().Add(offerTimeout)
		f.advance(time.Second)
		f.want("capacity raised", f.hb("a1", 2, "support"), "offered t2 a1")
		f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 2, Offered: "t1 t2"})
		f.wantOfferExpires("a1", "t1", first)
		f.wantOfferExpires("a1", "t2", first.Add(time.Second))
	})
}

func testFewestTicketsWin(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 3, "support")
	f.hb("a2", 3, "support")
	// Equal load, neither ever assigned: the tie is broken by agent id.
	f.want("t1", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
	f.accept("t1", "a1")
	f.want("t2", f.enq("t2", "support", 0), "queued t2", "offered t2 a2")
	// Offers count as load: both hold one; a2 was never assigned, so a2 has
	// waited longest.
	f.want("t3", f.enq("t3", "support", 0), "queued t3", "offered t3 a2")
	f.want("t4", f.enq("t4", "support", 0), "queued t4", "offered t4 a1")
	f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 3, Assigned: "t1", Offered: "t4"})
	f.wantAgent("a2", agentState{Status: routing.Available, Present: true, Capacity: 3, Offered: "t2 t3"})
}

func testTieGoesToOldestAssignment(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 2, "support")
	f.hb("a2", 2, "support")
	f.want("t1", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
	f.want("accept t1", f.accept("t1", "a1"), "assigned t1 a1")
	f.want("t2", f.enq("t2", "support", 0), "queued t2", "offered t2 a2")
	f.want("accept t2", f.accept("t2", "a2"), "assigned t2 a2")
	f.want("release t1", f.release("t1"))
	f.want("release t2", f.release("t2"))
	// Both idle; a1's last assignment is older.
	f.want("t3", f.enq("t3", "support", 0), "queued t3", "offered t3 a1")
	f.accept("t3", "a1")
	f.release("t3")
	f.want("t4", f.enq("t4", "support", 0), "queued t4", "offered t4 a2")
	// A newcomer has never been assigned and counts as oldest.
	f.accept("t4", "a2")
	f.release("t4")
	f.hb("a3", 2, "support")
	f.want("t5", f.enq("t5", "support", 0), "queued t5", "offered t5 a3")
}

func testOfferExpiresToNextAgent(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 1, "support")
	f.hb("a2", 1, "support")
	f.want("t1", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
	f.advance(offerTimeout - time.Millisecond)
	f.want("sweep before the timeout", f.sweep())
	f.advance(time.Millisecond)
	// a1 is free again and eligible, but let it expire while a2 is there.
	f.want("sweep at the timeout", f.sweep(), "offer_expired t1 a1", "offered t1 a2")
	f.want("second sweep", f.sweep())
	f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1})
	f.wantAgent("a2", agentState{Status: routing.Available, Present: true, Capacity: 1, Offered: "t1"})
	f.want("next ticket to the free agent", f.enq("t2", "support", 0), "queued t2", "offered t2 a1")
}

func testExpiredOfferKeepsHead(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 1, "support")
	f.hb("a2", 1, "support")
	f.enq("t1", "support", 0)
	f.enq("t2", "support", 0)
	f.want("t3 waits", f.enq("t3", "support", 0), "queued t3")
	f.accept("t2", "a2")
	f.advance(offerTimeout)
	// Nobody else is eligible, so the agent that let it expire is asked
	// again, and t1 still goes before t3.
	f.want("sweep", f.sweep(), "offer_expired t1 a1", "offered t1 a1")
	f.wantQueues("support: t3")

	// With nobody eligible at all, the expired ticket waits at the head.
	g := newFixture(t, nr, nil)
	g.hb("a1", 1, "support")
	g.enq("t1", "support", 0)
	g.enq("t2", "support", 0)
	g.hbStatus("a1", routing.Away, 1, "support")
	g.advance(offerTimeout)
	g.want("sweep", g.sweep(), "offer_expired t1 a1")
	g.wantQueues("support: t1 t2")
}

func testPassersAskedLast(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	agents := []string{"a1", "a2", "a3"}
	for _, a := range agents {
		f.hb(a, 1, "support")
	}
	expire := func(want ...string) {
		t.Helper()
		f.advance(offerTimeout)
		for _, a := range agents {
			f.hb(a, 1, "support")
		}
		f.want("sweep", f.sweep(), want...)
	}
	f.want("t1", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
	expire("offer_expired t1 a1", "offered t1 a2")
	expire("offer_expired t1 a2", "offered t1 a3")
	// Everyone has passed: ask anyone but the latest to pass.
	expire("offer_expired t1 a3", "offered t1 a1")
	f.want("decline", f.decline("t1", "a1"), "requeued t1 a1", "offered t1 a2")
	// Accepting clears the record: a1 may be offered t1 again later.
	f.accept("t1", "a2")
	f.want("t2", f.enq("t2", "support", 0), "queued t2", "offered t2 a1")
}

func testNeedLiveOwnOffer(t *testing.T, nr NewRouterFunc) {
	type call func(f *fixture) ([]routing.Event, error)
	accept := func(ticket, agent string) call {
		return func(f *fixture) ([]routing.Event, error) { return f.r.Accept(f.ctx, f.inst, ticket, agent) }
	}
	decline := func(ticket, agent string) call {
		return func(f *fixture) ([]routing.Event, error) { return f.r.Decline(f.ctx, f.inst, ticket, agent) }
	}
	// Every case starts with t1 offered to a1 and a2 idle.
	cases := []struct {
		name  string
		setup func(f *fixture)
		call  call
	}{
		{"accept by another agent", nil, accept("t1", "a2")},
		{"accept unknown ticket", nil, accept("nope", "a1")},
		{"accept expired offer before sweep", func(f *fixture) { f.advance(offerTimeout) }, accept("t1", "a1")},
		{"accept offer expired and moved on", func(f *fixture) {
			f.advance(offerTimeout)
			f.want("sweep", f.sweep(), "offer_expired t1 a1", "offered t1 a2")
		}, accept("t1", "a1")},
		{"accept twice", func(f *fixture) { f.accept("t1", "a1") }, accept("t1", "a1")},
		{"accept a queued ticket", func(f *fixture) { f.enq("t9", "nobody", 0) }, accept("t9", "a1")},
		{"accept after decline", func(f *fixture) { f.decline("t1", "a1") }, accept("t1", "a1")},
		{"accept in another instance", nil, func(f *fixture) ([]routing.Event, error) {
			return f.r.Accept(f.ctx, "inst-b", "t1", "a1")
		}},
		{"decline by another agent", nil, decline("t1", "a2")},
		{"decline after accept", func(f *fixture) { f.accept("t1", "a1") }, decline("t1", "a1")},
		{"decline expired offer", func(f *fixture) { f.advance(offerTimeout) }, decline("t1", "a1")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nr, nil)
			f.hb("a1", 1, "support")
			f.want("t1", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
			f.hb("a2", 1, "support")
			if c.setup != nil {
				c.setup(f)
			}
			evs, err := c.call(f)
			f.wantNoOffer(c.name, evs, err)
		})
	}
	t.Run("accept just before expiry", func(t *testing.T) {
		f := newFixture(t, nr, nil)
		f.hb("a1", 1, "support")
		f.enq("t1", "support", 0)
		f.advance(offerTimeout - time.Millisecond)
		f.want("accept", f.accept("t1", "a1"), "assigned t1 a1")
		f.advance(time.Hour)
		f.want("assignments do not expire", f.sweep(), "requeued t1 a1")
	})
}

func testDecline(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 1, "support")
	f.hb("a2", 1, "support")
	f.enq("t1", "support", 0)
	f.want("decline", f.decline("t1", "a1"), "requeued t1 a1", "offered t1 a2")
	f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1})

	// Alone, the agent is asked again rather than leaving the end user
	// waiting for nobody.
	g := newFixture(t, nr, nil)
	g.hb("a1", 1, "support")
	g.enq("t1", "support", 0)
	g.want("decline alone", g.decline("t1", "a1"), "requeued t1 a1", "offered t1 a1")
}

func testFollowUp(t *testing.T, nr NewRouterFunc) {
	// Every case: a1 holds t1 (accepted, answered), a2 is idle.
	cases := []struct {
		name  string
		setup func(f *fixture)
		want  []string
	}{
		{"assignee present: sticks", nil, nil},
		{"assignee away: sticks", func(f *fixture) { f.hbStatus("a1", routing.Away, 2, "support") }, nil},
		{"assignee lapsed: requeued", func(f *fixture) {
			f.advance(presenceTTL - time.Second)
			f.hb("a2", 2, "support")
			f.advance(time.Second)
		}, []string{"requeued t1 a1", "offered t1 a2"}},
		{"assignee left: requeued", func(f *fixture) {
			f.want("answered stays on leave", f.leave("a1"))
		}, []string{"requeued t1 a1", "offered t1 a2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nr, nil)
			f.hb("a1", 2, "support")
			f.enq("t1", "support", 0)
			f.accept("t1", "a1")
			f.answered("t1")
			f.hb("a2", 2, "support")
			if c.setup != nil {
				c.setup(f)
			}
			f.want("follow-up", f.followUp("t1", "support"), c.want...)
		})
	}

	t.Run("marks the ticket unanswered", func(t *testing.T) {
		f := newFixture(t, nr, nil)
		f.hb("a1", 2, "support")
		f.enq("t1", "support", 0)
		f.accept("t1", "a1")
		f.answered("t1")
		f.want("follow-up", f.followUp("t1", "support"))
		f.hb("a2", 2, "support")
		// Unanswered again, so leaving hands it on.
		f.want("leave", f.leave("a1"), "requeued t1 a1", "offered t1 a2")
	})
	t.Run("unknown ticket is enqueued", func(t *testing.T) {
		f := newFixture(t, nr, nil)
		f.hb("a1", 1, "support")
		f.want("follow-up", f.followUp("t1", "support"), "queued t1", "offered t1 a1")
	})
	t.Run("waiting ticket stays put", func(t *testing.T) {
		f := newFixture(t, nr, nil)
		f.enq("t1", "support", 0)
		f.enq("t2", "support", 0)
		f.want("follow-up queued", f.followUp("t1", "support"))
		f.wantQueues("support: t1 t2")
		f.hb("a1", 1, "support")
		f.want("follow-up offered", f.followUp("t1", "support"))
		f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1, Offered: "t1"})
	})
	t.Run("answered then requeued ticket waits from the follow-up", func(t *testing.T) {
		// The end user of t1 was answered; by the time they write again,
		// t2's end user has been waiting longer.
		f := newFixture(t, nr, nil)
		f.hb("a1", 1, "support")
		f.enq("t1", "support", 0)
		f.accept("t1", "a1")
		f.answered("t1")
		f.enq("t2", "support", 0)
		f.leave("a1")
		f.want("follow-up", f.followUp("t1", "support"), "requeued t1 a1")
		f.wantQueues("support: t2 t1")
	})
}

func testAbsenceRequeuesUnanswered(t *testing.T, nr NewRouterFunc) {
	cases := []struct {
		name   string
		absent func(f *fixture) []routing.Event
		status routing.Status
	}{
		{"presence lapses", func(f *fixture) []routing.Event {
			f.advance(presenceTTL - 30*time.Second)
			f.want("sweep before the lapse", f.sweep())
			f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 3, Assigned: "t1 t2", Offered: "t3"})
			f.advance(time.Millisecond)
			return f.sweep()
		}, routing.Available},
		{"leave", func(f *fixture) []routing.Event { return f.leave("a1") }, routing.Offline},
		{"heartbeat offline", func(f *fixture) []routing.Event {
			return f.hbStatus("a1", routing.Offline, 3, "support")
		}, routing.Offline},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Offers outlive presence here, so the offer is handed back by
			// the absence, not by its own timeout.
			f := newFixture(t, nr, func(cfg *routing.Config) { cfg.OfferTimeout = 2 * presenceTTL })
			f.hb("a1", 3, "support")
			f.enq("t1", "support", 0)
			f.enq("t2", "support", 0)
			f.enq("t3", "support", 0)
			f.accept("t1", "a1")
			f.accept("t2", "a1")
			f.answered("t1")
			f.advance(30*time.Second - time.Millisecond)
			f.hb("a2", 3, "support")
			f.want("absent", c.absent(f), "requeued t2 a1", "requeued t3 a1", "offered t2 a2", "offered t3 a2")
			f.wantAgent("a1", agentState{Status: c.status, Present: false, Capacity: 3, Assigned: "t1"})
			f.wantAgent("a2", agentState{Status: routing.Available, Present: true, Capacity: 3, Offered: "t2 t3"})
			f.want("nothing left to sweep", f.sweep())
			// Back again: the answered ticket is still theirs.
			f.want("return", f.hb("a1", 3, "support"))
			f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 3, Assigned: "t1"})
		})
	}
}

func testSweepInTimeOrder(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 2, "support")
	f.enq("t1", "support", 0)
	f.accept("t1", "a1")
	f.enq("t2", "support", 0) // offered to a1, expires at +30s
	f.advance(20 * time.Second)
	f.hb("a2", 2, "support")
	f.advance(26 * time.Second) // a1 lapsed at +45s
	// The offer expired first, then a1's presence lapsed: both are handled
	// in the order they fell due, with eligibility as of the sweep.
	f.want("sweep", f.sweep(), "offer_expired t2 a1", "offered t2 a2", "requeued t1 a1", "offered t1 a2")
}

func testFreedCapacityTakesOldest(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 1, "sales", "support")
	f.enq("t1", "support", 0)
	f.accept("t1", "a1")
	f.enq("t2", "sales", 0)
	f.enq("t3", "support", 0)
	f.enq("t4", "sales", 0)
	f.wantQueues("sales: t2 t4", "support: t3")
	f.want("release t1", f.release("t1"), "offered t2 a1")
	f.accept("t2", "a1")
	f.want("release t2", f.release("t2"), "offered t3 a1")
	f.accept("t3", "a1")
	// Priority comes before age, across teams as within one.
	f.enq("t5", "support", 9)
	f.want("release t3", f.release("t3"), "offered t5 a1")
	f.want("release of an offer", f.release("t5"), "offered t4 a1")
	f.want("release of unknown ticket", f.release("nope"))
	f.enq("t6", "support", 0)
	f.want("release of a waiting ticket", f.release("t6"))
	f.wantQueues()
}

func testAssign(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 1, "support")
	f.hb("a2", 1, "support")
	f.want("t1", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
	f.want("t2", f.enq("t2", "support", 0), "queued t2", "offered t2 a2")
	f.want("t3", f.enq("t3", "support", 0), "queued t3")

	f.want("assign a waiting ticket beyond capacity", f.assign("t3", "a1"), "assigned t3 a1")
	f.wantQueues()
	f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1, Assigned: "t3", Offered: "t1"})

	f.want("assign someone else's offer", f.assign("t1", "a2"), "assigned t1 a2")
	evs, err := f.r.Accept(f.ctx, f.inst, "t1", "a1")
	f.wantNoOffer("accept of a taken offer", evs, err)
	f.want("assign to the holder again", f.assign("t1", "a2"))

	f.want("t4", f.enq("t4", "support", 0), "queued t4")
	// Moving t3 away frees a1, who is offered the waiting ticket.
	f.want("reassign", f.assign("t3", "a2"), "assigned t3 a2", "offered t4 a1")
	f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1, Offered: "t4"})
	f.wantAgent("a2", agentState{Status: routing.Available, Present: true, Capacity: 1, Assigned: "t1 t3", Offered: "t2"})

	f.want("assign to an agent never seen", f.assign("t4", "z9"), "assigned t4 z9")
	f.wantAgent("z9", agentState{Status: routing.Offline, Present: false, Capacity: 1, Assigned: "t4"})

	// A ticket the router never saw (its state was lost) is taken in.
	f.want("assign an unknown ticket", f.assign("lost", "z9"), "assigned lost z9")
	f.wantAgent("z9", agentState{Status: routing.Offline, Present: false, Capacity: 1, Assigned: "lost t4"})
}

func testTransfer(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.hb("a1", 1, "support")
	f.hb("b1", 1, "sales")
	f.enq("t1", "support", 0)
	f.accept("t1", "a1")
	f.enq("t2", "billing", 0)
	f.enq("t3", "support", 0)
	f.wantQueues("billing: t2", "support: t3")

	// A waiting ticket keeps its place in line in the new team.
	f.want("transfer waiting", f.transfer("t2", "support", 0), "queued t2")
	f.wantQueues("support: t2 t3")

	evs := f.transfer("t1", "sales", 0)
	f.want("transfer held", evs, "requeued t1 a1", "offered t1 b1", "offered t2 a1")
	for _, ev := range evs[:2] {
		if ev.Team != "sales" {
			t.Errorf("event %+v: team %q, want sales", ev, ev.Team)
		}
	}
	f.want("transfer unknown", f.transfer("t9", "sales", 0), "queued t9")
	f.want("priority raised", f.transfer("t9", "support", 5), "queued t9")
	f.wantQueues("support: t9 t3")
}

func testEnqueueIdempotent(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	f.enq("t1", "support", 0)
	f.want("again while queued", f.enq("t1", "sales", 9))
	f.wantQueues("support: t1")
	f.want("agent", f.hb("a1", 2, "support"), "offered t1 a1")
	f.want("again while offered", f.enq("t1", "support", 0))
	f.accept("t1", "a1")
	f.want("again while assigned", f.enq("t1", "support", 0))
	f.wantQueues()
	f.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 2, Assigned: "t1"})
	f.release("t1")
	f.want("again after release", f.enq("t1", "support", 0), "queued t1", "offered t1 a1")
}

func testTenantIsolation(t *testing.T, nr NewRouterFunc) {
	a := newFixture(t, nr, nil)
	b := a.on("inst-b")
	a.hb("a1", 1, "support")
	b.want("same ids elsewhere", b.enq("t1", "support", 0), "queued t1")
	a.want("own agent", a.enq("t1", "support", 0), "queued t1", "offered t1 a1")
	evs, err := b.r.Accept(b.ctx, b.inst, "t1", "a1")
	b.wantNoOffer("accept in the other instance", evs, err)
	a.accept("t1", "a1")
	b.want("b's own a1", b.hb("a1", 1, "support"), "offered t1 a1")
	a.want("release in a", a.release("t1"))
	b.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1, Offered: "t1"})
	a.wantAgent("a1", agentState{Status: routing.Available, Present: true, Capacity: 1})
	a.advance(offerTimeout)
	a.hb("a1", 1, "support")
	b.hb("a1", 1, "support")
	b.want("only b's offer expires", b.sweep(), "offer_expired t1 a1", "offered t1 a1")
	if s := a.snap(); len(s.Queues) != 0 || len(s.Agents) != 1 {
		t.Errorf("instance a: %+v", s)
	}
	if s := a.on("inst-none").snap(); len(s.Queues) != 0 || len(s.Agents) != 0 {
		t.Errorf("unknown instance: %+v", s)
	}
}

func testInvalidInput(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	ctx := f.ctx
	calls := map[string]func() error{
		"heartbeat without agent": func() error {
			_, err := f.r.Heartbeat(ctx, routing.Agent{InstanceID: "i", Capacity: 1})
			return err
		},
		"heartbeat without instance": func() error {
			_, err := f.r.Heartbeat(ctx, routing.Agent{AgentID: "a", Capacity: 1})
			return err
		},
		"heartbeat with unknown status": func() error {
			_, err := f.r.Heartbeat(ctx, routing.Agent{InstanceID: "i", AgentID: "a", Capacity: 1, Status: "busy"})
			return err
		},
		"enqueue without team": func() error {
			_, err := f.r.Enqueue(ctx, routing.Ticket{InstanceID: "i", TicketID: "t"})
			return err
		},
		"enqueue without ticket": func() error {
			_, err := f.r.Enqueue(ctx, routing.Ticket{InstanceID: "i", Team: "x"})
			return err
		},
		"accept without agent": func() error { _, err := f.r.Accept(ctx, "i", "t", ""); return err },
		"assign without ticket": func() error {
			_, err := f.r.Assign(ctx, routing.Ticket{InstanceID: "i", Team: "x"}, "a")
			return err
		},
		"assign without agent": func() error {
			_, err := f.r.Assign(ctx, routing.Ticket{InstanceID: "i", TicketID: "t", Team: "x"}, "")
			return err
		},
		"release without instance":     func() error { _, err := f.r.Release(ctx, "", "t"); return err },
		"mark answered without ticket": func() error { return f.r.MarkAnswered(ctx, "i", "") },
		"leave without agent":          func() error { _, err := f.r.Leave(ctx, "i", ""); return err },
		"snapshot without instance": func() error {
			_, err := f.r.Snapshot(ctx, "")
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Leaving, answering or releasing what the router does not know is
	// not an error: the hub may be ahead of or behind the router.
	f.want("leave unknown agent", f.leave("ghost"))
	f.answered("ghost-ticket")
	f.want("release unknown ticket", f.release("ghost-ticket"))
}
