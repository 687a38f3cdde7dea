-- A workflow's listing indexes, kept by every script that changes a request's status, in the
-- same step (see PROTOCOL.md, "Listing"): `T:by:<status>` holds the ids of the requests in
-- that status, scored by when each was created (ms); `T:ended` the ended ones, scored by when
-- they ended, so that they leave the indexes as their hashes expire. Placed in front of the
-- scripts that change a request's status, and of the listing scripts.

-- The hash tag `T` and the id of request hash `req` (`T:req:<id>`).
local function request_of(req)
  return string.match(req, '^(.*)' .. KEY_REQUEST .. '([%w_%-]+)$')
end

-- Forgets, from the indexes of the workflow with hash tag `tag`, at most `most` requests that
-- ended at or before `ended_by` (ms): their hashes have expired. Answers how many it forgot.
local function forget_ended(tag, ended_by, most)
  local ended = tag .. KEY_ENDED
  local gone = redis.call('ZRANGEBYSCORE', ended, '-inf', ended_by, 'LIMIT', 0, most)
  if #gone > 0 then
    for status in pairs(ENDED) do
      redis.call('ZREM', tag .. KEY_BY_STATUS .. status, unpack(gone))
    end
    redis.call('ZREM', ended, unpack(gone))
  end
  return #gone
end

-- Forgets the requests under way created at or before `created_by` (ms): their hashes
-- expired unfinished (`unfinished_ttl` after they were created).
local function forget_unfinished(tag, created_by)
  for _, status in ipairs(REQUEST_STATUSES) do
    if not ENDED[status] then
      redis.call('ZREMRANGEBYSCORE', tag .. KEY_BY_STATUS .. status, '-inf', created_by)
    end
  end
end

-- Moves request hash `req` from the index of status `from` (nil for a new request) to that of
-- status `to`, at `now` (ms). A request that ends enters `T:ended`, and makes room: it forgets
-- up to a few requests that ended more than `retention` (ms) ago, more than it adds.
local function reindex(req, from, to, now, retention)
  if from == to then
    return
  end
  local tag, id = request_of(req)
  local created = from and redis.call('ZSCORE', tag .. KEY_BY_STATUS .. from, id)
  if created then
    redis.call('ZREM', tag .. KEY_BY_STATUS .. from, id)
  else
    -- A new request, or one that was not indexed (submitted before the indexes existed).
    created = redis.call('HGET', req, REQ_CREATED) or now
  end
  redis.call('ZADD', tag .. KEY_BY_STATUS .. to, created, id)
  if ENDED[to] then
    redis.call('ZADD', tag .. KEY_ENDED, now, id)
    forget_ended(tag, now - retention, 8)
  elseif ENDED[from] then
    redis.call('ZREM', tag .. KEY_ENDED, id)
  end
end
