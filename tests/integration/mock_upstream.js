// A deterministic, fault-injecting mock of an OpenAI-compatible upstream.
//
// It speaks the OpenAI wire format well enough for semcached's proxy and
// route tests: POST /v1/chat/completions and /v1/completions (JSON, or SSE
// chunks with "stream": true, usage in a final chunk when
// stream_options.include_usage), POST /v1/embeddings and GET /v1/models.
// Answers are deterministic from the request: the content is
// "echo: <last user message>" followed by " #N" where N counts the calls this
// instance served (start({counter: false}) drops the suffix; start({reply})
// answers reply(last user message) instead). Every answer
// carries `x-mock-upstream: <name>` so fallback tests can tell who served.
//
// Control endpoints (not counted as calls):
//   GET  /_mock/calls  -> {"total", "by_path", "last_request", "requests"}
//                         (last_request/requests: method, path, headers, body)
//   POST /_mock/reset  -> clears counters, requests and the plan
//   POST /_mock/plan   -> body: a JSON list of faults (or {"plan": [...]}),
//                         applied one per call to the next calls; null or ""
//                         means "no fault" for that call.
//
// Faults, from the `x-mock-fault` request header or the plan (header wins);
// several may be combined with commas ("slow:200,truncate"):
//   429[:S]        429 with an OpenAI error body (Retry-After: S when given)
//   500, 503       that status with an error body; status:NNN for any status
//   slow:MS        wait MS before the first byte
//   hang           never answer (the socket stays open until the client goes)
//   truncate       streaming: destroy the socket after a few chunks, no
//                  [DONE]; non-streaming: half the body, then destroy
//   badjson        200 with a body that is not valid JSON
//   slowstream:MS  wait MS between SSE chunks
//   bigevent:N     streaming: after the first word, one content chunk
//                  carrying N "x" characters (one SSE event over N bytes)
//   drop           destroy the socket without answering
//   ctype[:TYPE]   non-streaming: 200 with an HTML error page (a captive
//                  portal or a misconfigured gateway) under TYPE (text/html)
//   drip[:MS]      non-streaming: the body in 16-byte pieces, MS apart
//
// Use: `const m = await require('./mock_upstream').start({port: 0, name})`
// -> {port, url, name, close(), calls(), reset(), plan(list)}; or standalone
// `node tests/integration/mock_upstream.js --port N [--name NAME]`, which
// prints "listening N". Instances are independent; run several on different
// ports for fallback tests.
'use strict';
const http = require('node:http');

const MAX_BODY = 8 << 20;
const KEEP_REQUESTS = 200;

function parseFaults(spec) {
  const f = {};
  if (spec === null || spec === undefined) return f;
  for (const raw of String(spec).split(',')) {
    const part = raw.trim();
    if (!part || part === 'none' || part === 'ok') continue;
    const [kind, arg] = part.split(':');
    switch (kind) {
      case '429': f.status = 429; if (arg !== undefined) f.retryAfter = arg; break;
      case '500': case '502': case '503': case '504': f.status = Number(kind); break;
      case 'status': f.status = Number(arg) || 500; break;
      case 'slow': f.slow = Number(arg) || 0; break;
      case 'hang': f.hang = true; break;
      case 'truncate': f.truncate = true; break;
      case 'badjson': f.badjson = true; break;
      case 'slowstream': f.slowstream = Number(arg) || 0; break;
      case 'bigevent': f.bigevent = Number(arg) || 0; break;
      case 'drop': f.drop = true; break;
      case 'ctype': f.ctype = arg || 'text/html'; break;
      case 'drip': f.drip = Number(arg) || 100; break;
      default: f.unknown = part;
    }
  }
  return f;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function tokens(text) {
  const t = String(text || '').trim();
  return t ? t.split(/\s+/).length : 0;
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

function promptTokens(body, isChat) {
  if (isChat) {
    const msgs = Array.isArray(body.messages) ? body.messages : [];
    return msgs.reduce((n, m) => n + tokens(contentText(m && m.content)) + 1, 0);
  }
  const p = Array.isArray(body.prompt) ? body.prompt.join(' ') : body.prompt;
  return tokens(p);
}

// Small deterministic pseudo-embedding: FNV-1a seeded xorshift, L2-normalised.
function embedText(text, dim) {
  let h = 2166136261 >>> 0;
  for (const ch of Buffer.from(String(text), 'utf8')) { h ^= ch; h = Math.imul(h, 16777619) >>> 0; }
  const v = [];
  let s = h || 1;
  for (let i = 0; i < dim; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    v.push((s / 4294967296) * 2 - 1);
  }
  const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0)) || 1;
  return v.map((x) => x / n);
}

function start(opts = {}) {
  const name = opts.name || 'mock';
  const useCounter = opts.counter !== false;
  const state = { total: 0, byPath: {}, last: null, requests: [], plan: [], served: 0 };

  function record(req, bodyText, parsed) {
    state.total++;
    state.byPath[req.url] = (state.byPath[req.url] || 0) + 1;
    const r = { method: req.method, path: req.url, headers: { ...req.headers },
      body: parsed !== undefined ? parsed : bodyText };
    state.last = r;
    state.requests.push(r);
    if (state.requests.length > KEEP_REQUESTS) state.requests.shift();
  }

  function snapshot() {
    return { total: state.total, by_path: { ...state.byPath }, last_request: state.last,
      requests: state.requests.slice() };
  }

  function sendJson(res, status, obj, extra = {}) {
    const text = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text),
      'x-mock-upstream': name, ...extra });
    res.end(text);
  }

  function errorBody(status, message) {
    const type = status === 429 ? 'rate_limit_exceeded' : status >= 500 ? 'server_error' : 'invalid_request_error';
    return { error: { message, type, code: String(status) } };
  }

  async function answer(req, res, body, faults, alive) {
    const path = req.url.split('?')[0];
    if (faults.drop) { req.socket.destroy(); return; }
    if (faults.hang) return; // never answer; the socket closes when the client gives up
    if (faults.slow) { await sleep(faults.slow); if (!alive()) return; }
    if (faults.unknown) { sendJson(res, 400, errorBody(400, `mock: unknown fault ${faults.unknown}`)); return; }
    if (faults.status) {
      const extra = faults.retryAfter !== undefined ? { 'retry-after': faults.retryAfter } : {};
      sendJson(res, faults.status, errorBody(faults.status, `mock fault ${faults.status}`), extra);
      return;
    }
    if (faults.badjson) {
      const text = '{"id": "chatcmpl-bad", "choices": [ {"message": ';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text),
        'x-mock-upstream': name });
      res.end(text);
      return;
    }
    if (req.method === 'GET' && path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'].map((id) => (
        { id, object: 'model', created: 1700000000, owned_by: 'mock' })) });
      return;
    }
    if (req.method !== 'POST') { sendJson(res, 405, errorBody(405, 'method not allowed')); return; }
    if (body === null || typeof body !== 'object') { sendJson(res, 400, errorBody(400, 'mock: body is not a JSON object')); return; }
    if (path === '/v1/embeddings') {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      const dim = Number(body.dimensions) > 0 ? Math.min(Number(body.dimensions), 4096) : 8;
      const data = inputs.map((t, i) => ({ object: 'embedding', index: i, embedding: embedText(t, dim) }));
      const pt = inputs.reduce((n, t) => n + tokens(t), 0);
      sendJson(res, 200, { object: 'list', data, model: body.model || 'mock-embed',
        usage: { prompt_tokens: pt, total_tokens: pt } });
      return;
    }
    const isChat = path === '/v1/chat/completions';
    if (!isChat && path !== '/v1/completions') { sendJson(res, 404, errorBody(404, `mock: no route ${path}`)); return; }

    state.served++;
    const n = state.served;
    const input = isChat ? lastUserMessage(body) : String(Array.isArray(body.prompt) ? body.prompt.join(' ') : body.prompt || '');
    const content = opts.reply ? opts.reply(input) : `echo: ${input}` + (useCounter ? ` #${n}` : '');
    const model = body.model || 'mock-model';
    const created = 1700000000 + n;
    const id = (isChat ? 'chatcmpl-' : 'cmpl-') + `${name}-${n}`;
    const usage = { prompt_tokens: promptTokens(body, isChat), completion_tokens: tokens(content) };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;

    if (!body.stream) {
      const choice = isChat
        ? { index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: 'stop' }
        : { index: 0, text: content, logprobs: null, finish_reason: 'stop' };
      const obj = { id, object: isChat ? 'chat.completion' : 'text_completion', created, model,
        choices: [choice], usage };
      if (faults.truncate) {
        const text = JSON.stringify(obj);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text),
          'x-mock-upstream': name });
        res.write(text.slice(0, text.length >> 1));
        setTimeout(() => req.socket.destroy(), 20);
        return;
      }
      if (faults.ctype || faults.drip) {
        const text = faults.ctype ? '<html><body><h1>502 Bad Gateway</h1></body></html>' : JSON.stringify(obj);
        res.writeHead(200, { 'content-type': faults.ctype || 'application/json',
          'content-length': Buffer.byteLength(text), 'x-mock-upstream': name });
        if (!faults.drip) { res.end(text); return; }
        for (let i = 0; i < text.length; i += 16) {
          if (!alive()) return;
          res.write(text.slice(i, i + 16));
          await sleep(faults.drip);
        }
        res.end();
        return;
      }
      sendJson(res, 200, obj);
      return;
    }

    // Streaming: SSE in the OpenAI chunk format.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache',
      'x-mock-upstream': name });
    res.flushHeaders();
    const object = isChat ? 'chat.completion.chunk' : 'text_completion';
    const chunk = (delta, finish) => (isChat
      ? { id, object, created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] }
      : { id, object, created, model, choices: [{ index: 0, text: delta.content || '', logprobs: null, finish_reason: finish }] });
    const events = [];
    if (isChat) events.push(chunk({ role: 'assistant', content: '' }, null));
    const words = content.split(' ');
    words.forEach((w, i) => {
      events.push(chunk({ content: (i ? ' ' : '') + w }, null));
      if (i === 0 && faults.bigevent) events.push(chunk({ content: ' ' + 'x'.repeat(faults.bigevent) }, null));
    });
    events.push(chunk({}, 'stop'));
    if (body.stream_options && body.stream_options.include_usage)
      events.push({ id, object, created, model, choices: [], usage });
    const gap = faults.slowstream || 0;
    const cutAfter = faults.truncate ? Math.min(3, Math.max(1, events.length - 2)) : -1;
    for (let i = 0; i < events.length; i++) {
      if (!alive()) return;
      if (i === cutAfter) { setTimeout(() => req.socket.destroy(), 20); return; }
      res.write(`data: ${JSON.stringify(events[i])}\n\n`);
      if (gap) await sleep(gap);
    }
    if (!alive()) return;
    res.end('data: [DONE]\n\n');
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0, tooBig = false, closed = false;
    req.on('data', (d) => { size += d.length; if (size > MAX_BODY) tooBig = true; else chunks.push(d); });
    res.on('close', () => { closed = true; });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const path = req.url.split('?')[0];
      if (path.startsWith('/_mock/')) {
        if (req.method === 'GET' && path === '/_mock/calls') return sendJson(res, 200, snapshot());
        if (req.method === 'POST' && path === '/_mock/reset') {
          state.total = 0; state.byPath = {}; state.last = null; state.requests = []; state.plan = []; state.served = 0;
          return sendJson(res, 200, { ok: true });
        }
        if (req.method === 'POST' && path === '/_mock/plan') {
          let p;
          try { p = JSON.parse(text); } catch (_) { return sendJson(res, 400, errorBody(400, 'plan: bad JSON')); }
          if (p && !Array.isArray(p) && Array.isArray(p.plan)) p = p.plan;
          if (!Array.isArray(p)) return sendJson(res, 400, errorBody(400, 'plan: want a JSON list'));
          state.plan.push(...p);
          return sendJson(res, 200, { ok: true, queued: state.plan.length });
        }
        return sendJson(res, 404, errorBody(404, 'mock: unknown control path'));
      }
      let parsed;
      if (text.length) { try { parsed = JSON.parse(text); } catch (_) { parsed = undefined; } }
      record(req, text, parsed);
      const planned = state.plan.length ? state.plan.shift() : null;
      const header = req.headers['x-mock-fault'];
      const faults = parseFaults(header !== undefined ? header : planned);
      if (tooBig) return sendJson(res, 413, errorBody(413, 'mock: body too large'));
      const body = text.length ? (parsed === undefined ? null : parsed) : {};
      answer(req, res, body, faults, () => !closed && !req.socket.destroyed).catch((e) => {
        if (!res.headersSent) sendJson(res, 500, errorBody(500, `mock crashed: ${e && e.message}`));
        else req.socket.destroy();
      });
    });
  });
  server.keepAliveTimeout = 5000;

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port || 0, opts.host || '127.0.0.1', () => {
      const port = server.address().port;
      resolve({
        port, name, url: `http://127.0.0.1:${port}`,
        calls: snapshot,
        reset() { state.total = 0; state.byPath = {}; state.last = null; state.requests = []; state.plan = []; state.served = 0; },
        plan(list) { state.plan.push(...list); },
        close() {
          return new Promise((r) => {
            server.close(() => r());
            if (server.closeAllConnections) server.closeAllConnections();
          });
        },
      });
    });
  });
}

module.exports = { start, parseFaults };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 && i + 1 < args.length ? args[i + 1] : d; };
  start({ port: Number(opt('--port', '0')), name: opt('--name', 'mock'), host: opt('--host', '127.0.0.1'),
    counter: !args.includes('--no-counter') })
    .then((m) => {
      process.stdout.write(`listening ${m.port}\n`);
      const stop = () => m.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    })
    .catch((e) => { process.stderr.write(`mock_upstream: ${e.message}\n`); process.exit(1); });
}
