// Package rule holds the small pieces of routing policy that memroute and
// redisroute must share byte for byte (input validation, priority bounds,
// the encoding of global index members), so the two implementations cannot
// drift apart on them.
//
// It imports nothing of the module but package routing.
package rule

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

// MaxPriority bounds Ticket.Priority in both directions. Redis orders a
// queue by one float64 score that packs priority and arrival order, exact
// only up to 2^53; 2^19 priority levels times 2^33 arrivals per instance
// fits. Priorities beyond the bound are clamped, which no real ticket
// notices.
const MaxPriority = 1 << 19

// SeqSpan is the factor that separates priority levels in a queue score.
const SeqSpan = 1 << 33

// ClampPriority bounds p to [-MaxPriority, MaxPriority].
func ClampPriority(p int) int {
	return max(-MaxPriority, min(MaxPriority, p))
}

// QueueScore orders a queue: higher priority first, then arrival (lower
// seq first). Lower scores are served first.
func QueueScore(priority int, seq int64) float64 {
	return float64(-int64(ClampPriority(priority))*SeqSpan + seq)
}

// Member encodes an instance-scoped id as one string for indexes that span
// instances (due offers, presences). The length prefix keeps it
// unambiguous whatever the ids contain.
func Member(instanceID, id string) string {
	return strconv.Itoa(len(instanceID)) + ":" + instanceID + id
}

// SplitMember reverses Member.
func SplitMember(m string) (instanceID, id string, err error) {
	n, rest, ok := strings.Cut(m, ":")
	if !ok {
		return "", "", fmt.Errorf("routing: malformed index member %q", m)
	}
	l, err := strconv.Atoi(n)
	if err != nil || l < 0 || l > len(rest) || strconv.Itoa(l) != n {
		return "", "", fmt.Errorf("routing: malformed index member %q", m)
	}
	return rest[:l], rest[l:], nil
}

// CheckAgent validates a heartbeat and returns it normalized: capacity at
// least 1, teams sorted and deduplicated, an empty status read as
// Available.
func CheckAgent(a routing.Agent) (routing.Agent, error) {
	if err := NonEmpty("instance id", a.InstanceID, "agent id", a.AgentID); err != nil {
		return a, err
	}
	switch a.Status {
	case "":
		a.Status = routing.Available
	case routing.Available, routing.Away, routing.Offline:
	default:
		return a, fmt.Errorf("routing: agent %q: unknown status %q", a.AgentID, a.Status)
	}
	a.Capacity = max(a.Capacity, 1)
	teams := make([]string, 0, len(a.Teams))
	for _, t := range a.Teams {
		if t != "" {
			teams = append(teams, t)
		}
	}
	sort.Strings(teams)
	a.Teams = compact(teams)
	return a, nil
}

// CheckTicket validates a ticket and clamps its priority.
func CheckTicket(t routing.Ticket) (routing.Ticket, error) {
	if err := NonEmpty("instance id", t.InstanceID, "ticket id", t.TicketID); err != nil {
		return t, err
	}
	if t.Team == "" {
		return t, fmt.Errorf("routing: ticket %q has no team", t.TicketID)
	}
	t.Priority = ClampPriority(t.Priority)
	return t, nil
}

// NonEmpty takes name, value pairs and reports the first empty value by
// its name.
func NonEmpty(nameValues ...string) error {
	for i := 0; i+1 < len(nameValues); i += 2 {
		if nameValues[i+1] == "" {
			return fmt.Errorf("routing: empty %s", nameValues[i])
		}
	}
	return nil
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
