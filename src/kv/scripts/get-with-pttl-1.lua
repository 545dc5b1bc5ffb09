#!lua flags=no-writes
-- get-with-pttl: a string value and its PTTL, read atomically in one round trip, unless the value
-- is larger than the answer may carry. MULTI would be atomic too, but under maxmemory Redis
-- refuses every command queued in a transaction (reads included) and CLIENT PAUSE WRITE holds
-- transactions back; a script declared no-writes runs in both cases, and on a read-only
-- replica. Needs Redis 7 (script flags). Milliseconds, so the near-cache can end an entry at
-- its key's own expiry; the caller rounds to TTL's seconds as TTL does ((ms + 500) / 1000).
-- KEYS[1]  the key
-- ARGV[1]  the most bytes the value may have (limits.maxResponseBytes)
-- Returns  { value or nil, PTTL in milliseconds (-1 no expiry, -2 no key) }, or
--          { nil, PTTL, size in bytes } when the value is larger than ARGV[1] (not read)
-- Errors   WRONGTYPE when the key holds another type
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[1]) then
  return { false, redis.call('PTTL', KEYS[1]), size }
end
local value = redis.call('GET', KEYS[1])
return { value, redis.call('PTTL', KEYS[1]) }
