-- A page of a workflow's requests, newest first (by creation time, then id, descending), from
-- the listing indexes (index.lua), after forgetting those whose hashes have expired.
-- KEYS: 1 the ended index `T:ended`, 2.. the indexes of the statuses listed
-- ARGV: 1 now (ms), 2 retention (ms), 3 ttl while unfinished (ms), 4 created since (ms,
--       included), 5 created until (ms, excluded), 6 how many to answer at most, 7 the
--       cursor's creation time (ms) or empty for the first page, 8 the cursor's request id
-- Answers, per request: id, status, created (ms), ended (ms, or empty), failure (JSON, or
-- empty).
-- (after index.lua)
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #KEY_ENDED)
local now = tonumber(ARGV[1])
forget_expired(tag, now, tonumber(ARGV[2]), tonumber(ARGV[3]))
local since, before, most = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max = '(' .. ARGV[5]
local at, after = tonumber(ARGV[7]), ARGV[8]
if at and at < before then
  max = '(' .. ARGV[7]
end
local found = {}
for i = 2, #KEYS do
  if at and at < before and at >= since then
    -- Those created in the cursor's millisecond that come after it: a smaller id.
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], at, at)) do
      if id < after then
        found[#found + 1] = {at, id}
      end
    end
  end
  local got = redis.call('ZREVRANGEBYSCORE', KEYS[i], max, since, 'WITHSCORES', 'LIMIT', 0, most)
  for j = 1, #got, 2 do
    found[#found + 1] = {tonumber(got[j + 1]), got[j]}
  end
end
table.sort(found, function(a, b)
  if a[1] ~= b[1] then
    return a[1] > b[1]
  end
  return a[2] > b[2]
end)
local out = {}
local answered = 0
for _, row in ipairs(found) do
  if answered == most then
    break
  end
  local id = row[2]
  local got = redis.call('HMGET', tag .. KEY_REQUEST .. id, REQ_STATUS, REQ_CREATED, REQ_FINISHED,
    REQ_FAILURE, REQ_HASH)
  if got[1] then
    answered = answered + 1
    out[#out + 1] = id
    out[#out + 1] = got[1]
    out[#out + 1] = got[2] or tostring(row[1])
    out[#out + 1] = got[3] or ''
    out[#out + 1] = got[4] or ''
    out[#out + 1] = got[5] or ''
  end
end
return out
