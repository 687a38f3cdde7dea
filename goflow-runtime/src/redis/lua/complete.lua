-- Records an instance's output and moves the request on, in one step: stores what the worker
-- worked out from the plan (outputs, a for-each's items and size, skipped instances), counts
-- the arrivals and enqueues each instance that thereby has all its inputs (exactly once: an
-- instance delivered twice finds itself done), or parks it if the request is paused, or
-- completes the request at its exit.
--
-- Unrecorded runs: a worker that hands an instance's output on to its successors in its own
-- process, without recording the completion (see `worker::run`), records what it ran since
-- in one call: ARGV 4 is then the instance the request's state shows the entry holding (the
-- first of the run, which ended at ARGV 15), ARGV 16.. the attempts it ran after it on this entry, each begun as a
-- hand-off would have begun it, all ended but those that still run (the entry then carries
-- them), and the fields and arrivals those of the last completion, with the stores and the
-- arrivals at joins of the earlier ones before them (a join that started in the run has its
-- count among the stores). They ran even if the request was paused meanwhile, as an attempt
-- that ran at once did.
--
-- Hand-off: the first ready instances, up to the budget the worker has free slots for, are
-- started here for this worker instead of being queued for anyone: this entry carries them
-- (see entry.lua), pending for this worker, so a lease covers them exactly as if they had been
-- read (a crashed worker's entries are reclaimed the same way). The worker then runs them
-- without a read or a start script: one script per vertex, and a chain (or a kyc's diamond)
-- keeps one entry from end to end, which spares each hand-off an XADD, an XCLAIM, an XACK and
-- an XDEL.
--
-- KEYS: 1 request hash, 2 the ready stream (which holds the entry), 3 parked list,
--       4 completion stream
-- ARGV: 1 group, 2 entry id, 3 request id, 4 instance key, 5 the request's output when this
--       completes it (else empty), 6 now, 7 `1` if this completes the request, `2` if it does
--       and the done event carries the output (a small one, for waiting clients), else `0`,
--       8 retention of finished requests (ms), 9 traceparent for the instances it enqueues,
--       10 consumer, 11 hand-off budget, 12 number P of fields to store, 13 when the attempt
--       began (ms) if it ran at once on the input its entry carried, without a start script
--       (else empty), 14 number R of unrecorded attempts, 15 when ARGV 4's attempt ended if
--       R > 0 (ms; else empty), 16..15+3R per unrecorded attempt its instance, when it began
--       (ms) and when it ended (ms; empty if it still runs), then
--       2P values: (field, value) pairs,
--       then per arrival: instance, need, arrivals field, K, then K input fields (K = `-`
--       when the instance cannot be handed off). Need is `1` (ready now; no arrivals
--       field), a number of arrivals (a join), or the name of the field holding that number
--       (a gather: one per item). The K input fields are those a hand-off reads here: the
--       inputs this completion stores itself (its own output, say) are not listed, as the
--       worker has them.
-- Answers {RS_COMPLETED} when it completed the request; else {'ok', then per handed-off
-- instance: instance key, its attempt number, K, K input values (nil when missing)}; or what
-- `end_attempt` answers.
-- (after index.lua, events.lua, entry.lua and attempt_end.lua: `reindex`, `event`, `carrier`,
-- `ack`, `end_attempt`)
local req, ready_stream, parked, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local v, now, consumer = ARGV[4], ARGV[6], ARGV[10]
local runs = tonumber(ARGV[14])
local last = 15 + 3 * runs + 2 * tonumber(ARGV[12])
local budget = tonumber(ARGV[11])
-- The fields the arrivals read, fetched with the attempt's opening read (`prefetch`, each
-- field's place in it in `slot`): each join's and gather's count of arrivals, a gather's
-- number of items, and the inputs of the first instances, up to the budget, that a hand-off
-- could read, when they are all of use: those of an instance that is ready now or the second
-- of two arrivals. (A wider join's inputs are read when it is ready: read at every arrival,
-- those stored already would be read again and again.) Nothing writes the hash before the
-- single HSET at the end, so a value read at the opening is the value then.
local prefetch, slot = {}, {}
local function want(field)
  if not slot[field] then
    prefetch[#prefetch + 1] = field
    slot[field] = #prefetch
  end
end
if ARGV[7] == '0' then
  local i, handoffs = last + 1, 0
  while i <= #ARGV do
    local need, counter, k = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    if need ~= '1' then
      want(counter)
      if not tonumber(need) then
        want(need)
      end
    end
    if k and handoffs < budget and (need == '1' or need == '2') then
      handoffs = handoffs + 1
      for j = i + 4, i + 3 + k do
        want(ARGV[j])
      end
    end
    i = i + 4 + (k or 0)
  end
end
local early, at = end_attempt(req, v, now, prefetch)
if early then
  return early
end
local st, others = at.st, at.others
-- The value of `field` at the opening read, if it was read then (else nil).
local function prefetched(field)
  local place = slot[field]
  return place and at.extra[place]
end
-- HSET and RPUSH in bounded chunks: Lua unpacks at most a few thousand values.
local function chunked(command, key, list)
  for first = 1, #list, 4000 do
    redis.call(command, key, unpack(list, first, math.min(first + 3999, #list)))
  end
end
-- (The first of a run ended when the run began.)
local finished = ARGV[15] ~= '' and ARGV[15] or now
local update = {INST_STATUS .. v, VS_DONE, INST_FINISHED .. v, finished, REQ_UPDATED, now}
-- The step's event: what `update` moves (the request's status, and each instance's), after
-- the start of an attempt that ran at once.
local moved = {}
local function record_event()
  local status = false
  for j = 1, #update, 2 do
    local field = update[j]
    if field == REQ_STATUS then
      status = update[j + 1]
    elseif string.sub(field, 1, #INST_STATUS) == INST_STATUS then
      moved[#moved + 1] = string.sub(field, #INST_STATUS + 1)
      moved[#moved + 1] = update[j + 1]
    end
  end
  event(req, status, moved)
end
-- Records the first attempt of `s` in this run, by this consumer, begun at `t0`: its first
-- attempt ever, unless the request has been retried (from the start, its vertices have run
-- before: their attempts count on).
local function first_attempt(s, t0)
  local attempt, first_start = 1, false
  if at.retried then
    local got = redis.call('HMGET', req, INST_ATTEMPTS .. s, INST_STARTED .. s)
    attempt, first_start = tonumber(got[1] or '0') + 1, got[2]
  end
  update[#update + 1] = INST_ATTEMPTS .. s
  update[#update + 1] = attempt
  update[#update + 1] = INST_WORKER .. s
  update[#update + 1] = consumer
  if not first_start then
    update[#update + 1] = INST_STARTED .. s
    update[#update + 1] = t0
  end
  return attempt
end
-- An attempt that ran at once (see ARGV 13) records its start here, unless it ran long enough
-- to record it on its own (began.lua). It ran even if the request was paused meanwhile: the
-- pause parks what comes after it.
if ARGV[13] ~= '' and at.vs == VS_QUEUED then
  first_attempt(v, ARGV[13])
  moved = {v, VS_RUNNING}
  if ON_START[st] ~= st and ARGV[7] == '0' then
    update[#update + 1] = REQ_STATUS
    update[#update + 1] = ON_START[st]
    reindex(req, st, ON_START[st], at.ct, now)
  end
end
for j = 16, 15 + 3 * runs, 3 do
  local s, began, ended = ARGV[j], ARGV[j + 1], ARGV[j + 2]
  first_attempt(s, began)
  moved[#moved + 1] = s
  moved[#moved + 1] = VS_RUNNING
  update[#update + 1] = INST_STATUS .. s
  if ended == '' then
    update[#update + 1] = VS_RUNNING
    others[#others + 1] = s
  else
    update[#update + 1] = VS_DONE
    update[#update + 1] = INST_FINISHED .. s
    update[#update + 1] = ended
  end
end
for i = 16 + 3 * runs, last do
  update[#update + 1] = ARGV[i]
end
if ARGV[7] ~= '0' then
  update[#update + 1] = REQ_STATUS
  update[#update + 1] = RS_COMPLETED
  update[#update + 1] = REQ_OUTPUT
  update[#update + 1] = ARGV[5]
  update[#update + 1] = REQ_FINISHED
  update[#update + 1] = now
  chunked('HSET', req, update)
  redis.call('PEXPIRE', req, ARGV[8])
  reindex(req, st, RS_COMPLETED, at.ct, now)
  -- Instances are parked only while the request is paused: resuming or stopping it enqueues
  -- or drops them, and deletes the list.
  if st == RS_PAUSED then
    redis.call('DEL', parked)
  end
  if ARGV[7] == '2' then
    redis.call('XADD', done, 'MAXLEN', '~', DONE_MAXLEN, '*', DONE_REQUEST, ARGV[3], DONE_STATUS,
      RS_COMPLETED, DONE_OUTPUT, ARGV[5])
  else
    redis.call('XADD', done, 'MAXLEN', '~', DONE_MAXLEN, '*', DONE_REQUEST, ARGV[3], DONE_STATUS,
      RS_COMPLETED)
  end
  ack()
  record_event()
  return {RS_COMPLETED}
end
-- Everything is written in one HSET at the end: nothing below reads a field this completion
-- writes (a hand-off reads only the inputs the worker does not hold, and a gather's size is
-- stored by an earlier completion than its items').
local out = {'ok'}
-- Starts `s` for this consumer, carried by this entry, with the K inputs named from ARGV[first].
local function hand_off(s, first, k)
  others[#others + 1] = s
  update[#update + 1] = INST_STATUS .. s
  update[#update + 1] = VS_RUNNING
  out[#out + 1] = s
  out[#out + 1] = first_attempt(s, now)
  out[#out + 1] = k
  local got = {}
  for j = 1, k do
    local place = slot[ARGV[first + j - 1]]
    if not place then
      got = redis.call('HMGET', req, unpack(ARGV, first, first + k - 1))
      break
    end
    got[j] = at.extra[place]
  end
  for j = 1, k do
    out[#out + 1] = got[j] or false
  end
end
local to_park, counts = {}, {}
local becomes = ON_READY[st]
local i = last + 1
while i <= #ARGV do
  local s, need, counter, k = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local first = i + 4
  i = first + (tonumber(k) or 0)
  -- A single-input instance is ready now; a join or a gather counts its arrivals (the count
  -- is written with the rest, and `counts` has it meanwhile).
  local ready = need == '1'
  if not ready then
    local target = tonumber(need) or tonumber(prefetched(need) or '0')
    local count = (counts[counter] or tonumber(prefetched(counter) or '0')) + 1
    counts[counter] = count
    update[#update + 1] = counter
    update[#update + 1] = count
    ready = count == target
  end
  if ready then
    if becomes == VS_PARKED then
      update[#update + 1] = INST_STATUS .. s
      update[#update + 1] = VS_PARKED
      to_park[#to_park + 1] = s
    elseif budget > 0 and k ~= '-' then
      hand_off(s, first, tonumber(k))
      budget = budget - 1
    else
      update[#update + 1] = INST_STATUS .. s
      update[#update + 1] = becomes
      redis.call('XADD', ready_stream, '*', READY_REQUEST, ARGV[3], READY_INSTANCE, s,
        READY_TRACEPARENT, ARGV[9], READY_HASH, at.h or '')
    end
  end
end
-- The entry goes on carrying the instances it carried besides this one, and those handed off.
if #others > 0 then
  update[#update + 1] = carrier
  update[#update + 1] = table.concat(others, ' ')
end
chunked('HSET', req, update)
if #to_park > 0 then
  chunked('RPUSH', parked, to_park)
  redis.call('PEXPIRE', parked, redis.call('PTTL', req))
end
if #others == 0 then
  ack()
  if at.carries then
    redis.call('HDEL', req, carrier)
  end
end
record_event()
return out
