-- The opening of the scripts that apply an action by the lifecycle's control table
-- (control.lua, retry.lua): CONTROL[action][status] is the status the action moves a request
-- to; no entry is a conflict.
--
-- `by_table(req, action, ...)` reads request hash `req`'s status and the fields named after
-- it. Answers the status `action` moves the request to and the fields read (the status first),
-- or nil and the script's reply: {'missing', ''} (no such request), {'conflict', status}, or an
-- error for an unknown action.
local function by_table(req, action, ...)
  local moves = CONTROL[action]
  if not moves then
    return nil, redis.error_reply('unknown action ' .. action)
  end
  local got = redis.call('HMGET', req, REQ_STATUS, ...)
  if not got[1] then
    return nil, {'missing', ''}
  end
  local to = moves[got[1]]
  if not to then
    return nil, {'conflict', got[1]}
  end
  return to, got
end
