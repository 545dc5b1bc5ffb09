#!lua flags=no-writes
-- hgetall-bytes: HGETALL with field names and values as raw bytes. Not a plain command call:
-- ioredis's hgetallBuffer turns field names into strings (bytes that are not UTF-8 become
-- U+FFFD, silently), and in ioredis 6.0.0 callBuffer under auto-pipelining drops the command
-- name. Declared no-writes, so it runs under maxmemory and on a read-only replica. Needs Redis 7.
-- KEYS[1]  the hash
-- Returns  { field, value, field, value, ... }; empty when there is no key
-- Errors   WRONGTYPE when the key holds another type
return redis.call('HGETALL', KEYS[1])
