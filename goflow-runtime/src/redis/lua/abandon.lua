-- Lets go of the entry of an attempt that was cancelled because its request ended (stopped,
-- or failed elsewhere): `end_attempt` records the instance cancelled and acknowledges the
-- entry (unless it carries other instances still). If the request has not ended after all (it
-- was retried since the end this worker heard of), the instance goes back to be run again at
-- once: queued on the ready stream (parked if the request is paused), and the entry let go.
-- KEYS: 1 request hash, 2 the ready stream (which holds the entry), 3 parked list
-- ARGV: 1 group, 2 entry id, 3 request id, 4 instance key, 5 (unused), 6 now
-- Answers what `end_attempt` answers, or `requeued`.
-- (after index.lua, events.lua, entry.lua, park.lua and attempt_end.lua: `event`, `release`,
-- `park`, `end_attempt`)
local req, v = KEYS[1], ARGV[4]
local early, at = end_attempt(req, v, ARGV[6])
if early then
  return early
end
-- Its attempt ended without a failure: it was not lost with its worker (see start.lua).
redis.call('HDEL', req, INST_EXPOSED .. v)
if ON_READY[at.st] == VS_PARKED then
  park(req, KEYS[3], v)
else
  redis.call('HSET', req, INST_STATUS .. v, ON_READY[at.st], REQ_UPDATED, ARGV[6])
  redis.call('XADD', KEYS[2], '*', READY_REQUEST, ARGV[3], READY_INSTANCE, v, READY_TRACEPARENT,
    at.tp or '', READY_HASH, at.h or '')
end
release(at.carries, at.others)
event(req, false, {v, ON_READY[at.st]})
return 'requeued'
