-- hincr-checked: HINCRBY or HINCRBYFLOAT on one field that refuses, without writing, a result the
-- JSON API cannot carry exactly: an integer beyond +/-(2^53 - 1), or a float that is infinite as
-- a double (Redis computes in long double, and would store values past a double's range).
-- KEYS[1]  the hash
-- ARGV[1]  the field
-- ARGV[2]  the increment, as decimal text
-- ARGV[3]  "int" (HINCRBY) or "float" (HINCRBYFLOAT)
-- Returns  the new value: an integer reply (int) or a bulk string (float)
-- Errors   WRONGTYPE; "ERR hash value is not an integer" / "ERR hash value is not a float" when
--          the field holds something else; "ERR increment or decrement would overflow" /
--          "ERR increment would produce NaN or Infinity" when the result is out of range
local current = redis.call('HGET', KEYS[1], ARGV[1])
local by = tonumber(ARGV[2])

if ARGV[3] == 'int' then
  local value = 0
  if current then
    if not string.match(current, '^%-?%d+$') then
      return redis.error_reply('ERR hash value is not an integer')
    end
    value = tonumber(current)
  end
  local result = value + by
  if result > 9007199254740991 or result < -9007199254740991 then
    return redis.error_reply('ERR increment or decrement would overflow')
  end
  return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
end

local value = 0
if current then
  value = tonumber(current)
  if value == nil then
    return redis.error_reply('ERR hash value is not a float')
  end
end
local result = value + by
if result ~= result or result == math.huge or result == -math.huge then
  return redis.error_reply('ERR increment would produce NaN or Infinity')
end
return redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], ARGV[2])
