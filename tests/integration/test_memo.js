// The proxy's exact-hit memo (server/memo.c): identical request bytes are
// answered without parsing or reading LMDB, but never after the entry was
// deleted, flushed or expired, never for Cache-Control requests, and every
// memo answer still counts as an exact hit. Proven by the mock's call
// count and the X-Semcache headers.
'use strict';
const { test, run, startServer, sleep, assert, assertEq, json } = require('./lib');
const mockUpstream = require('./mock_upstream');

let mock, srv;
const calls = () => mock.calls().total;

async function ask(body, headers = {}) {
  const r = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, outcome: r.headers.get('x-semcache'), entry: r.headers.get('x-semcache-entry'), text };
}

const body = (q, extra = {}) => ({ model: 'memo-model', messages: [{ role: 'user', content: q }], ...extra });

test('start', async () => {
  mock = await mockUpstream.start({ port: 0, name: 'memo' });
  srv = await startServer({ args: ['--upstream', mock.url] });
});

test('repeated identical requests are exact hits with one upstream call', async () => {
  const b = body('memo question one');
  const first = await ask(b);
  assertEq(first.outcome, 'miss');
  await sleep(300);   /* write-back */
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(await ask(b));
  for (const a of answers) {
    assertEq(a.outcome, 'hit-exact');
    assertEq(a.text, first.text, 'same answer');
  }
  assertEq(calls(), 1, 'upstream calls');
});

test('a deleted entry is never served from the memo', async () => {
  const b = body('memo question two');
  await ask(b);
  await sleep(300);
  const hit = await ask(b);
  const again = await ask(b);   /* memo answer */
  assertEq(again.outcome, 'hit-exact');
  const before = calls();
  const d = await json(`${srv.url}/cache/entries/${hit.entry}`, undefined, { method: 'DELETE' });
  assertEq(d.status, 200);
  const after = await ask(b);
  assertEq(after.outcome, 'miss', 'after delete');
  assertEq(calls(), before + 1);
});

test('a flushed namespace is never served from the memo', async () => {
  const b = body('memo question three');
  const h = { 'x-semcache-namespace': 'memo-ns' };
  await ask(b, h);
  await sleep(300);
  assertEq((await ask(b, h)).outcome, 'hit-exact');
  assertEq((await ask(b, h)).outcome, 'hit-exact');
  const f = await json(`${srv.url}/cache/flush`, { namespace: 'memo-ns' });
  assertEq(f.status, 200);
  const before = calls();
  assertEq((await ask(b, h)).outcome, 'miss', 'after flush');
  assertEq(calls(), before + 1);
});

test('the same bytes in another namespace are not the same answer', async () => {
  const b = body('memo question four');
  await ask(b, { 'x-semcache-namespace': 'memo-a' });
  await sleep(300);
  assertEq((await ask(b, { 'x-semcache-namespace': 'memo-a' })).outcome, 'hit-exact');
  assertEq((await ask(b, { 'x-semcache-namespace': 'memo-b' })).outcome, 'miss');
});

test('an expired entry is never served from the memo', async () => {
  const b = body('memo question five');
  await ask(b, { 'x-semcache-ttl': '1' });
  await sleep(300);
  assertEq((await ask(b)).outcome, 'hit-exact');
  assertEq((await ask(b)).outcome, 'hit-exact');
  await sleep(2200);
  const before = calls();
  assertEq((await ask(b)).outcome, 'miss', 'after expiry');
  assertEq(calls(), before + 1);
});

test('Cache-Control: no-cache skips the memo', async () => {
  const b = body('memo question six');
  await ask(b);
  await sleep(300);
  assertEq((await ask(b)).outcome, 'hit-exact');
  const before = calls();
  const r = await ask(b, { 'cache-control': 'no-cache' });
  assertEq(r.outcome, 'miss');
  assertEq(calls(), before + 1);
});

test('memo answers count as exact hits in /stats', async () => {
  const b = body('memo question seven', { temperature: 0 });
  await ask(b, { 'x-semcache-namespace': 'memo-stats' });
  await sleep(300);
  for (let i = 0; i < 4; i++) await ask(b, { 'x-semcache-namespace': 'memo-stats' });
  const s = await json(`${srv.url}/stats`, undefined, { method: 'GET' });
  const o = s.body.namespaces['memo-stats'].outcomes;
  assertEq(o['hit-exact'], 4);
  assertEq(o.miss, 1);
});

test('a streamed request gets SSE from the memo too', async () => {
  const b = body('memo question eight');
  await ask(b);
  await sleep(300);
  const s1 = await ask({ ...b, stream: true });
  const s2 = await ask({ ...b, stream: true });
  assertEq(s2.outcome, 'hit-exact');
  assert(s2.text.includes('data: [DONE]'), 'SSE');
  assertEq(s2.text, s1.text);
});

test('a bad X-Semcache-Threshold gets its 400 even when the memo holds the answer', async () => {
  const b = body('memo question nine');
  await ask(b);
  await sleep(300);
  assertEq((await ask(b)).outcome, 'hit-exact');
  assertEq((await ask(b)).outcome, 'hit-exact');
  const r = await ask(b, { 'x-semcache-threshold': 'abc' });
  assertEq(r.status, 400);
  assert(r.text.includes('X-Semcache-Threshold'), r.text);
});

test('stop', async () => { await mock.close(); });

run();
