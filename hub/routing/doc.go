// Package routing decides which agent handles which ticket, and carries
// notifications between hub nodes.
//
// Router is implemented twice with one behaviour: in-process (package
// memroute, for the embedded default) and on Redis (package redisroute, for
// several stateless nodes), both held to the conformance suite in
// routetest. Bus, the cross-node fabric, likewise has an in-process and a
// Redis pub/sub implementation.
//
// The database stays the record of who is assigned what; the router holds
// the live state (presence, queues, offers, load) and tells the hub what
// changed through the Events its methods return.
//
// This package imports nothing of the module but the standard library.
package routing
