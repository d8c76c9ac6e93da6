// Package redisroute is the Redis Router and Bus, for several stateless
// hub nodes sharing one Redis (mission rule M1: a ticket reaches an agent
// whichever node received it and whichever node holds the agent's socket).
//
// Every state change is one Lua script, so it is atomic across nodes; the
// scripts carry the same rules as memroute and pass the same routetest
// suite. Time is passed into the scripts from Config.Now, never read from
// Redis, so tests drive the clock.
//
// # Keys
//
// Everything lives under Config.Prefix (default "sb:"). Per instance, with
// B = prefix + "i:" + len(instance) + ":" + instance + ":":
//
//	B+"seq"           counter: arrival order and assignment order
//	B+"t:"+ticket     hash: team prio seq state(q|o|a) agent exp ans lp
//	B+"tp:"+ticket    set: agents that declined or let the offer expire
//	B+"q:"+team       zset: waiting tickets, score -prio*2^33+seq
//	B+"qteams"        set: teams with waiting tickets
//	B+"a:"+agent      hash: status exp(presence deadline) cap last
//	B+"at:"+agent     set: the agent's teams
//	B+"ak:"+agent     hash: ticket -> o|a, the tickets the agent holds
//	B+"m:"+team       set: the team's agents
//	B+"agents"        set: every agent the instance has seen
//
// and across instances, so Sweep finds what is due without scanning:
//
//	prefix+"due:offers"    zset: offer expiries, member len:instance+ticket
//	prefix+"due:presence"  zset: presence deadlines, member len:instance+agent
//
// Bus topics are published on channel prefix + "bus:" + topic.
//
// The scripts derive keys from the prefix rather than declaring them, which
// a single Redis or one behind Sentinel accepts and Redis Cluster does not.
//
// It imports hub/routing and github.com/redis/go-redis/v9.
package redisroute
