-- wrk: a new prompt every request (misses). BYPASS=1 sends
-- Cache-Control: no-cache, no-store (no lookup, no store: pure proxying).
-- CONTEXT=1 puts a new earlier turn before each prompt, as a
-- conversation's later turns do: every request is in a context (partition)
-- of its own, where nothing is stored yet. DELAY_MS=N waits N ms before
-- each request (a paced client; wrk's latencies leave the wait out).
local n = 0
-- Seeded, so that two runs against one server do not repeat each other's
-- prompts (an unseeded math.random gives every run the same tid).
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
local tid = math.random(1, 1e9)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BYPASS") == "1" then wrk.headers["Cache-Control"] = "no-cache, no-store" end
local context = os.getenv("CONTEXT") == "1"
local pause = tonumber(os.getenv("DELAY_MS") or "0")
if pause > 0 then delay = function() return pause end end
request = function()
  n = n + 1
  local earlier = ""
  if context then
    earlier = string.format('{"role":"user","content":"earlier question %d-%d"},{"role":"assistant","content":"an earlier answer"},', tid, n)
  end
  local body = string.format('{"model":"bench-model","messages":[%s{"role":"user","content":"unique question %d-%d about the weather in city %d"}]}', earlier, tid, n, n % 97)
  return wrk.format(nil, nil, nil, body)
end
