-- Records a vertex's output and moves the request on, in one step: enqueues each successor
-- whose inputs are now complete (exactly once: a parent delivered twice finds itself done),
-- or parks it if the request is paused, or completes the request at the exit vertex.
-- KEYS: 1 request hash, 2 ready stream, 3 parked list, 4 completion stream
-- ARGV: 1 group, 2 entry id, 3 request id, 4 vertex, 5 output, 6 now, 7 `1` at the exit vertex,
--       8 retention of finished requests (ms), 9 traceparent for successors,
--       10.. pairs of (successor, number of its inputs)
-- (after attempt_end.lua: `req`, `stream`, `v`, `ack`, `st`, `vs`)
local parked, done = KEYS[3], KEYS[4]
if ARGV[7] == '1' then
  redis.call('HSET', req, 'o:' .. v, ARGV[5], 's:' .. v, 'done', 't1:' .. v, ARGV[6],
    'ut', ARGV[6], 'st', 'completed', 'out', ARGV[5], 'ft', ARGV[6])
  redis.call('PEXPIRE', req, ARGV[8])
  redis.call('DEL', parked)
  redis.call('XADD', done, 'MAXLEN', '~', '100000', '*', 'r', ARGV[3], 'st', 'completed')
  ack()
  return 'completed'
end
local update = {'o:' .. v, ARGV[5], 's:' .. v, 'done', 't1:' .. v, ARGV[6], 'ut', ARGV[6]}
local park = {}
for i = 10, #ARGV, 2 do
  local s = ARGV[i]
  -- A single-input successor is ready now; a join counts its arrivals.
  local ready = ARGV[i + 1] == '1'
    or redis.call('HINCRBY', req, 'n:' .. s, 1) == tonumber(ARGV[i + 1])
  if ready then
    if st == 'paused' then
      update[#update + 1] = 's:' .. s
      update[#update + 1] = 'parked'
      park[#park + 1] = s
    else
      update[#update + 1] = 's:' .. s
      update[#update + 1] = 'queued'
      redis.call('XADD', stream, '*', 'r', ARGV[3], 'v', s, 'tp', ARGV[9])
    end
  end
end
redis.call('HSET', req, unpack(update))
if #park > 0 then
  redis.call('RPUSH', parked, unpack(park))
  redis.call('PEXPIRE', parked, redis.call('PTTL', req))
end
ack()
return 'ok'
