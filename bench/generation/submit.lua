-- wrk: users submit generations to the instant `local` model in turn.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do
  table.insert(tokens, t)
end
local n = 0

request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/v1/generations",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token },
    '{"prompt": "bench ' .. n .. '", "model": "easel-sketch", "seed": ' .. n .. '}')
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH_RESULT requests=%d seconds=%.3f non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.errors.status))
end
