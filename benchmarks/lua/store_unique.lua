-- wrk: POST /cache/store with a new prompt every request (namespace "b").
local n = 0
local tid = math.random(1, 1e9)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = string.format('{"namespace":"b","prompt":"stored question %d-%d about topic %d","response":"answer %d"}', tid, n, n % 97, n)
  return wrk.format(nil, "/cache/store", nil, body)
end
