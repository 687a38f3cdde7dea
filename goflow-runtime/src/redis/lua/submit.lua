-- Creates a request, indexes it as queued, and enqueues its entry vertex, unless a request with
-- this id exists: submitting twice with the same id never starts a second run.
-- KEYS: 1 request hash, 2 ready stream
-- ARGV: 1 request id, 2 encoded input, 3 now (ms), 4 entry instance key, 5 ttl while unfinished
--       (ms), 6 plan hash, 7 traceparent, 8 `1` if the entry carries the input too (a small
--       one: the worker that reads it runs the entry vertex at once, without a start script;
--       see `worker::attempt`); every entry carries the plan hash, the version its instance
--       key is numbered in, which the worker checks before it runs it
-- Answers {1, status} when it created the request, {0, status, same} when one existed, `same`
-- being 1 if that request's input is ARGV[2] (a retried submission), 0 if not.
-- (after index.lua and events.lua: `reindex`, `event`)
local req, stream = KEYS[1], KEYS[2]
if redis.call('EXISTS', req) == 1 then
  local fields = redis.call('HMGET', req, REQ_STATUS, REQ_INPUT)
  return {0, fields[1], fields[2] == ARGV[2] and 1 or 0}
end
local state = {REQ_STATUS, RS_QUEUED, REQ_INPUT, ARGV[2], REQ_CREATED, ARGV[3], REQ_UPDATED,
  ARGV[3], REQ_HASH, ARGV[6], REQ_TRACEPARENT, ARGV[7], INST_STATUS .. ARGV[4],
  ON_READY[RS_QUEUED]}
if ARGV[8] == '1' then
  local entry = redis.call('XADD', stream, '*', READY_REQUEST, ARGV[1], READY_INSTANCE, ARGV[4],
    READY_TRACEPARENT, ARGV[7], READY_INPUT, ARGV[2], READY_HASH, ARGV[6])
  -- It names the entry (and its instance), so that a pause or stop that comes before any
  -- worker has read it can take it back (see control.lua).
  state[#state + 1] = REQ_FIRST_ENTRY
  state[#state + 1] = entry .. ' ' .. ARGV[4]
else
  redis.call('XADD', stream, '*', READY_REQUEST, ARGV[1], READY_INSTANCE, ARGV[4],
    READY_TRACEPARENT, ARGV[7], READY_HASH, ARGV[6])
end
redis.call('HSET', req, unpack(state))
redis.call('PEXPIRE', req, ARGV[5])
reindex(req, nil, RS_QUEUED, ARGV[3], ARGV[3])
event(req, RS_QUEUED, {ARGV[4], ON_READY[RS_QUEUED]})
return {1, RS_QUEUED}
