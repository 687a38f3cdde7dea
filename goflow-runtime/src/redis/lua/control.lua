-- Pause, resume or stop a request, atomically with everything the other scripts do, by the
-- lifecycle's control table (CONTROL[action][status] is the status the action moves to; no
-- entry is a conflict). What else happens follows from the status it moves to:
-- - one in which ready instances park (paused): instances not yet started are parked when
--   they are delivered, and instances that the completion of others makes ready are parked
--   instead of enqueued;
-- - one that has ended (stopped): the request ends now; queued instances are dropped when
--   delivered, running ones are cancelled by their workers, parked ones are dropped;
-- - any other (running, on resume): the parked instances (the list holds their keys) are
--   enqueued, each exactly once, and the request runs on.
--
-- The entry vertex's entry may carry the request's input, and then the worker that reads it runs
-- it at once, without asking whether it may (see submit.lua). So a pause or stop takes that entry
-- back from the ready stream if no worker has read it yet: a stop drops it, a pause parks its
-- instance. One that a worker has read runs like any running vertex: a stop cancels it, and a
-- pause parks what comes after it.
-- KEYS: 1 request hash, 2 ready stream, 3 parked list, 4 completion stream
-- ARGV: 1 action (a Control word), 2 request id, 3 now (ms), 4 retention (ms), 5 the workers'
--       consumer group
-- Answers {'ok', new status}, {'conflict', status} or {'missing', ''}.
-- (after index.lua, events.lua, park.lua and by_table.lua: `reindex`, `event`, `park`,
-- `by_table`)
local req, stream, parked, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local to, got = by_table(req, ARGV[1], REQ_FIRST_ENTRY, REQ_CREATED)
if not to then
  return got
end
local st, first_entry = got[1], got[2]
-- Takes the entry vertex's entry back if no worker has read it; returns its instance if so.
local function take_back()
  if not first_entry then
    return nil
  end
  local entry, v = string.match(first_entry, '^(%S+) (%S+)$')
  if redis.call('HGET', req, INST_STATUS .. v) ~= VS_QUEUED then
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
  redis.call('HDEL', req, REQ_FIRST_ENTRY)
  return v
end
local now = ARGV[3]
redis.call('HSET', req, REQ_STATUS, to, REQ_UPDATED, now)
reindex(req, st, to, got[3], now)
-- The step's event: the new status, and the instances it parks or queues (what an end cancels
-- is not an event of its own: the end says it).
local moved = {}
if ENDED[to] then
  redis.call('HSET', req, REQ_FINISHED, now)
  -- An entry taken back will not run: cancelled by the lifecycle's ON_END, as a dropped one is.
  local v = take_back()
  if v then
    redis.call('HSET', req, INST_STATUS .. v, ON_END[VS_QUEUED], INST_FINISHED .. v, now)
  end
  redis.call('PEXPIRE', req, ARGV[4])
  redis.call('DEL', parked)
  redis.call('XADD', done, 'MAXLEN', '~', DONE_MAXLEN, '*', DONE_REQUEST, ARGV[2], DONE_STATUS, to)
elseif ON_READY[to] == VS_PARKED then
  local v = take_back()
  if v then
    park(req, parked, v)
    moved = {v, VS_PARKED}
  end
else
  local tagged = redis.call('HMGET', req, REQ_TRACEPARENT, REQ_HASH)
  local tp, h = tagged[1] or '', tagged[2] or ''
  for _, v in ipairs(redis.call('LRANGE', parked, 0, -1)) do
    redis.call('HSET', req, INST_STATUS .. v, ON_READY[to])
    redis.call('XADD', stream, '*', READY_REQUEST, ARGV[2], READY_INSTANCE, v, READY_TRACEPARENT,
      tp, READY_HASH, h)
    moved[#moved + 1] = v
    moved[#moved + 1] = ON_READY[to]
  end
  redis.call('DEL', parked)
end
event(req, to, moved)
return {'ok', to}
