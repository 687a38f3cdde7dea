-- Removes a consumer from a consumer group, unless it holds pending entries: XGROUP
-- DELCONSUMER drops a consumer's pending entries from the group, and a dropped entry is never
-- delivered again (the group's last delivered id is past it). Checked and removed in one step,
-- so that entries the consumer reads meanwhile (a worker that was only slow) stay.
-- KEYS: 1 the stream
-- ARGV: 1 group, 2 consumer
-- Answers 1 if it removed the consumer (or there was none), 0 if the consumer holds pending
-- entries.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
