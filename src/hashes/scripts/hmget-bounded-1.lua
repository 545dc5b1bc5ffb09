#!lua flags=no-writes
-- hmget-bounded: HMGET, unless the values together are larger than the answer may carry.
-- KEYS[1]  the hash
-- ARGV[1]  the most bytes the values may have together (limits.maxResponseBytes)
-- ARGV[2..] the fields (each at most once)
-- Returns  the HMGET reply, or the values' total size in bytes (an integer) when it is over ARGV[1]
-- Errors   WRONGTYPE when the key holds another type
local total = 0
for index = 2, #ARGV do
  total = total + redis.call('HSTRLEN', KEYS[1], ARGV[index])
end
if total > tonumber(ARGV[1]) then
  return total
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
