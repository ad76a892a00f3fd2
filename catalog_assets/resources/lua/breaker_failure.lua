-- ARGV: token, fatal (0/1), reason, threshold, cooldown_ms, who, keep, ttl. Returns {state, changed, reason}.
local reason = ARGV[3]
local function open(why)
  local open_until = now + tonumber(ARGV[5])
  local previous = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if previous > open_until then open_until = previous end
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', failures, 'reason', why, 'opened_at', now,
    'open_until', open_until)
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('DEL', KEYS[2])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  failures = failures + 1
  local why = 'probe call failed: ' .. reason
  open(why)
  event(state, 'open', why, ARGV[6], ARGV[7], ARGV[8])
  return {'open', 1, why}
end
if ARGV[2] == '1' then
  failures = failures + 1
  local why = 'fatal: ' .. reason
  open(why)
  if state ~= 'open' then
    event(state, 'open', why, ARGV[6], ARGV[7], ARGV[8])
    return {'open', 1, why}
  end
  return {'open', 0, why}
end
if state == 'closed' then
  failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  if failures >= tonumber(ARGV[4]) then
    local why = failures .. ' consecutive transient failures; last: ' .. reason
    open(why)
    event('closed', 'open', why, ARGV[6], ARGV[7], ARGV[8])
    return {'open', 1, why}
  end
  return {'closed', 0, ''}
end
-- Open or half-open: a failure of a call sent before the breaker opened changes nothing.
return {state, 0, ''}
