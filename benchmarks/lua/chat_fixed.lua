-- wrk: the same chat request every time (exact hits once primed).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}]}'
