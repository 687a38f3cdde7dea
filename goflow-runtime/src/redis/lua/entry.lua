-- The stream entry a script is about, and the instances it carries. Placed in front of the
-- scripts that take KEYS 1 the request hash, 2 the entry's stream and ARGV 1 the group, 2 the
-- entry id: start.lua, and attempt_end.lua with the scripts it opens.
--
-- Carrying: a completion hands the instances it makes ready to its own worker on its own entry
-- (see complete.lua), instead of acknowledging it. The entry then stays pending, and the
-- request hash's field ENTRY_CARRIES .. <entry id> names the instances it carries, their keys
-- separated by spaces. A worker that reclaims the entry after a crash learns them from the
-- start script and runs them all. Each instance lets go of the entry when its attempt ends
-- (`release`); the last one acknowledges it and removes the field (at the request's end, the
-- field expires with the request instead).
local carrier = ENTRY_CARRIES .. ARGV[2]
-- Acknowledges the entry and deletes it from its stream.
local function ack()
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
-- The instances the field's value `carries` (maybe nil) names, less `v`, and whether it names
-- `v`.
local function carried_besides(carries, v)
  local others, named = {}, false
  if carries then
    for s in string.gmatch(carries, '%S+') do
      if s == v then
        named = true
      else
        others[#others + 1] = s
      end
    end
  end
  return others, named
end
-- Settles, by the lifecycle's ON_END, what the entry held of a request that has ended (at
-- `at`, ms): instance `v` (status `vs`) and the instances `others` it carries besides. An
-- instance that was queued, retrying or running there will not go on: it is cancelled, so that
-- a retry of the request knows to queue it again (nothing else holds it once the entry is
-- acknowledged).
local function end_held(v, vs, others, at)
  local held, statuses = {v}, {vs or false}
  if #others > 0 then
    local names = {}
    for i, s in ipairs(others) do
      held[i + 1] = s
      names[i] = INST_STATUS .. s
    end
    for i, status in ipairs(redis.call('HMGET', KEYS[1], unpack(names))) do
      statuses[i + 1] = status
    end
  end
  local update = {}
  for i, s in ipairs(held) do
    local status = statuses[i]
    if status and ON_END[status] ~= status then
      update[#update + 1] = INST_STATUS .. s
      update[#update + 1] = ON_END[status]
      update[#update + 1] = INST_FINISHED .. s
      update[#update + 1] = at
    end
  end
  if #update > 0 then
    redis.call('HSET', KEYS[1], unpack(update))
  end
end
-- Lets go of the entry for an instance that is done with it: acknowledges it unless it still
-- carries `others`, which the field then names.
local function release(carries, others)
  if #others > 0 then
    redis.call('HSET', KEYS[1], carrier, table.concat(others, ' '))
  else
    ack()
    if carries then
      redis.call('HDEL', KEYS[1], carrier)
    end
  end
end
