-- xreadgroup-bounded: XREADGROUP ... STREAMS key > without blocking, of at most COUNT entries
-- and at most a budget of bytes. The entries the group would deliver next are the ones after
-- its last-delivered-id, so they are measured (XRANGE) before any is delivered: an entry that
-- does not fit stays undelivered, never pending unseen. No shebang: it writes (the pending
-- list), and an old-style script keeps XREADGROUP's own rules.
-- KEYS[1]  the stream
-- ARGV[1]  the group
-- ARGV[2]  the consumer
-- ARGV[3]  the most entries
-- ARGV[4]  '1' for NOACK
-- ARGV[5]  the most bytes the entries may have together (ids, names and values)
-- Returns  the XREADGROUP reply, or the size in bytes of the next entry (an integer) when it
--          alone is over ARGV[5] (nothing delivered)
-- Errors   XREADGROUP's own (NOGROUP, WRONGTYPE)
local count = tonumber(ARGV[3])
local budget = tonumber(ARGV[5])
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) == 'table' and groups.err == nil then
  for _, group in ipairs(groups) do
    local fields = {}
    for index = 1, #group, 2 do
      fields[group[index]] = group[index + 1]
    end
    if fields['name'] == ARGV[1] then
      local next = redis.call('XRANGE', KEYS[1], '(' .. fields['last-delivered-id'], '+', 'COUNT', count)
      local total = 0
      local fit = 0
      for _, entry in ipairs(next) do
        local size = #entry[1]
        for _, part in ipairs(entry[2]) do
          size = size + #part
        end
        if total + size > budget then
          if fit == 0 then
            return size
          end
          break
        end
        total = total + size
        fit = fit + 1
      end
      if #next > 0 then
        count = fit
      end
      break
    end
  end
end
if ARGV[4] == '1' then
  return redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count, 'NOACK', 'STREAMS', KEYS[1], '>')
end
return redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count, 'STREAMS', KEYS[1], '>')
