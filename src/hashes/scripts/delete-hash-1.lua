-- delete-hash: deletes a key only when it holds a hash, the type check and the delete in one
-- atomic step, so DELETE /redis/hashes/{key} never removes a string, list or stream.
-- No shebang on purpose: Redis refuses a script declared with flags as a whole while it is out
-- of memory, and deletes must keep working then (507 for writes only).
-- KEYS[1]  the key
-- Returns  1 when the hash was deleted, 0 when there was no key
-- Errors   WRONGTYPE when the key holds another type
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  return 0
end
if kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
return redis.call('DEL', KEYS[1])
