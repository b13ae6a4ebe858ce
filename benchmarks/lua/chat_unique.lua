-- wrk: a new prompt every request (misses). BYPASS=1 sends
-- Cache-Control: no-cache, no-store (no lookup, no store: pure proxying).
local n = 0
-- Seeded, so that two runs against one server do not repeat each other's
-- prompts (an unseeded math.random gives every run the same tid).
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
local tid = math.random(1, 1e9)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BYPASS") == "1" then wrk.headers["Cache-Control"] = "no-cache, no-store" end
request = function()
  n = n + 1
  local body = string.format('{"model":"bench-model","messages":[{"role":"user","content":"unique question %d-%d about the weather in city %d"}]}', tid, n, n % 97)
  return wrk.format(nil, nil, nil, body)
end
