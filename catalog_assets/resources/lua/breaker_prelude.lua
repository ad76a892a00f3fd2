-- Shared by the breaker scripts. KEYS: state hash, probe, events. Times in ms of the server's clock.
local now = math.floor(now_us / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local function event(from, to, reason, who, keep, ttl)
  redis.call('LPUSH', KEYS[3], cjson.encode({at = now / 1000, from = from, to = to, reason = reason,
    failures = failures, by = who}))
  redis.call('LTRIM', KEYS[3], 0, tonumber(keep) - 1)
  redis.call('EXPIRE', KEYS[3], ttl)
end
