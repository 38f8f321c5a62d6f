-- wrk: users submit generations to the instant `local` model in turn. Every prompt is its own
-- (run, thread, count), so every job renders and stores new files, as different people's would;
-- BENCH_RUN tells apart the runs that share one database.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do
  table.insert(tokens, t)
end
local run = os.getenv("BENCH_RUN") or "run"
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local n = 0

request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/v1/generations",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token },
    '{"prompt": "bench ' .. run .. ' ' .. tostring(thread_id) .. ' ' .. n .. '", "model": "easel-sketch", "seed": ' .. n .. '}')
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH_RESULT requests=%d seconds=%.3f non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.errors.status))
end
