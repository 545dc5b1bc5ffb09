-- incr-checked: INCRBY / INCRBYFLOAT on a key, or HINCRBY / HINCRBYFLOAT on one field of a hash,
-- that refuses, without writing, a result the JSON API cannot carry exactly: an integer beyond
-- +/-(2^53 - 1), or a float that is infinite as a double (Redis computes in long double, and
-- would store values past a double's range).
-- KEYS[1]  the counter, or the hash
-- ARGV[1]  the increment, as decimal text
-- ARGV[2]  "int" (INCRBY, HINCRBY) or "float" (INCRBYFLOAT, HINCRBYFLOAT)
-- ARGV[3]  the field, for a hash; absent for a plain key
-- Returns  the new value: an integer reply (int) or a bulk string (float)
-- Errors   WRONGTYPE; "ERR value is not an integer or out of range" / "ERR value is not a valid
--          float" when the stored value is not a number; "ERR increment or decrement would
--          overflow" / "ERR increment would produce NaN or Infinity" when out of range
local field = ARGV[3]
local current
if field then
  current = redis.call('HGET', KEYS[1], field)
else
  current = redis.call('GET', KEYS[1])
end
local by = tonumber(ARGV[1])

if ARGV[2] == 'int' then
  local value = 0
  if current then
    if not string.match(current, '^%-?%d+$') then
      return redis.error_reply('ERR value is not an integer or out of range')
    end
    value = tonumber(current)
  end
  local result = value + by
  if result > 9007199254740991 or result < -9007199254740991 then
    return redis.error_reply('ERR increment or decrement would overflow')
  end
  if field then
    return redis.call('HINCRBY', KEYS[1], field, ARGV[1])
  end
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end

local value = 0
if current then
  value = tonumber(current)
  if value == nil then
    return redis.error_reply('ERR value is not a valid float')
  end
end
local result = value + by
if result ~= result or result == math.huge or result == -math.huge then
  return redis.error_reply('ERR increment would produce NaN or Infinity')
end
if field then
  return redis.call('HINCRBYFLOAT', KEYS[1], field, ARGV[1])
end
return redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
