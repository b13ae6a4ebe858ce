// Issue 5: the transparent caching proxy end to end. The real `openai` npm
// client talks to the real semcached, which forwards misses to the
// fault-injecting mock upstream. Every claim is proven twice: by the
// X-Semcache* response headers and by the mock's call count (the mock
// numbers its answers "#N", so a served copy is recognisable).
'use strict';
const net = require('node:net');
const OpenAI = require('openai');
const { tmpDir, test, run, startServer, stopServer, sleep, rawExchange, assert, assertEq, json } = require('./lib');
const mockUpstream = require('./mock_upstream');

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const accessLog = path.join(tmpDir('sc_plog_'), 'access.log');
let mock, srv, client;
let seq = 0;
// Every test uses its own model name, so its entries live in their own
// partition and cannot be hit by another test.
const model = () => `gpt-test-${++seq}`;
const calls = () => mock.calls().total;
const chatPath = () => mock.calls().by_path['/v1/chat/completions'] || 0;

function mkClient(url, headers = {}) {
  return new OpenAI({ baseURL: url + '/v1', apiKey: 'x', maxRetries: 0, timeout: 20000, defaultHeaders: headers });
}

async function chat(body, headers = {}, c = client) {
  const { data, response } = await c.chat.completions.create({ messages: [], ...body }, { headers }).withResponse();
  return { data, h: response.headers, content: data.choices[0].message.content };
}

async function chatStream(body, headers = {}, c = client) {
  const { data: stream, response } = await c.chat.completions
    .create({ ...body, stream: true }, { headers }).withResponse();
  const chunks = [];
  let content = '';
  for await (const ch of stream) {
    chunks.push(ch);
    for (const choice of ch.choices || []) if (choice.delta && choice.delta.content) content += choice.delta.content;
  }
  return { chunks, content, h: response.headers };
}

// Write-back is asynchronous (LMDB put after the answer went out): wait a
// moment before expecting a hit, except where the test is about that window.
const settle = () => sleep(300);
const user = (text) => [{ role: 'user', content: text }];
const statusOf = async (p) => { try { await p; return 200; } catch (e) { return e.status; } };
const errOf = async (p) => { try { await p; } catch (e) { return e; } throw new Error('expected an error'); };

async function health(s = srv) {
  const r = await fetch(`${s.url}/healthz`);
  assertEq(r.status, 200, 'semcached still healthy');
}

test('start mock upstream and semcached', async () => {
  mock = await mockUpstream.start({ port: 0, name: 'mock' });
  srv = await startServer({ args: ['--upstream', mock.url, '--verify', 'off', '--threshold', '0.95', '--max-body', '65536',
    '--retries', '2', '--first-byte-timeout-ms', '3000', '--idle-timeout-ms', '2000', '--access-log', accessLog] });
  client = mkClient(srv.url);
});

/* ------------------------------------------------------------------ */
/* Misses, exact hits, semantic hits                                   */
/* ------------------------------------------------------------------ */

test('chat: miss then exact hit (one upstream call)', async () => {
  const m = model();
  const before = calls();
  const a = await chat({ model: m, messages: user('What is the capital of France?') });
  assertEq(a.h.get('x-semcache'), 'miss');
  assertEq(a.h.get('x-semcache-entry'), null, 'no entry header on a miss');
  assertEq(calls() - before, 1, 'one upstream call');
  assert(/^echo: What is the capital of France\? #\d+$/.test(a.content), a.content);
  await settle();
  const b = await chat({ model: m, messages: user('What is the capital of France?') });
  assertEq(b.h.get('x-semcache'), 'hit-exact');
  assert(/^\d+$/.test(b.h.get('x-semcache-entry') || ''), `entry header: ${b.h.get('x-semcache-entry')}`);
  assertEq(Number(b.h.get('x-semcache-similarity')), 1, 'similarity 1');
  assertEq(b.content, a.content, 'same content');
  assertEq(b.data.object, 'chat.completion');
  assertEq(calls() - before, 1, 'still one upstream call');
  // Case, whitespace and surrounding blanks are normalised for the exact layer.
  const c = await chat({ model: m, messages: user('  what IS the   capital of france?  ') });
  assertEq(c.h.get('x-semcache'), 'hit-exact');
  assertEq(c.content, a.content);
  assertEq(calls() - before, 1);
});

test('an identical request right after a miss never calls upstream again', async () => {
  // The entry may not be in LMDB yet when the second request is looked up;
  // it must then be served from the finishing call (X-Semcache-Coalesced).
  for (let i = 0; i < 5; i++) {
    const m = model();
    const before = calls();
    const a = await chat({ model: m, messages: user(`Back to back question ${i}`) });
    const b = await chat({ model: m, messages: user(`Back to back question ${i}`) });
    assertEq(calls() - before, 1, `one upstream call (round ${i}, second was ${b.h.get('x-semcache')})`);
    assertEq(b.content, a.content);
    const o = b.h.get('x-semcache');
    assert(o === 'hit-exact' || (o === 'miss' && b.h.get('x-semcache-coalesced') === '1'), `outcome ${o}`);
  }
});

test('legacy completions: miss then exact hit', async () => {
  const m = model();
  const before = mock.calls().by_path['/v1/completions'] || 0;
  const r1 = await client.completions.create({ model: m, prompt: 'Say hello to the world' }).withResponse();
  assertEq(r1.response.headers.get('x-semcache'), 'miss');
  assertEq(r1.data.object, 'text_completion');
  await settle();
  const r2 = await client.completions.create({ model: m, prompt: 'Say hello to the world' }).withResponse();
  assertEq(r2.response.headers.get('x-semcache'), 'hit-exact');
  assertEq(r2.data.choices[0].text, r1.data.choices[0].text);
  assertEq(r2.data.object, 'text_completion');
  assertEq((mock.calls().by_path['/v1/completions'] || 0) - before, 1, 'one upstream call');
});

test('legacy completions streamed: miss relayed, then replayed from the cache', async () => {
  const m = model();
  const before = calls();
  const s1 = await client.completions.create({ model: m, prompt: 'Count from one to three', stream: true }).withResponse();
  assertEq(s1.response.headers.get('x-semcache'), 'miss');
  let t1 = '';
  for await (const ch of s1.data) t1 += ch.choices.map((c) => c.text || '').join('');
  assert(/^echo: Count from one to three #\d+$/.test(t1), t1);
  await settle();
  const s2 = await client.completions.create({ model: m, prompt: 'Count from one to three', stream: true }).withResponse();
  assertEq(s2.response.headers.get('x-semcache'), 'hit-exact');
  let t2 = '';
  for await (const ch of s2.data) { assertEq(ch.object, 'text_completion'); t2 += ch.choices.map((c) => c.text || '').join(''); }
  assertEq(t2, t1);
  assertEq(calls() - before, 1);
});

test('semantic hit on a near-duplicate (extra word), similarity < 1', async () => {
  const m = model();
  const before = calls();
  const a = await chat({ model: m, messages: user('How do I reset my account password?') });
  assertEq(a.h.get('x-semcache'), 'miss');
  await settle();
  const b = await chat({ model: m, messages: user('How do I reset my account password please?') },
    { 'X-Semcache-Threshold': '0.6' });
  assertEq(b.h.get('x-semcache'), 'hit-semantic');
  const sim = Number(b.h.get('x-semcache-similarity'));
  assert(sim >= 0.6 && sim < 1, `similarity ${sim}`);
  assertEq(b.h.get('x-semcache-entry') !== null, true, 'entry header');
  assertEq(b.content, a.content);
  assertEq(calls() - before, 1);
  // The default threshold (0.95) does not accept this paraphrase.
  const c = await chat({ model: m, messages: user('How do I reset my account password please?') });
  assertEq(c.h.get('x-semcache'), 'miss');
  assertEq(calls() - before, 2);
  // A bad threshold header is a 400, not a silent default.
  assertEq(await statusOf(chat({ model: m, messages: user('x') }, { 'X-Semcache-Threshold': '2' })), 400);
  assertEq(calls() - before, 2);
});

/* ------------------------------------------------------------------ */
/* Context: what must make a different partition                       */
/* ------------------------------------------------------------------ */

test('different system prompt -> miss', async () => {
  const m = model();
  const before = calls();
  const q = 'Describe the weather today';
  const a = await chat({ model: m, messages: [{ role: 'system', content: 'You are terse.' }, ...user(q)] });
  const b = await chat({ model: m, messages: [{ role: 'system', content: 'You are a pirate.' }, ...user(q)] });
  assertEq(a.h.get('x-semcache'), 'miss');
  assertEq(b.h.get('x-semcache'), 'miss');
  assert(a.content !== b.content, 'different answers');
  await settle();
  const c = await chat({ model: m, messages: [{ role: 'system', content: 'You are a pirate.' }, ...user(q)] });
  assertEq(c.h.get('x-semcache'), 'hit-exact');
  assertEq(c.content, b.content);
  // No system prompt at all is yet another context.
  const d = await chat({ model: m, messages: user(q) });
  assertEq(d.h.get('x-semcache'), 'miss');
  assertEq(calls() - before, 3);
});

test('different earlier turns with the same last question -> miss', async () => {
  const m = model();
  const before = calls();
  const h1 = [{ role: 'user', content: 'I live in Oslo.' }, { role: 'assistant', content: 'Nice city.' }];
  const h2 = [{ role: 'user', content: 'I live in Lima.' }, { role: 'assistant', content: 'Nice city.' }];
  const a = await chat({ model: m, messages: [...h1, ...user('What time zone am I in?')] });
  const b = await chat({ model: m, messages: [...h2, ...user('What time zone am I in?')] });
  assertEq(a.h.get('x-semcache'), 'miss');
  assertEq(b.h.get('x-semcache'), 'miss');
  await settle();
  const c = await chat({ model: m, messages: [...h1, ...user('What time zone am I in?')] });
  assertEq(c.h.get('x-semcache'), 'hit-exact');
  assertEq(c.content, a.content);
  assertEq(calls() - before, 2);
});

test('a later turn (a context with nothing stored) misses, is stored after the answer, and a paraphrase hits', async () => {
  // The lookup skips the embedding in an empty partition; the write-back
  // embeds the prompt itself, so the entry is searchable all the same.
  const m = model();
  const before = calls();
  const parts = async () => (await fetch(`${srv.url}/stats`).then((r) => r.json())).cache.index_partitions;
  const p0 = await parts();
  const h = [{ role: 'user', content: 'I use the web app.' }, { role: 'assistant', content: 'Noted.' }];
  const a = await chat({ model: m, messages: [...h, ...user('How do I reset my account password?')] });
  assertEq(a.h.get('x-semcache'), 'miss');
  await settle();
  assertEq(await parts(), p0 + 1, 'a partition of its own');
  const metrics = await fetch(`${srv.url}/metrics`).then((r) => r.text());
  assert(new RegExp(`^semcached_index_partitions ${p0 + 1}$`, 'm').test(metrics), 'the gauge in /metrics');
  const b = await chat({ model: m, messages: [...h, ...user('How do I reset my account password please?')] },
    { 'X-Semcache-Threshold': '0.6' });
  assertEq(b.h.get('x-semcache'), 'hit-semantic');
  assertEq(b.content, a.content);
  const h2 = [{ role: 'user', content: 'I use the phone app.' }, { role: 'assistant', content: 'Noted.' }];
  const c = await chat({ model: m, messages: [...h2, ...user('How do I reset my account password please?')] },
    { 'X-Semcache-Threshold': '0.6' });
  assertEq(c.h.get('x-semcache'), 'miss');
  assertEq(calls() - before, 2);
});

test('different model or temperature -> miss', async () => {
  const m = model(), m2 = model();
  const before = calls();
  const q = user('Name three primary colours');
  assertEq((await chat({ model: m, messages: q, temperature: 0 })).h.get('x-semcache'), 'miss');
  assertEq((await chat({ model: m2, messages: q, temperature: 0 })).h.get('x-semcache'), 'miss');
  assertEq((await chat({ model: m, messages: q, temperature: 0.7 })).h.get('x-semcache'), 'miss');
  await settle();
  assertEq((await chat({ model: m, messages: q, temperature: 0 })).h.get('x-semcache'), 'hit-exact');
  assertEq((await chat({ model: m, messages: q, temperature: 0, max_tokens: 5 })).h.get('x-semcache'), 'miss');
  // Fields that do not change the answer (user, stream_options) share the entry.
  assertEq((await chat({ model: m, messages: q, temperature: 0, user: 'someone' })).h.get('x-semcache'), 'hit-exact');
  assertEq(calls() - before, 4);
});

/* ------------------------------------------------------------------ */
/* Controls                                                            */
/* ------------------------------------------------------------------ */

test('Cache-Control: no-store -> answer not stored', async () => {
  const m = model();
  const before = calls();
  const q = user('Tell me a secret');
  const a = await chat({ model: m, messages: q }, { 'Cache-Control': 'no-store' });
  assertEq(a.h.get('x-semcache'), 'miss');
  await settle();
  const b = await chat({ model: m, messages: q });
  assertEq(b.h.get('x-semcache'), 'miss', 'nothing was stored');
  assert(a.content !== b.content, 'fresh answer');
  assertEq(calls() - before, 2);
  // no-store does not stop a lookup: the entry b stored is served.
  await settle();
  const c = await chat({ model: m, messages: q }, { 'Cache-Control': 'no-store' });
  assertEq(c.h.get('x-semcache'), 'hit-exact');
  assertEq(c.content, b.content);
  assertEq(calls() - before, 2);
});

test('Cache-Control: no-cache -> lookup skipped but the answer is stored', async () => {
  const m = model();
  const before = calls();
  const q = user('What is two plus two?');
  const a = await chat({ model: m, messages: q });
  const b = await chat({ model: m, messages: q }, { 'Cache-Control': 'no-cache' });
  assertEq(b.h.get('x-semcache'), 'miss', 'lookup skipped');
  assert(a.content !== b.content, 'fresh answer');
  assertEq(calls() - before, 2);
  await settle();
  const c = await chat({ model: m, messages: q });
  assertEq(c.h.get('x-semcache'), 'hit-exact');
  assertEq(c.content, b.content, 'the no-cache answer replaced the old one');
  assertEq(calls() - before, 2);
});

test('X-Semcache-Namespace isolates entries', async () => {
  const m = model();
  const before = calls();
  const q = user('Which namespace am I in?');
  const a = await chat({ model: m, messages: q }, { 'X-Semcache-Namespace': 'ns-a' });
  const b = await chat({ model: m, messages: q }, { 'X-Semcache-Namespace': 'ns-b' });
  const d = await chat({ model: m, messages: q });
  assertEq(a.h.get('x-semcache'), 'miss');
  assertEq(b.h.get('x-semcache'), 'miss');
  assertEq(d.h.get('x-semcache'), 'miss', 'default namespace is separate');
  await settle();
  const a2 = await chat({ model: m, messages: q }, { 'X-Semcache-Namespace': 'ns-a' });
  assertEq(a2.h.get('x-semcache'), 'hit-exact');
  assertEq(a2.content, a.content);
  assertEq(calls() - before, 3);
  assertEq(await statusOf(chat({ model: m, messages: q }, { 'X-Semcache-Namespace': 'bad ns!' })), 400);
  assertEq(calls() - before, 3);
});

test('X-Semcache-TTL 1 -> expired after 2 s', async () => {
  const m = model();
  const before = calls();
  const q = user('A short-lived fact');
  // Store just before a whole second: the entry must still live a full
  // second, although expiry is kept in whole seconds.
  while (Date.now() % 1000 < 800 || Date.now() % 1000 > 900) await sleep(10);
  const t0 = Date.now();
  await chat({ model: m, messages: q }, { 'X-Semcache-TTL': '1' });
  await sleep(Math.max(0, 350 - (Date.now() - t0)));
  assertEq((await chat({ model: m, messages: q })).h.get('x-semcache'), 'hit-exact', 'alive 350 ms later');
  await sleep(2100);
  assertEq((await chat({ model: m, messages: q })).h.get('x-semcache'), 'miss', 'expired');
  assertEq(calls() - before, 2);
  assertEq(await statusOf(chat({ model: m, messages: q }, { 'X-Semcache-TTL': 'soon' })), 400);
});

/* ------------------------------------------------------------------ */
/* Streaming                                                           */
/* ------------------------------------------------------------------ */

test('streamed miss relayed chunk by chunk, then served to a non-streamed request', async () => {
  const m = model();
  const before = calls();
  const q = user('Stream me a short story');
  const s = await chatStream({ model: m, messages: q });
  assertEq(s.h.get('x-semcache'), 'miss');
  assert(s.chunks.length >= 4, `chunks: ${s.chunks.length}`);
  assert(/^echo: Stream me a short story #\d+$/.test(s.content), s.content);
  assert(s.chunks.every((c) => c.choices.length > 0), 'no usage chunk unless asked');
  await settle();
  const b = await chat({ model: m, messages: q });
  assertEq(b.h.get('x-semcache'), 'hit-exact');
  assertEq(b.content, s.content);
  assertEq(b.data.object, 'chat.completion');
  assert(b.data.usage && b.data.usage.completion_tokens > 0, 'usage kept from the stream');
  const s2 = await chatStream({ model: m, messages: q });
  assertEq(s2.h.get('x-semcache'), 'hit-exact');
  assertEq(s2.content, s.content);
  assertEq(calls() - before, 1);
});

test('non-streamed entry replayed as a stream through the SDK iterator', async () => {
  const m = model();
  const before = calls();
  const q = user('Give me a non streamed answer');
  const a = await chat({ model: m, messages: q });
  await settle();
  const s = await chatStream({ model: m, messages: q });
  assertEq(s.h.get('x-semcache'), 'hit-exact');
  assertEq(s.content, a.content);
  assert(s.chunks.every((c) => c.object === 'chat.completion.chunk'), 'chunk objects');
  assertEq(s.chunks[s.chunks.length - 1].choices[0].finish_reason, 'stop');
  assertEq(calls() - before, 1);
});

test('stream_options.include_usage respected on misses and hits', async () => {
  const m = model();
  const q = user('Usage please');
  const a = await chatStream({ model: m, messages: q, stream_options: { include_usage: true } });
  assertEq(a.h.get('x-semcache'), 'miss');
  const ua = a.chunks.filter((c) => c.usage);
  assertEq(ua.length, 1, 'one usage chunk on the miss');
  assertEq(a.chunks[a.chunks.length - 1].choices.length, 0, 'usage chunk last with no choices');
  await settle();
  const b = await chatStream({ model: m, messages: q, stream_options: { include_usage: true } });
  assertEq(b.h.get('x-semcache'), 'hit-exact');
  const ub = b.chunks.filter((c) => c.usage);
  assertEq(ub.length, 1, 'one usage chunk on the hit');
  assertEq(JSON.stringify(ub[0].usage), JSON.stringify(ua[0].usage), 'same usage');
  const c = await chatStream({ model: m, messages: q });
  assertEq(c.h.get('x-semcache'), 'hit-exact');
  assertEq(c.chunks.filter((x) => x.usage).length, 0, 'no usage chunk when not asked');
  // A miss without include_usage: semcached asks upstream for usage but must not relay it.
  const m2 = model();
  const d = await chatStream({ model: m2, messages: q });
  assertEq(d.chunks.filter((x) => x.usage || x.choices.length === 0).length, 0, 'usage chunk not relayed');
  assertEq(mock.calls().last_request.body.stream_options.include_usage, true, 'usage requested upstream');
});

test('non-ASCII prompts and answers survive streaming, storing and replay', async () => {
  const m = model();
  const before = calls();
  const q = user('¿Qué tal? 日本語のテキスト 😀 naïve café');
  const s = await chatStream({ model: m, messages: q });
  assertEq(s.content.replace(/ #\d+$/, ''), 'echo: ¿Qué tal? 日本語のテキスト 😀 naïve café');
  await settle();
  const a = await chat({ model: m, messages: q });
  assertEq(a.h.get('x-semcache'), 'hit-exact');
  assertEq(a.content, s.content);
  const s2 = await chatStream({ model: m, messages: q });
  assertEq(s2.content, s.content);
  assertEq(calls() - before, 1);
});

/* ------------------------------------------------------------------ */
/* Upstream errors                                                     */
/* ------------------------------------------------------------------ */

test('upstream 400 relayed and not cached', async () => {
  const m = model();
  const before = calls();
  const q = user('This request is rejected');
  mock.plan(['status:400']);
  const e = await errOf(chat({ model: m, messages: q }));
  assertEq(e.status, 400);
  assertEq(e.error && e.error.message, 'mock fault 400', 'upstream error body relayed');
  assertEq(calls() - before, 1, 'a 400 is not retried');
  const ok = await chat({ model: m, messages: q });
  assertEq(ok.h.get('x-semcache'), 'miss', 'the error was not stored');
  assertEq(calls() - before, 2);
  // A streamed request that the upstream rejects gets the JSON error too.
  mock.plan(['status:400']);
  const es = await errOf(chatStream({ model: m, messages: user('rejected stream') }));
  assertEq(es.status, 400);
  assertEq(es.error && es.error.message, 'mock fault 400');
  assertEq(calls() - before, 3);
});

test('upstream 429 after retries -> 429 to the client', async () => {
  const m = model();
  const before = calls();
  mock.plan(['429:0', '429:0', '429:0']);
  const e = await errOf(chat({ model: m, messages: user('Rate limited') }));
  assertEq(e.status, 429);
  assertEq(calls() - before, 3, '1 + 2 retries');
  const ok = await chat({ model: m, messages: user('Rate limited') });
  assertEq(ok.h.get('x-semcache'), 'miss');
});

// Regression: the 429 relayed after the upstream asked to wait longer than
// the route waits (Retry-After over 10 s) dropped the Retry-After, so clients
// retried at once (route.h: send res->retry_after_ms as Retry-After).
test('upstream 429 with a long Retry-After -> 429 to the client with Retry-After', async () => {
  const s2 = await startServer({ args: ['--upstream', mock.url] });   /* its own breaker */
  try {
    mock.plan(['429:30']);
    const r = await json(`${s2.url}/v1/chat/completions`, { model: model(), messages: user('Rate limited for long') });
    assertEq(r.status, 429, r.text);
    assertEq(r.headers.get('retry-after'), '30');
    mock.plan(['429:30']);
    const p = await json(`${s2.url}/v1/models`, undefined, { method: 'GET' });
    assertEq(p.status, 429, p.text);
    assertEq(p.headers.get('retry-after'), '30', 'pass-through too');
  } finally {
    await stopServer(s2);
  }
});

test('upstream 500 -> retried, then 502 naming what was tried', async () => {
  const m = model();
  const before = calls();
  mock.plan(['500', '500', '500']);
  const e = await errOf(chat({ model: m, messages: user('Server error please') }));
  assertEq(e.status, 502);
  assertEq(calls() - before, 3, '1 + 2 retries');
  const msg = e.error && e.error.message || '';
  assert(msg.includes('default') && msg.includes('500'), `message names the upstream and status: ${msg}`);
  assertEq(e.headers && e.headers['x-semcache'], 'miss', 'an upstream failure still says X-Semcache');
  assertEq(e.error.type, 'upstream_error');
  // A 500 then success through the plan: retried transparently, stored.
  mock.plan(['500', null]);
  const ok = await chat({ model: m, messages: user('Server error once') });
  assertEq(ok.h.get('x-semcache'), 'miss');
  assertEq(calls() - before, 5);
  await settle();
  assertEq((await chat({ model: m, messages: user('Server error once') })).h.get('x-semcache'), 'hit-exact');
});

test('hang -> 504 (first-byte timeout, no retries)', async () => {
  const mock2 = await mockUpstream.start({ port: 0, name: 'hangs' });
  const s2 = await startServer({ args: ['--upstream', mock2.url, '--first-byte-timeout-ms', '500', '--retries', '0'] });
  try {
    const c2 = mkClient(s2.url);
    const t0 = Date.now();
    mock2.plan(['hang']);
    const e = await errOf(chat({ model: 'gpt-hang', messages: user('hang on') }, {}, c2));
    const dt = Date.now() - t0;
    assertEq(e.status, 504);
    assertEq(e.headers['x-semcache'], 'miss');
    assertEq(e.error.type, 'timeout_error');
    assert(dt >= 450 && dt < 5000, `answered after ${dt} ms`);
    assertEq(mock2.calls().total, 1);
    const ok = await chat({ model: 'gpt-hang', messages: user('hang on') }, {}, c2);
    assertEq(ok.h.get('x-semcache'), 'miss', 'nothing stored');
    await health(s2);
  } finally {
    await stopServer(s2);
    await mock2.close();
  }
});

test('truncated stream -> error event / incomplete stream, nothing stored', async () => {
  const m = model();
  const before = calls();
  const q = user('This stream will be cut short by the upstream');
  mock.plan(['truncate']);
  const e = await errOf(chatStream({ model: m, messages: q }));
  assert(e, 'the SDK saw an error');
  assertEq(calls() - before, 1, 'a started stream is not retried');
  await settle();
  const ok = await chat({ model: m, messages: q });
  assertEq(ok.h.get('x-semcache'), 'miss', 'the truncated stream was not stored');
  assertEq(calls() - before, 2);
  await health();
});

test('non-streamed truncated or invalid JSON answer is retried, never stored', async () => {
  const m = model();
  const before = calls();
  mock.plan(['badjson', 'truncate', null]);
  const a = await chat({ model: m, messages: user('bad json first') });
  assertEq(a.h.get('x-semcache'), 'miss');
  assertEq(calls() - before, 3);
  assert(/^echo: bad json first #\d+$/.test(a.content), a.content);
});

// Regression: a gateway's HTML page with status 200 was relayed as a 200
// "application/json" answer and cached, then served as an exact hit.
test('a 200 that is not JSON (an HTML page) is retried like a failure, never relayed or stored', async () => {
  const m = model();
  const before = calls();
  mock.plan(['ctype:text/html', null]);
  const a = await chat({ model: m, messages: user('html first') });
  assertEq(a.h.get('x-semcache'), 'miss');
  assertEq(calls() - before, 2, 'retried');
  assert(/^echo: html first #\d+$/.test(a.content), a.content);
  mock.plan(['ctype:text/html', 'ctype:text/html', 'ctype:text/html']);
  const e = await errOf(chat({ model: m, messages: user('html always') }));
  assertEq(e.status, 502, 'every attempt was HTML');
  assert(/not JSON/.test(e.error && e.error.message), e.error && e.error.message);
  mock.plan([]);
  await settle();
  const again = await chat({ model: m, messages: user('html always') });
  assertEq(again.h.get('x-semcache'), 'miss', 'the HTML page was not stored');
});

/* ------------------------------------------------------------------ */
/* Single-flight and client disconnects                                */
/* ------------------------------------------------------------------ */

test('single-flight: 5 concurrent identical misses make one upstream call', async () => {
  const m = model();
  const before = calls();
  const q = user('Everyone asks this at once');
  mock.plan(['slow:300']);
  const rs = await Promise.all(Array.from({ length: 5 }, () => chat({ model: m, messages: q })));
  assertEq(calls() - before, 1, 'one upstream call');
  for (const r of rs) assertEq(r.content, rs[0].content, 'same content');
  const leaders = rs.filter((r) => r.h.get('x-semcache') === 'miss' && r.h.get('x-semcache-coalesced') === null);
  assertEq(leaders.length, 1, 'one leader');
  // The others waited on it (or, on a very slow machine, arrived after it was stored).
  assert(rs.every((r) => r === leaders[0] || r.h.get('x-semcache-coalesced') === '1' || r.h.get('x-semcache') === 'hit-exact'),
    rs.map((r) => `${r.h.get('x-semcache')}/${r.h.get('x-semcache-coalesced')}`).join(' '));
});

test('single-flight with streams: waiters get the same content', async () => {
  const m = model();
  const before = calls();
  const q = user('Streaming crowd question');
  mock.plan(['slow:300']);
  const rs = await Promise.all([chatStream({ model: m, messages: q }), chatStream({ model: m, messages: q }),
    chat({ model: m, messages: q })]);
  assertEq(calls() - before, 1);
  assertEq(rs[1].content, rs[0].content);
  assertEq(rs[2].content, rs[0].content);
});

test('client disconnect mid-stream cancels the upstream transfer', async () => {
  const m = model();
  const before = calls();
  const abandonedLines = () => fs.readFileSync(accessLog, 'utf8').split('\n')
    .filter((l) => / 200 .*ns=default outcome=error/.test(l)).length;
  const abandoned0 = abandonedLines();
  const ac = new AbortController();
  mock.plan(['slowstream:200']);
  const q = user('one two three four five six seven eight nine ten eleven twelve');
  const { data: stream } = await client.chat.completions.create({ model: m, messages: q, stream: true },
    { signal: ac.signal }).withResponse();
  let got = 0;
  const t0 = Date.now();
  try {
    for await (const ch of stream) { got++; if (got === 2) ac.abort(); }
  } catch (_) { /* aborted */ }
  assert(got >= 2, `chunks before abort: ${got}`);
  // The mock keeps writing every 200 ms while its peer is there; semcached
  // must close its upstream socket soon after the client went away.
  const deadline = Date.now() + 3000;
  let closed = false;
  while (Date.now() < deadline) {
    const st = await fetch(`${srv.url}/stats`).then((r) => r.json());
    const up = (st.upstreams || []).find((u) => u.name === 'default');
    if (up && up.in_flight === 0) { closed = true; break; }
    await sleep(50);
  }
  assert(closed, 'upstream call still in flight after the client left');
  assert(Date.now() - t0 < 2500, `cancel took ${Date.now() - t0} ms (the full stream is ~3 s)`);
  assertEq(calls() - before, 1);
  await settle();
  const again = await chat({ model: m, messages: q });
  assertEq(again.h.get('x-semcache'), 'miss', 'the cut stream was not stored');
  await health();
  assertEq(abandonedLines() - abandoned0, 1, 'the abandoned stream has an access-log line with its outcome');
});

test('a leader leaving mid-stream does not cancel the call a waiter shares', async () => {
  const m = model();
  const before = calls();
  const q = user('alpha beta gamma delta epsilon zeta eta theta iota kappa');
  mock.plan(['slowstream:150']);
  const ac = new AbortController();
  const leader = (async () => {
    const { data } = await client.chat.completions.create({ model: m, messages: q, stream: true },
      { signal: ac.signal }).withResponse();
    let n = 0;
    try { for await (const _ of data) { if (++n === 2) ac.abort(); } } catch (_) { /* aborted */ }
    return n;
  })();
  await settle();
  const waiter = chat({ model: m, messages: q });
  assert((await leader) >= 2, 'leader read two chunks');
  const w = await waiter;
  assertEq(w.h.get('x-semcache-coalesced'), '1', 'the waiter joined the call');
  assert(/^echo: alpha beta .* kappa #\d+$/.test(w.content), `complete answer: ${w.content}`);
  assertEq(calls() - before, 1);
  await settle();
  const again = await chat({ model: m, messages: q });
  assertEq(again.h.get('x-semcache'), 'hit-exact', 'the completed stream was stored');
  assertEq(again.content, w.content);
});

// Regression: the upstream call was cancelled only when its leader left
// with no waiter queued, even if every queued waiter had already left (or
// the leader left first and then the last waiter): the call then ran to its
// end for nobody.
test('the last client of a shared call leaving cancels it, whoever leaves last', async () => {
  const inFlight = async () => {
    const st = await fetch(`${srv.url}/stats`).then((r) => r.json());
    return ((st.upstreams || []).find((u) => u.name === 'default') || {}).in_flight;
  };
  for (const leaderFirst of [false, true]) {
    const m = model();
    const before = calls();
    const q = user('one two three four five six seven eight nine ten eleven twelve thirteen fourteen');
    mock.plan(['slowstream:200']);
    const acL = new AbortController(), acW = new AbortController();
    let leaderChunks = 0;
    const leader = (async () => {
      const { data } = await client.chat.completions.create({ model: m, messages: q, stream: true },
        { signal: acL.signal }).withResponse();
      try { for await (const _ of data) leaderChunks++; } catch (_) { /* aborted */ }
    })();
    await settle();
    // The waiter (non-streamed: nothing is written to it until the end) must
    // reset its socket to be noticed: a plain FIN reads as a half-close.
    const wsock = net.connect(srv.port, '127.0.0.1');
    wsock.on('error', () => {});
    const wbody = JSON.stringify({ model: m, messages: q });
    wsock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(wbody)}\r\n\r\n${wbody}`);
    acW.signal.addEventListener('abort', () => wsock.resetAndDestroy());
    const waiter = new Promise((r) => wsock.on('close', r));
    const t0 = Date.now();
    await sleep(200);
    (leaderFirst ? acL : acW).abort();
    await sleep(200);
    (leaderFirst ? acW : acL).abort();
    await Promise.all([leader, waiter]);
    let n = await inFlight();
    while (n !== 0 && Date.now() - t0 < 2000) { await sleep(50); n = await inFlight(); }
    assertEq(n, 0, `upstream call still in flight after both clients left (leader first: ${leaderFirst})`);
    assert(Date.now() - t0 < 2000, `cancel took ${Date.now() - t0} ms (the full stream is ~3 s)`);
    assertEq(calls() - before, 1, 'one shared call');
  }
  await health();
});

// Regression: after a client's FIN (a half-close: it still gets its answer)
// semcached stopped reading the socket, so a reset that followed went
// unnoticed and the upstream call ran to its end for nobody.
test('a half-closed client that then resets is gone: its upstream call is cancelled', async () => {
  const inFlight = async () => {
    const st = await fetch(`${srv.url}/stats`).then((r) => r.json());
    return ((st.upstreams || []).find((u) => u.name === 'default') || {}).in_flight;
  };
  const m = model();
  const before = calls();
  const q = user('half closed and then reset');
  const body = JSON.stringify({ model: m, messages: q });
  mock.plan(['slow:2500']);
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.end(`POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  await sleep(400);
  assertEq(await inFlight(), 1, 'a half-closed client is still answered');
  sock.resetAndDestroy();
  const t0 = Date.now();
  let n = await inFlight();
  while (n !== 0 && Date.now() - t0 < 1800) { await sleep(50); n = await inFlight(); }
  assertEq(n, 0, 'upstream call still in flight after the client reset');
  assertEq(calls() - before, 1);
  await sleep(2500);   // past the upstream's answer: nothing was stored
  const again = await chat({ model: m, messages: q });
  assertEq(again.h.get('x-semcache'), 'miss', 'the abandoned answer was not stored');
  await health();
});

test('uncacheable requests bypass the cache (n=2, last turn not user, no-cache + no-store)', async () => {
  const m = model();
  const before = calls();
  const cases = [
    [{ model: m, messages: user('two answers please'), n: 2 }, {}],
    [{ model: m, messages: [...user('hi'), { role: 'assistant', content: 'hello' }] }, {}],
    [{ model: m, messages: user('fresh and private') }, { 'Cache-Control': 'no-cache, no-store' }],
  ];
  for (let round = 0; round < 2; round++) {
    for (const [body, headers] of cases) {
      const r = await chat(body, headers);
      assertEq(r.h.get('x-semcache'), 'bypass', JSON.stringify(body));
    }
    await settle();
  }
  assertEq(calls() - before, 6, 'every one went upstream');
  // Legacy completions with several prompts: one answer per prompt, not cached.
  for (let round = 0; round < 2; round++) {
    const r = await client.completions.create({ model: m, prompt: ['first prompt', 'second prompt'] }).withResponse();
    assertEq(r.response.headers.get('x-semcache'), 'bypass');
  }
  assertEq(calls() - before, 8);
});

test('upstream key from the environment; the client key is never forwarded', async () => {
  const before = calls();
  const s2 = await startServer({ args: ['--upstream', mock.url, '--upstream-key-env', 'SC_TEST_UP_KEY'],
    env: { SC_TEST_UP_KEY: 'sk-from-env' } });
  try {
    const c2 = mkClient(s2.url);
    await chat({ model: 'gpt-key', messages: user('whose key?') }, { 'X-Api-Key': 'client-secret' }, c2);
    await c2.models.list();
    const reqs = mock.calls().requests.slice(-(calls() - before));
    assertEq(reqs.length, 2);
    for (const r of reqs) {
      assertEq(r.headers.authorization, 'Bearer sk-from-env', r.path);
      assert(!JSON.stringify(r.headers).includes('client-secret'), 'client key leaked');
    }
  } finally {
    await stopServer(s2);
  }
});

test('OpenAI-Organization/Project/Beta are forwarded upstream, other client headers are not', async () => {
  const before = calls();
  const h = { 'OpenAI-Organization': 'org-test', 'OpenAI-Project': 'proj-test', 'OpenAI-Beta': 'assistants=v2',
    'X-Private': 'do-not-forward' };
  await chat({ model: model(), messages: user('forward my org header') }, h);
  await client.models.list({ headers: h });
  const reqs = mock.calls().requests.slice(-(calls() - before));
  assertEq(reqs.length, 2);
  for (const r of reqs) {
    assertEq(r.headers['openai-organization'], 'org-test', r.path);
    assertEq(r.headers['openai-project'], 'proj-test', r.path);
    assertEq(r.headers['openai-beta'], 'assistants=v2', r.path);
    assertEq(r.headers['x-private'], undefined, r.path);
  }
});

test('upstream stalls mid-stream (idle timeout) or refuses connections -> errors, nothing stored', async () => {
  const net2 = require('node:net');
  const closedPort = await new Promise((r) => { const x = net2.createServer().listen(0, '127.0.0.1', () => { const p = x.address().port; x.close(() => r(p)); }); });
  const s2 = await startServer({ args: ['--upstream', mock.url, '--upstream-idle-timeout-ms', '500', '--retries', '0',
    '--upstream-def', `dead http://127.0.0.1:${closedPort} -`, '--route', 'gpt-dead dead'] });
  try {
    const c2 = mkClient(s2.url);
    const before = calls();
    const q = user('one two three four five six');
    mock.plan(['slowstream:1500']);
    const t0 = Date.now();
    const e = await errOf(chatStream({ model: 'gpt-idle', messages: q }, {}, c2));
    assert(e, 'stream error seen');
    assert(Date.now() - t0 < 4000, `cut after ${Date.now() - t0} ms`);
    await settle();
    const ok = await chat({ model: 'gpt-idle', messages: q }, {}, c2);
    assertEq(ok.h.get('x-semcache'), 'miss', 'the stalled stream was not stored');
    assertEq(calls() - before, 2);
    const d = await errOf(chat({ model: 'gpt-dead', messages: q }, {}, c2));
    assertEq(d.status, 502);
    assert(/dead/.test(d.error && d.error.message), `names the upstream: ${d.error && d.error.message}`);
    assertEq(calls() - before, 2);
    await health(s2);
  } finally {
    await stopServer(s2);
  }
});

test('a burst of mixed concurrent traffic: every answer right, one call per distinct miss', async () => {
  const m = model();
  const before = calls();
  mock.plan(Array.from({ length: 30 }, () => 'slow:100'));
  const jobs = [];
  // 10 identical (one call), 10 distinct (ten calls), 10 distinct streams (ten calls).
  for (let i = 0; i < 10; i++) jobs.push(chat({ model: m, messages: user('burst shared') }).then((r) => ['shared', r.content]));
  for (let i = 0; i < 10; i++) jobs.push(chat({ model: m, messages: user(`burst distinct ${i}`) }).then((r) => [`d${i}`, r.content]));
  for (let i = 0; i < 10; i++) jobs.push(chatStream({ model: m, messages: user(`burst stream ${i}`) }).then((r) => [`s${i}`, r.content]));
  // 5 clients that give up at once, 5 bad requests.
  for (let i = 0; i < 5; i++) {
    const ac = new AbortController();
    jobs.push(client.chat.completions.create({ model: m, messages: user(`burst abandoned ${i}`) }, { signal: ac.signal })
      .then(() => ['abandoned', 'answered'], () => ['abandoned', 'aborted']));
    setTimeout(() => ac.abort(), 20);
  }
  for (let i = 0; i < 5; i++) jobs.push(post('{"model":"x","messages":[').then((r) => ['bad', r.status]));
  const out = await Promise.all(jobs);
  const shared = out.filter(([k]) => k === 'shared').map(([, c]) => c);
  assert(shared.every((c) => c === shared[0]) && /^echo: burst shared #\d+$/.test(shared[0]), 'shared answers');
  for (const [k, c] of out) {
    if (/^d\d/.test(k)) assert(new RegExp(`^echo: burst distinct ${k.slice(1)} #\\d+$`).test(c), `${k}: ${c}`);
    if (/^s\d/.test(k)) assert(new RegExp(`^echo: burst stream ${k.slice(1)} #\\d+$`).test(c), `${k}: ${c}`);
    if (k === 'bad') assertEq(c, 400);
  }
  await sleep(500);
  const n = calls() - before;
  // 21 answered misses, plus however many abandoned calls reached the mock before they were cancelled.
  assert(n >= 21 && n <= 26, `upstream calls: ${n}`);
  mock.reset();   // drops the unused planned faults (later tests count from their own start)
  await health();
  // Everything answered was stored; nothing abandoned was.
  await settle();
  const again = await chat({ model: m, messages: user('burst distinct 3') });
  assertEq(again.h.get('x-semcache'), 'hit-exact');
  const st = await chatStream({ model: m, messages: user('burst stream 7') });
  assertEq(st.h.get('x-semcache'), 'hit-exact');
});

test('a waiter on a streamed tool-call answer (not storable) still gets an answer', async () => {
  // A tiny upstream answering with a tool call, 300 ms late, as SSE or JSON.
  const http = require('node:http');
  let n = 0;
  const up = http.createServer((req, res) => {
    let b = '';
    req.on('data', (d) => { b += d; });
    req.on('end', async () => {
      n++;
      const body = JSON.parse(b);
      await sleep(300);
      const base = { id: `chatcmpl-tool-${n}`, created: 1700000000, model: body.model };
      const tc = { index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } };
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ...base, object: 'chat.completion', usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
          choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [tc] }, finish_reason: 'tool_calls' }] }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const ev = (o) => res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', ...o })}\n\n`);
      ev({ choices: [{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [tc] }, finish_reason: null }] });
      ev({ choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] });
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  const s2 = await startServer({ args: ['--upstream', `http://127.0.0.1:${up.address().port}`] });
  try {
    const c2 = mkClient(s2.url);
    const body = { model: 'gpt-tools', messages: user('weather in Oslo?'),
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] };
    const [st, w] = await Promise.all([chatStream(body, {}, c2),
      (async () => { await sleep(100); return c2.chat.completions.create(body).withResponse(); })()]);
    assert(st.chunks.some((c) => c.choices[0] && c.choices[0].delta.tool_calls), 'leader got the tool call');
    assertEq(w.response.status, 200, 'the waiter was not failed');
    assertEq(w.data.choices[0].message.tool_calls[0].function.name, 'get_weather');
    assertEq(n, 2, 'the waiter made its own call');
    await settle();
    // The waiter's JSON answer was storable: the next ask is a hit with the tool call.
    const h = await c2.chat.completions.create(body).withResponse();
    assertEq(h.response.headers.get('x-semcache'), 'hit-exact');
    assertEq(h.data.choices[0].message.tool_calls[0].function.arguments, '{"city":"Oslo"}');
    assertEq(n, 2);
  } finally {
    await stopServer(s2);
    up.close();
  }
});

// Regression: an answer that could not be queued (past the 64 MB output
// bound: a client that does not read behind pipelined answers, or one huge
// answer) closed the connection from inside sc_http_respond; the close ran
// the proxy's on_abort, which finished the request, and sc_http_respond then
// finished it again (heap use-after-free, a crash).
test('an answer past the output bound closes that client, the server stays up', async () => {
  const http = require('node:http');
  const content = 'z'.repeat(65 << 20);
  const up = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'big', object: 'chat.completion', created: 1, model: 'gpt-huge',
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
    });
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  const s2 = await startServer({ args: ['--upstream', `http://127.0.0.1:${up.address().port}`, '--max-upstream-body', String(128 << 20)] });
  try {
    const r = await json(`${s2.url}/v1/chat/completions`, { model: 'gpt-huge', messages: user('a huge answer please') })
      .catch((e) => ({ status: 0, error: e }));
    assert(r.status !== 200, 'not answered whole');
    await health(s2);
    assertEq(s2.proc.exitCode, null, `still running (stderr: ${s2.stderr().slice(-500)})`);
  } finally {
    await stopServer(s2);
    up.close();
  }
});

/* ------------------------------------------------------------------ */
/* Pass-through                                                        */
/* ------------------------------------------------------------------ */

test('other /v1 paths pass through uncached (X-Semcache: bypass)', async () => {
  const b1 = mock.calls().by_path['/v1/models'] || 0;
  const r1 = await client.models.list().withResponse();
  assertEq(r1.response.headers.get('x-semcache'), 'bypass');
  assert(r1.data.data.some((x) => x.id === 'gpt-4o-mini'), 'models listed');
  await client.models.list();
  assertEq((mock.calls().by_path['/v1/models'] || 0) - b1, 2, 'each call reached the upstream');
  const e1 = mock.calls().by_path['/v1/embeddings'] || 0;
  const r2 = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello'], encoding_format: 'float' }).withResponse();
  assertEq(r2.response.headers.get('x-semcache'), 'bypass');
  assertEq(r2.data.data.length, 1);
  await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello'], encoding_format: 'float' });
  assertEq((mock.calls().by_path['/v1/embeddings'] || 0) - e1, 2);
  // The client's Authorization never reaches the upstream.
  assert(mock.calls().last_request.headers.authorization !== 'Bearer x', 'client key not forwarded');
});

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

const post = (body, headers) => json(`${srv.url}/v1/chat/completions`, body, { headers });

test('malformed JSON -> 400 naming the problem', async () => {
  const before = calls();
  const r = await post('{"model": "x", "messages": [');
  assertEq(r.status, 400);
  assertEq(r.body.error.type, 'invalid_request_error');
  assert(/JSON/i.test(r.body.error.message), r.text);
  const r2 = await post('');
  assertEq(r2.status, 400);
  const r3 = await post('[1,2,3]');
  assertEq(r3.status, 400);
  assertEq(calls() - before, 0);
});

test("missing or empty 'messages' -> 400 naming 'messages'", async () => {
  const before = calls();
  const r = await post({ model: 'gpt-x' });
  assertEq(r.status, 400);
  assert(r.body.error.message.includes('messages'), r.text);
  const r2 = await post({ model: 'gpt-x', messages: [] });
  assertEq(r2.status, 400);
  assert(r2.body.error.message.includes('messages'), r2.text);
  const r3 = await post({ messages: user('hi') });
  assertEq(r3.status, 400);
  assert(r3.body.error.message.includes('model'), r3.text);
  const r4 = await json(`${srv.url}/v1/completions`, { model: 'gpt-x' });
  assertEq(r4.status, 400);
  assert(r4.body.error.message.includes('prompt'), r4.text);
  assertEq(calls() - before, 0);
});

test('wrong types -> 400', async () => {
  const before = calls();
  const cases = [
    [{ model: 'gpt-x', messages: 'hello' }, 'messages'],
    [{ model: 'gpt-x', messages: user('hi'), temperature: 'hot' }, 'temperature'],
    [{ model: 'gpt-x', messages: user('hi'), stream: 'yes' }, 'stream'],
    [{ model: 'gpt-x', messages: user('hi'), max_tokens: 1.5 }, 'max_tokens'],
    [{ model: 42, messages: user('hi') }, 'model'],
    [{ model: 'gpt-x', messages: [{ content: 'no role' }] }, 'role'],
    [{ model: 'gpt-x', messages: [{ role: 'user', content: 7 }] }, 'content'],
  ];
  for (const [body, word] of cases) {
    const r = await post(body);
    assertEq(r.status, 400, JSON.stringify(body));
    assert(r.body && r.body.error && r.body.error.message.includes(word), `${JSON.stringify(body)} -> ${r.text}`);
  }
  assertEq(calls() - before, 0);
});

test('body over --max-body -> 413', async () => {
  const before = calls();
  const r = await post({ model: 'gpt-x', messages: user('x'.repeat(70000)) });
  assertEq(r.status, 413);
  assertEq(r.body.error.code !== undefined, true);
  assertEq(calls() - before, 0);
  await health();
});

test('slowloris, half-closed and pipelined chat requests', async () => {
  const m = model();
  const before = calls();
  const body = JSON.stringify({ model: m, messages: user('pipelined question') });
  const reqText = `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  // Two pipelined on one socket: both answered, in order; the second is a hit.
  const closeText = reqText.replace('Host: a\r\n', 'Host: a\r\nConnection: close\r\n');
  const r = await rawExchange(srv.port, reqText + closeText, { ms: 5000 });
  const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((x) => x[1]);
  assertEq(statuses.join(','), '200,200');
  const outcomes = [...r.data.matchAll(/X-Semcache: (\S+)/gi)].map((x) => x[1]);
  assertEq(outcomes[0], 'miss');
  assert(outcomes[1] === 'hit-exact' || /X-Semcache-Coalesced: 1/i.test(r.data), `second: ${outcomes[1]}`);
  const contents = [...r.data.matchAll(/"content":"([^"]*)"/g)].map((x) => x[1]);
  assertEq(contents.length, 2, 'two answers');
  assertEq(contents[1], contents[0], 'same answer');
  assertEq(calls() - before, 1);
  // Half-closed: the client sends its request and shuts down its side.
  await settle();
  const data = await new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.end(reqText));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => { s.destroy(); resolve(out); }, 5000);
  });
  assert(data.startsWith('HTTP/1.1 200'), data.slice(0, 80));
  assert(/X-Semcache: hit-exact/i.test(data), 'served from the cache');
  // Half-closed after two pipelined requests (a miss, then a hit): both answered, in order.
  const body2 = JSON.stringify({ model: m, messages: user('pipelined then half-closed') });
  const req2 = `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body2)}\r\n\r\n${body2}`;
  const data2 = await new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.end(req2 + reqText));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => { s.destroy(); resolve(out); }, 5000);
  });
  assertEq([...data2.matchAll(/HTTP\/1\.1 (\d+)/g)].map((x) => x[1]).join(','), '200,200', 'two answers');
  assertEq([...data2.matchAll(/X-Semcache: (\S+)/gi)].map((x) => x[1]).join(','), 'miss,hit-exact');
  assert(data2.includes('echo: pipelined then half-closed') && data2.includes('echo: pipelined question'), 'both bodies');
  assertEq(calls() - before, 2);
  // A chunked request body is read like any other.
  const cbody = JSON.stringify({ model: m, messages: user('chunked request body') });
  const half = cbody.length >> 1;
  const chunked = `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
    `${half.toString(16)}\r\n${cbody.slice(0, half)}\r\n${(cbody.length - half).toString(16)}\r\n${cbody.slice(half)}\r\n0\r\n\r\n`;
  const cr = await rawExchange(srv.port, chunked, { ms: 5000 });
  assert(cr.data.startsWith('HTTP/1.1 200') && cr.data.includes('echo: chunked request body'), cr.data.slice(0, 300));
  assertEq(calls() - before, 3);
  // Slowloris: a chat request dribbled too slowly is cut at the idle timeout.
  const slow = await rawExchange(srv.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`.split(''), { ms: 8000, delay: 60 });
  assert(slow.closed, 'slow client closed');
  assert(!slow.data.includes('200 OK'), 'never answered');
  assertEq(calls() - before, 3, 'nothing more went upstream');
  await health();
});

test('streams with Connection: close or a half-closed socket are relayed whole', async () => {
  const m = model();
  const before = calls();
  const body = (q) => JSON.stringify({ model: m, stream: true, messages: user(q) });
  const req = (q, extra = '') => `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n${extra}` +
    `Content-Length: ${Buffer.byteLength(body(q))}\r\n\r\n${body(q)}`;
  const r = await rawExchange(srv.port, req('close after this stream', 'Connection: close\r\n'), { ms: 5000 });
  assert(r.data.startsWith('HTTP/1.1 200'), r.data.slice(0, 80));
  assert(r.data.includes('data: [DONE]') && r.data.endsWith('0\r\n\r\n'), `whole stream: ${JSON.stringify(r.data.slice(-120))}`);
  assert(r.closed, 'closed afterwards');
  const data = await new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.end(req('half closed stream')));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => { s.destroy(); resolve(out); }, 5000);
  });
  assert(data.includes('data: [DONE]'), `half-closed stream whole: ${JSON.stringify(data.slice(-120))}`);
  assertEq(calls() - before, 2);
  // HTTP/1.0 has no chunked encoding: the stream is sent as is, ended by the close.
  const r10 = await rawExchange(srv.port, req('an http 1.0 stream').replace('HTTP/1.1', 'HTTP/1.0'), { ms: 5000 });
  const [head10, body10] = [r10.data.split('\r\n\r\n')[0], r10.data.split('\r\n\r\n').slice(1).join('\r\n\r\n')];
  assert(r10.data.startsWith('HTTP/1.1 200') && !/transfer-encoding/i.test(head10), head10);
  assert(body10.startsWith('data: {') && body10.endsWith('data: [DONE]\n\n'), `unframed body: ${JSON.stringify(body10.slice(0, 60))}...${JSON.stringify(body10.slice(-40))}`);
  assert(r10.closed, 'closed to end the body');
  assertEq(calls() - before, 3);
  await settle();
  // All completed, so all were stored.
  assertEq((await chat({ model: m, messages: user('close after this stream') })).h.get('x-semcache'), 'hit-exact');
  assertEq((await chat({ model: m, messages: user('half closed stream') })).h.get('x-semcache'), 'hit-exact');
});

// Regression: a prompt over the 1 MB text bound was dropped without a word
// (completions: every such prompt got the empty prompt's exact key, so a
// different long prompt was served the first one's answer) or rejected with
// a misleading 400 (chat). Such requests now bypass the cache.
test('prompts over 1 MB bypass the cache: never share an entry, never a 400', async () => {
  const s2 = await startServer({ args: ['--upstream', mock.url, '--verify', 'off'] });
  try {
    const big = (ch) => ch.repeat(1100000);
    const comp = (prompt) => json(`${s2.url}/v1/completions`, { model: 'gpt-bigprompt', prompt });
    const a = await comp(big('a'));
    assertEq(a.status, 200, a.text.slice(0, 200));
    await settle();
    const b = await comp(big('b'));
    assertEq(b.status, 200, b.text.slice(0, 200));
    assert(b.body.choices[0].text.startsWith('echo: bbb'), `second prompt answered with: ${b.body.choices[0].text.slice(0, 20)}`);
    assert(b.headers.get('x-semcache') !== 'hit-exact', 'not an exact hit');
    const c = await json(`${s2.url}/v1/chat/completions`, { model: 'gpt-bigprompt', messages: user(big('c')) });
    assertEq(c.status, 200, c.text.slice(0, 200));
    assert(c.body.choices[0].message.content.startsWith('echo: ccc'), 'chat answered');
  } finally {
    await stopServer(s2);
  }
});

test('SIGTERM lets a stream in progress finish', async () => {
  const s2 = await startServer({ args: ['--upstream', mock.url] });
  const c2 = mkClient(s2.url);
  mock.plan(['slowstream:100']);
  const p = chatStream({ model: 'gpt-term', messages: user('one two three four five six seven eight') }, {}, c2);
  await sleep(300);
  const exited = stopServer(s2, 'SIGTERM');
  const s = await p;
  assert(/^echo: one two three four five six seven eight #\d+$/.test(s.content), `whole answer: ${s.content}`);
  assertEq((await exited).code, 0);
});

test('kept-alive answers announce the idle timeout (Keep-Alive: timeout=N)', async () => {
  // Pooling clients (undici, the openai SDK) then drop an idle connection
  // before semcached closes it, instead of racing a request against the close.
  const r = await fetch(`${srv.url}/healthz`);
  assertEq(r.headers.get('connection'), 'keep-alive');
  assertEq(r.headers.get('keep-alive'), 'timeout=2', '--idle-timeout-ms 2000');
  const c = await rawExchange(srv.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  assert(/\r\nConnection: close\r\n/.test(c.data) && !/Keep-Alive:/i.test(c.data), c.data.slice(0, 200));
});

test('after all of it: healthy, and only good answers were stored', async () => {
  await health();
  const st = await fetch(`${srv.url}/stats`).then((r) => r.json());
  assert(st.cache.entries > 0, 'entries stored');
  // Every chat completion that reached the mock came from a valid request.
  for (const r of mock.calls().requests)
    if (r.path === '/v1/chat/completions') assert(Array.isArray(r.body.messages) && typeof r.body.model === 'string', JSON.stringify(r.body).slice(0, 200));
  assertEq(srv.proc.exitCode, null, 'still running');
});

test('stop', async () => {
  const r = await stopServer(srv, 'SIGTERM');
  assertEq(r.code, 0, `exit code (stderr: ${srv.stderr().slice(-300)})`);
  await mock.close();
});

run();
