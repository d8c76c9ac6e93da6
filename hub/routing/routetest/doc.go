// Package routetest is the conformance suite every routing.Router and
// routing.Bus implementation must pass: each behaviour of the Router doc
// comment is written once here and run against the in-process and the
// Redis implementation alike, so the embedded default and a multi-node
// deployment route tickets identically (mission rule M1).
//
// Router tests drive time with a fake Clock passed in routing.Config.Now;
// nothing sleeps. Bus tests wait on channels with a timeout, because a bus
// is asynchronous by contract.
//
// # Where the Router doc leaves room, the suite fixes
//
//   - Place in line: a ticket is ordered by priority, then by when its end
//     user started waiting: its first Enqueue, or a FollowUp after
//     MarkAnswered. It keeps that place through offer expiry, decline,
//     requeue and Transfer, so "back at the head" means back at its own
//     place. Across the teams of one agent the same order applies:
//     priority first, then age.
//   - Who is asked after a pass (expiry or decline): agents that have not
//     passed on the ticket, then those other than the latest to pass, then
//     the latest; so a lone agent who declines is asked again rather than
//     nobody. Accepting clears the record.
//   - Tie-breaks: fewest tickets held (offers count), then oldest last
//     assignment (Accept or Assign; never counts as oldest), then agent id.
//   - Events: Enqueue of a new ticket emits queued, then any offer; Decline
//     emits requeued (the ticket left the agent); Transfer emits requeued
//     for a held ticket and queued for a waiting one, with the new team.
//     MarkAnswered, Release and a sticky FollowUp emit nothing of their
//     own, only the offers that follow.
//   - FollowUp and Enqueue of a known ticket ignore its team and priority:
//     Transfer changes those.
//   - Assign of a ticket the router does not know is an error (the router
//     would not know its team); Assign to an agent it does not know
//     records that agent as Offline with capacity 1. Leave of an unknown
//     agent, MarkAnswered and Release of an unknown ticket do nothing.
//   - Away keeps an agent present (follow-ups stay with them) but not
//     eligible; their pending offers run out normally.
//   - Times are whole milliseconds; an offer made at t expires at
//     t+OfferTimeout exactly (Accept at that instant fails), presence
//     likewise. Sweep handles what fell due in time order, offers first
//     at the same instant, with eligibility as of the sweep.
package routetest
