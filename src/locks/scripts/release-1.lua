-- release: ends a lease, only for the owner that holds it (compare-and-delete, never GET-then-DEL).
-- KEYS[1]  the lock
-- ARGV[1]  the owner digest
-- Returns  1 when released; 0 when no lock is held; -1 when another owner holds it (untouched)
local holder = redis.call('GET', KEYS[1])
if not holder then
  return 0
end
if holder ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
return 1
