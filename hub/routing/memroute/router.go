package memroute

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/internal/rule"
)

// Router is the in-process routing.Router.
//
// One mutex guards everything: operations take microseconds and a single
// node has no use for finer locking, while one lock makes every method
// trivially atomic, which is the property the Redis scripts also provide.
type Router struct {
	cfg routing.Config

	mu        sync.Mutex
	instances map[string]*instance
	// due orders offer expiries and presence deadlines so Sweep touches
	// only what is due. Entries are not removed when an offer is accepted
	// or a heartbeat extends presence; Sweep drops such stale entries.
	due dueHeap
}

// New returns an empty Router; zero fields of cfg take their defaults.
func New(cfg routing.Config) *Router {
	return &Router{
		cfg:       cfg.WithDefaults(),
		instances: make(map[string]*instance),
	}
}

type ticketState int8

const (
	queued ticketState = iota + 1
	offered
	assigned
)

type ticket struct {
	id       string
	team     string
	priority int
	// seq is the ticket's place in line: taken when the end user starts
	// waiting (enqueue, or a follow-up after an answer) and kept through
	// expiries, requeues and transfers, so a ticket keeps its place.
	seq      int64
	state    ticketState
	agent    string // holder when offered or assigned
	offerExp int64  // unix ms, while offered
	answered bool
	// passed are the agents that declined the offer or let it expire;
	// they are asked again only when nobody else is eligible.
	passed     map[string]bool
	lastPasser string
}

func (t *ticket) score() float64 { return rule.QueueScore(t.priority, t.seq) }

type agent struct {
	id       string
	teams    []string // sorted
	capacity int
	status   routing.Status
	// presentUntil is the presence deadline in unix ms; 0 once the agent
	// left or the lapse was processed.
	presentUntil int64
	// lastAssigned is the instance sequence number of the agent's last
	// assignment (0: never), the tie-breaker between equally loaded agents.
	lastAssigned int64
	held         map[string]ticketState // offered and assigned tickets
}

func (a *agent) inTeam(team string) bool {
	_, ok := slices.BinarySearch(a.teams, team)
	return ok
}

type instance struct {
	id      string
	seq     int64
	tickets map[string]*ticket
	agents  map[string]*agent
	queues  map[string][]*ticket // team -> waiting tickets, in serving order
}

func (in *instance) next() int64 {
	in.seq++
	return in.seq
}

func (r *Router) instance(id string) *instance {
	in := r.instances[id]
	if in == nil {
		in = &instance{
			id:      id,
			tickets: make(map[string]*ticket),
			agents:  make(map[string]*agent),
			queues:  make(map[string][]*ticket),
		}
		r.instances[id] = in
	}
	return in
}

// op is one method call's view: the instance it works on, the time it
// reads once, and the events it emits in order.
type op struct {
	r      *Router
	in     *instance
	now    int64
	events []routing.Event
}

func (r *Router) begin(instanceID string) *op {
	return &op{r: r, in: r.instance(instanceID), now: r.cfg.Now().UnixMilli()}
}

func (o *op) emit(kind routing.EventKind, t *ticket, agentID string) {
	ev := routing.Event{Kind: kind, InstanceID: o.in.id, TicketID: t.id, AgentID: agentID, Team: t.team}
	if kind == routing.EventOffered {
		ev.ExpiresAt = time.UnixMilli(t.offerExp)
	}
	o.events = append(o.events, ev)
}

// Heartbeat implements routing.Router.
func (r *Router) Heartbeat(ctx context.Context, a routing.Agent) ([]routing.Event, error) {
	a, err := rule.CheckAgent(a)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(a.InstanceID)
	ag := o.agent(a.AgentID)
	ag.teams = a.Teams
	ag.capacity = a.Capacity
	if a.Status == routing.Offline {
		o.leave(ag)
		return o.events, nil
	}
	ag.status = a.Status
	ag.presentUntil = o.now + ms(r.cfg.PresenceTTL)
	heap.Push(&r.due, dueEntry{at: ag.presentUntil, kind: duePresence, member: rule.Member(o.in.id, ag.id)})
	o.dispatch(teamSet(ag.teams))
	return o.events, nil
}

// Leave implements routing.Router.
func (r *Router) Leave(ctx context.Context, instanceID, agentID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "agent id", agentID); err != nil {
		return nil, fmt.Errorf("leave: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(instanceID)
	if ag := o.in.agents[agentID]; ag != nil {
		o.leave(ag)
	}
	return o.events, nil
}

// Enqueue implements routing.Router.
func (r *Router) Enqueue(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(t.InstanceID)
	if o.in.tickets[t.TicketID] == nil {
		o.enqueueNew(t)
	}
	return o.events, nil
}

// FollowUp implements routing.Router.
func (r *Router) FollowUp(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("follow-up: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(t.InstanceID)
	tk := o.in.tickets[t.TicketID]
	if tk == nil {
		o.enqueueNew(t)
		return o.events, nil
	}
	switch tk.state {
	case queued:
		if tk.answered {
			// The end user starts waiting anew: a new place in line.
			o.unqueue(tk)
			o.wait(tk)
			o.push(tk)
		}
	case offered:
		o.wait(tk)
	case assigned:
		o.wait(tk)
		holder := o.in.agents[tk.agent]
		if o.present(holder) {
			return o.events, nil
		}
		touched := teamSet(holder.teams)
		touched[tk.team] = true
		o.detach(tk)
		o.push(tk)
		o.emit(routing.EventRequeued, tk, holder.id)
		o.dispatch(touched)
	}
	return o.events, nil
}

// Accept implements routing.Router.
func (r *Router) Accept(ctx context.Context, instanceID, ticketID, agentID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID, "agent id", agentID); err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(instanceID)
	tk, err := o.liveOffer(ticketID, agentID)
	if err != nil {
		return nil, fmt.Errorf("accept %q by %q: %w", ticketID, agentID, err)
	}
	ag := o.in.agents[agentID]
	tk.state = assigned
	ag.held[tk.id] = assigned
	o.wait(tk)
	o.clearPassed(tk)
	ag.lastAssigned = o.in.next()
	o.emit(routing.EventAssigned, tk, agentID)
	return o.events, nil
}

// Decline implements routing.Router.
func (r *Router) Decline(ctx context.Context, instanceID, ticketID, agentID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID, "agent id", agentID); err != nil {
		return nil, fmt.Errorf("decline: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(instanceID)
	tk, err := o.liveOffer(ticketID, agentID)
	if err != nil {
		return nil, fmt.Errorf("decline %q by %q: %w", ticketID, agentID, err)
	}
	o.pass(tk, routing.EventRequeued)
	return o.events, nil
}

// Assign implements routing.Router.
func (r *Router) Assign(ctx context.Context, t routing.Ticket, agentID string) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("assign: %w", err)
	}
	if err := rule.NonEmpty("agent id", agentID); err != nil {
		return nil, fmt.Errorf("assign: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(t.InstanceID)
	tk := o.in.tickets[t.TicketID]
	fresh := tk == nil
	if fresh {
		tk = &ticket{id: t.TicketID, team: t.Team, priority: t.Priority, seq: o.in.next()}
		o.in.tickets[tk.id] = tk
	}
	if tk.state == assigned && tk.agent == agentID {
		return nil, nil
	}
	ag := o.agent(agentID)
	touched := map[string]bool{}
	switch {
	case fresh:
	case tk.state == queued:
		o.unqueue(tk)
	default:
		for _, team := range o.in.agents[tk.agent].teams {
			touched[team] = true
		}
		o.detach(tk)
	}
	tk.state = assigned
	tk.agent = agentID
	ag.held[tk.id] = assigned
	o.wait(tk)
	o.clearPassed(tk)
	ag.lastAssigned = o.in.next()
	o.emit(routing.EventAssigned, tk, agentID)
	o.dispatch(touched)
	return o.events, nil
}

// Transfer implements routing.Router.
func (r *Router) Transfer(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(t.InstanceID)
	tk := o.in.tickets[t.TicketID]
	if tk == nil {
		o.enqueueNew(t)
		return o.events, nil
	}
	touched := map[string]bool{t.Team: true}
	prev := ""
	if tk.state == queued {
		o.unqueue(tk)
	} else {
		prev = tk.agent
		for _, team := range o.in.agents[prev].teams {
			touched[team] = true
		}
		o.detach(tk)
	}
	o.wait(tk)
	o.clearPassed(tk)
	tk.team = t.Team
	tk.priority = t.Priority
	o.push(tk)
	if prev != "" {
		o.emit(routing.EventRequeued, tk, prev)
	} else {
		o.emit(routing.EventQueued, tk, "")
	}
	o.dispatch(touched)
	return o.events, nil
}

// MarkAnswered implements routing.Router.
func (r *Router) MarkAnswered(ctx context.Context, instanceID, ticketID string) error {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID); err != nil {
		return fmt.Errorf("mark answered: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if in := r.instances[instanceID]; in != nil {
		if tk := in.tickets[ticketID]; tk != nil {
			tk.answered = true
		}
	}
	return nil
}

// Release implements routing.Router.
func (r *Router) Release(ctx context.Context, instanceID, ticketID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.begin(instanceID)
	tk := o.in.tickets[ticketID]
	if tk == nil {
		return nil, nil
	}
	touched := map[string]bool{}
	if tk.state == queued {
		o.unqueue(tk)
	} else {
		for _, team := range o.in.agents[tk.agent].teams {
			touched[team] = true
		}
		o.detach(tk)
	}
	delete(o.in.tickets, tk.id)
	o.dispatch(touched)
	return o.events, nil
}

// Sweep implements routing.Router.
func (r *Router) Sweep(ctx context.Context) ([]routing.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	var events []routing.Event
	for r.due.Len() > 0 && r.due[0].at <= now {
		e := heap.Pop(&r.due).(dueEntry)
		instanceID, id, err := rule.SplitMember(e.member)
		if err != nil {
			return events, fmt.Errorf("sweep: %w", err)
		}
		in := r.instances[instanceID]
		if in == nil {
			continue
		}
		o := &op{r: r, in: in, now: now}
		switch e.kind {
		case dueOffer:
			if tk := in.tickets[id]; tk != nil && tk.state == offered && tk.offerExp == e.at {
				o.pass(tk, routing.EventOfferExpired)
			}
		case duePresence:
			if ag := in.agents[id]; ag != nil && ag.presentUntil == e.at {
				ag.presentUntil = 0
				o.dispatch(o.dropWork(ag))
			}
		}
		events = append(events, o.events...)
	}
	return events, nil
}

// Snapshot implements routing.Router.
func (r *Router) Snapshot(ctx context.Context, instanceID string) (routing.Snapshot, error) {
	if err := rule.NonEmpty("instance id", instanceID); err != nil {
		return routing.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	s := routing.Snapshot{Queues: map[string][]string{}, Agents: map[string]routing.AgentState{}}
	in := r.instances[instanceID]
	if in == nil {
		return s, nil
	}
	for team, q := range in.queues {
		ids := make([]string, len(q))
		for i, tk := range q {
			ids[i] = tk.id
		}
		s.Queues[team] = ids
	}
	for id, ag := range in.agents {
		st := routing.AgentState{Status: ag.status, Present: ag.presentUntil > now, Capacity: ag.capacity, OfferExpires: map[string]time.Time{}}
		for tid, state := range ag.held {
			if state == assigned {
				st.Assigned = append(st.Assigned, tid)
			} else {
				st.Offered = append(st.Offered, tid)
				if tk := in.tickets[tid]; tk != nil {
					st.OfferExpires[tid] = time.UnixMilli(tk.offerExp)
				}
			}
		}
		sort.Strings(st.Assigned)
		sort.Strings(st.Offered)
		s.Agents[id] = st
	}
	return s, nil
}

// agent returns the agent record, creating an offline one (known by an
// Assign or a heartbeat that is being recorded).
func (o *op) agent(id string) *agent {
	ag := o.in.agents[id]
	if ag == nil {
		ag = &agent{id: id, capacity: 1, status: routing.Offline, held: make(map[string]ticketState)}
		o.in.agents[id] = ag
	}
	return ag
}

func (o *op) enqueueNew(t routing.Ticket) {
	tk := &ticket{id: t.TicketID, team: t.Team, priority: t.Priority, seq: o.in.next()}
	o.in.tickets[tk.id] = tk
	o.push(tk)
	o.emit(routing.EventQueued, tk, "")
	o.dispatch(map[string]bool{tk.team: true})
}

// wait marks the ticket as waiting on an agent; one that had been
// answered gets a new place in line, because its end user only now
// started waiting again.
func (o *op) wait(tk *ticket) {
	if tk.answered {
		tk.answered = false
		tk.seq = o.in.next()
	}
}

func (o *op) clearPassed(tk *ticket) {
	tk.passed = nil
	tk.lastPasser = ""
}

func (o *op) present(ag *agent) bool {
	return ag.status != routing.Offline && ag.presentUntil > o.now
}

func (o *op) liveOffer(ticketID, agentID string) (*ticket, error) {
	tk := o.in.tickets[ticketID]
	if tk == nil || tk.state != offered || tk.agent != agentID || o.now >= tk.offerExp {
		return nil, routing.ErrNoOffer
	}
	return tk, nil
}

// pass handles an offer the holder gave back (decline) or let expire: the
// ticket goes back to its place in line and the next agent is asked.
func (o *op) pass(tk *ticket, kind routing.EventKind) {
	holder := o.in.agents[tk.agent]
	touched := teamSet(holder.teams)
	touched[tk.team] = true
	o.detach(tk)
	if tk.passed == nil {
		tk.passed = make(map[string]bool)
	}
	tk.passed[holder.id] = true
	tk.lastPasser = holder.id
	o.push(tk)
	o.emit(kind, tk, holder.id)
	o.dispatch(touched)
}

func (o *op) leave(ag *agent) {
	ag.status = routing.Offline
	ag.presentUntil = 0
	o.dispatch(o.dropWork(ag))
}

// dropWork requeues what an absent agent cannot handle: offers and
// tickets still waiting on a reply. Answered tickets stay theirs. It
// returns the teams whose queues grew.
func (o *op) dropWork(ag *agent) map[string]bool {
	var drop []*ticket
	for tid, state := range ag.held {
		tk := o.in.tickets[tid]
		if state == offered || !tk.answered {
			drop = append(drop, tk)
		}
	}
	sort.Slice(drop, func(i, j int) bool { return drop[i].score() < drop[j].score() })
	touched := map[string]bool{}
	for _, tk := range drop {
		o.detach(tk)
		o.push(tk)
		o.emit(routing.EventRequeued, tk, ag.id)
		touched[tk.team] = true
	}
	return touched
}

// detach takes the ticket from its holder. The due entry of an offer is
// left to go stale.
func (o *op) detach(tk *ticket) {
	delete(o.in.agents[tk.agent].held, tk.id)
	tk.agent = ""
	tk.offerExp = 0
}

func (o *op) push(tk *ticket) {
	tk.state = queued
	q := o.in.queues[tk.team]
	s := tk.score()
	i := sort.Search(len(q), func(i int) bool { return q[i].score() > s })
	o.in.queues[tk.team] = slices.Insert(q, i, tk)
}

func (o *op) unqueue(tk *ticket) {
	q := o.in.queues[tk.team]
	s := tk.score()
	i := sort.Search(len(q), func(i int) bool { return q[i].score() >= s })
	if i < len(q) && q[i] == tk {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(o.in.queues, tk.team)
	} else {
		o.in.queues[tk.team] = q
	}
}

func (o *op) offer(tk *ticket, ag *agent) {
	o.unqueue(tk)
	tk.state = offered
	tk.agent = ag.id
	tk.offerExp = o.now + ms(o.r.cfg.OfferTimeout)
	ag.held[tk.id] = offered
	heap.Push(&o.r.due, dueEntry{at: tk.offerExp, kind: dueOffer, member: rule.Member(o.in.id, tk.id)})
	o.emit(routing.EventOffered, tk, ag.id)
}

// dispatch makes offers until no waiting ticket of the given teams has an
// eligible agent. Only a queue's head matters: eligibility depends on the
// team, not the ticket, so if the head has nobody, neither has the rest.
// Across teams the best-placed head goes first, so an agent in several
// teams is offered the oldest (highest-priority) ticket. Teams not touched
// by the operation need no look: nothing there became possible.
func (o *op) dispatch(teams map[string]bool) {
	for {
		var bestT *ticket
		var bestA *agent
		for team := range teams {
			q := o.in.queues[team]
			if len(q) == 0 {
				continue
			}
			head := q[0]
			if bestT != nil && bestT.score() < head.score() {
				continue
			}
			if ag := o.pick(head); ag != nil {
				bestT, bestA = head, ag
			}
		}
		if bestT == nil {
			return
		}
		o.offer(bestT, bestA)
	}
}

// pick chooses the agent for a ticket: eligible agents that have not
// passed on it first, then ones other than the latest to pass, then that
// one; within a tier the fewest held tickets, then the oldest last
// assignment, then the agent id so every implementation picks the same.
func (o *op) pick(tk *ticket) *agent {
	var best *agent
	var bestTier, bestLoad int
	for _, ag := range o.in.agents {
		load := len(ag.held)
		if ag.status != routing.Available || ag.presentUntil <= o.now || load >= ag.capacity || !ag.inTeam(tk.team) {
			continue
		}
		tier := 0
		if tk.passed[ag.id] {
			tier = 1
			if ag.id == tk.lastPasser {
				tier = 2
			}
		}
		if best == nil || tier < bestTier ||
			tier == bestTier && (load < bestLoad ||
				load == bestLoad && (ag.lastAssigned < best.lastAssigned ||
					ag.lastAssigned == best.lastAssigned && ag.id < best.id)) {
			best, bestTier, bestLoad = ag, tier, load
		}
	}
	return best
}

func teamSet(teams []string) map[string]bool {
	m := make(map[string]bool, len(teams)+1)
	for _, t := range teams {
		m[t] = true
	}
	return m
}

// ms converts a duration to whole milliseconds, at least 1: the routers
// keep time in unix milliseconds so both implementations round alike.
func ms(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

const (
	dueOffer = iota
	duePresence
)

type dueEntry struct {
	at     int64
	kind   int
	member string
}

// dueHeap orders like the Redis sweep: by time, offers before presences
// at the same instant, then by member.
type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.member < b.member
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

var _ routing.Router = (*Router)(nil)
