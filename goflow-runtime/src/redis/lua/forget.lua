-- Forgets, from a workflow's listing indexes, the requests whose hashes have expired (see
-- index.lua); run by every worker's housekeeping, so that the indexes stay bounded by the
-- requests kept even when nobody lists them.
-- KEYS: 1 the ended index `T:ended`
-- ARGV: 1 now (ms), 2 retention (ms), 3 ttl while unfinished (ms)
-- Answers how many ended requests it forgot.
-- (after index.lua)
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #KEY_ENDED)
return forget_expired(tag, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
