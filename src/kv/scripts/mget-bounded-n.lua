#!lua flags=no-writes
-- mget-bounded: MGET, unless the values together are larger than the answer may carry: then
-- nothing is read, and a caller naming many large keys makes neither Redis nor the gateway
-- build a reply of gigabytes. A key of another type counts 0 (MGET answers nil for it).
-- KEYS     the keys (one hash slot in cluster mode)
-- ARGV[1]  the most bytes the values may have together (-1: only measure them)
-- ARGV[2]  'pttl' to have each key's PTTL too, read in the same step (for the near-cache)
-- Returns  the MGET reply (with 'pttl': followed by the PTTLs, in the same order), or the
--          values' total size in bytes (an integer) when it is over ARGV[1]
local budget = tonumber(ARGV[1])
local total = 0
for index = 1, #KEYS do
  local size = redis.pcall('STRLEN', KEYS[index])
  if type(size) == 'number' then
    total = total + size
  end
end
if total > budget then
  return total
end
local values = redis.call('MGET', unpack(KEYS))
if ARGV[2] == 'pttl' then
  for index = 1, #KEYS do
    values[#KEYS + index] = redis.call('PTTL', KEYS[index])
  end
end
return values
