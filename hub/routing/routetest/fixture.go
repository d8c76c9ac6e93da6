package routetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

// Timing used by the suite unless a test says otherwise.
const (
	offerTimeout = 30 * time.Second
	presenceTTL  = 45 * time.Second
)

// NewRouterFunc builds a fresh, empty Router for one test from cfg, which
// carries the test's fake clock. It registers its own cleanup with t.
type NewRouterFunc func(t *testing.T, cfg routing.Config) routing.Router

// fixture is one test's router, clock and instance, with helpers that
// fail the test on unexpected errors so the test reads as the scenario.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	r     routing.Router
	cfg   routing.Config
	clock *Clock
	inst  string
}

func newFixture(t *testing.T, newRouter NewRouterFunc, tune func(*routing.Config)) *fixture {
	t.Helper()
	clock := NewClock()
	cfg := routing.Config{OfferTimeout: offerTimeout, PresenceTTL: presenceTTL, Now: clock.Now}
	if tune != nil {
		tune(&cfg)
	}
	return &fixture{t: t, ctx: t.Context(), r: newRouter(t, cfg), cfg: cfg, clock: clock, inst: "inst-a"}
}

// on returns a view of the same router and clock for another instance.
func (f *fixture) on(instanceID string) *fixture {
	g := *f
	g.inst = instanceID
	return &g
}

func (f *fixture) advance(d time.Duration) { f.clock.Advance(d) }

// events checks what every event must satisfy and renders them as
// "kind ticket [agent]" for comparison.
func (f *fixture) events(evs []routing.Event) []string {
	f.t.Helper()
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		if ev.InstanceID != f.inst {
			f.t.Errorf("event %+v: instance %q, want %q", ev, ev.InstanceID, f.inst)
		}
		if ev.Team == "" {
			f.t.Errorf("event %+v has no team", ev)
		}
		if ev.Kind == routing.EventOffered {
			if want := f.clock.Now().Add(f.cfg.OfferTimeout); !ev.ExpiresAt.Equal(want) {
				f.t.Errorf("event %+v expires at %v, want %v", ev, ev.ExpiresAt, want)
			}
		} else if !ev.ExpiresAt.IsZero() {
			f.t.Errorf("event %+v: ExpiresAt set on a %s event", ev, ev.Kind)
		}
		out = append(out, render(ev))
	}
	return out
}

func render(ev routing.Event) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", ev.Kind, ev.TicketID, ev.AgentID))
}

// want compares events with their renderings, in order.
func (f *fixture) want(what string, got []routing.Event, want ...string) {
	f.t.Helper()
	if g := f.events(got); !slices.Equal(g, want) {
		f.t.Errorf("%s: events\n got  %q\n want %q", what, g, want)
	}
}

func (f *fixture) must(what string, evs []routing.Event, err error) []routing.Event {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
	return evs
}

func (f *fixture) hb(agentID string, capacity int, teams ...string) []routing.Event {
	f.t.Helper()
	return f.hbStatus(agentID, routing.Available, capacity, teams...)
}

func (f *fixture) hbStatus(agentID string, st routing.Status, capacity int, teams ...string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Heartbeat(f.ctx, routing.Agent{InstanceID: f.inst, AgentID: agentID, Teams: teams, Capacity: capacity, Status: st})
	return f.must("heartbeat "+agentID, evs, err)
}

func (f *fixture) leave(agentID string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Leave(f.ctx, f.inst, agentID)
	return f.must("leave "+agentID, evs, err)
}

func (f *fixture) ticket(id, team string, priority int) routing.Ticket {
	return routing.Ticket{InstanceID: f.inst, TicketID: id, Team: team, Priority: priority}
}

func (f *fixture) enq(id, team string, priority int) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Enqueue(f.ctx, f.ticket(id, team, priority))
	return f.must("enqueue "+id, evs, err)
}

func (f *fixture) followUp(id, team string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.FollowUp(f.ctx, f.ticket(id, team, 0))
	return f.must("follow-up "+id, evs, err)
}

func (f *fixture) transfer(id, team string, priority int) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Transfer(f.ctx, f.ticket(id, team, priority))
	return f.must("transfer "+id, evs, err)
}

func (f *fixture) accept(ticketID, agentID string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Accept(f.ctx, f.inst, ticketID, agentID)
	return f.must("accept "+ticketID+" by "+agentID, evs, err)
}

func (f *fixture) decline(ticketID, agentID string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Decline(f.ctx, f.inst, ticketID, agentID)
	return f.must("decline "+ticketID+" by "+agentID, evs, err)
}

func (f *fixture) assign(ticketID, agentID string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Assign(f.ctx, routing.Ticket{InstanceID: f.inst, TicketID: ticketID, Team: "support"}, agentID)
	return f.must("assign "+ticketID+" to "+agentID, evs, err)
}

func (f *fixture) answered(ticketID string) {
	f.t.Helper()
	if err := f.r.MarkAnswered(f.ctx, f.inst, ticketID); err != nil {
		f.t.Fatalf("mark answered %s: %v", ticketID, err)
	}
}

func (f *fixture) release(ticketID string) []routing.Event {
	f.t.Helper()
	evs, err := f.r.Release(f.ctx, f.inst, ticketID)
	return f.must("release "+ticketID, evs, err)
}

func (f *fixture) sweep() []routing.Event {
	f.t.Helper()
	evs, err := f.r.Sweep(f.ctx)
	return f.must("sweep", evs, err)
}

func (f *fixture) snap() routing.Snapshot {
	f.t.Helper()
	s, err := f.r.Snapshot(f.ctx, f.inst)
	if err != nil {
		f.t.Fatalf("snapshot: %v", err)
	}
	return s
}

// wantQueues compares every non-empty queue of the instance; give them as
// "team: t1 t2".
func (f *fixture) wantQueues(want ...string) {
	f.t.Helper()
	var got []string
	for team, ids := range f.snap().Queues {
		if len(ids) > 0 {
			got = append(got, team+": "+strings.Join(ids, " "))
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		f.t.Errorf("queues\n got  %q\n want %q", got, want)
	}
}

// agentState is AgentState with nil and empty slices alike.
type agentState struct {
	Status   routing.Status
	Present  bool
	Capacity int
	Assigned string
	Offered  string
}

func (f *fixture) wantAgent(agentID string, want agentState) {
	f.t.Helper()
	st, ok := f.snap().Agents[agentID]
	if !ok {
		f.t.Errorf("snapshot has no agent %q", agentID)
		return
	}
	got := agentState{
		Status:   st.Status,
		Present:  st.Present,
		Capacity: st.Capacity,
		Assigned: strings.Join(sortedCopy(st.Assigned), " "),
		Offered:  strings.Join(sortedCopy(st.Offered), " "),
	}
	if got != want {
		f.t.Errorf("agent %s\n got  %+v\n want %+v", agentID, got, want)
	}
	// Every pending offer has its deadline (a reconnecting client's
	// countdown), and only offers do.
	if len(st.OfferExpires) != len(st.Offered) {
		f.t.Errorf("agent %s: %d offers but deadlines %v", agentID, len(st.Offered), st.OfferExpires)
	}
	for _, id := range st.Offered {
		if exp, ok := st.OfferExpires[id]; !ok || exp.IsZero() {
			f.t.Errorf("agent %s: offer of %s has no deadline", agentID, id)
		}
	}
}

// wantOfferExpires checks the deadline the snapshot gives an offer.
func (f *fixture) wantOfferExpires(agentID, ticketID string, want time.Time) {
	f.t.Helper()
	if got := f.snap().Agents[agentID].OfferExpires[ticketID]; !got.Equal(want) {
		f.t.Errorf("offer of %s to %s expires at %v, want %v", ticketID, agentID, got, want)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func (f *fixture) wantNoOffer(what string, evs []routing.Event, err error) {
	f.t.Helper()
	if !errors.Is(err, routing.ErrNoOffer) {
		f.t.Errorf("%s: err = %v, want ErrNoOffer", what, err)
	}
	if len(evs) != 0 {
		f.t.Errorf("%s: failed call returned events %v", what, evs)
	}
}
