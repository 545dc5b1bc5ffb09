#!lua flags=no-writes
-- hgetall-bytes: HGETALL with field names and values as raw bytes, unless the hash is larger
-- than the answer may carry. Not a plain command call: ioredis's hgetallBuffer turns field
-- names into strings (bytes that are not UTF-8 become U+FFFD, silently), and in ioredis 6.0.0
-- callBuffer under auto-pipelining drops the command name. The size is measured with HSCAN in
-- small pages, so measuring a large hash never holds much of it at once. Declared no-writes,
-- so it runs under maxmemory and on a read-only replica. Needs Redis 7.
-- KEYS[1]  the hash
-- ARGV[1]  the most bytes its names and values may have together (limits.maxResponseBytes)
-- Returns  { field, value, field, value, ... }; empty when there is no key; or the hash's size
--          in bytes (an integer), counted up to where it passed ARGV[1], when it is over ARGV[1]
-- Errors   WRONGTYPE when the key holds another type
local budget = tonumber(ARGV[1])
local total = 0
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 16)
  cursor = page[1]
  for _, item in ipairs(page[2]) do
    total = total + #item
  end
  if total > budget then
    return total
  end
until cursor == '0'
return redis.call('HGETALL', KEYS[1])
