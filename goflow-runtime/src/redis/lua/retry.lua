-- Retries an ended request by the lifecycle's control table (CONTROL[action][status]; only a
-- failed or stopped request moves, to running), under the same id, atomically with everything
-- the other scripts do. Its retries (REQ_RETRIES) count one more, the listing indexes move it
-- back among the requests under way, and its attempts (INST_ATTEMPTS) count on.
--
-- From where it stopped: each instance whose status RERUNS names (failed, cancelled, parked: it
-- had all its inputs, and no entry or attempt of it is left) is queued again with a fresh retry
-- budget, as one entry on the ready stream; every other instance stays as it is: done and
-- skipped ones, pending ones (their inputs arrive as their parents complete, the arrivals
-- counted so far kept), and those still queued, retrying or running, whose entry or attempt is
-- still under way and goes on by itself now that the request runs (the scripts that drop an
-- entry or cancel an attempt of an ended request mark it cancelled, so none is left behind).
--
-- From the start: every instance's progress is forgotten (its outputs, arrivals, statuses; its
-- attempts, first start, worker and latest failure are kept) and the entry vertex is queued on
-- the input. Refused while an entry or attempt of the last run is still under way (an instance
-- queued or running, or retrying with its entry promoted already), as it would run on inputs
-- that are gone: it answers {'busy', instance} then, and the workers settle those shortly. A
-- retry waiting in the delayed set is taken back from it. A request of another version than
-- the caller's (ARGV 7) is moved to the caller's by a retry from the start: every field of its
-- instances goes (their history too: it is numbered by the other graph), and it runs from its
-- input on the caller's graph. A retry from where it stopped keeps its version: what it queues
-- reaches that version's workers (start.lua moves it there).
-- KEYS: 1 request hash, 2 ready stream, 3 parked list, 4 delayed set
-- ARGV: 1 action (a Control word), 2 request id, 3 now (ms), 4 ttl while unfinished (ms),
--       5 `1` to retry from the start, 6 the entry vertex's instance key, 7 the caller's
--       version (plan hash)
-- Answers {'ok', new status, retries}, {'conflict', status}, {'busy', instance key} or
-- {'missing', ''}.
-- (after index.lua, events.lua and by_table.lua: `reindex`, `event`, `by_table`)
local req, stream, parked, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, from_start = ARGV[2], ARGV[3], ARGV[5] == '1'
local to, got = by_table(req, ARGV[1], REQ_CREATED, REQ_TRACEPARENT, REQ_RETRIES, REQ_HASH)
if not to then
  return got
end
local st = got[1]
local tp = got[3] or ''
local function starts_with(name, prefix)
  return string.sub(name, 1, #prefix) == prefix
end
-- A retry waiting for its backoff is a member `request instance traceparent` (see fail.lua).
local function delayed_member(v)
  return id .. ' ' .. v .. ' ' .. tp
end
local all = redis.call('HGETALL', req)
local requeue = {}
if from_start then
  -- Nothing is written before it is known that nothing of the last run is under way.
  local waiting = {}
  for i = 1, #all, 2 do
    local name, value = all[i], all[i + 1]
    if starts_with(name, INST_STATUS) then
      local v = string.sub(name, #INST_STATUS + 1)
      -- Under way: what the lifecycle's ON_END would cancel (queued, retrying, running), but
      -- a retry still waiting in the delayed set, which is taken back.
      if value == VS_RETRYING and redis.call('ZSCORE', delayed, delayed_member(v)) then
        waiting[#waiting + 1] = delayed_member(v)
      elseif ON_END[value] ~= value then
        return {'busy', v}
      end
    end
  end
  for _, member in ipairs(waiting) do
    redis.call('ZREM', delayed, member)
  end
  -- What an instance's progress is; the rest of its fields are its history, kept, unless the
  -- request moves to another version (its history is numbered by its old graph).
  local progress = {INST_STATUS, INST_FAILURES, INST_LOST, INST_EXPOSED, INST_FINISHED,
    INST_OUTPUT, INST_ARRIVALS, INST_SIZE, ENTRY_CARRIES}
  if got[5] and got[5] ~= ARGV[7] then
    for _, prefix in ipairs({INST_ATTEMPTS, INST_STARTED, INST_WORKER, INST_FAILURE}) do
      progress[#progress + 1] = prefix
    end
    redis.call('HSET', req, REQ_HASH, ARGV[7])
    got[5] = ARGV[7]
  end
  local forget = {}
  for i = 1, #all, 2 do
    local name = all[i]
    for _, prefix in ipairs(progress) do
      if starts_with(name, prefix) then
        forget[#forget + 1] = name
        break
      end
    end
  end
  for first = 1, #forget, 4000 do
    redis.call('HDEL', req, unpack(forget, first, math.min(first + 3999, #forget)))
  end
  requeue[1] = ARGV[6]
else
  local fresh = {}
  for i = 1, #all, 2 do
    local name, value = all[i], all[i + 1]
    if starts_with(name, INST_STATUS) and RERUNS[value] then
      local v = string.sub(name, #INST_STATUS + 1)
      requeue[#requeue + 1] = v
      for _, prefix in ipairs({INST_FAILURES, INST_LOST, INST_EXPOSED, INST_FINISHED}) do
        fresh[#fresh + 1] = prefix .. v
      end
    end
  end
  for first = 1, #fresh, 4000 do
    redis.call('HDEL', req, unpack(fresh, first, math.min(first + 3999, #fresh)))
  end
end
local retries = tonumber(got[4] or '0') + 1
redis.call('HSET', req, REQ_STATUS, to, REQ_UPDATED, now, REQ_RETRIES, retries)
redis.call('HDEL', req, REQ_FINISHED, REQ_FAILURE, REQ_FIRST_ENTRY)
local moved = {}
for _, v in ipairs(requeue) do
  redis.call('HSET', req, INST_STATUS .. v, ON_READY[to])
  redis.call('XADD', stream, '*', READY_REQUEST, id, READY_INSTANCE, v, READY_TRACEPARENT, tp,
    READY_HASH, got[5] or '')
  moved[#moved + 1] = v
  moved[#moved + 1] = ON_READY[to]
end
redis.call('DEL', parked)
redis.call('PEXPIRE', req, ARGV[4])
reindex(req, st, to, got[2], now)
event(req, to, moved)
return {'ok', to, retries}
