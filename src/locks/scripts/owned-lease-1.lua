-- owned-lease: renews or ends a lease, only for the owner that holds it (compare-and-act, never
-- GET-then-SET or GET-then-DEL).
-- KEYS[1]  the lock
-- ARGV[1]  the owner digest
-- ARGV[2]  the new lease in milliseconds, counted from now; absent: end the lease
-- Returns  1 when renewed or ended; 0 when no lock is held; -1 when another owner holds it
--          (left untouched)
local holder = redis.call('GET', KEYS[1])
if not holder then
  return 0
end
if holder ~= ARGV[1] then
  return -1
end
if ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
