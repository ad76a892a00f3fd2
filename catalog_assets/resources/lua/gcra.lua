-- Books one slot of a GCRA budget. KEYS: tat, pause, learned limit, adapt, events (see rate_prelude).
-- ARGV: per_minute, headroom, burst_us (GCRA tau), max_wait_us, recover_us, increase, who, keep, ttl.
-- Returns {granted (0/1), wait_us, slot_us, raised_to ('' or the factor this booking stepped up to)}:
-- books the slot only when the wait fits in max_wait_us. A factor below 1 steps up by `increase` once per
-- `recover_us` without a window 429 (each step restarts the clean period).
local raised = ''
if factor < 1 then
  local changed_at = tonumber(redis.call('HGET', KEYS[4], 'changed_at') or '') or 0
  if now_us - changed_at >= tonumber(ARGV[5]) then
    local to = math.min(1, factor + tonumber(ARGV[6]))
    rate_change('increase', to, 0, 'no window 429 for a clean period', ARGV[7], ARGV[8], ARGV[9])
    raised = string.format('%.6f', to)
  end
end
local limit = tonumber(ARGV[1])
local learned = tonumber(redis.call('GET', KEYS[3]) or '')
if learned and learned > 0 and learned < limit then limit = learned end
local interval = 60000000 / (limit * factor * tonumber(ARGV[2]))
local tau = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now_us
if tat < now_us then tat = now_us end
local resume = tonumber(redis.call('GET', KEYS[2]) or '') or 0
local slot = math.max(tat - tau, now_us, resume)
local wait = slot - now_us
if wait > tonumber(ARGV[4]) then return {0, math.floor(wait), math.floor(slot), raised} end
local new_tat = math.max(tat, slot) + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now_us) / 1000) + 1000)
return {1, math.floor(wait), math.floor(slot), raised}
