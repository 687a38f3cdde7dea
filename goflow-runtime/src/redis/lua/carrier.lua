-- The field of the request hash naming the instance a stream entry carries once a completion
-- moved it on (see complete.lua): `m:r:<entry id>` for an entry of the ready stream,
-- `m:d:<entry id>` for one of the direct stream, told apart by their keys' endings (`:ready`,
-- `:direct`). Placed in front of the scripts that take KEYS[2] the entry's stream and ARGV[2]
-- its id: start.lua, and attempt_end.lua with the scripts it opens.
local carrier = 'm:' .. (string.sub(KEYS[2], -6) == ':ready' and 'r:' or 'd:') .. ARGV[2]
