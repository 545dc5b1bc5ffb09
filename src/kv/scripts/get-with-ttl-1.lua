#!lua flags=no-writes
-- get-with-ttl: a string value and its TTL, read atomically in one round trip. MULTI would be
-- atomic too, but under maxmemory Redis refuses every command queued in a transaction (reads
-- included) and CLIENT PAUSE WRITE holds transactions back; a script declared no-writes runs in
-- both cases, and on a read-only replica. Needs Redis 7 (script flags).
-- KEYS[1]  the key
-- Returns  { value or nil, TTL in seconds (-1 no expiry, -2 no key) }
-- Errors   WRONGTYPE when the key holds another type
local value = redis.call('GET', KEYS[1])
return { value, redis.call('TTL', KEYS[1]) }
