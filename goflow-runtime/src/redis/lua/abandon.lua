-- Lets go of the entry of an attempt that was cancelled because its request ended (stopped,
-- or failed elsewhere): `end_attempt` records the instance cancelled and acknowledges the
-- entry (unless it carries other instances still).
-- KEYS: 1 request hash, 2 the ready stream (which holds the entry)
-- ARGV: 1 group, 2 entry id, 3 request id, 4 instance key, 5 (unused), 6 now
-- Answers what `end_attempt` answers, or `kept` when the request has not ended after all: the
-- entry then stays pending, to be reclaimed after its lease and run again.
-- (after entry.lua and attempt_end.lua: `end_attempt`)
local early = end_attempt(KEYS[1], ARGV[4], ARGV[6])
if early then
  return early
end
return 'kept'
