package routetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

func testConcurrentSweeps(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	const agents, perAgent = 4, 5
	for i := range agents {
		f.hb(fmt.Sprintf("a%d", i), perAgent, "support")
	}
	for i := range agents * perAgent {
		f.enq(fmt.Sprintf("t%02d", i), "support", 0)
	}
	f.advance(offerTimeout)
	for i := range agents {
		f.hb(fmt.Sprintf("a%d", i), perAgent, "support")
	}

	// Several nodes sweep at once; each expiry must be handled once.
	const sweepers = 4
	results := make([][]routing.Event, sweepers)
	var wg sync.WaitGroup
	for i := range sweepers {
		wg.Go(func() {
			evs, err := f.r.Sweep(f.ctx)
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			results[i] = evs
		})
	}
	wg.Wait()
	expired := map[string]int{}
	offers := 0
	for _, evs := range results {
		f.events(evs)
		for _, ev := range evs {
			switch ev.Kind {
			case routing.EventOfferExpired:
				expired[ev.TicketID]++
			case routing.EventOffered:
				offers++
			default:
				t.Errorf("unexpected event %+v", ev)
			}
		}
	}
	for i := range agents * perAgent {
		if id := fmt.Sprintf("t%02d", i); expired[id] != 1 {
			t.Errorf("ticket %s expired %d times, want once", id, expired[id])
		}
	}
	if offers != agents*perAgent {
		t.Errorf("%d new offers, want %d", offers, agents*perAgent)
	}
	checkInvariants(t, f.snap(), perAgent)
}

// testConcurrentEnqueueAccept races enqueuers, duplicate and foreign
// accepts and releases, and checks that no ticket is ever held twice and
// no agent beyond capacity.
func testConcurrentEnqueueAccept(t *testing.T, nr NewRouterFunc) {
	f := newFixture(t, nr, nil)
	const (
		agents    = 4
		capacity  = 3
		tickets   = 60
		enqueuers = 4
		workers   = 6
	)
	for i := range agents {
		f.hb(fmt.Sprintf("a%d", i), capacity, "support")
	}

	offers := make(chan routing.Event, 4*tickets)
	var mu sync.Mutex
	assigned := map[string]int{}
	feed := func(evs []routing.Event) {
		for _, ev := range evs {
			switch ev.Kind {
			case routing.EventOffered:
				offers <- ev
			case routing.EventAssigned:
				mu.Lock()
				assigned[ev.TicketID]++
				mu.Unlock()
			}
		}
	}

	var done sync.WaitGroup // one per ticket, done at release
	done.Add(tickets)
	enqueued := make(chan struct{})
	var enq sync.WaitGroup
	for g := range enqueuers {
		enq.Go(func() {
			// Every ticket is enqueued by two goroutines at once.
			for i := range tickets {
				if i%enqueuers != g && (i+1)%enqueuers != g {
					continue
				}
				evs, err := f.r.Enqueue(f.ctx, f.ticket(fmt.Sprintf("t%02d", i), "support", i%3))
				if err != nil {
					t.Errorf("enqueue: %v", err)
				}
				feed(evs)
			}
		})
	}
	go func() { enq.Wait(); close(enqueued) }()

	var work sync.WaitGroup
	for range workers {
		work.Go(func() {
			for ev := range offers {
				// The owner accepts twice at once and another agent tries to
				// steal the offer: exactly one accept may win.
				other := fmt.Sprintf("a%d", (int(ev.AgentID[1]-'0')+1)%agents)
				var wins sync.WaitGroup
				var won sync.Mutex
				wonCount := 0
				for _, who := range []string{ev.AgentID, ev.AgentID, other} {
					wins.Go(func() {
						evs, err := f.r.Accept(f.ctx, f.inst, ev.TicketID, who)
						switch {
						case err == nil:
							if who != ev.AgentID {
								t.Errorf("%s accepted %s's offer of %s", who, ev.AgentID, ev.TicketID)
							}
							won.Lock()
							wonCount++
							won.Unlock()
							feed(evs)
						case !errors.Is(err, routing.ErrNoOffer):
							t.Errorf("accept: %v", err)
						}
					})
				}
				wins.Wait()
				if wonCount != 1 {
					t.Errorf("offer of %s to %s accepted %d times", ev.TicketID, ev.AgentID, wonCount)
				}
				// Releases wait for the enqueuers, so a released ticket is
				// never enqueued again by its second enqueuer.
				<-enqueued
				evs, err := f.r.Release(f.ctx, f.inst, ev.TicketID)
				if err != nil {
					t.Errorf("release: %v", err)
				}
				feed(evs)
				done.Done()
			}
		})
	}

	stop := make(chan struct{})
	var checker sync.WaitGroup
	checker.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := f.r.Snapshot(f.ctx, f.inst)
			if err != nil {
				t.Errorf("snapshot: %v", err)
				return
			}
			if !checkInvariants(t, s, capacity) {
				return
			}
		}
	})

	done.Wait()
	close(offers)
	work.Wait()
	close(stop)
	checker.Wait()

	for i := range tickets {
		if id := fmt.Sprintf("t%02d", i); assigned[id] != 1 {
			t.Errorf("ticket %s assigned %d times, want once", id, assigned[id])
		}
	}
	s := f.snap()
	checkInvariants(t, s, capacity)
	for id, st := range s.Agents {
		if len(st.Assigned)+len(st.Offered) != 0 {
			t.Errorf("agent %s still holds %v %v", id, st.Assigned, st.Offered)
		}
	}
	if len(s.Queues) != 0 {
		t.Errorf("queues not empty: %v", s.Queues)
	}
}

// checkInvariants reports a ticket held or queued twice, or an agent over
// capacity.
func checkInvariants(t *testing.T, s routing.Snapshot, capacity int) bool {
	t.Helper()
	ok := true
	seen := map[string]string{}
	note := func(ticket, where string) {
		if prev, dup := seen[ticket]; dup {
			t.Errorf("ticket %s both %s and %s", ticket, prev, where)
			ok = false
		}
		seen[ticket] = where
	}
	for team, ids := range s.Queues {
		for _, id := range ids {
			note(id, "queued in "+team)
		}
	}
	for agent, st := range s.Agents {
		if n := len(st.Assigned) + len(st.Offered); n > capacity {
			t.Errorf("agent %s holds %d tickets, capacity %d", agent, n, capacity)
			ok = false
		}
		for _, id := range st.Assigned {
			note(id, "assigned to "+agent)
		}
		for _, id := range st.Offered {
			note(id, "offered to "+agent)
		}
	}
	return ok
}

// testConcurrentFollowUps: follow-ups of many tickets at once (one per
// inbound message, under load) each get exactly the events of their own
// ticket, as if each had run alone; a router may handle them together.
// In instance A the assignee has lapsed, so every ticket is requeued and
// offered to the other agent; in instance B the assignee is present, so
// every ticket sticks.
func testConcurrentFollowUps(t *testing.T, nr NewRouterFunc) {
	const tickets = 40
	a := newFixture(t, nr, nil)
	b := a.on("inst-b")
	a.hb("a1", tickets, "support")
	b.hb("b1", tickets, "support")
	for i := range tickets {
		id := fmt.Sprintf("t%02d", i)
		a.enq(id, "support", 0)
		a.accept(id, "a1")
		b.enq(id, "support", 0)
		b.accept(id, "b1")
	}
	a.advance(presenceTTL - time.Second)
	a.hb("a2", tickets, "support")
	b.hb("b1", tickets, "support")
	a.advance(time.Second)

	got := make([][]routing.Event, 2*tickets)
	errs := make([]error, 2*tickets)
	var wg sync.WaitGroup
	for i := range 2 * tickets {
		wg.Go(func() {
			f := a
			if i%2 == 1 {
				f = b
			}
			got[i], errs[i] = f.r.FollowUp(f.ctx, f.ticket(fmt.Sprintf("t%02d", i/2), "support", 0))
		})
	}
	wg.Wait()
	for i := range 2 * tickets {
		if errs[i] != nil {
			t.Fatalf("follow-up %d: %v", i, errs[i])
		}
		id := fmt.Sprintf("t%02d", i/2)
		if i%2 == 0 {
			a.want("follow-up of "+id+" in A", got[i], "requeued "+id+" a1", "offered "+id+" a2")
		} else {
			b.want("follow-up of "+id+" in B", got[i])
		}
	}
}
