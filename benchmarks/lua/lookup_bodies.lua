-- wrk: POST /cache/lookup with request bodies read from the file in
-- $BODIES (one JSON body a line), taken in a scattered order.
local bodies = {}
local path = os.getenv("BODIES")
for line in io.lines(path) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/cache/lookup", nil, bodies[((i * 7919) % #bodies) + 1])
end
