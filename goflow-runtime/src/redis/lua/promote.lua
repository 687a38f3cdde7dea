-- Moves retries whose backoff has elapsed from the delayed set back to the ready stream.
-- KEYS: 1 delayed set, 2 ready stream
-- ARGV: 1 now (ms), 2 most to move
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local space = string.find(member, ' ', 1, true)
  redis.call('XADD', KEYS[2], '*', 'r', string.sub(member, 1, space - 1),
    'v', string.sub(member, space + 1), 'tp', '')
  redis.call('ZREM', KEYS[1], member)
end
return #due
