-- The opening shared by the scripts that end an attempt (complete.lua, fail.lua), placed in
-- front of each when they are loaded. Both take KEYS 1 request hash, 2 the entry's stream
-- (ready or direct) and ARGV
-- 1 group, 2 entry id, 4 instance key, 6 now; the entry is acknowledged (and deleted) on every
-- path, except by a duplicate once the entry carries another instance. An attempt of a request
-- that has expired, of an instance already finished (a redelivery), or of a request that has
-- already ended records nothing (a late running instance is marked cancelled).
local req, stream = KEYS[1], KEYS[2]
local v = ARGV[4]
local function ack()
  redis.call('XACK', stream, ARGV[1], ARGV[2])
  redis.call('XDEL', stream, ARGV[2])
end
local got = redis.call('HMGET', req, 'st', 's:' .. v, 'tp', carrier)
local st, vs, carries = got[1], got[2], got[4]
if not st then
  ack()
  return 'expired'
end
if vs == 'done' or vs == 'failed' then
  -- A late duplicate (its worker lost the entry, and the one that reclaimed it finished this
  -- instance first) leaves the entry alone if it has been moved on to another instance since.
  if not carries or carries == v then
    ack()
  end
  return 'duplicate'
end
if st == 'stopped' or st == 'failed' or st == 'completed' then
  if vs == 'running' then
    redis.call('HSET', req, 's:' .. v, 'cancelled', 't1:' .. v, ARGV[6])
  end
  ack()
  return 'ended'
end
