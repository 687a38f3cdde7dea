-- A worker is about to run a delivered instance. Decides, atomically with the request's state,
-- whether it runs (and returns its inputs), is parked (request paused), or is dropped
-- (request ended, instance settled, or request expired), by the lifecycle's rules.
-- KEYS: 1 request hash, 2 the entry's stream, 3 parked list
-- ARGV: 1 group, 2 entry id, 3 instance key, 4 now, 5 consumer, 6 lost deliveries allowed,
--       7 `1` if the entry was delivered before and carried its input (that delivery ran at
--       once, and recorded its start only if it ran long: see began.lua), 8 how the attempt
--       starts: `0` ahead of its slot (a first delivery, which may then wait for a slot: its
--       loss is never charged), `1` as it begins running (a reclaimed delivery, started once
--       it has its slot), `2` as it begins running alone on its worker (after a `alone`
--       answer), 9 the plan hash of the worker, 10 the entry's version (the plan hash its
--       instance key is numbered in; empty on entries of earlier builds), 11.. the fields
--       holding its inputs (none when the entry's version is not the worker's); or, for a
--       gather, `*`, the field holding its number of items, and the prefix of the items'
--       fields (item n is the prefix followed by n)
-- Answers {'run', attempt, failed attempts, traceparent, inputs...}, a missing input being
-- nil; for a gather the inputs are the number of items (nil if unknown), then the items.
-- Or {VS_PARKED}; {'drop', why} (`why` `stale` for an entry numbered in the graph of a
-- version the request has migrated from: the migration queued again what it held); {'lost', attempt, failed attempts, lost deliveries} when
-- it has been lost with its worker too often; {'alone', lost deliveries} when lost deliveries
-- are charged to it and it was not started alone (nothing is written but a new charge): the
-- worker runs it with no other attempt beside it, and starts it again with ARGV 8 `2`;
-- {'drop', 'version'} when the request was submitted on another graph than the worker's: the
-- entry is moved to the ready stream of the request's version (`T:ready@<hash>`, its group
-- created if no worker of that version has yet), where the workers that have that graph read
-- it; {'version', hash} for such an entry that carries instances (never made: an entry
-- carries what its own worker, of the request's version, handed on; nothing is written and
-- the worker fails the request); or {'moved', instance keys...} when completions
-- have handed the entry on to other instances (see entry.lua; a reclaimed entry whose worker
-- died after that): the worker starts those instead, on the same entry.
-- An entry of a request that has ended is dropped, and what it held is settled by the
-- lifecycle's ON_END (`end_held`), so that a retry knows to queue it again.
-- (after index.lua, events.lua, entry.lua and park.lua: `reindex`, `event`, `carrier`, `ack`,
-- `carried_besides`, `end_held`, `release`, `park`)
local req, parked = KEYS[1], KEYS[3]
local v = ARGV[3]
local gather = ARGV[11] == '*'
-- One read for the request's status, the instance's state, the entry and the inputs.
local fields = {REQ_STATUS, INST_STATUS .. v, INST_ATTEMPTS .. v, INST_FAILURES .. v,
  INST_STARTED .. v, REQ_TRACEPARENT, carrier, REQ_HASH, INST_LOST .. v, INST_EXPOSED .. v,
  REQ_CREATED}
local first_input = #fields + 1
if gather then
  fields[#fields + 1] = ARGV[12]
else
  for i = 11, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
end
-- Missing fields come back as `false`, which keeps its place in the array (a nil would end it)
-- and reaches the worker as a nil reply.
local got = redis.call('HMGET', req, unpack(fields))
local st, vs, carries = got[1], got[2], got[7]
if not st then
  ack()
  return {'drop', 'expired'}
end
if ARGV[10] ~= '' and got[8] and ARGV[10] ~= got[8] then
  ack()
  return {'drop', 'stale'}
end
local others, named = carried_besides(carries, v)
if ENDED[st] then
  end_held(v, vs, others, ARGV[4])
  ack()
  return {'drop', st}
end
if got[8] and got[8] ~= ARGV[9] then
  if carries then
    return {'version', got[8]}
  end
  local tag = request_of(req)
  local target = tag .. KEY_READY .. got[8]
  redis.pcall('XGROUP', 'CREATE', target, ARGV[1], '0', 'MKSTREAM')
  local entry = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[2])[1]
  if entry then
    redis.call('XADD', target, '*', unpack(entry[2]))
  end
  ack()
  return {'drop', 'version'}
end
if carries and not named then
  return {'moved', unpack(others)}
end
if vs and SETTLED[vs] then
  release(carries, others)
  return {'drop', vs}
end
if ON_READY[st] == VS_PARKED then
  redis.call('HSET', req, REQ_UPDATED, ARGV[4])
  park(req, parked, v)
  release(carries, others)
  event(req, false, {v, VS_PARKED})
  return {VS_PARKED}
end
-- Attempts started (a start that never ended counts), and attempts that ended in a recorded
-- failure. An entry that carried its input and was delivered before, with no start recorded:
-- that delivery ran at once (or waited for its slot) and was lost before it recorded anything;
-- it counts as an attempt.
local recorded = got[3] or (ARGV[7] == '1' and '1') or '0'
local started = tonumber(recorded) + 1
local failed = tonumber(got[4] or '0')
-- Lost deliveries (attempts that ended with their worker) do not use up the node's retries,
-- but are bounded, so that an instance that kills its worker every time ends up
-- dead-lettered. A loss is charged only to an attempt known to have been running when its
-- worker died: one started as it began running (INST_EXPOSED set by its start, cleared if it
-- failed), never a first delivery started ahead of its slot, which may have been only waiting
-- (read ahead, or handed off beyond the free slots) when another instance killed the worker.
-- Such a first delivery costs one uncharged loss at most: its entry is reclaimed, and a
-- reclaimed entry is started as it runs.
local lost = tonumber(got[9] or '0')
local charged = got[10] ~= false
if charged then
  lost = lost + 1
end
if lost > tonumber(ARGV[6]) then
  redis.call('HSET', req, INST_ATTEMPTS .. v, started, INST_LOST .. v, lost)
  redis.call('HDEL', req, INST_EXPOSED .. v)
  return {'lost', started, failed, lost}
end
-- An instance charged with a loss may be the one that kills its worker: it runs alone on its
-- worker, so that a death while it runs is its own, never charged to instances beside it.
if lost > 0 and ARGV[8] ~= '2' then
  if charged then
    redis.call('HSET', req, INST_LOST .. v, lost)
    redis.call('HDEL', req, INST_EXPOSED .. v)
  end
  return {'alone', lost}
end
local update = {INST_ATTEMPTS .. v, started, INST_STATUS .. v, VS_RUNNING, INST_WORKER .. v,
  ARGV[5], REQ_UPDATED, ARGV[4]}
if charged then
  update[#update + 1] = INST_LOST .. v
  update[#update + 1] = lost
end
if ARGV[8] ~= '0' then
  update[#update + 1] = INST_EXPOSED .. v
  update[#update + 1] = started
end
if not got[5] then
  update[#update + 1] = INST_STARTED .. v
  update[#update + 1] = ARGV[4]
end
if ON_START[st] ~= st then
  update[#update + 1] = REQ_STATUS
  update[#update + 1] = ON_START[st]
  reindex(req, st, ON_START[st], got[11], ARGV[4])
end
redis.call('HSET', req, unpack(update))
event(req, ON_START[st] ~= st and ON_START[st], {v, VS_RUNNING})
local out = {'run', started, failed, got[6] or ''}
for i = first_input, #got do
  out[#out + 1] = got[i]
end
if gather and got[first_input] then
  -- The items, a bounded number of fields per read (Lua unpacks at most a few thousand).
  local n = tonumber(got[first_input])
  for first = 0, n - 1, 1000 do
    local names = {}
    for i = first, math.min(first + 999, n - 1) do
      names[#names + 1] = ARGV[13] .. i
    end
    for _, value in ipairs(redis.call('HMGET', req, unpack(names))) do
      out[#out + 1] = value
    end
  end
end
return out
