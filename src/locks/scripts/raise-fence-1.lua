-- raise-fence: lifts a lock's fencing counter to at least a token issued on other nodes, so the
-- next grant on any majority of nodes issues a larger one (several locks.nodes only).
-- KEYS[1]  the fencing counter
-- ARGV[1]  the fencing token just issued
-- ARGV[2]  the counter's expiry in milliseconds
-- Returns  the counter afterwards
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if current >= token then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return token
