-- wrk: POST a one-credit deduction (the same spend path as a reservation) for users in turn.
local ids = {}
for id in string.gmatch(os.getenv("BENCH_USER_IDS") or "", "[^,]+") do
  table.insert(ids, id)
end
local token = os.getenv("BENCH_TOKEN")
local n = 0

request = function()
  n = n + 1
  local id = ids[(n % #ids) + 1]
  return wrk.format("POST", "/v1/admin/users/" .. id .. "/credits",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token },
    '{"amount": -1, "reason": "bench"}')
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("BENCH_RESULT requests=%d seconds=%.3f non2xx=%d\n",
    summary.requests, summary.duration / 1e6, non2xx))
end
