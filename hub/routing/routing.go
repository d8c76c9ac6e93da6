package routing

import (
	"context"
	"errors"
	"time"
)

// Status is an agent's presence.
type Status string

const (
	Available Status = "available"
	Away      Status = "away"
	Offline   Status = "offline"
)

// Agent is an agent's routing state as the hub reports it on each
// heartbeat.
type Agent struct {
	InstanceID string
	AgentID    string
	Teams      []string
	// Capacity is how many tickets the agent can hold at once (>= 1).
	Capacity int
	Status   Status
}

// Ticket is a ticket that needs an agent.
type Ticket struct {
	InstanceID string
	TicketID   string
	Team       string
	// Priority: higher is served first; equal priorities are FIFO.
	Priority int
}

// EventKind names what happened to a ticket.
type EventKind string

const (
	// EventOffered: the ticket is offered to AgentID until ExpiresAt.
	EventOffered EventKind = "offered"
	// EventOfferExpired: AgentID did not accept in time; the ticket is back
	// at the head of its queue (and usually offered to the next agent in
	// the same call).
	EventOfferExpired EventKind = "offer_expired"
	// EventAssigned: AgentID now holds the ticket.
	EventAssigned EventKind = "assigned"
	// EventRequeued: the ticket left AgentID (presence lapsed, agent went
	// offline, follow-up for an absent agent) and waits in its queue.
	EventRequeued EventKind = "requeued"
	// EventQueued: the ticket waits in its team's queue.
	EventQueued EventKind = "queued"
)

// Event is one routing change. The hub persists assignments and notifies
// agents from these.
type Event struct {
	Kind       EventKind
	InstanceID string
	TicketID   string
	AgentID    string
	Team       string
	ExpiresAt  time.Time // for EventOffered
}

// Router assigns tickets to agents. All methods are safe for concurrent use
// by many goroutines and, for shared implementations, many nodes. Methods
// that change state return the events they caused, in order.
//
// Semantics (held by routetest):
//   - per team, a queue ordered by priority (high first) then FIFO;
//   - an agent is eligible for a ticket when Available, in the ticket's
//     team, with a live heartbeat, and holding fewer tickets (assigned plus
//     offered) than their capacity;
//   - among eligible agents the one holding the fewest tickets wins; ties
//     go to the one whose last assignment is oldest (never assigned counts
//     as oldest);
//   - an offer not accepted within OfferTimeout expires at the next Sweep,
//     the ticket goes back to the head of its queue and is offered to the
//     next eligible agent (not the one that let it expire, while another
//     is eligible);
//   - follow-ups stick to the current assignee while they are present;
//   - when an agent's heartbeat lapses (PresenceTTL) or they go Offline,
//     their offers and their unanswered tickets (see MarkAnswered) go back
//     to the queue; answered tickets stay theirs;
//   - whenever capacity frees up, the oldest waiting ticket of the agent's
//     teams is offered first.
type Router interface {
	// Heartbeat records the agent's presence and settings, extending its
	// TTL; it may produce offers for waiting tickets. Status Offline acts
	// as Leave.
	Heartbeat(ctx context.Context, a Agent) ([]Event, error)
	// Leave marks the agent offline at once (sign-out).
	Leave(ctx context.Context, instanceID, agentID string) ([]Event, error)
	// Enqueue puts a ticket that needs an agent into its team's queue and
	// offers it if an agent is eligible. Enqueueing a ticket that is
	// already queued, offered or assigned changes nothing.
	Enqueue(ctx context.Context, t Ticket) ([]Event, error)
	// FollowUp reports a new end-user message on a ticket: if the
	// assignee is present it stays theirs and is marked unanswered;
	// otherwise the ticket is (re)queued. A ticket the router does not know
	// is enqueued.
	FollowUp(ctx context.Context, t Ticket) ([]Event, error)
	// Accept turns the agent's pending offer into an assignment. It fails
	// with ErrNoOffer when the offer expired or belongs to someone else.
	Accept(ctx context.Context, instanceID, ticketID, agentID string) ([]Event, error)
	// Decline gives an offer back; the ticket is offered to the next agent.
	Decline(ctx context.Context, instanceID, ticketID, agentID string) ([]Event, error)
	// Assign gives the ticket directly to an agent (transfer, or an agent
	// picking it), regardless of capacity, removing it from any queue. A
	// ticket the router does not know (after a restart of an in-process
	// router, or one never enqueued) is taken in with t's team and
	// priority; for a known ticket they are ignored, as in Enqueue.
	Assign(ctx context.Context, t Ticket, agentID string) ([]Event, error)
	// Transfer moves the ticket to another team's queue.
	Transfer(ctx context.Context, t Ticket) ([]Event, error)
	// MarkAnswered records that the assignee replied: the ticket is no
	// longer waiting on the agent.
	MarkAnswered(ctx context.Context, instanceID, ticketID string) error
	// Release forgets the ticket (solved, closed), freeing capacity.
	Release(ctx context.Context, instanceID, ticketID string) ([]Event, error)
	// Sweep expires offers and lapsed presences as of now and makes the
	// offers that follow. Every node calls it periodically; each expiry is
	// processed once.
	Sweep(ctx context.Context) ([]Event, error)
	// Snapshot reports the live state of an instance (for the console and
	// tests).
	Snapshot(ctx context.Context, instanceID string) (Snapshot, error)
}

// Snapshot is the live routing state of one instance.
type Snapshot struct {
	// Queues maps team to ticket ids in the order they will be served.
	Queues map[string][]string
	// Agents maps agent id to their live state.
	Agents map[string]AgentState
}

// AgentState is an agent's live routing state.
type AgentState struct {
	Status   Status
	Present  bool // heartbeat not lapsed
	Capacity int
	Assigned []string // ticket ids held
	Offered  []string // ticket ids offered, awaiting accept
	// OfferExpires holds when each offered ticket's offer lapses, by
	// ticket id, so a client that reconnects mid-offer keeps its
	// countdown.
	OfferExpires map[string]time.Time
}

// Config holds the timing of a router.
type Config struct {
	// OfferTimeout is how long an agent has to accept an offer.
	// Default 30s.
	OfferTimeout time.Duration
	// PresenceTTL is how long a heartbeat keeps an agent present.
	// Default 45s (clients heartbeat every 15s).
	PresenceTTL time.Duration
	// Now returns the current time; tests inject a clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.OfferTimeout <= 0 {
		c.OfferTimeout = 30 * time.Second
	}
	if c.PresenceTTL <= 0 {
		c.PresenceTTL = 45 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrNoOffer is returned by Accept and Decline when the agent holds no
// live offer for the ticket.
var ErrNoOffer = errors.New("routing: no pending offer for this agent")

// Bus carries notifications between nodes: the node that changes something
// publishes; the node that holds the affected socket delivers.
// Delivery is at most once: the database is the record and clients fill
// gaps on resume.
type Bus interface {
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe calls fn for each message on topic, in publish order per
	// publisher, until cancel is called or ctx ends. fn must not block long.
	Subscribe(ctx context.Context, topic string, fn func(payload []byte)) (cancel func(), err error)
	Close() error
}
