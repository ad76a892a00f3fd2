-- Shared by the limiter scripts. KEYS: tat, pause, limit, adapt (hash: factor, changed_at, window_resume),
-- events. The adapt hash holds the shared rate factor (a fraction of the limit, 1 when absent).
local factor = tonumber(redis.call('HGET', KEYS[4], 'factor') or '') or 1
local function rate_change(change, to, paused_us, reason, who, keep, ttl)
  redis.call('LPUSH', KEYS[5], cjson.encode({at = now_us / 1000000, change = change, from = factor, to = to,
    paused_s = paused_us / 1000000, reason = reason, by = who}))
  redis.call('LTRIM', KEYS[5], 0, tonumber(keep) - 1)
  redis.call('EXPIRE', KEYS[5], ttl)
  factor = to
  redis.call('HSET', KEYS[4], 'factor', string.format('%.6f', to), 'changed_at', string.format('%.0f', now_us))
  redis.call('EXPIRE', KEYS[4], ttl)
end
