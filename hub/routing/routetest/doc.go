// Package routetest is the conformance suite every routing.Router and
// routing.Bus implementation must pass: each behaviour of the Router doc
// comment is written once here and run against the in-process and the
// Redis implementation alike, so the embedded default and a multi-node
// deployment route tickets identically (mission rule M1).
//
// Router tests drive time with a fake Clock passed in routing.Config.Now;
// nothing sleeps. Bus tests wait on channels with a timeout, because a bus
// is asynchronous by contract.
package routetest
