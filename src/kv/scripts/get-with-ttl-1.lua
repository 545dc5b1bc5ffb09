#!lua flags=no-writes
-- get-with-ttl: a string value and its TTL, read atomically in one round trip, unless the value
-- is larger than the answer may carry. MULTI would be atomic too, but under maxmemory Redis
-- refuses every command queued in a transaction (reads included) and CLIENT PAUSE WRITE holds
-- transactions back; a script declared no-writes runs in both cases, and on a read-only
-- replica. Needs Redis 7 (script flags).
-- KEYS[1]  the key
-- ARGV[1]  the most bytes the value may have (limits.maxResponseBytes)
-- Returns  { value or nil, TTL in seconds (-1 no expiry, -2 no key) }, or
--          { nil, TTL, size in bytes } when the value is larger than ARGV[1] (not read)
-- Errors   WRONGTYPE when the key holds another type
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[1]) then
  return { false, redis.call('TTL', KEYS[1]), size }
end
local value = redis.call('GET', KEYS[1])
return { value, redis.call('TTL', KEYS[1]) }
