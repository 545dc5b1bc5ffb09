-- group-bounded: a consumer group's XREADGROUP ... > (without blocking) or XAUTOCLAIM, of at
-- most COUNT entries and at most a budget of bytes. The entries it would take are measured
-- before any is taken: for a read, the ones after the group's last-delivered-id (XRANGE); for a
-- claim, the group's pending ones from START idle at least MIN-IDLE (XPENDING lists them in
-- the order XAUTOCLAIM takes them). An entry that does not fit stays where it is: undelivered,
-- or with its consumer. No shebang: it writes (the pending list), and an old-style script keeps
-- the commands' own rules.
-- KEYS[1]  the stream
-- ARGV[1]  'read' or 'claim'
-- ARGV[2]  the group
-- ARGV[3]  the consumer that reads or claims
-- ARGV[4]  the most entries
-- ARGV[5]  the most bytes the entries may have together (ids, names and values)
-- ARGV[6]  read: '1' for NOACK; claim: the minimum idle time in milliseconds
-- ARGV[7]  claim: the start id
-- Returns  the XREADGROUP or XAUTOCLAIM reply, or the size in bytes of the first entry (an
--          integer) when it alone is over ARGV[5] (nothing taken)
-- Errors   the commands' own (NOGROUP, WRONGTYPE)
local stream, mode, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local count = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])

local function size(entry)
  if not entry then
    return 0
  end
  local bytes = #entry[1]
  for _, part in ipairs(entry[2]) do
    bytes = bytes + #part
  end
  return bytes
end

-- How many of the leading entries fit the budget; { 0, size } when the first alone does not.
local function fitting(entries)
  local total, fit = 0, 0
  for _, entry in ipairs(entries) do
    local bytes = size(entry)
    if total + bytes > budget then
      break
    end
    total, fit = total + bytes, fit + 1
  end
  if fit == 0 and #entries > 0 then
    return 0, size(entries[1])
  end
  return #entries > 0 and fit or count, nil
end

if mode == 'claim' then
  local pending = redis.call('XPENDING', stream, group, 'IDLE', ARGV[6], ARGV[7], '+', count)
  local entries = {}
  for index, item in ipairs(pending) do
    -- A deleted entry takes no bytes: XAUTOCLAIM reports it as deleted.
    entries[index] = redis.call('XRANGE', stream, item[1], item[1])[1] or { '', {} }
  end
  local fit, over = fitting(entries)
  if over then
    return over
  end
  return redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[6], ARGV[7], 'COUNT', fit)
end

local groups = redis.pcall('XINFO', 'GROUPS', stream)
if type(groups) == 'table' and groups.err == nil then
  for _, info in ipairs(groups) do
    local fields = {}
    for index = 1, #info, 2 do
      fields[info[index]] = info[index + 1]
    end
    if fields['name'] == group then
      local after = '(' .. fields['last-delivered-id']
      local fit, over = fitting(redis.call('XRANGE', stream, after, '+', 'COUNT', count))
      if over then
        return over
      end
      count = fit
      break
    end
  end
end
if ARGV[6] == '1' then
  return redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'NOACK', 'STREAMS', stream, '>')
end
return redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>')
