-- Moves a request to another version of its workflow's graph (the caller's), atomically with
-- everything the other scripts do, when its progress carries over: the caller worked out from
-- the two graphs which vertices carry over (the same path, node, types and feed) and which
-- completions would leave a vertex of the new graph unfed; this script checks the request's
-- state against both and, if it passes, renumbers it.
--
-- Every per-instance field is renamed to the instance's key in the new graph (the vertex
-- number changes, the item path stays), and so are the parked list and the retries waiting in
-- the delayed set. What is queued, or running where no worker of the old version is alive, is
-- queued again on the new version's stream (parked if the request is paused); the old entries
-- are numbered in the old graph, and every script drops them or refuses their attempts (their
-- version is not the request's any more: start.lua answers `stale`, end_attempt `migrated`).
-- Carried entries are forgotten, and the first entry taken back from the old stream. Of an
-- ended request (failed or stopped: retried later on the new graph), an instance still queued,
-- retrying or running is settled by the lifecycle's ON_END instead, as its entry or attempt
-- will be dropped.
-- KEYS: 1 request hash, 2 the ready stream of the new version, 3 parked list, 4 delayed set,
--       5 the ready stream of the request's version
-- ARGV: 1 request id, 2 now (ms), 3 the new version, 4 the request's version as the caller
--       read it, 5 `1` if a worker of that version is alive, 6 the vertices that carry over:
--       `<old> <new> <old> <new> ...`, 7 the old vertices whose completion would leave a new
--       vertex unfed, space-separated, 8 the workers' consumer group
-- Answers {'ok', status, queued again} when it moved the request; {'changed', version} when
-- its version is not ARGV 4 any more; {'incompatible', progress, completed}, where `progress`
-- lists the old vertices with progress that do not carry over, `completed` those of ARGV 7 an
-- instance of which is done (both space-separated); {'busy', instance} when an instance is
-- running on a live worker of the old version; {'ended', status} for a completed request;
-- {'missing', ''}.
-- (after index.lua, events.lua and park.lua: `event`, `park`)
local req, stream, parked, delayed, old_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, to, from = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local alive = ARGV[5] == '1'
local got = redis.call('HMGET', req, REQ_STATUS, REQ_HASH, REQ_TRACEPARENT, REQ_FIRST_ENTRY)
local st, tp, first_entry = got[1], got[3] or '', got[4]
if not st then
  return {'missing', ''}
end
if (got[2] or '') ~= from then
  return {'changed', got[2] or ''}
end
if st == RS_COMPLETED then
  return {'ended', st}
end
local map, guarded = {}, {}
for o, n in string.gmatch(ARGV[6], '(%d+) (%d+)') do
  map[o] = n
end
for o in string.gmatch(ARGV[7], '%d+') do
  guarded[o] = true
end
-- A per-instance field's prefix, instance key and vertex number; nil for another field.
local function split(name)
  for _, prefix in ipairs(INSTANCE_FIELDS) do
    if string.sub(name, 1, #prefix) == prefix then
      local key = string.sub(name, #prefix + 1)
      local vertex = string.match(key, '^(%d+)')
      if vertex then
        return prefix, key, vertex
      end
      return nil
    end
  end
  return nil
end
-- An instance key (maybe followed by `#<item>`) in the new graph's numbering.
local function renumbered(key)
  local vertex = string.match(key, '^(%d+)')
  return map[vertex] .. string.sub(key, #vertex + 1)
end
local all = redis.call('HGETALL', req)
local instances, statuses, carried = {}, {}, {}
local progress, completed = {}, {}
for i = 1, #all, 2 do
  local name, value = all[i], all[i + 1]
  local prefix, key, vertex = split(name)
  if prefix then
    instances[#instances + 1] = {prefix, key, value}
    if not map[vertex] then
      progress[vertex] = true
    end
    if prefix == INST_STATUS then
      statuses[key] = value
      if guarded[vertex] and value == VS_DONE then
        completed[vertex] = true
      end
    end
  elseif string.sub(name, 1, #ENTRY_CARRIES) == ENTRY_CARRIES then
    carried[#carried + 1] = name
  end
end
local function listed(set)
  local out = {}
  for v in pairs(set) do
    out[#out + 1] = v
  end
  return table.concat(out, ' ')
end
if next(progress) or next(completed) then
  return {'incompatible', listed(progress), listed(completed)}
end
-- An attempt running on a live worker of the old version would be run twice: it must end
-- first. So must a first entry that such a worker has read (it runs at once, still queued).
if alive then
  for key, status in pairs(statuses) do
    if status == VS_RUNNING then
      return {'busy', key}
    end
  end
end
if first_entry then
  local entry, v = string.match(first_entry, '^(%S+) (%S+)$')
  local pending = redis.pcall('XPENDING', old_stream, GROUP, entry, entry, 1)
  local read = type(pending) == 'table' and not pending.err and #pending > 0
  if read and alive then
    return {'busy', v}
  end
  redis.call('XDEL', old_stream, entry)
end
-- Nothing is written before this point.
local forget, renamed = {REQ_FIRST_ENTRY}, {}
for _, f in ipairs(instances) do
  local prefix, key, value = f[1], f[2], f[3]
  local new = renumbered(key)
  if new ~= key then
    forget[#forget + 1] = prefix .. key
    renamed[#renamed + 1] = prefix .. new
    renamed[#renamed + 1] = value
  end
end
for _, name in ipairs(carried) do
  forget[#forget + 1] = name
end
for first = 1, #forget, 4000 do
  redis.call('HDEL', req, unpack(forget, first, math.min(first + 3999, #forget)))
end
for first = 1, #renamed, 4000 do
  redis.call('HSET', req, unpack(renamed, first, math.min(first + 3999, #renamed)))
end
local keys = redis.call('LRANGE', parked, 0, -1)
if #keys > 0 then
  redis.call('DEL', parked)
  for i, key in ipairs(keys) do
    keys[i] = renumbered(key)
  end
  redis.call('RPUSH', parked, unpack(keys))
  redis.call('PEXPIRE', parked, redis.call('PTTL', req))
end
-- What is under way goes on on the new graph, or, of an ended request, is settled.
local ended, moved, queued = ENDED[st], {}, 0
local update = {REQ_HASH, to, REQ_UPDATED, now}
for key, status in pairs(statuses) do
  local new = renumbered(key)
  local again = status == VS_QUEUED or status == VS_RUNNING
  if status == VS_RETRYING then
    local member = id .. ' ' .. key .. ' ' .. tp
    local due = redis.call('ZSCORE', delayed, member)
    if due then
      redis.call('ZREM', delayed, member)
      if not ended then
        redis.call('ZADD', delayed, due, id .. ' ' .. new .. ' ' .. tp)
      end
    end
    -- Promoted already: its entry is in a stream, numbered in the old graph.
    again = not due or ended
  end
  if again and ended then
    update[#update + 1] = INST_STATUS .. new
    update[#update + 1] = ON_END[status]
    update[#update + 1] = INST_FINISHED .. new
    update[#update + 1] = now
    redis.call('HDEL', req, INST_EXPOSED .. new)
  elseif again then
    redis.call('HDEL', req, INST_EXPOSED .. new)
    if ON_READY[st] == VS_PARKED then
      park(req, parked, new)
    else
      update[#update + 1] = INST_STATUS .. new
      update[#update + 1] = ON_READY[st]
      redis.call('XADD', stream, '*', READY_REQUEST, id, READY_INSTANCE, new, READY_TRACEPARENT,
        tp, READY_HASH, to)
    end
    queued = queued + 1
    moved[#moved + 1] = new
    moved[#moved + 1] = ON_READY[st]
  end
end
for first = 1, #update, 4000 do
  redis.call('HSET', req, unpack(update, first, math.min(first + 3999, #update)))
end
event(req, false, moved)
return {'ok', st, queued}
