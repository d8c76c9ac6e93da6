package redisroute

import "github.com/redis/go-redis/v9"

// Every Router method that changes state is one Lua script, so it is
// atomic across all hub nodes sharing the Redis (issue 2, part 4). The
// scripts share one prelude holding the routing rules, the same rules as
// memroute's Go code; routetest holds both to one behaviour.
//
// Calling convention, for every script:
//
//	ARGV[1] key prefix     ARGV[2] now (unix ms, from Config.Now)
//	ARGV[3] offer ms       ARGV[4] presence ms
//	ARGV[5] instance id (sweep: batch size)   ARGV[6...] per script
//
// Mutating scripts return {status, events...}: status is "ok", "nooffer" or
// (sweep) "more"; each event is six strings: kind, instance,
// ticket, agent, team, offer expiry in unix ms.
//
// Keys are derived inside the scripts from the prefix and the instance,
// which Redis allows outside Cluster; the router is meant for a single
// Redis (or one behind Sentinel), see the package doc.
//
// Time is never read from Redis (no TIME): ARGV[2] comes from Config.Now,
// so tests drive the clock, and all nodes' clocks are assumed to agree
// within a fraction of the offer timeout.
const prelude = `
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local OFFER_MS = tonumber(ARGV[3])
local TTL_MS = tonumber(ARGV[4])
local OFFERS = P .. 'due:offers'
local PRESENCE = P .. 'due:presence'
local SEQ_SPAN = 8589934592 -- rule.SeqSpan
local out = {}

local function member(inst, id) return string.len(inst) .. ':' .. inst .. id end
local function split(m)
  local c = string.find(m, ':', 1, true)
  local n = tonumber(string.sub(m, 1, c - 1))
  return string.sub(m, c + 1, c + n), string.sub(m, c + n + 1)
end

-- The instance id is length-prefixed so no two instances' keys can meet.
local function K(inst)
  local b = P .. 'i:' .. string.len(inst) .. ':' .. inst .. ':'
  return {inst = inst, b = b, seq = b .. 'seq', agents = b .. 'agents', qteams = b .. 'qteams'}
end
local function tkey(k, id) return k.b .. 't:' .. id end
local function passkey(k, id) return k.b .. 'tp:' .. id end
local function qkey(k, team) return k.b .. 'q:' .. team end
local function akey(k, id) return k.b .. 'a:' .. id end
local function teamskey(k, id) return k.b .. 'at:' .. id end
local function heldkey(k, id) return k.b .. 'ak:' .. id end
local function memberskey(k, team) return k.b .. 'm:' .. team end

local function fmtint(n) return string.format('%d', n) end

local function emit(k, kind, tid, aid, team, exp)
  local n = #out
  out[n + 1] = kind
  out[n + 2] = k.inst
  out[n + 3] = tid
  out[n + 4] = aid
  out[n + 5] = team
  out[n + 6] = fmtint(exp or 0)
end

-- Lua compares strings with strcoll; ids must order bytewise, as in Go.
local function bless(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function nextseq(k) return redis.call('INCR', k.seq) end
local function score(prio, seq) return -prio * SEQ_SPAN + seq end

local function ticket(k, tid)
  local v = redis.call('HMGET', tkey(k, tid), 'state', 'agent', 'team', 'prio', 'seq', 'exp', 'ans', 'lp')
  if not v[1] then return nil end
  return {id = tid, state = v[1], agent = v[2], team = v[3], prio = tonumber(v[4]),
    seq = tonumber(v[5]), exp = tonumber(v[6]), ans = v[7], lp = v[8] or ''}
end

local function agentTeams(k, aid) return redis.call('SMEMBERS', teamskey(k, aid)) end
local function touch(set, teams) for _, t in ipairs(teams) do set[t] = true end end

local function ensureAgent(k, aid)
  if redis.call('EXISTS', akey(k, aid)) == 0 then
    redis.call('HSET', akey(k, aid), 'status', 'offline', 'exp', 0, 'cap', 1, 'last', 0)
    redis.call('SADD', k.agents, aid)
  end
end

local function present(k, aid)
  local a = redis.call('HMGET', akey(k, aid), 'status', 'exp')
  return a[1] and a[1] ~= 'offline' and tonumber(a[2]) > NOW
end

-- wait: the ticket waits on an agent again; if it had been answered, its
-- end user only now started waiting, so it takes a new place in line.
local function wait(k, t)
  if t.ans == '1' then
    t.ans = '0'
    t.seq = nextseq(k)
    redis.call('HSET', tkey(k, t.id), 'ans', '0', 'seq', t.seq)
  end
end

local function clearPassed(k, t)
  if t.lp ~= '' then
    redis.call('DEL', passkey(k, t.id))
    redis.call('HSET', tkey(k, t.id), 'lp', '')
  end
end

local function push(k, t)
  redis.call('ZADD', qkey(k, t.team), score(t.prio, t.seq), t.id)
  redis.call('SADD', k.qteams, t.team)
  redis.call('HSET', tkey(k, t.id), 'state', 'q', 'agent', '', 'exp', 0)
end

local function unqueue(k, tid, team)
  local q = qkey(k, team)
  redis.call('ZREM', q, tid)
  if redis.call('ZCARD', q) == 0 then redis.call('SREM', k.qteams, team) end
end

local function detach(k, tid, aid)
  redis.call('HDEL', heldkey(k, aid), tid)
  redis.call('ZREM', OFFERS, member(k.inst, tid))
end

-- pick: eligible agents that have not passed on the ticket first, then
-- ones other than the latest to pass, then that one; within a tier the
-- fewest held tickets, then the oldest last assignment, then the id.
local function pick(k, tid, team)
  local lp = redis.call('HGET', tkey(k, tid), 'lp') or ''
  local pk = passkey(k, tid)
  -- Most tickets were never passed on: skip the per-agent lookups then.
  local anyPassed = lp ~= ''
  local best, btier, bload, blast
  for _, aid in ipairs(redis.call('SMEMBERS', memberskey(k, team))) do
    local a = redis.call('HMGET', akey(k, aid), 'status', 'exp', 'cap', 'last')
    if a[1] == 'available' and tonumber(a[2]) > NOW then
      local load = redis.call('HLEN', heldkey(k, aid))
      if load < tonumber(a[3]) then
        local tier = 0
        if anyPassed and redis.call('SISMEMBER', pk, aid) == 1 then
          if aid == lp then tier = 2 else tier = 1 end
        end
        local last = tonumber(a[4])
        if best == nil or tier < btier or (tier == btier and (load < bload or
            (load == bload and (last < blast or (last == blast and bless(aid, best)))))) then
          best, btier, bload, blast = aid, tier, load, last
        end
      end
    end
  end
  return best
end

local function offer(k, tid, aid, team)
  unqueue(k, tid, team)
  local exp = NOW + OFFER_MS
  redis.call('HSET', tkey(k, tid), 'state', 'o', 'agent', aid, 'exp', exp)
  redis.call('HSET', heldkey(k, aid), tid, 'o')
  redis.call('ZADD', OFFERS, exp, member(k.inst, tid))
  emit(k, 'offered', tid, aid, team, exp)
end

-- dispatch offers until no waiting ticket of the given teams has an
-- eligible agent. Only queue heads matter: eligibility depends on the
-- team, not the ticket. The best-placed head across teams goes first.
local function dispatch(k, teams)
  while true do
    local bt, ba, bs, bteam
    for team, _ in pairs(teams) do
      local h = redis.call('ZRANGE', qkey(k, team), 0, 0, 'WITHSCORES')
      if h[1] then
        local s = tonumber(h[2])
        if bt == nil or s < bs then
          local a = pick(k, h[1], team)
          if a then bt, ba, bs, bteam = h[1], a, s, team end
        end
      end
    end
    if not bt then return end
    offer(k, bt, ba, bteam)
  end
end

-- pass: the holder declined the offer or let it expire.
local function pass(k, t, kind)
  local aid = t.agent
  local touched = {[t.team] = true}
  touch(touched, agentTeams(k, aid))
  detach(k, t.id, aid)
  redis.call('SADD', passkey(k, t.id), aid)
  redis.call('HSET', tkey(k, t.id), 'lp', aid)
  push(k, t)
  emit(k, kind, t.id, aid, t.team)
  dispatch(k, touched)
end

-- dropWork requeues what an absent agent cannot handle: offers and
-- tickets still waiting on a reply; answered tickets stay theirs.
local function dropWork(k, aid)
  local held = redis.call('HGETALL', heldkey(k, aid))
  local drop = {}
  for i = 1, #held, 2 do
    local t = ticket(k, held[i])
    if held[i + 1] == 'o' or t.ans ~= '1' then drop[#drop + 1] = t end
  end
  table.sort(drop, function(a, b) return score(a.prio, a.seq) < score(b.prio, b.seq) end)
  local touched = {}
  for _, t in ipairs(drop) do
    detach(k, t.id, aid)
    push(k, t)
    emit(k, 'requeued', t.id, aid, t.team)
    touched[t.team] = true
  end
  return touched
end

local function leave(k, aid)
  redis.call('HSET', akey(k, aid), 'status', 'offline', 'exp', 0)
  redis.call('ZREM', PRESENCE, member(k.inst, aid))
  dispatch(k, dropWork(k, aid))
end

local function enqueueNew(k, tid, team, prio)
  local t = {id = tid, team = team, prio = prio, seq = nextseq(k)}
  redis.call('HSET', tkey(k, tid), 'team', team, 'prio', prio, 'seq', t.seq, 'ans', '0', 'lp', '')
  push(k, t)
  emit(k, 'queued', tid, '', team)
  dispatch(k, {[team] = true})
end

local function liveOffer(k, tid, aid)
  local t = ticket(k, tid)
  if not t or t.state ~= 'o' or t.agent ~= aid or NOW >= t.exp then return nil end
  return t
end
`

// wrap turns an operation body (a Lua function body that may return a
// status) into a script returning {status, events...}.
func wrap(body string) *redis.Script {
	return redis.NewScript(prelude + "\nlocal function main()\n" + body +
		"\nend\nlocal status = main() or 'ok'\ntable.insert(out, 1, status)\nreturn out\n")
}

const heartbeatBody = `
local k = K(ARGV[5])
local aid, st, cap = ARGV[6], ARGV[7], tonumber(ARGV[8])
ensureAgent(k, aid)
local tk = teamskey(k, aid)
for _, team in ipairs(redis.call('SMEMBERS', tk)) do
  redis.call('SREM', memberskey(k, team), aid)
end
redis.call('DEL', tk)
local teams = {}
for i = 9, #ARGV do
  redis.call('SADD', tk, ARGV[i])
  redis.call('SADD', memberskey(k, ARGV[i]), aid)
  teams[ARGV[i]] = true
end
redis.call('HSET', akey(k, aid), 'cap', cap)
if st == 'offline' then
  leave(k, aid)
  return
end
local exp = NOW + TTL_MS
redis.call('HSET', akey(k, aid), 'status', st, 'exp', exp)
redis.call('ZADD', PRESENCE, exp, member(k.inst, aid))
dispatch(k, teams)
`

const leaveBody = `
local k = K(ARGV[5])
if redis.call('EXISTS', akey(k, ARGV[6])) == 1 then leave(k, ARGV[6]) end
`

const enqueueBody = `
local k = K(ARGV[5])
if redis.call('EXISTS', tkey(k, ARGV[6])) == 0 then
  enqueueNew(k, ARGV[6], ARGV[7], tonumber(ARGV[8]))
end
`

// followUpSource handles the follow-ups of many tickets (of any
// instances) in one call: concurrent FollowUp calls are coalesced
// (followups.go), so the prelude and the round trip are paid once per
// group, not once per message. ARGV[5] is unused; from ARGV[6] on come
// groups of four: instance, ticket, team, priority. Each ticket is handled
// in turn, as if by its own call. The reply is {"ok", n1, ..., nN,
// events...}: ni is the number of events of ticket i, whose events follow
// those of the tickets before it.
const followUpSource = prelude + `
local function followUp(k, tid, team, prio)
  local t = ticket(k, tid)
  if not t then
    enqueueNew(k, tid, team, prio)
    return
  end
  if t.state == 'q' then
    if t.ans == '1' then
      unqueue(k, t.id, t.team)
      wait(k, t)
      push(k, t)
    end
    return
  end
  wait(k, t)
  if t.state == 'o' or present(k, t.agent) then return end
  local prev = t.agent
  local touched = {[t.team] = true}
  touch(touched, agentTeams(k, prev))
  detach(k, t.id, prev)
  push(k, t)
  emit(k, 'requeued', t.id, prev, t.team)
  dispatch(k, touched)
end

local res = {'ok'}
for i = 6, #ARGV, 4 do
  local before = #out
  followUp(K(ARGV[i]), ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]))
  res[#res + 1] = tostring((#out - before) / 6)
end
for _, v in ipairs(out) do res[#res + 1] = v end
return res
`

const acceptBody = `
local k = K(ARGV[5])
local aid = ARGV[7]
local t = liveOffer(k, ARGV[6], aid)
if not t then return 'nooffer' end
redis.call('HSET', tkey(k, t.id), 'state', 'a')
redis.call('HSET', heldkey(k, aid), t.id, 'a')
redis.call('ZREM', OFFERS, member(k.inst, t.id))
wait(k, t)
clearPassed(k, t)
redis.call('HSET', akey(k, aid), 'last', nextseq(k))
emit(k, 'assigned', t.id, aid, t.team)
`

const declineBody = `
local k = K(ARGV[5])
local t = liveOffer(k, ARGV[6], ARGV[7])
if not t then return 'nooffer' end
pass(k, t, 'requeued')
`

const assignBody = `
local k = K(ARGV[5])
local aid = ARGV[7]
local t = ticket(k, ARGV[6])
local fresh = not t
if fresh then
  -- Taken in as given: the router lost it (restart) or never had it.
  t = {id = ARGV[6], team = ARGV[8], prio = tonumber(ARGV[9]), seq = nextseq(k), ans = '0'}
  redis.call('HSET', tkey(k, t.id), 'team', t.team, 'prio', t.prio, 'seq', t.seq, 'ans', '0', 'lp', '')
end
if t.state == 'a' and t.agent == aid then return end
ensureAgent(k, aid)
local touched = {}
if fresh then
elseif t.state == 'q' then
  unqueue(k, t.id, t.team)
else
  touch(touched, agentTeams(k, t.agent))
  detach(k, t.id, t.agent)
end
redis.call('HSET', tkey(k, t.id), 'state', 'a', 'agent', aid, 'exp', 0)
redis.call('HSET', heldkey(k, aid), t.id, 'a')
wait(k, t)
clearPassed(k, t)
redis.call('HSET', akey(k, aid), 'last', nextseq(k))
emit(k, 'assigned', t.id, aid, t.team)
dispatch(k, touched)
`

const transferBody = `
local k = K(ARGV[5])
local team, prio = ARGV[7], tonumber(ARGV[8])
local t = ticket(k, ARGV[6])
if not t then
  enqueueNew(k, ARGV[6], team, prio)
  return
end
local touched = {[team] = true}
local prev = ''
if t.state == 'q' then
  unqueue(k, t.id, t.team)
else
  prev = t.agent
  touch(touched, agentTeams(k, prev))
  detach(k, t.id, prev)
end
wait(k, t)
clearPassed(k, t)
t.team, t.prio = team, prio
redis.call('HSET', tkey(k, t.id), 'team', team, 'prio', prio)
push(k, t)
if prev ~= '' then
  emit(k, 'requeued', t.id, prev, team)
else
  emit(k, 'queued', t.id, '', team)
end
dispatch(k, touched)
`

const answeredBody = `
local k = K(ARGV[5])
if redis.call('EXISTS', tkey(k, ARGV[6])) == 1 then
  redis.call('HSET', tkey(k, ARGV[6]), 'ans', '1')
end
`

const releaseBody = `
local k = K(ARGV[5])
local t = ticket(k, ARGV[6])
if not t then return end
local touched = {}
if t.state == 'q' then
  unqueue(k, t.id, t.team)
else
  touch(touched, agentTeams(k, t.agent))
  detach(k, t.id, t.agent)
end
redis.call('DEL', tkey(k, t.id), passkey(k, t.id))
dispatch(k, touched)
`

// sweepBody handles due offers and presences across all instances in the
// order they fell due (offers first at the same instant), at most ARGV[5]
// of them, returning "more" when it stopped at the limit. An entry is
// removed in the same script that handles it, so when nodes sweep
// concurrently each expiry is handled exactly once.
const sweepBody = `
local limit = tonumber(ARGV[5])
for _ = 1, limit do
  local o = redis.call('ZRANGE', OFFERS, 0, 0, 'WITHSCORES')
  local p = redis.call('ZRANGE', PRESENCE, 0, 0, 'WITHSCORES')
  local os = o[1] and tonumber(o[2])
  local ps = p[1] and tonumber(p[2])
  local dueO = os ~= nil and os <= NOW
  local dueP = ps ~= nil and ps <= NOW
  if not dueO and not dueP then return 'ok' end
  if dueO and (not dueP or os <= ps) then
    redis.call('ZREM', OFFERS, o[1])
    local inst, tid = split(o[1])
    local k = K(inst)
    local t = ticket(k, tid)
    if t and t.state == 'o' and t.exp == os then pass(k, t, 'offer_expired') end
  else
    redis.call('ZREM', PRESENCE, p[1])
    local inst, aid = split(p[1])
    local k = K(inst)
    local exp = redis.call('HGET', akey(k, aid), 'exp')
    if exp and tonumber(exp) == ps then
      redis.call('HSET', akey(k, aid), 'exp', 0)
      dispatch(k, dropWork(k, aid))
    end
  end
end
return 'more'
`

// snapshotSource reads one instance: {{team, {ids}}...}, {{agent, status,
// present, capacity, {ticket, state, ...}}...}.
const snapshotSource = prelude + `
local k = K(ARGV[5])
local queues = {}
for _, team in ipairs(redis.call('SMEMBERS', k.qteams)) do
  queues[#queues + 1] = {team, redis.call('ZRANGE', qkey(k, team), 0, -1)}
end
local agents = {}
for _, aid in ipairs(redis.call('SMEMBERS', k.agents)) do
  local a = redis.call('HMGET', akey(k, aid), 'status', 'exp', 'cap')
  local present = '0'
  if tonumber(a[2]) > NOW then present = '1' end
  local held = redis.call('HGETALL', heldkey(k, aid))
  -- Each offer's deadline, in the order of the offers among held.
  local exps = {}
  for i = 1, #held, 2 do
    if held[i + 1] == 'o' then
      exps[#exps + 1] = redis.call('HGET', tkey(k, held[i]), 'exp') or '0'
    end
  end
  agents[#agents + 1] = {aid, a[1], present, a[3], held, exps}
end
return {queues, agents}
`

// scripts are built once per Router: a *redis.Script caches its SHA and
// is safe for concurrent use.
type scripts struct {
	heartbeat, leave, enqueue, followUp, accept, decline, assign, transfer,
	answered, release, sweep, snapshot *redis.Script
}

func newScripts() *scripts {
	return &scripts{
		heartbeat: wrap(heartbeatBody),
		leave:     wrap(leaveBody),
		enqueue:   wrap(enqueueBody),
		followUp:  redis.NewScript(followUpSource),
		accept:    wrap(acceptBody),
		decline:   wrap(declineBody),
		assign:    wrap(assignBody),
		transfer:  wrap(transferBody),
		answered:  wrap(answeredBody),
		release:   wrap(releaseBody),
		sweep:     wrap(sweepBody),
		snapshot:  redis.NewScript(snapshotSource),
	}
}
