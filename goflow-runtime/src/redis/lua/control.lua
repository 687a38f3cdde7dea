-- Pause, resume or stop a request, atomically with everything the scripts above do.
-- Pause: instances not yet started are parked when they are delivered, and instances that the
-- completion of others makes ready are parked instead of enqueued. Resume: the parked instances
-- (the list holds their keys) are enqueued, each exactly once, and the request runs on. Stop:
-- the request ends now; queued instances are dropped when delivered and running ones are
-- cancelled by their workers.
--
-- The entry vertex's entry may carry the request's input, and then the worker that reads it runs
-- it at once, without asking whether it may (see submit.lua). So a pause or stop takes that entry
-- back from the ready stream if no worker has read it yet: a stop drops it, a pause parks its
-- instance. One that a worker has read runs like any running vertex: a stop cancels it, and a
-- pause parks what comes after it.
-- KEYS: 1 request hash, 2 ready stream, 3 parked list, 4 completion stream
-- ARGV: 1 action (`pause`, `resume`, `stop`), 2 request id, 3 now (ms), 4 retention (ms),
--       5 the workers' consumer group
local req, stream, parked, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local got = redis.call('HMGET', req, 'st', 'q')
local st, queued = got[1], got[2]
if not st then
  return {'missing', ''}
end
-- Takes the entry vertex's entry back if no worker has read it; returns its instance if so.
local function take_back()
  if not queued then
    return nil
  end
  local entry, v = string.match(queued, '^(%S+) (%S+)$')
  if redis.call('HGET', req, 's:' .. v) ~= 'queued' then
    return nil
  end
  -- No group yet means no worker has read anything.
  local pending = redis.pcall('XPENDING', stream, ARGV[5], entry, entry, 1)
  if type(pending) == 'table' and not pending.err and #pending > 0 then
    return nil
  end
  if redis.call('XDEL', stream, entry) == 0 then
    return nil
  end
  redis.call('HDEL', req, 'q')
  return v
end
local action = ARGV[1]
if action == 'pause' then
  if st == 'queued' or st == 'running' then
    redis.call('HSET', req, 'st', 'paused', 'ut', ARGV[3])
    local v = take_back()
    if v then
      redis.call('HSET', req, 's:' .. v, 'parked')
      redis.call('RPUSH', parked, v)
      redis.call('PEXPIRE', parked, redis.call('PTTL', req))
    end
    return {'ok', 'paused'}
  end
  return {'conflict', st}
elseif action == 'resume' then
  if st ~= 'paused' then
    return {'conflict', st}
  end
  redis.call('HSET', req, 'st', 'running', 'ut', ARGV[3])
  local tp = redis.call('HGET', req, 'tp') or ''
  for _, v in ipairs(redis.call('LRANGE', parked, 0, -1)) do
    redis.call('HSET', req, 's:' .. v, 'queued')
    redis.call('XADD', stream, '*', 'r', ARGV[2], 'v', v, 'tp', tp)
  end
  redis.call('DEL', parked)
  return {'ok', 'running'}
elseif action == 'stop' then
  if st == 'queued' or st == 'running' or st == 'paused' then
    redis.call('HSET', req, 'st', 'stopped', 'ut', ARGV[3], 'ft', ARGV[3])
    take_back()
    redis.call('PEXPIRE', req, ARGV[4])
    redis.call('DEL', parked)
    redis.call('XADD', done, 'MAXLEN', '~', '100000', '*', 'r', ARGV[2], 'st', 'stopped')
    return {'ok', 'stopped'}
  end
  return {'conflict', st}
end
return redis.error_reply('unknown action ' .. action)
