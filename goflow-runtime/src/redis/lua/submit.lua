-- Creates a request and enqueues its entry vertex, unless a request with this id exists:
-- submitting twice with the same id never starts a second run.
-- KEYS: 1 request hash, 2 ready stream
-- ARGV: 1 request id, 2 encoded input, 3 now (ms), 4 entry instance key, 5 ttl while unfinished
--       (ms), 6 plan hash, 7 traceparent, 8 the field holding the input, 9 `1` if the entry
--       carries the input too (a small one: the worker that reads it runs the entry vertex at
--       once, without a start script; see `worker::attempt`)
local req, stream = KEYS[1], KEYS[2]
if redis.call('EXISTS', req) == 1 then
  return {0, redis.call('HGET', req, 'st')}
end
local state = {'st', 'queued', ARGV[8], ARGV[2], 'ct', ARGV[3], 'ut', ARGV[3], 'h', ARGV[6],
  'tp', ARGV[7], 's:' .. ARGV[4], 'queued'}
if ARGV[9] == '1' then
  local entry = redis.call('XADD', stream, '*', 'r', ARGV[1], 'v', ARGV[4], 'tp', ARGV[7], 'i',
    ARGV[2])
  -- `q` names the entry (and its instance), so that a pause or stop that comes before any
  -- worker has read it can take it back (see control.lua).
  state[#state + 1] = 'q'
  state[#state + 1] = entry .. ' ' .. ARGV[4]
else
  redis.call('XADD', stream, '*', 'r', ARGV[1], 'v', ARGV[4], 'tp', ARGV[7])
end
redis.call('HSET', req, unpack(state))
redis.call('PEXPIRE', req, ARGV[5])
return {1, 'queued'}
