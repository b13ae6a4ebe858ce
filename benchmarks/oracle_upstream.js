// An oracle upstream for the replay benchmark (benchmarks/replay.js): a real
// HTTP server speaking the OpenAI chat-completions wire format that answers
// every query with its intent's answer, so that a cached answer served for
// another query can be checked: it is right when the two queries share an
// intent.
//
//   POST /v1/chat/completions {"model","messages":[...],"stream"?}
//        -> choices[0].message.content = "intent: <label>", where <label> is
//           the map's label for the LAST user message's content (the exact
//           text, else the text trimmed; "unknown" when neither is in the
//           map); usage: prompt_tokens = round(words * 1.3),
//           completion_tokens 5. With "stream": true, SSE: one chunk with
//           the content delta, a final chunk with finish_reason "stop" and
//           usage, then `data: [DONE]`.
//   GET  /_oracle/calls -> {"calls": N} (completions answered; not counted)
//
// Run: node benchmarks/oracle_upstream.js --map FILE [--port P]
//   FILE: a JSON object, query text -> intent label. --port 0 (default)
//   takes an ephemeral port. Prints "listening PORT" on stdout once bound.
'use strict';
const fs = require('node:fs');
const http = require('node:http');

const MAX_BODY = 8 << 20;

function parseArgs(argv) {
  const opt = { map: null, port: 0, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    if (a === '--map') { opt.map = v; i++; }
    else if (a === '--port') { opt.port = Number(v); i++; }
    else if (a === '--host') { opt.host = v; i++; }
    else throw new Error(`unknown option ${a}`);
  }
  if (!opt.map) throw new Error('--map FILE is required');
  if (!Number.isInteger(opt.port) || opt.port < 0 || opt.port > 65535) throw new Error('--port wants 0-65535');
  return opt;
}

function loadMap(file) {
  const obj = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new Error(`${file}: want a JSON object`);
  return new Map(Object.entries(obj));
}

function contentText(c) {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join(' ');
  return '';
}

function lastUserMessage(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--)
    if (msgs[i] && msgs[i].role === 'user') return contentText(msgs[i].content);
  return '';
}

function labelFor(map, text) {
  if (map.has(text)) return map.get(text);
  const t = text.trim();
  return map.has(t) ? map.get(t) : 'unknown';
}

function words(text) {
  const t = String(text || '').trim();
  return t ? t.split(/\s+/).length : 0;
}

function sendJson(res, status, obj) {
  const text = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(status, message) {
  return { error: { message, type: status >= 500 ? 'server_error' : 'invalid_request_error', code: String(status) } };
}

function sendStream(res, id, created, model, content, usage) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const base = { id, object: 'chat.completion.chunk', created, model };
  const events = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content }, logprobs: null, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], usage },
  ];
  for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
  res.end('data: [DONE]\n\n');
}

function complete(state, res, body) {
  state.calls++;
  const n = state.calls;
  const text = lastUserMessage(body);
  const content = `intent: ${labelFor(state.map, text)}`;
  const model = typeof body.model === 'string' ? body.model : 'oracle-model';
  const id = `chatcmpl-oracle-${n}`;
  const created = Math.floor(Date.now() / 1000);
  const usage = { prompt_tokens: Math.round(words(text) * 1.3), completion_tokens: 5 };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  if (body.stream) return sendStream(res, id, created, model, content, usage);
  sendJson(res, 200, { id, object: 'chat.completion', created, model,
    choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: 'stop' }],
    usage });
}

function handle(state, req, res, text) {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/_oracle/calls') return sendJson(res, 200, { calls: state.calls });
  if (path !== '/v1/chat/completions') return sendJson(res, 404, errorBody(404, `oracle: no route ${path}`));
  if (req.method !== 'POST') return sendJson(res, 405, errorBody(405, 'method not allowed'));
  let body;
  try { body = JSON.parse(text); } catch (_) { return sendJson(res, 400, errorBody(400, 'oracle: body is not JSON')); }
  if (!body || typeof body !== 'object' || !Array.isArray(body.messages))
    return sendJson(res, 400, errorBody(400, 'oracle: want {"model","messages":[...]}'));
  complete(state, res, body);
}

function start({ map, port = 0, host = '127.0.0.1' }) {
  const state = { map, calls: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (d) => { size += d.length; if (size <= MAX_BODY) chunks.push(d); });
    req.on('end', () => {
      if (size > MAX_BODY) return sendJson(res, 413, errorBody(413, 'oracle: body too large'));
      handle(state, req, res, Buffer.concat(chunks).toString('utf8'));
    });
  });
  server.keepAliveTimeout = 60000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: server.address().port, state }));
  });
}

module.exports = { start, labelFor };

if (require.main === module) {
  let opt;
  try { opt = parseArgs(process.argv.slice(2)); } catch (e) {
    process.stderr.write(`oracle_upstream: ${e.message}\nusage: node benchmarks/oracle_upstream.js --map FILE [--port P]\n`);
    process.exit(2);
  }
  Promise.resolve()
    .then(() => start({ map: loadMap(opt.map), port: opt.port, host: opt.host }))
    .then(({ server, port }) => {
      process.stdout.write(`listening ${port}\n`);
      const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    })
    .catch((e) => { process.stderr.write(`oracle_upstream: ${e.message}\n`); process.exit(1); });
}
