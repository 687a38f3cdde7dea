-- How many requests of a workflow are in each status, from the listing indexes (index.lua),
-- after forgetting those whose hashes have expired.
-- KEYS: 1 the ended index `T:ended`, 2.. the index of each status, in REQUEST_STATUSES order
-- ARGV: 1 now (ms), 2 retention (ms), 3 ttl while unfinished (ms), 4 only those created from
--       then (ms; empty: every one kept)
-- Answers the count of each status, in the order of KEYS.
-- (after index.lua)
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #KEY_ENDED)
local now = tonumber(ARGV[1])
forget_expired(tag, now, tonumber(ARGV[2]), tonumber(ARGV[3]))
local out = {}
for i = 2, #KEYS do
  if ARGV[4] == '' then
    out[#out + 1] = redis.call('ZCARD', KEYS[i])
  else
    out[#out + 1] = redis.call('ZCOUNT', KEYS[i], ARGV[4], '+inf')
  end
end
return out
