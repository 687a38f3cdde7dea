-- A workflow's events stream (`T:events`, see PROTOCOL.md, "Events"): one entry per step that
-- moved a request or its vertices, appended by the script that makes the step, in the same
-- step, and capped at about EVENTS_MAXLEN entries. Placed after index.lua (`request_of`), in
-- front of the scripts that move requests or vertices.

-- Appends the step of request hash `req`: the request's new status `status` (false when the
-- step did not change it), and `moved`, the instances it moved as a list {key, status, key,
-- status, ...}. Nothing when the step moved nothing.
local function event(req, status, moved)
  if not status and #moved == 0 then
    return
  end
  local tag, id = request_of(req)
  local fields = {EVENT_REQUEST, id}
  if status then
    fields[#fields + 1] = EVENT_STATUS
    fields[#fields + 1] = status
  end
  if #moved > 0 then
    fields[#fields + 1] = EVENT_VERTICES
    fields[#fields + 1] = table.concat(moved, ' ')
  end
  redis.call('XADD', tag .. KEY_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', unpack(fields))
end
