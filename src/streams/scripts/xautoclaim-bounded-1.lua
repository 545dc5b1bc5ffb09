-- xautoclaim-bounded: XAUTOCLAIM of at most COUNT entries and at most a budget of bytes. The
-- entries it would claim are the group's pending ones from START idle at least MIN-IDLE, in
-- order (XPENDING lists the same), so they are measured before any is claimed: an entry that
-- does not fit stays with its consumer. No shebang: it writes (the pending list).
-- KEYS[1]  the stream
-- ARGV[1]  the group
-- ARGV[2]  the consumer that claims
-- ARGV[3]  the minimum idle time in milliseconds
-- ARGV[4]  the start id
-- ARGV[5]  the most entries
-- ARGV[6]  the most bytes the entries may have together (ids, names and values)
-- Returns  the XAUTOCLAIM reply, or the size in bytes of the first entry (an integer) when it
--          alone is over ARGV[6] (nothing claimed)
-- Errors   XAUTOCLAIM's and XPENDING's own (NOGROUP, WRONGTYPE)
local budget = tonumber(ARGV[6])
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], ARGV[4], '+', ARGV[5])
local count = tonumber(ARGV[5])
local total = 0
local fit = 0
for _, item in ipairs(pending) do
  local size = 0
  local entry = redis.call('XRANGE', KEYS[1], item[1], item[1])[1]
  if entry then
    size = #entry[1]
    for _, part in ipairs(entry[2]) do
      size = size + #part
    end
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
if #pending > 0 then
  count = fit
end
return redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', count)
