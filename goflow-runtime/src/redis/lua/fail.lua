-- Records a failed attempt: schedules a retry (the entry leaves the stream and waits in the
-- delayed set until it is due), or fails the instance and with it the request, dead-lettering
-- it (the dead letter's `v` is the instance key; its failure names the instance, `verify[3]`).
-- A retry lets go of the entry (the other instances it carries keep it); a final failure ends
-- the request, and the entry with it.
-- KEYS: 1 request hash, 2 the entry's stream, 3 parked list, 4 completion stream, 5 delayed
--       set, 6 dead-letter stream
-- ARGV: 1 group, 2 entry id, 3 request id, 4 instance key, 5 failure (JSON), 6 now,
--       7 retry due time (ms) or empty for a final failure, 8 retention (ms), 9 `1` if this
--       failure is a recorded attempt (a lost delivery is not)
-- (after entry.lua and attempt_end.lua: `release`, `ack`, `req`, `v`, `got`, `carries`,
-- `others`)
local parked, done, delayed, dlq = KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if ARGV[9] == '1' then
  redis.call('HINCRBY', req, 'f:' .. v, 1)
end
redis.call('HSET', req, 'e:' .. v, ARGV[5], 'ut', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', req, 's:' .. v, 'retrying')
  redis.call('ZADD', delayed, ARGV[7], ARGV[3] .. ' ' .. v .. ' ' .. (got[3] or ''))
  release(carries, others)
  return 'retry'
end
redis.call('HSET', req, 's:' .. v, 'failed', 't1:' .. v, ARGV[6], 'st', 'failed', 'ft', ARGV[6],
  'err', ARGV[5], 'ev', v)
redis.call('PEXPIRE', req, ARGV[8])
redis.call('DEL', parked)
redis.call('XADD', dlq, 'MAXLEN', '~', '10000', '*', 'r', ARGV[3], 'v', v, 'failure', ARGV[5])
redis.call('XADD', done, 'MAXLEN', '~', '100000', '*', 'r', ARGV[3], 'st', 'failed')
ack()
return 'failed'
