-- Runs `one` (the script placed above as the body of `local function one(KEYS, ARGV)`) once
-- per item of a batch, in order, each exactly as if it had been a call of its own on that
-- item's keys and arguments. A worker starts the entries of one read this way: one call for
-- all of them.
-- KEYS: K per item, in batch order.
-- ARGV: 1 K, then per item its number of arguments N and its N arguments.
-- Answers one reply per item, in batch order.
local per = tonumber(ARGV[1])
local replies = {}
local a = 2
for n = 0, #KEYS / per - 1 do
  local count = tonumber(ARGV[a])
  local keys, args = {}, {}
  for j = 1, per do
    keys[j] = KEYS[per * n + j]
  end
  for j = 1, count do
    args[j] = ARGV[a + j]
  end
  replies[n + 1] = one(keys, args)
  a = a + count + 1
end
return replies
