-- Placed in front of the scripts that park instances of a paused request: start.lua and
-- control.lua.
-- Parks instance `v` of the request paused in hash `req`: its status, and its key on the
-- parked list `parked` (which lives as long as the request).
local function park(req, parked, v)
  redis.call('HSET', req, INST_STATUS .. v, VS_PARKED)
  redis.call('RPUSH', parked, v)
  redis.call('PEXPIRE', parked, redis.call('PTTL', req))
end
