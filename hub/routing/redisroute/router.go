package redisroute

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/internal/rule"
)

// DefaultPrefix namespaces keys and bus channels when Config.Prefix is
// empty.
const DefaultPrefix = "sb:"

// Config configures a Router.
type Config struct {
	// Prefix namespaces every key, so several deployments (or tests) can
	// share one Redis. Default DefaultPrefix.
	Prefix string
	// SweepBatch is how many expiries one sweep script handles before it
	// yields Redis to other clients; Sweep loops until nothing is due.
	// Default 256.
	SweepBatch int
	routing.Config
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = 256
	}
	c.Config = c.Config.WithDefaults()
	return c
}

// Router is the Redis routing.Router. Any number of Routers, in any number
// of processes, may share one Redis and prefix: they are one router.
type Router struct {
	client  redis.UniversalClient
	pipe    *pipe
	cfg     Config
	scripts *scripts
	// followUps coalesces concurrent FollowUp calls.
	followUps *followUps
}

// New returns a Router on client. The client stays the caller's to close.
func New(client redis.UniversalClient, cfg Config) *Router {
	r := &Router{client: client, pipe: newPipe(client), cfg: cfg.WithDefaults(), scripts: newScripts()}
	r.followUps = newFollowUps(r)
	return r
}

// run executes a mutating script with the common arguments and decodes
// its status and events.
func (r *Router) run(ctx context.Context, s *redis.Script, fifth any, args ...any) (string, []routing.Event, error) {
	return r.runAt(ctx, s, r.cfg.Now(), fifth, args...)
}

func (r *Router) runAt(ctx context.Context, s *redis.Script, now time.Time, fifth any, args ...any) (string, []routing.Event, error) {
	argv := append(r.args(now, fifth, len(args)), args...)
	res, err := r.eval(ctx, s, argv)
	if err != nil {
		return "", nil, err
	}
	str, err := replyStrings(res)
	if err != nil {
		return "", nil, err
	}
	if len(str) == 0 {
		return "", nil, errors.New("empty script reply")
	}
	events, err := decodeEvents(str[1:])
	if err != nil {
		return "", nil, err
	}
	return str[0], events, nil
}

// args returns the arguments every script starts with (see scripts.go).
func (r *Router) args(now time.Time, fifth any, n int) []any {
	argv := make([]any, 0, 5+n)
	return append(argv, r.cfg.Prefix, now.UnixMilli(), ms(r.cfg.OfferTimeout), ms(r.cfg.PresenceTTL), fifth)
}

// replyStrings checks that a script reply is a list of strings.
func replyStrings(res []any) ([]string, error) {
	str := make([]string, len(res))
	for i, v := range res {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("malformed script reply: element %d is %T", i, v)
		}
		str[i] = s
	}
	return str, nil
}

// decodeEvents reads events of six strings each: kind, instance, ticket,
// agent, team, offer expiry.
func decodeEvents(str []string) ([]routing.Event, error) {
	if len(str)%6 != 0 {
		return nil, fmt.Errorf("malformed script reply: %d event fields", len(str))
	}
	var events []routing.Event
	for i := 0; i < len(str); i += 6 {
		ev := routing.Event{
			Kind:       routing.EventKind(str[i]),
			InstanceID: str[i+1],
			TicketID:   str[i+2],
			AgentID:    str[i+3],
			Team:       str[i+4],
		}
		if ev.Kind == routing.EventOffered {
			exp, err := strconv.ParseInt(str[i+5], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("malformed offer expiry %q: %w", str[i+5], err)
			}
			ev.ExpiresAt = time.UnixMilli(exp)
		}
		events = append(events, ev)
	}
	return events, nil
}

// eval runs a script by its hash through the pipe, so concurrent
// operations share round trips; a Redis that does not know the script
// (restarted, flushed) gets it loaded once by Script.Run.
func (r *Router) eval(ctx context.Context, s *redis.Script, argv []any) ([]any, error) {
	cmd := redis.NewSliceCmd(ctx, append([]any{"evalsha", s.Hash(), 0}, argv...)...)
	if err := r.pipe.do(ctx, cmd); err != nil {
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			return s.Run(ctx, r.client, nil, argv...).Slice()
		}
		return nil, err
	}
	return cmd.Val(), nil
}

// Heartbeat implements routing.Router.
func (r *Router) Heartbeat(ctx context.Context, a routing.Agent) ([]routing.Event, error) {
	a, err := rule.CheckAgent(a)
	if err != nil {
		return nil, fmt.Errorf("redisroute: heartbeat: %w", err)
	}
	args := []any{a.AgentID, string(a.Status), a.Capacity}
	for _, t := range a.Teams {
		args = append(args, t)
	}
	_, evs, err := r.run(ctx, r.scripts.heartbeat, a.InstanceID, args...)
	if err != nil {
		return nil, fmt.Errorf("redisroute: heartbeat %q: %w", a.AgentID, err)
	}
	return evs, nil
}

// Leave implements routing.Router.
func (r *Router) Leave(ctx context.Context, instanceID, agentID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "agent id", agentID); err != nil {
		return nil, fmt.Errorf("redisroute: leave: %w", err)
	}
	_, evs, err := r.run(ctx, r.scripts.leave, instanceID, agentID)
	if err != nil {
		return nil, fmt.Errorf("redisroute: leave %q: %w", agentID, err)
	}
	return evs, nil
}

// Enqueue implements routing.Router.
func (r *Router) Enqueue(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	return r.ticketOp(ctx, "enqueue", r.scripts.enqueue, t)
}

// FollowUp implements routing.Router. Concurrent follow-ups (one per
// inbound message) share one script call (followups.go).
func (r *Router) FollowUp(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("redisroute: follow-up: %w", err)
	}
	evs, err := r.followUps.do(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("redisroute: follow-up %q: %w", t.TicketID, err)
	}
	return evs, nil
}

// Transfer implements routing.Router.
func (r *Router) Transfer(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	return r.ticketOp(ctx, "transfer", r.scripts.transfer, t)
}

func (r *Router) ticketOp(ctx context.Context, name string, s *redis.Script, t routing.Ticket) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("redisroute: %s: %w", name, err)
	}
	_, evs, err := r.run(ctx, s, t.InstanceID, t.TicketID, t.Team, t.Priority)
	if err != nil {
		return nil, fmt.Errorf("redisroute: %s %q: %w", name, t.TicketID, err)
	}
	return evs, nil
}

// Accept implements routing.Router.
func (r *Router) Accept(ctx context.Context, instanceID, ticketID, agentID string) ([]routing.Event, error) {
	return r.offerOp(ctx, "accept", r.scripts.accept, instanceID, ticketID, agentID)
}

// Decline implements routing.Router.
func (r *Router) Decline(ctx context.Context, instanceID, ticketID, agentID string) ([]routing.Event, error) {
	return r.offerOp(ctx, "decline", r.scripts.decline, instanceID, ticketID, agentID)
}

// Assign implements routing.Router.
func (r *Router) Assign(ctx context.Context, t routing.Ticket, agentID string) ([]routing.Event, error) {
	t, err := rule.CheckTicket(t)
	if err != nil {
		return nil, fmt.Errorf("redisroute: assign: %w", err)
	}
	if err := rule.NonEmpty("agent id", agentID); err != nil {
		return nil, fmt.Errorf("redisroute: assign: %w", err)
	}
	_, evs, err := r.run(ctx, r.scripts.assign, t.InstanceID, t.TicketID, agentID, t.Team, t.Priority)
	if err != nil {
		return nil, fmt.Errorf("redisroute: assign %q to %q: %w", t.TicketID, agentID, err)
	}
	return evs, nil
}

func (r *Router) offerOp(ctx context.Context, name string, s *redis.Script, instanceID, ticketID, agentID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID, "agent id", agentID); err != nil {
		return nil, fmt.Errorf("redisroute: %s: %w", name, err)
	}
	status, evs, err := r.run(ctx, s, instanceID, ticketID, agentID)
	switch {
	case err != nil:
	case status == "nooffer":
		err = routing.ErrNoOffer
	case status != "ok":
		err = fmt.Errorf("unexpected script status %q", status)
	}
	if err != nil {
		return nil, fmt.Errorf("redisroute: %s %q by %q: %w", name, ticketID, agentID, err)
	}
	return evs, nil
}

// MarkAnswered implements routing.Router.
func (r *Router) MarkAnswered(ctx context.Context, instanceID, ticketID string) error {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID); err != nil {
		return fmt.Errorf("redisroute: mark answered: %w", err)
	}
	if _, _, err := r.run(ctx, r.scripts.answered, instanceID, ticketID); err != nil {
		return fmt.Errorf("redisroute: mark answered %q: %w", ticketID, err)
	}
	return nil
}

// Release implements routing.Router.
func (r *Router) Release(ctx context.Context, instanceID, ticketID string) ([]routing.Event, error) {
	if err := rule.NonEmpty("instance id", instanceID, "ticket id", ticketID); err != nil {
		return nil, fmt.Errorf("redisroute: release: %w", err)
	}
	_, evs, err := r.run(ctx, r.scripts.release, instanceID, ticketID)
	if err != nil {
		return nil, fmt.Errorf("redisroute: release %q: %w", ticketID, err)
	}
	return evs, nil
}

// Sweep implements routing.Router. It runs the sweep script in batches of
// Config.SweepBatch until nothing is due; all batches use the time read at
// the start.
func (r *Router) Sweep(ctx context.Context) ([]routing.Event, error) {
	// One "now" for all batches, so a batch boundary cannot move time
	// between two expiries of the same call.
	now := r.cfg.Now()
	var all []routing.Event
	for {
		status, evs, err := r.runAt(ctx, r.scripts.sweep, now, r.cfg.SweepBatch)
		if err != nil {
			return all, fmt.Errorf("redisroute: sweep: %w", err)
		}
		all = append(all, evs...)
		if status != "more" {
			return all, nil
		}
	}
}

// Snapshot implements routing.Router.
func (r *Router) Snapshot(ctx context.Context, instanceID string) (routing.Snapshot, error) {
	if err := rule.NonEmpty("instance id", instanceID); err != nil {
		return routing.Snapshot{}, fmt.Errorf("redisroute: snapshot: %w", err)
	}
	res, err := r.scripts.snapshot.Run(ctx, r.client, nil,
		r.cfg.Prefix, r.cfg.Now().UnixMilli(), 0, 0, instanceID).Slice()
	if err != nil {
		return routing.Snapshot{}, fmt.Errorf("redisroute: snapshot %q: %w", instanceID, err)
	}
	s, err := decodeSnapshot(res)
	if err != nil {
		return routing.Snapshot{}, fmt.Errorf("redisroute: snapshot %q: %w", instanceID, err)
	}
	return s, nil
}

func decodeSnapshot(res []any) (routing.Snapshot, error) {
	s := routing.Snapshot{Queues: map[string][]string{}, Agents: map[string]routing.AgentState{}}
	bad := errors.New("malformed snapshot reply")
	if len(res) != 2 {
		return s, bad
	}
	queues, ok1 := res[0].([]any)
	agents, ok2 := res[1].([]any)
	if !ok1 || !ok2 {
		return s, bad
	}
	for _, q := range queues {
		pair, ok := q.([]any)
		if !ok || len(pair) != 2 {
			return s, bad
		}
		team, ok := pair[0].(string)
		ids, err := stringList(pair[1])
		if !ok || err != nil {
			return s, bad
		}
		s.Queues[team] = ids
	}
	for _, a := range agents {
		row, ok := a.([]any)
		if !ok || len(row) != 6 {
			return s, bad
		}
		fields, err := stringList([]any{row[0], row[1], row[2], row[3]})
		if err != nil {
			return s, bad
		}
		held, err := stringList(row[4])
		if err != nil || len(held)%2 != 0 {
			return s, bad
		}
		capacity, err := strconv.Atoi(fields[3])
		if err != nil {
			return s, bad
		}
		exps, err := stringList(row[5])
		if err != nil {
			return s, bad
		}
		st := routing.AgentState{Status: routing.Status(fields[1]), Present: fields[2] == "1", Capacity: capacity, OfferExpires: map[string]time.Time{}}
		for i := 0; i < len(held); i += 2 {
			if held[i+1] == "a" {
				st.Assigned = append(st.Assigned, held[i])
				continue
			}
			if len(exps) == 0 {
				return s, bad
			}
			ms, err := strconv.ParseInt(exps[0], 10, 64)
			if err != nil {
				return s, bad
			}
			exps = exps[1:]
			st.Offered = append(st.Offered, held[i])
			st.OfferExpires[held[i]] = time.UnixMilli(ms)
		}
		sort.Strings(st.Assigned)
		sort.Strings(st.Offered)
		s.Agents[fields[0]] = st
	}
	return s, nil
}

func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, got %T", v)
	}
	out := make([]string, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", e)
		}
		out[i] = s
	}
	return out, nil
}

// ms converts a duration to whole milliseconds, at least 1, exactly as
// memroute does.
func ms(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

var _ routing.Router = (*Router)(nil)
