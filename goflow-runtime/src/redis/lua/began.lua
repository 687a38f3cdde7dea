-- Records the start of an attempt that ran at once on the input its entry carried, without a
-- start script (see `worker::attempt`), as the start script would have: when it runs long (so
-- that the request's state shows it running meanwhile), or before it records a failure. Its
-- completion records its start itself otherwise (complete.lua). Writes nothing if the instance
-- is no longer queued, the request has ended, or it has migrated to another version than the
-- worker's (the instance key is numbered in the worker's graph).
-- KEYS: 1 request hash
-- ARGV: 1 instance key, 2 when the attempt began (ms), 3 consumer, 4 now (ms), 5 the worker's
--       version (plan hash)
-- Answers 1 if it recorded the start, else 0.
-- (after index.lua and events.lua: `reindex`, `event`)
local req, v = KEYS[1], ARGV[1]
local got = redis.call('HMGET', req, REQ_STATUS, INST_STATUS .. v, REQ_CREATED, REQ_HASH)
local st, vs = got[1], got[2]
if vs ~= VS_QUEUED or not st or ENDED[st] or (got[4] and got[4] ~= ARGV[5]) then
  return 0
end
local update = {INST_STATUS .. v, VS_RUNNING, INST_ATTEMPTS .. v, '1', INST_WORKER .. v, ARGV[3],
  INST_STARTED .. v, ARGV[2], REQ_UPDATED, ARGV[4]}
if ON_START[st] ~= st then
  update[#update + 1] = REQ_STATUS
  update[#update + 1] = ON_START[st]
  reindex(req, st, ON_START[st], got[3], ARGV[4])
end
redis.call('HSET', req, unpack(update))
event(req, ON_START[st] ~= st and ON_START[st], {v, VS_RUNNING})
return 1
