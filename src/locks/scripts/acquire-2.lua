-- acquire: takes a lock for its owner and issues the lock's next fencing token, atomically.
-- KEYS[1]  the lock: a string holding the owner digest, with the lease as its PX expiry
-- KEYS[2]  the lock's fencing counter (same hash slot: both keys share the tag {lock:<name>})
-- ARGV[1]  the owner digest (never the caller's token itself)
-- ARGV[2]  the lease in milliseconds
-- ARGV[3]  the value a missing counter starts from: milliseconds since the epoch * 1000, so a
--          Redis that restarted empty still issues larger tokens than before
-- ARGV[4]  the counter's own expiry in milliseconds (far longer than any lease; refreshed here)
-- Returns  {1, fencing token} when granted, also again to the same owner (Redlock retries on
--          every node, and a node may have granted an earlier attempt: it keeps its token and
--          renews the lease); {0, milliseconds left on the holder's lease} when another owner
--          holds the lock
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1])}
end
local token = holder and tonumber(redis.call('GET', KEYS[2]))
if not token then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('SET', KEYS[2], ARGV[3])
  end
  token = redis.call('INCR', KEYS[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, token}
