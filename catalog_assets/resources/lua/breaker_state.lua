-- KEYS: state hash. Returns {state, failures, reason, opened_at_ms, open_until_ms, now_ms}.
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'reason', 'opened_at', 'open_until')
return {h[1] or 'closed', tonumber(h[2] or '0'), h[3] or '', tonumber(h[4] or '0'), tonumber(h[5] or '0'),
  math.floor(now_us / 1000)}
