-- A workflow's listing indexes, kept by every script that changes a request's status, in the
-- same step (see PROTOCOL.md, "Listing"): `T:by:<status>` holds the ids of the requests in
-- that status, scored by when each was created (ms); `T:ended` the ended ones, scored by when
-- they ended, so that they leave the indexes as their hashes expire. Placed in front of the
-- scripts that change a request's status, and of the listing scripts.

-- The hash tag `T` and the id of request hash `req` (`T:req:<id>`): split at the last
-- KEY_REQUEST (a prefix may hold one too; an id never does). Plain searches, not a pattern:
-- one ending in `$` after `(.*)` backtracks over the whole key, which cost more than a
-- command (2.3 µs against HMGET's 2.0, in a loop inside one script on Redis 7.0).
local function request_of(req)
  local at = string.find(req, KEY_REQUEST, 1, true)
  while true do
    local later = string.find(req, KEY_REQUEST, at + 1, true)
    if not later then
      break
    end
    at = later
  end
  return string.sub(req, 1, at - 1), string.sub(req, at + #KEY_REQUEST)
end

-- Moves request hash `req`, created at `created` (ms; nil if not known here), from the index of
-- status `from` (nil for a new request) to that of status `to`; a request that ends enters
-- `T:ended` at `now` (ms). Three commands at most: the hot paths pay nothing else (the
-- forgetting is the listing scripts' and the workers' housekeeping's, `forget_expired`).
local function reindex(req, from, to, created, now)
  if from == to then
    return
  end
  local tag, id = request_of(req)
  if from then
    redis.call('ZREM', tag .. KEY_BY_STATUS .. from, id)
  end
  -- A request submitted before the indexes existed has its creation time in its hash.
  created = created or redis.call('HGET', req, REQ_CREATED) or now
  redis.call('ZADD', tag .. KEY_BY_STATUS .. to, created, id)
  if ENDED[to] then
    redis.call('ZADD', tag .. KEY_ENDED, now, id)
  elseif from and ENDED[from] then
    redis.call('ZREM', tag .. KEY_ENDED, id)
  end
end

-- Forgets, from the indexes of the workflow with hash tag `tag`, the requests whose hashes
-- have expired by `now` (ms): those that ended more than `retention` (ms) ago, and those under
-- way created more than `unfinished_ttl` (ms) ago. Answers how many ended ones it forgot.
local function forget_expired(tag, now, retention, unfinished_ttl)
  local ended = tag .. KEY_ENDED
  local forgot = 0
  while true do
    local gone = redis.call('ZRANGEBYSCORE', ended, '-inf', now - retention, 'LIMIT', 0, 1000)
    if #gone == 0 then
      break
    end
    for status in pairs(ENDED) do
      redis.call('ZREM', tag .. KEY_BY_STATUS .. status, unpack(gone))
    end
    redis.call('ZREM', ended, unpack(gone))
    forgot = forgot + #gone
  end
  for _, status in ipairs(REQUEST_STATUSES) do
    if not ENDED[status] then
      redis.call('ZREMRANGEBYSCORE', tag .. KEY_BY_STATUS .. status, '-inf', now - unfinished_ttl)
    end
  end
  return forgot
end
