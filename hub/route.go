package hub

import (
	"context"
	"strconv"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// AllTeam is the routing team every agent belongs to: tickets with no team
// wait in it.
const AllTeam = "*"

func routeTicket(t *store.Ticket) routing.Ticket {
	team := AllTeam
	if t.TeamID != nil {
		team = strconv.FormatInt(*t.TeamID, 10)
	}
	return routing.Ticket{InstanceID: t.InstanceID, TicketID: strconv.FormatInt(t.ID, 10), Team: team, Priority: t.Priority}
}

func routeAgent(a *store.Agent, status routing.Status) routing.Agent {
	teams := []string{AllTeam}
	for _, id := range a.TeamIDs {
		teams = append(teams, strconv.FormatInt(id, 10))
	}
	return routing.Agent{InstanceID: a.InstanceID, AgentID: strconv.FormatInt(a.ID, 10), Teams: teams, Capacity: a.Capacity, Status: status}
}

func parseID(s string) int64 {
	id, _ := strconv.ParseInt(s, 10, 64)
	return id
}

// applyEvents makes routing decisions durable and visible: assignments
// and requeues are written to the ticket, offers are sent to the agent.
func (h *Hub) applyEvents(ctx context.Context, evs []routing.Event) {
	for _, ev := range evs {
		tid, aid := parseID(ev.TicketID), parseID(ev.AgentID)
		switch ev.Kind {
		case routing.EventOffered:
			exp := ev.ExpiresAt
			t, err := h.store.Ticket(ctx, ev.InstanceID, tid)
			if err != nil {
				h.log.Warn("offer for unknown ticket", "ticket", tid, "err", err)
				continue
			}
			h.publish(ctx, Update{Type: UpdateOffer, InstanceID: ev.InstanceID, AgentID: aid, TicketID: tid, Ticket: t, ExpiresAt: &exp})
		case routing.EventOfferExpired:
			h.publish(ctx, Update{Type: UpdateOfferRevoked, InstanceID: ev.InstanceID, AgentID: aid, TicketID: tid})
		case routing.EventAssigned:
			h.setAssignee(ctx, ev.InstanceID, tid, &aid)
		case routing.EventRequeued:
			// The ticket left the agent: an offer on their screen is void
			// too (declined, presence lapsed, signed out).
			if aid != 0 {
				h.publish(ctx, Update{Type: UpdateOfferRevoked, InstanceID: ev.InstanceID, AgentID: aid, TicketID: tid})
			}
			h.setAssignee(ctx, ev.InstanceID, tid, nil)
		}
	}
}

func (h *Hub) setAssignee(ctx context.Context, instanceID string, ticketID int64, agentID *int64) {
	cur, err := h.store.Ticket(ctx, instanceID, ticketID)
	if err != nil {
		h.log.Warn("assignment for unknown ticket", "ticket", ticketID, "err", err)
		return
	}
	if (cur.AssigneeID == nil && agentID == nil) || (cur.AssigneeID != nil && agentID != nil && *cur.AssigneeID == *agentID) {
		return
	}
	u := store.TicketUpdate{AssigneeID: &agentID}
	if agentID != nil && cur.Status == store.StatusNew {
		open := store.StatusOpen
		u.Status = &open
	}
	t, err := h.store.UpdateTicket(ctx, instanceID, ticketID, u)
	if err != nil {
		h.log.Error("record assignment", "ticket", ticketID, "err", err)
		return
	}
	h.publishTicket(ctx, t)
}

// sweep processes routing expiries (offers not accepted, presence lapsed).
func (h *Hub) sweep(ctx context.Context) {
	evs, err := h.router.Sweep(ctx)
	if err != nil {
		h.log.Warn("routing sweep", "err", err)
		return
	}
	h.applyEvents(ctx, evs)
}

// reconcile tells the router what the database says: active tickets with
// an assignee are theirs, the others wait in their queue. Both calls are
// idempotent, so every node may run it at start.
func (h *Hub) reconcile(ctx context.Context) error {
	var after int64
	for {
		ts, err := h.store.ActiveTickets(ctx, after, 500)
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			return nil
		}
		for i := range ts {
			t := &ts[i]
			after = t.ID
			var evs []routing.Event
			if t.AssigneeID != nil {
				evs, err = h.router.Assign(ctx, routeTicket(t), strconv.FormatInt(*t.AssigneeID, 10))
			} else if t.LastInboundAt != nil {
				evs, err = h.router.Enqueue(ctx, routeTicket(t))
			}
			if err != nil {
				return err
			}
			h.applyEvents(ctx, evs)
		}
	}
}
