-- How many requests under way (queued, running or paused) each version of a workflow's graph
-- has, from the listing indexes of those statuses: one HGET of the request's version (`h`)
-- per request under way, bounded by them (those whose hashes have expired are skipped; the
-- listing's housekeeping forgets them). Nothing is written.
-- KEYS: the index of each status under way
-- Answers a flat list {version, count, version, count, ...}.
-- (after index.lua)
local counts, order = {}, {}
for _, index in ipairs(KEYS) do
  local tag = string.match(index, '^(.*)' .. KEY_BY_STATUS)
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local version = redis.call('HGET', tag .. KEY_REQUEST .. id, REQ_HASH)
    if version then
      if not counts[version] then
        counts[version] = 0
        order[#order + 1] = version
      end
      counts[version] = counts[version] + 1
    end
  end
end
local out = {}
for _, version in ipairs(order) do
  out[#out + 1] = version
  out[#out + 1] = counts[version]
end
return out
