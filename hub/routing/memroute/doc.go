// Package memroute is the in-process Router and Bus: the embedded default
// for a single hub node (mission rule M1: every channel's tickets reach an
// agent). State lives in maps behind one mutex; nothing survives a restart,
// which is fine because the database is the record and agents re-announce
// themselves with their next heartbeat.
//
// Behaviour is defined by package routing and held by routetest, the same
// suite the Redis implementation passes.
//
// It imports only the standard library and hub/routing.
package memroute
