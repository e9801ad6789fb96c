-- keygate's rate limits in Redis: the GCRA step of src/limits/gcra.rs, for every policy of
-- one subject at once, atomically (a script runs alone). Admitted only if every policy
-- admits; then each TAT moves on by its interval, else nothing is written.
-- KEYS[i]: the TAT of policy i. ARGV[1]: now (microseconds, the calling node's clock).
-- ARGV[2i]: policy i's interval, ARGV[2i+1]: its capacity (microseconds).
-- Returns {admitted (1 or 0), tat_1, tat_2, ...}: each TAT the decision started from.
local now = tonumber(ARGV[1])
local tats = {}
local admitted = 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  tats[i] = tat
  if tat + interval - now > capacity then
    admitted = 0
  end
end
if admitted == 1 then
  for i = 1, #KEYS do
    local next_tat = tats[i] + tonumber(ARGV[2 * i])
    -- Kept until the TAT is in the past, when a missing key means the same.
    local ttl_ms = math.ceil((next_tat - now) / 1000)
    redis.call('SET', KEYS[i], string.format('%.0f', next_tat), 'PX', ttl_ms)
  end
end
local out = {admitted}
for i = 1, #KEYS do
  out[i + 1] = tats[i]
end
return out
