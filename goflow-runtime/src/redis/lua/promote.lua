-- Moves retries whose backoff has elapsed from the delayed set back to the ready stream.
-- KEYS: 1 delayed set, 2 ready stream
-- ARGV: 1 now (ms), 2 most to move
-- Answers how many it moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
-- Members are `request instance traceparent` (the traceparent may be empty).
for _, member in ipairs(due) do
  local r, v, tp = string.match(member, '^(%S+) (%S+) ?(%S*)$')
  redis.call('XADD', KEYS[2], '*', READY_REQUEST, r, READY_INSTANCE, v, READY_TRACEPARENT, tp)
  redis.call('ZREM', KEYS[1], member)
end
return #due
