-- Prelude of every script: the server's clock in microseconds (TIME needs Redis >= 5).
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
