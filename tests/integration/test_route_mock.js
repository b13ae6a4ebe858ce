// Checks the mock upstream itself (tests/integration/mock_upstream.js), so
// proxy tests can trust it: OpenAI JSON and SSE answers, call counting, and
// every fault from the x-mock-fault header and the /_mock/plan queue.
'use strict';
const { test, run, assert, assertEq, json } = require('./lib');
const mockUp = require('./mock_upstream');

let m;
const chat = (msg, extra = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: msg }], ...extra });

async function sse(url, body, headers = {}) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body) });
  let text = '', err = null;
  try { text = await r.text(); } catch (e) { err = e; }
  return { status: r.status, ctype: r.headers.get('content-type'), text, err };
}

test('mock: chat completion JSON', async () => {
  m = await mockUp.start({ name: 'T' });
  const r = await json(`${m.url}/v1/chat/completions`, chat('hello there'));
  assertEq(r.status, 200);
  assertEq(r.body.object, 'chat.completion');
  assertEq(r.body.choices[0].message.content, 'echo: hello there #1');
  assert(r.body.usage.total_tokens === r.body.usage.prompt_tokens + r.body.usage.completion_tokens);
  assertEq(r.headers.get('x-mock-upstream'), 'T');
  const c = m.calls();
  assertEq(c.total, 1);
  assertEq(c.last_request.body.model, 'gpt-4o-mini');
});

test('mock: streaming with usage ends with [DONE]', async () => {
  const r = await sse(`${m.url}/v1/chat/completions`, chat('a b', { stream: true, stream_options: { include_usage: true } }));
  assertEq(r.status, 200);
  assert(r.ctype.startsWith('text/event-stream'));
  const events = r.text.split('\n\n').filter(Boolean).map((l) => l.replace(/^data: /, ''));
  assertEq(events[events.length - 1], '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assertEq(chunks[0].object, 'chat.completion.chunk');
  assert(chunks[chunks.length - 1].usage.completion_tokens > 0, 'usage chunk');
  const text = chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
  assert(text.startsWith('echo: a b'), text);
});

test('mock: completions, embeddings, models, control endpoints', async () => {
  let r = await json(`${m.url}/v1/completions`, { model: 'x', prompt: 'p q' });
  assertEq(r.body.object, 'text_completion');
  r = await json(`${m.url}/v1/embeddings`, { input: ['x', 'y'], dimensions: 16 });
  assertEq(r.body.data.length, 2);
  assertEq(r.body.data[0].embedding.length, 16);
  r = await json(`${m.url}/v1/models`, undefined, { method: 'GET' });
  assertEq(r.body.object, 'list');
  r = await json(`${m.url}/_mock/calls`, undefined, { method: 'GET' });
  assert(r.body.by_path['/v1/embeddings'] === 1);
  await json(`${m.url}/_mock/reset`, {});
  assertEq(m.calls().total, 0);
});

test('mock: status faults, Retry-After, badjson, plan', async () => {
  let r = await json(`${m.url}/v1/chat/completions`, chat('x'), { headers: { 'x-mock-fault': '429:2' } });
  assertEq(r.status, 429);
  assertEq(r.headers.get('retry-after'), '2');
  r = await json(`${m.url}/v1/chat/completions`, chat('x'), { headers: { 'x-mock-fault': '503' } });
  assertEq(r.status, 503);
  r = await json(`${m.url}/v1/chat/completions`, chat('x'), { headers: { 'x-mock-fault': 'badjson' } });
  assertEq(r.status, 200);
  assertEq(r.body, null);
  await json(`${m.url}/_mock/plan`, ['500', null, 'status:418']);
  assertEq((await json(`${m.url}/v1/chat/completions`, chat('x'))).status, 500);
  assertEq((await json(`${m.url}/v1/chat/completions`, chat('x'))).status, 200);
  assertEq((await json(`${m.url}/v1/chat/completions`, chat('x'))).status, 418);
  assertEq((await json(`${m.url}/v1/chat/completions`, chat('x'))).status, 200);
});

test('mock: slow, hang, truncate, slowstream, bigevent', async () => {
  let t = Date.now();
  await json(`${m.url}/v1/chat/completions`, chat('x'), { headers: { 'x-mock-fault': 'slow:200' } });
  assert(Date.now() - t >= 190, 'slow');
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 300);
  let aborted = false;
  try {
    await fetch(`${m.url}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'x-mock-fault': 'hang' }, signal: ac.signal });
  } catch (_) { aborted = true; }
  clearTimeout(timer);
  assert(aborted, 'hang never answers');
  const r = await sse(`${m.url}/v1/chat/completions`, chat('a b c d e f', { stream: true }), { 'x-mock-fault': 'truncate' });
  assert(r.err || !r.text.includes('[DONE]'), 'truncated stream has no [DONE]');
  t = Date.now();
  const s = await sse(`${m.url}/v1/chat/completions`, chat('a b', { stream: true }), { 'x-mock-fault': 'slowstream:50' });
  assert(s.text.endsWith('data: [DONE]\n\n'));
  assert(Date.now() - t >= 200, 'slowstream');
  const b = await sse(`${m.url}/v1/chat/completions`, chat('a b', { stream: true }), { 'x-mock-fault': 'bigevent:5000' });
  const big = b.text.split('\n\n').filter((e) => e.length > 5000);
  assertEq(big.length, 1, 'one event over 5000 bytes');
  assert(JSON.parse(big[0].slice(6)).choices[0].delta.content === ' ' + 'x'.repeat(5000), 'its content');
  assert(b.text.endsWith('data: [DONE]\n\n'), 'then the rest of the stream');
  await m.close();
});

run();
