#!lua flags=no-writes
-- xrange-bounded: XRANGE (or XREVRANGE) of at most COUNT entries and at most a budget of bytes,
-- read in small pages so neither Redis nor the gateway builds a larger reply.
-- KEYS[1]  the stream
-- ARGV[1]  the start bound as XRANGE takes it (-, an id, or ( and an id)
-- ARGV[2]  the end bound
-- ARGV[3]  the most entries
-- ARGV[4]  '1' for XREVRANGE (from the end bound backwards)
-- ARGV[5]  the most bytes the entries may have together (ids, names and values)
-- ARGV[6]  '1' to return the first entry even when it alone is over the budget
-- Returns  { 1 when the key exists else 0, 1 when entries were left out for the budget else 0,
--            { entry, ... } } with entries as XRANGE returns them
-- Errors   WRONGTYPE when the key holds another type
local left = tonumber(ARGV[3])
local budget = tonumber(ARGV[5])
local reverse = ARGV[4] == '1'
local low, high = ARGV[1], ARGV[2]
local entries = {}
local total = 0
local page = 16
while left > 0 do
  local got
  if reverse then
    got = redis.call('XREVRANGE', KEYS[1], high, low, 'COUNT', math.min(page, left))
  else
    got = redis.call('XRANGE', KEYS[1], low, high, 'COUNT', math.min(page, left))
  end
  for _, entry in ipairs(got) do
    local size = #entry[1]
    for _, part in ipairs(entry[2]) do
      size = size + #part
    end
    if total + size > budget and not (#entries == 0 and ARGV[6] == '1') then
      return { redis.call('EXISTS', KEYS[1]), 1, entries }
    end
    total = total + size
    entries[#entries + 1] = entry
  end
  left = left - #got
  if #got < page or left <= 0 then
    break
  end
  if reverse then
    high = '(' .. got[#got][1]
  else
    low = '(' .. got[#got][1]
  end
end
return { redis.call('EXISTS', KEYS[1]), 0, entries }
