-- XADD at most once per idempotency key (X-3 in docs/testing.md): a retry of an add whose reply
-- was lost finds the record and gets the id of the entry the first attempt added.
-- KEYS[1] the stream, KEYS[2] the idempotency record (in the stream's hash slot).
-- ARGV[1] how long the record lives (seconds), ARGV[2] the request's fingerprint,
-- ARGV[3..] XADD's arguments after the key.
local seen = redis.call('GET', KEYS[2])
if seen then
  local space = string.find(seen, ' ', 1, true)
  if string.sub(seen, 1, space - 1) ~= ARGV[2] then
    -- The code needs a message after it: Redis 7 files a bare word under the code ERR.
    return redis.error_reply('IDEMPOTENCY_KEY_REUSED the key was used for another request')
  end
  return string.sub(seen, space + 1)
end
local id = redis.call('XADD', KEYS[1], unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[2] .. ' ' .. id, 'EX', ARGV[1])
return id
