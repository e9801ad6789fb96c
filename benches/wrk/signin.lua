-- wrk script: POST signin_with_api_key with the credentials from the environment.
--   KG_ORG=default KG_API_KEY=ak_live_… KG_API_KEY_ID=key_… KG_USER_ID=usr_… \
--   wrk -t2 -c32 -d20s --latency -s benches/wrk/signin.lua http://127.0.0.1:8080
local org = os.getenv("KG_ORG") or "default"
wrk.method = "POST"
wrk.path = "/v1/" .. org .. "/user/signin_with_api_key"
wrk.headers["x-api-key"] = os.getenv("KG_API_KEY")
wrk.headers["x-api-key-id"] = os.getenv("KG_API_KEY_ID")
wrk.headers["x-user-id"] = os.getenv("KG_USER_ID")

local non200 = 0
response = function(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

done = function(summary, latency, requests)
  io.write(string.format("median_us=%d p99_us=%d rps=%.0f errors_non2xx=%d\n",
    latency:percentile(50), latency:percentile(99),
    summary.requests / (summary.duration / 1e6), summary.errors.status))
end
