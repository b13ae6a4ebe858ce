-- wrk: POST /cache/lookup of one stored prompt (an exact hit) or, with
-- SEMANTIC=1, of a paraphrase of it (embedding + search every time).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("SEMANTIC") == "1" then
  wrk.body = '{"namespace":"b","prompt":"how can I reset my password please","threshold":0.5}'
else
  wrk.body = '{"namespace":"b","prompt":"How do I reset my password?"}'
end
