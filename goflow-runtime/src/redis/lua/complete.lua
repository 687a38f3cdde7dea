-- Records a vertex's output and moves the request on, in one step: enqueues each successor
-- whose inputs are now complete (exactly once: a parent delivered twice finds itself done),
-- or parks it if the request is paused, or completes the request at the exit vertex.
-- KEYS: 1 request hash, 2 ready stream, 3 parked list, 4 completion stream
-- ARGV: 1 group, 2 entry id, 3 request id, 4 vertex, 5 output, 6 now, 7 `1` at the exit vertex,
--       8 retention of finished requests (ms), 9 traceparent for successors,
--       10.. pairs of (successor, number of its inputs)
local req, stream, parked, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local v = ARGV[4]
local function ack()
  redis.call('XACK', stream, ARGV[1], ARGV[2])
  redis.call('XDEL', stream, ARGV[2])
end
local st = redis.call('HGET', req, 'st')
if not st then
  ack()
  return 'expired'
end
local vs = redis.call('HGET', req, 's:' .. v)
if vs == 'done' or vs == 'failed' then
  ack()
  return 'duplicate'
end
if st == 'stopped' or st == 'failed' or st == 'completed' then
  -- A late attempt of a request that has already ended: nothing is recorded but its end.
  if vs == 'running' then
    redis.call('HSET', req, 's:' .. v, 'cancelled', 't1:' .. v, ARGV[6])
  end
  ack()
  return 'ended'
end
redis.call('HSET', req, 'o:' .. v, ARGV[5], 's:' .. v, 'done', 't1:' .. v, ARGV[6], 'ut', ARGV[6])
if ARGV[7] == '1' then
  redis.call('HSET', req, 'st', 'completed', 'out', ARGV[5], 'ft', ARGV[6])
  redis.call('PEXPIRE', req, ARGV[8])
  redis.call('DEL', parked)
  redis.call('XADD', done, 'MAXLEN', '~', '100000', '*', 'r', ARGV[3], 'st', 'completed')
  ack()
  return 'completed'
end
for i = 10, #ARGV, 2 do
  local s = ARGV[i]
  local arrived = redis.call('HINCRBY', req, 'n:' .. s, 1)
  if arrived == tonumber(ARGV[i + 1]) then
    if st == 'paused' then
      redis.call('HSET', req, 's:' .. s, 'parked')
      redis.call('RPUSH', parked, s)
      redis.call('PEXPIRE', parked, redis.call('PTTL', req))
    else
      redis.call('HSET', req, 's:' .. s, 'queued')
      redis.call('XADD', stream, '*', 'r', ARGV[3], 'v', s, 'tp', ARGV[9])
    end
  end
end
ack()
return 'ok'
