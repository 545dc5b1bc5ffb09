-- extend: renews a lease, only for the owner that holds it (compare-and-expire, never GET-then-SET).
-- KEYS[1]  the lock
-- ARGV[1]  the owner digest
-- ARGV[2]  the new lease in milliseconds, counted from now
-- Returns  1 when renewed; 0 when no lock is held; -1 when another owner holds it (untouched)
local holder = redis.call('GET', KEYS[1])
if not holder then
  return 0
end
if holder ~= ARGV[1] then
  return -1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
