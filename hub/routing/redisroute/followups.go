package redisroute

import (
	"context"
	"fmt"
	"strconv"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

// followUps coalesces FollowUp calls: every inbound message of an
// assigned ticket asks the router whether it still sticks to its agent,
// and under load thousands ask at once. The calls queued while one script
// call is under way go together in the next one (followUpSource), which
// handles each ticket in turn, as its own call would. Alone, a follow-up
// goes at once. This is the pipe's idea (pipe.go) one level up: the pipe
// shares round trips, this shares the script's set-up as well. A script
// error fails the whole group; the hub only logs a failed follow-up, and
// its reconciliation puts such tickets right (Hub.reconcile).
type followUps struct {
	r     *Router
	calls coalescer[*followUpCall]
}

type followUpCall struct {
	t    routing.Ticket
	evs  []routing.Event
	err  error
	done chan struct{}
}

// maxFollowUps bounds the tickets of one script call, so Redis is never
// held long by one.
const maxFollowUps = 256

func newFollowUps(r *Router) *followUps {
	f := &followUps{r: r}
	f.calls = coalescer[*followUpCall]{max: maxFollowUps, inFlight: 1, run: f.run}
	return f
}

// do queues a follow-up of t (already checked) and waits for its events.
// A caller whose context ends first returns at once; its follow-up may
// still run.
func (f *followUps) do(ctx context.Context, t routing.Ticket) ([]routing.Event, error) {
	c := &followUpCall{t: t, done: make(chan struct{})}
	f.calls.add(c)
	select {
	case <-c.done:
		return c.evs, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends one group and hands each caller its own events.
func (f *followUps) run(batch []*followUpCall) {
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	r := f.r
	// The clock is read when the group leaves: its calls came at most one
	// round trip apart.
	argv := r.args(r.cfg.Now(), "", 4*len(batch))
	for _, c := range batch {
		argv = append(argv, c.t.InstanceID, c.t.TicketID, c.t.Team, c.t.Priority)
	}
	// The group serves many callers: no one caller's context is its own.
	ctx, cancel := context.WithTimeout(context.Background(), pipeTimeout)
	defer cancel()
	err := func() error {
		res, err := r.eval(ctx, r.scripts.followUp, argv)
		if err != nil {
			return err
		}
		str, err := replyStrings(res)
		if err != nil {
			return err
		}
		if len(str) < 1+len(batch) || str[0] != "ok" {
			return fmt.Errorf("malformed follow-up reply of %d elements for %d tickets", len(str), len(batch))
		}
		evs, err := decodeEvents(str[1+len(batch):])
		if err != nil {
			return err
		}
		for i, c := range batch {
			n, err := strconv.Atoi(str[1+i])
			if err != nil || n < 0 || n > len(evs) {
				return fmt.Errorf("malformed follow-up reply: event count %q", str[1+i])
			}
			c.evs, evs = evs[:n:n], evs[n:]
		}
		return nil
	}()
	if err != nil {
		for _, c := range batch {
			c.evs, c.err = nil, err
		}
	}
}
