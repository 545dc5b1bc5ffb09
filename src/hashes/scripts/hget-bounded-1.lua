#!lua flags=no-writes
-- hget-bounded: HGET, unless the value is larger than the answer may carry (then not read).
-- KEYS[1]  the hash
-- ARGV[1]  the field
-- ARGV[2]  the most bytes the value may have (limits.maxResponseBytes)
-- Returns  the value (nil when there is no such field), or its size in bytes (an integer) when
--          it is over ARGV[2]
-- Errors   WRONGTYPE when the key holds another type
local size = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if size > tonumber(ARGV[2]) then
  return size
end
return redis.call('HGET', KEYS[1], ARGV[1])
