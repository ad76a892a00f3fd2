-- Pauses a bucket. KEYS: tat, pause. ARGV: pause_us, burst_us. Returns 1 when the pause's end moved, else 0.
-- Never shortens a longer pause (and then changes nothing); pushes the TAT past the pause plus the burst
-- allowance so the first requests after it are paced, not a burst into a recovering API.
local resume = now_us + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[2]) or '') or 0
if resume <= current then return 0 end
redis.call('SET', KEYS[2], string.format('%.0f', resume), 'PX', math.max(1, math.ceil(tonumber(ARGV[1]) / 1000)))
local pushed = resume + tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if tat < pushed then
  redis.call('SET', KEYS[1], string.format('%.0f', pushed), 'PX', math.ceil((pushed - now_us) / 1000) + 1000)
end
return 1
