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
