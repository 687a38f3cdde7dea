-- The opening shared by the scripts that end an attempt (complete.lua, fail.lua), placed in
-- front of each when they are loaded, after entry.lua. Both take KEYS 1 request hash, 2 the
-- entry's stream and ARGV 1 group, 2 entry id, 4 instance key, 6 now. An attempt of a request
-- that has expired, of an instance already finished (a redelivery), or of a request that has
-- already ended records nothing (a late running instance is marked cancelled) and
-- acknowledges the entry, unless it carries other instances still.
local req = KEYS[1]
local v = ARGV[4]
local got = redis.call('HMGET', req, 'st', 's:' .. v, 'tp', carrier)
local st, vs, carries = got[1], got[2], got[4]
-- The other instances this entry carries: they keep it pending.
local others = carried_besides(carries, v)
if not st then
  ack()
  return 'expired'
end
if vs == 'done' or vs == 'failed' then
  -- A late duplicate (its worker lost the entry, and the one that reclaimed it finished this
  -- instance first) leaves the entry to the instances it carries since.
  if #others == 0 then
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
