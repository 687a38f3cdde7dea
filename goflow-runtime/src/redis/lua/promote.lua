-- Moves retries whose backoff has elapsed from the delayed set back to the ready stream, each
-- entry tagged with the version its request is on (its instance key is numbered in that
-- version's graph; the start script moves it to that version's stream).
-- KEYS: 1 delayed set, 2 ready stream
-- ARGV: 1 now (ms), 2 most to move
-- Answers how many it moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
-- Members are `request instance traceparent` (the traceparent may be empty).
for _, member in ipairs(due) do
  local r, v, tp = string.match(member, '^(%S+) (%S+) ?(%S*)$')
  -- The request's hash is in the same slot: its key shares the delayed set's hash tag.
  local h = redis.call('HGET', string.match(KEYS[1], '^%b{}') .. KEY_REQUEST .. r, REQ_HASH)
  redis.call('XADD', KEYS[2], '*', READY_REQUEST, r, READY_INSTANCE, v, READY_TRACEPARENT, tp,
    READY_HASH, h or '')
  redis.call('ZREM', KEYS[1], member)
end
return #due
