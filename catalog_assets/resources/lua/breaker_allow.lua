-- ARGV: token, probe_ttl_ms, who, keep, ttl. Returns {verdict, retry_in_ms, reason, changed}:
-- verdict "closed" (go), "probe" (go, you decide), "open" or "half_open" (do not call).
if state == 'closed' then return {'closed', 0, '', 0} end
local reason = redis.call('HGET', KEYS[1], 'reason') or ''
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if now < open_until then return {'open', open_until - now, reason, 0} end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  -- Still the probe (its last call neither succeeded nor failed, e.g. a 400): it may call again.
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {'probe', 0, reason, 0}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if state ~= 'half_open' then
    redis.call('HSET', KEYS[1], 'state', 'half_open')
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    event(state, 'half_open', 'cool-down over; one probe call decides', ARGV[3], ARGV[4], ARGV[5])
    return {'probe', 0, reason, 1}
  end
  return {'probe', 0, reason, 0}
end
return {'half_open', redis.call('PTTL', KEYS[2]), reason, 0}
