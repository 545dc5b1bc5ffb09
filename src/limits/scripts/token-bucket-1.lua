-- token-bucket: one caller's request bucket, shared by every gateway instance (rateLimits.scope
-- global), as the custom increment script of rate-limiter-flexible's RateLimiterRedis. It is a
-- GCRA, the token bucket kept as one number: the theoretical arrival time (TAT) of the caller's
-- next request. The bucket holds `capacity` requests and refills one every INTERVAL_MS (a
-- placeholder the gateway replaces with 1000 / rateLimits.requestsPerSecond when it loads
-- this file). The clock is Redis's, so every instance counts alike.
-- KEYS[1]  the caller's TAT, in milliseconds of Redis's clock
-- ARGV[1]  the requests to count (1)
-- ARGV[2]  the key's lifetime in seconds, as rate-limiter-flexible passes it (unused)
-- ARGV[3]  the capacity (rateLimits.burst)
-- Returns  { requests in the bucket now, milliseconds until it is empty again }, or
--          { capacity + 1, milliseconds until the next request fits } when refused
local interval = tonumber('INTERVAL_MS')
local capacity = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local next = tat + interval * tonumber(ARGV[1])
local limit = interval * capacity
if next - now > limit then
  return { capacity + 1, math.ceil(next - now - limit) }
end
redis.call('SET', KEYS[1], string.format('%.3f', next), 'PX', math.ceil(next - now) + 1)
return { math.ceil((next - now) / interval), math.ceil(next - now) }
