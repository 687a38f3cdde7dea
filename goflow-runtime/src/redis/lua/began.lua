-- Records the start of an attempt that ran at once on the input its entry carried, without a
-- start script (see `worker::attempt`), as the start script would have: when it runs long (so
-- that the request's state shows it running meanwhile), or before it records a failure. Its
-- completion records its start itself otherwise (complete.lua). Writes nothing if the instance
-- is no longer queued, or the request has ended.
-- KEYS: 1 request hash
-- ARGV: 1 instance key, 2 when the attempt began (ms), 3 consumer, 4 now (ms)
local req, v = KEYS[1], ARGV[1]
local got = redis.call('HMGET', req, 'st', 's:' .. v)
local st, vs = got[1], got[2]
if vs ~= 'queued' or not (st == 'queued' or st == 'running' or st == 'paused') then
  return 0
end
local update = {'s:' .. v, 'running', 'a:' .. v, '1', 'w:' .. v, ARGV[3], 't0:' .. v, ARGV[2],
  'ut', ARGV[4]}
if st == 'queued' then
  update[#update + 1] = 'st'
  update[#update + 1] = 'running'
end
redis.call('HSET', req, unpack(update))
return 1
