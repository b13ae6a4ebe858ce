-- wrk: paraphrases of the pre-loaded prompts (never exact: a suffix
-- varies), so each request takes the semantic layer: embedding + search
-- (+ verifier). N is the number of pre-loaded prompts.
local N = tonumber(os.getenv("SEM_N") or "10000")
local i = 0
local tails = {" please", " ?", " thanks", " - quick question"}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- Serve the nearest entry whatever its score: this measures the cost of
-- the semantic path (embed + search + verify), not the hit rate.
wrk.headers["X-Semcache-Threshold"] = "0"
request = function()
  i = i + 1
  local k = (i * 7919) % N
  local body = string.format('{"model":"bench-model","messages":[{"role":"user","content":"how do I configure feature %d of product %d%s"}]}', k, k % 113, tails[(i % 4) + 1])
  return wrk.format(nil, nil, nil, body)
end
