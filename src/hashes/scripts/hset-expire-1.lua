-- hset-expire: HSET of many fields, then EXPIRE when a TTL is given, as one atomic step: nobody
-- sees the new fields without their expiry. MULTI is not enough: it would still run EXPIRE after
-- HSET failed with WRONGTYPE, changing the TTL of a key the request was refused for. Here the
-- failing HSET ends the script before anything changed.
-- KEYS[1]  the hash
-- ARGV[1]  the TTL in whole seconds, or "0" to leave the key's expiry as it is (a merge)
-- ARGV[2..] field, value, field, value, ...
-- Returns  the number of fields that were new
-- Errors   WRONGTYPE when the key holds another type
local added = 0
-- Pairs per HSET: unpack() pushes every value on Lua's stack, which holds about 8000.
local pairsPerCall = 1000
for first = 2, #ARGV, 2 * pairsPerCall do
  local last = math.min(first + 2 * pairsPerCall - 1, #ARGV)
  added = added + redis.call('HSET', KEYS[1], unpack(ARGV, first, last))
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return added
