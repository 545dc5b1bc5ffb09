-- lock-quota: the locks one subject holds, so that quotas.locksPerSubject holds across every
-- gateway instance. A sorted set of lock names scored by when each lease ends (Redis's own
-- clock); ended leases drop out of the count by themselves. It is the subject's own key (its
-- own hash slot), not the lock's: one subject's locks live in many slots.
-- KEYS[1]  the subject's held locks
-- ARGV[1]  'take' (count a lock about to be acquired), 'hold' (set when its lease ends) or
--          'drop' (released, or not acquired after all)
-- ARGV[2]  the lock name
-- ARGV[3]  take, hold: milliseconds from now until the lease ends
-- ARGV[4]  take: the quota
-- Returns  take: {1} counted now, {2} counted already (the subject holds it, left as it is),
--          or {0, milliseconds until the subject's first lease ends} over the quota;
--          hold, drop: {1}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] == 'drop' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return { 1 }
end
if ARGV[1] == 'take' then
  if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    return { 2 }
  end
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return { 0, tonumber(first[2]) - now }
  end
end
local ends = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], ends, ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1000)
return { 1 }
