-- A worker is about to run a delivered vertex. Decides, atomically with the request's state,
-- whether it runs (and returns its inputs), is parked (request paused), or is dropped
-- (request finished, vertex already done, or request expired).
-- KEYS: 1 request hash, 2 ready stream, 3 parked list
-- ARGV: 1 group, 2 entry id, 3 vertex, 4 now, 5 consumer, 6 lost deliveries allowed,
--       7.. input vertices, or the single word `input` for the entry vertex
local req, stream, parked = KEYS[1], KEYS[2], KEYS[3]
local v = ARGV[3]
local function ack()
  redis.call('XACK', stream, ARGV[1], ARGV[2])
  redis.call('XDEL', stream, ARGV[2])
end
local st = redis.call('HGET', req, 'st')
if not st then
  ack()
  return {'drop', 'expired'}
end
if st == 'stopped' or st == 'failed' or st == 'completed' then
  ack()
  return {'drop', st}
end
local vs = redis.call('HGET', req, 's:' .. v)
if vs == 'done' or vs == 'failed' then
  ack()
  return {'drop', vs}
end
if st == 'paused' then
  redis.call('HSET', req, 's:' .. v, 'parked', 'ut', ARGV[4])
  redis.call('RPUSH', parked, v)
  redis.call('PEXPIRE', parked, redis.call('PTTL', req))
  ack()
  return {'parked'}
end
-- Attempts started, and attempts that ended in a recorded failure: a start that never ended
-- (its worker died) is a lost delivery, which does not use up the node's retries but is
-- bounded so that a vertex that kills its worker every time ends up dead-lettered.
local started = redis.call('HINCRBY', req, 'a:' .. v, 1)
local failed = tonumber(redis.call('HGET', req, 'f:' .. v) or '0')
local lost = started - 1 - failed
if lost > tonumber(ARGV[6]) then
  return {'lost', started, failed, lost}
end
if st == 'queued' then
  redis.call('HSET', req, 'st', 'running')
end
redis.call('HSET', req, 's:' .. v, 'running', 'w:' .. v, ARGV[5], 'ut', ARGV[4])
redis.call('HSETNX', req, 't0:' .. v, ARGV[4])
local out = {'run', started, failed, redis.call('HGET', req, 'tp') or ''}
if ARGV[7] == 'input' then
  out[#out + 1] = redis.call('HGET', req, 'in')
else
  for i = 7, #ARGV do
    out[#out + 1] = redis.call('HGET', req, 'o:' .. ARGV[i])
  end
end
return out
