-- Classifies and applies one 429. KEYS: tat, pause, limit, adapt, events (see rate_prelude), burst counter.
-- ARGV: pause_us, burst_us (tau), sent_us (-1: unknown), signal (1 remaining at 0, -1 room, 0 no header),
-- burst_429s, burst_span_ms, decrease, floor, reason, who, keep, ttl.
-- Returns {kind ('window' | 'coalesced' | 'isolated'), pause_left_us, factor as a string}.
local pause_us = tonumber(ARGV[1])
local signal = tonumber(ARGV[4])
if signal == 0 then
  -- No remaining header: several 429s within a short span, across every worker, mean the window.
  local n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[6]) end
  if n >= tonumber(ARGV[5]) then signal = 1 else signal = -1 end
end
if signal < 0 then return {'isolated', 0, string.format('%.6f', factor)} end
local window_resume = tonumber(redis.call('HGET', KEYS[4], 'window_resume') or '') or 0
local sent = tonumber(ARGV[3])
local same
if sent >= 0 then same = sent < window_resume else same = now_us < window_resume + pause_us end
if same then return {'coalesced', 0, string.format('%.6f', factor)} end
local resume = now_us + pause_us
local current = tonumber(redis.call('GET', KEYS[2]) or '') or 0
if resume > current then
  redis.call('SET', KEYS[2], string.format('%.0f', resume), 'PX', math.max(1, math.ceil(pause_us / 1000)))
else
  resume = current
end
local pushed = resume + tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if tat < pushed then
  redis.call('SET', KEYS[1], string.format('%.0f', pushed), 'PX', math.ceil((pushed - now_us) / 1000) + 1000)
end
rate_change('decrease', math.max(tonumber(ARGV[8]), factor * tonumber(ARGV[7])), pause_us, ARGV[9], ARGV[10],
  ARGV[11], ARGV[12])
redis.call('HSET', KEYS[4], 'window_resume', string.format('%.0f', resume))
return {'window', math.floor(resume - now_us), string.format('%.6f', factor)}
