-- The opening shared by the scripts that end an attempt (complete.lua, fail.lua), placed in
-- front of each when they are loaded, after entry.lua.
--
-- `end_attempt(req, v, now, extra)` reads the request hash `req` for instance `v`: an attempt of a
-- request that has expired, of a request that has migrated to another version of the graph
-- since the attempt started (its instance key is numbered in the old one: the migration
-- queued again what it held, on the new version), of an instance already settled (a
-- redelivery), or of a request that has already ended records nothing (what the entry held is settled by `end_held`: a late
-- running instance is cancelled, as of the request's end) and acknowledges the entry, unless a
-- redelivery's entry carries other instances still. It answers the script's reply then; else nil and what the script
-- goes on with: the request's status `st`, the instance's `vs`, the request's trace context
-- `tp`, creation time `ct` and version `h` (the worker's: the version of the stream in KEYS 2), the entry's carried instances `carries` (the field's value,
-- maybe nil) and `others`, those of them besides `v`, whether the request has been
-- `retried`, and `extra`, the values of the fields the list `extra` (maybe nil) names, read in
-- the same command (a missing one is false).
local function end_attempt(req, v, now, extra)
  local fields = {REQ_STATUS, INST_STATUS .. v, REQ_TRACEPARENT, carrier, REQ_FINISHED,
    REQ_CREATED, REQ_RETRIES, REQ_HASH}
  local own = #fields
  for i, field in ipairs(extra or {}) do
    fields[own + i] = field
  end
  local got = redis.call('HMGET', req, unpack(fields))
  local at = {st = got[1], vs = got[2], tp = got[3], carries = got[4], ct = got[6],
    retried = got[7] ~= false, h = got[8], extra = {}}
  for i = own + 1, #got do
    at.extra[i - own] = got[i]
  end
  -- The other instances this entry carries: they keep it pending.
  at.others = carried_besides(at.carries, v)
  if not at.st then
    ack()
    return 'expired'
  end
  if at.h and at.h ~= string.match(KEYS[2], '@(%x+)$') then
    ack()
    return 'migrated'
  end
  if at.vs == VS_DONE or at.vs == VS_FAILED then
    -- A late duplicate (its worker lost the entry, and the one that reclaimed it finished this
    -- instance first) leaves the entry to the instances it carries since.
    if #at.others == 0 then
      ack()
    end
    return 'duplicate'
  end
  if ENDED[at.st] then
    end_held(v, at.vs, at.others, got[5] or now)
    ack()
    return 'ended'
  end
  return nil, at
end
