-- Records a failed attempt: schedules a retry (the entry leaves the stream and waits in the
-- delayed set until it is due), or fails the instance and with it the request, dead-lettering
-- it (the dead letter's instance is the instance key; its failure names the instance,
-- `verify[3]`). A retry lets go of the entry (the other instances it carries keep it); a final
-- failure ends the request, and the entry with it. The worker decided which, by the
-- lifecycle's retry policy.
-- KEYS: 1 request hash, 2 the entry's stream, 3 parked list, 4 completion stream, 5 delayed
--       set, 6 dead-letter stream
-- ARGV: 1 group, 2 entry id, 3 request id, 4 instance key, 5 failure (JSON), 6 now,
--       7 retry due time (ms) or empty for a final failure, 8 retention (ms), 9 `1` if this
--       failure is a recorded attempt (a lost delivery is not)
-- Answers VS_RETRYING, RS_FAILED (it failed the request), or what `end_attempt` answers.
-- (after index.lua, events.lua, entry.lua and attempt_end.lua: `reindex`, `event`, `release`,
-- `ack`, `end_attempt`)
local req, parked, done, delayed, dlq = KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local v, now = ARGV[4], ARGV[6]
local early, at = end_attempt(req, v, now)
if early then
  return early
end
if ARGV[9] == '1' then
  redis.call('HINCRBY', req, INST_FAILURES .. v, 1)
end
-- The attempt ended: it was not lost with its worker (see start.lua).
redis.call('HDEL', req, INST_EXPOSED .. v)
redis.call('HSET', req, INST_FAILURE .. v, ARGV[5], REQ_UPDATED, now)
if ARGV[7] ~= '' then
  redis.call('HSET', req, INST_STATUS .. v, VS_RETRYING)
  redis.call('ZADD', delayed, ARGV[7], ARGV[3] .. ' ' .. v .. ' ' .. (at.tp or ''))
  release(at.carries, at.others)
  event(req, false, {v, VS_RETRYING})
  return VS_RETRYING
end
redis.call('HSET', req, INST_STATUS .. v, VS_FAILED, INST_FINISHED .. v, now, REQ_STATUS,
  RS_FAILED, REQ_FINISHED, now, REQ_FAILURE, ARGV[5])
redis.call('PEXPIRE', req, ARGV[8])
reindex(req, at.st, RS_FAILED, at.ct, now)
redis.call('DEL', parked)
redis.call('XADD', dlq, 'MAXLEN', '~', DEAD_MAXLEN, '*', DEAD_REQUEST, ARGV[3], DEAD_INSTANCE, v,
  DEAD_FAILURE, ARGV[5])
redis.call('XADD', done, 'MAXLEN', '~', DONE_MAXLEN, '*', DONE_REQUEST, ARGV[3], DONE_STATUS,
  RS_FAILED)
ack()
event(req, RS_FAILED, {v, VS_FAILED})
return RS_FAILED
