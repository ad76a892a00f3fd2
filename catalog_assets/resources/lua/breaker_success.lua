-- ARGV: token, who, keep, ttl. Returns {state, changed}.
if state == 'closed' then
  if failures > 0 then redis.call('HSET', KEYS[1], 'failures', 0) end
  return {'closed', 0}
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  failures = 0
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'reason', '')
  redis.call('HDEL', KEYS[1], 'open_until', 'opened_at')
  event(state, 'closed', 'probe call succeeded', ARGV[2], ARGV[3], ARGV[4])
  return {'closed', 1}
end
-- A success of a call sent before the breaker opened: the probe decides, not stragglers.
return {state, 0}
