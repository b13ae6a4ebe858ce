// Issue 19: a cache that learns from its mistakes. Through the real server
// (semcache-embed, a mock upstream): every served hit carries a request id
// (X-Semcache-Request, /cache/lookup's "request", SEM.GET's fourth
// element); a verdict changes the next decision (a wrong hit never repeats,
// the entry's threshold rises, three wrong ones take it out of semantic
// serving while it stays exact-servable); what was learned survives a
// restart; bad feedback gets a clear 4xx and changes nothing; a user key
// cannot judge another namespace; shadow checks compare a hit with the
// upstream's answer in the background and stop at the day's budget; the
// error budget shows up in /stats and /metrics.
'use strict';
const { createClient } = require('redis');
const { test, run, startServer, stopServer, assert, assertEq, json, sleep } = require('./lib');
const mock = require('./mock_upstream');

let up, srv;
const LOW = { 'x-semcache-threshold': '0.5' };   /* paraphrases hit for sure */

async function chat(content, headers = {}, s = srv) {
  return json(`${s.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content }] },
    { headers });
}
const feedback = (body, headers = {}, s = srv) => json(`${s.url}/cache/feedback`, body, { headers });
const entry = async (id, s = srv) => (await json(`${s.url}/cache/entries/${id}`, undefined, { method: 'GET' })).body;
const stats = async (s = srv) => (await json(`${s.url}/stats`, undefined, { method: 'GET' })).body;
/* Stores an answer the proxy serves (the partition of a plain chat request
 * to gpt-4o-mini), synchronously. */
async function seed(prompt, response, { s = srv, namespace, headers = {} } = {}) {
  const r = await json(`${s.url}/cache/store`, { prompt, response, model: 'gpt-4o-mini', namespace }, { headers });
  assertEq(r.status, 200, r.text);
  return r.body.id;
}
let offId = null;

test('setup: a served hit carries a request id', async () => {
  up = await mock.start({ port: 0, name: 'mock', counter: false });
  srv = await startServer({ embedder: 'semcache-embed', args: ['--upstream', up.url, '--max-error-rate', '0.05'] });
  const miss = await chat('something nobody asked before');
  assertEq(miss.headers.get('x-semcache'), 'miss');
  assertEq(miss.headers.get('x-semcache-request'), null, 'a miss has no request id');
  await seed('How do I reset my password?', 'Use the forgot-password link on the sign-in page.');
  await seed('I forgot my password, how do I reset it?', 'Use the forgot-password link on the sign-in page.');
  const exact = await chat('How do I reset my password?');
  assertEq(exact.headers.get('x-semcache'), 'hit-exact');
  assert(/^[0-9a-f]{16}$/.test(exact.headers.get('x-semcache-request')), 'exact hit id');
  const again = await chat('How do I reset my password?');
  assert(again.headers.get('x-semcache-request') !== exact.headers.get('x-semcache-request'), 'one id per decision');
});

test('a wrong verdict: that prompt is not served that entry again; its threshold rises', async () => {
  const hit = await chat('how can I reset my password', LOW);
  assertEq(hit.headers.get('x-semcache'), 'hit-semantic', hit.text);
  const rid = hit.headers.get('x-semcache-request');
  const id = Number(hit.headers.get('x-semcache-entry'));
  const f = await feedback({ request: rid, correct: false });
  assertEq(f.status, 200, f.text);
  assertEq(f.body.entry, id);
  assertEq(f.body.learned.bad, 1);
  assertEq(f.body.learned.blocked_prompts, 1);
  // raised past the hit's confidence (the header has 4 decimals: two
  // agreeing phrasings with nothing else near score ~0.99998, "1.0000")
  const conf = Number(hit.headers.get('x-semcache-confidence'));
  assert(f.body.learned.threshold > conf - 5e-5 && f.body.learned.threshold <= 1,
    `threshold raised: ${f.body.learned.threshold} vs confidence ${conf}`);
  const next = await chat('how can I reset my password', LOW);
  assert(next.headers.get('x-semcache') !== 'hit-semantic' || next.headers.get('x-semcache-entry') !== String(id),
    `served the same entry again: ${next.headers.get('x-semcache')} ${next.headers.get('x-semcache-entry')}`);
  const e = await entry(id);
  assertEq(e.learned.bad, 1, JSON.stringify(e));
  assertEq(e.learned.semantic, true);
});

test('bad feedback: clear 4xx, nothing changes', async () => {
  const hit = await chat('How do I reset my password?');
  assertEq(hit.headers.get('x-semcache'), 'hit-exact', hit.text);
  const rid = hit.headers.get('x-semcache-request');
  const id = Number(hit.headers.get('x-semcache-entry'));
  const before = (await entry(id)).learned;
  const cases = [
    [{ request: 'ffffffffffffffff', correct: false }, 404, /no served hit/],
    [{ request: rid.slice(1), correct: false }, 400, /'request'/],
    [{ request: 12345, correct: false }, 400, /'request'/],
    [{ request: rid, correct: 'no' }, 400, /'correct'/],
    [{ request: rid }, 400, /'correct'/],
    ['{"request": ', 400, /JSON/],
    ['[1,2]', 400, /JSON object/],
    [{ request: rid, correct: false, pad: 'x'.repeat(10000) }, 413, /too large/],
  ];
  for (const [body, status, re] of cases) {
    const r = await feedback(body);
    assertEq(r.status, status, `${JSON.stringify(body).slice(0, 60)}: ${r.text}`);
    assert(re.test(r.body.error.message), r.text);
  }
  assertEq((await json(`${srv.url}/cache/feedback`, undefined, { method: 'GET' })).status, 405);
  assertEq(JSON.stringify((await entry(id)).learned), JSON.stringify(before), 'unchanged');
  const ok = await feedback({ request: rid, correct: true });
  assertEq(ok.status, 200, ok.text);
  assertEq(ok.body.learned.good, before.good + 1);
  const twice = await feedback({ request: rid, correct: false });
  assertEq(twice.status, 409, twice.text);
  assertEq((await entry(id)).learned.bad, before.bad, 'a second verdict changes nothing');
});

test('three wrong hits take an entry out of semantic serving; exact hits still served', async () => {
  const id = await seed('What is the capital of France?', 'Paris.');
  const semantic = await chat('Which city is the capital of France?', LOW);
  assertEq(semantic.headers.get('x-semcache'), 'hit-semantic', 'served semantically before');
  for (let i = 0; i < 3; i++) {
    const hit = await chat('What is the capital of France?');
    assertEq(hit.headers.get('x-semcache'), 'hit-exact');
    const f = await feedback({ request: hit.headers.get('x-semcache-request'), correct: false });
    assertEq(f.status, 200, f.text);
  }
  offId = id;
  const e = await entry(id);
  assertEq(e.learned.semantic, false, JSON.stringify(e.learned));
  const st = await stats();
  assert(st.learn.entries_off >= 1, JSON.stringify(st.learn));
  const m = await (await fetch(`${srv.url}/metrics`)).text();
  assert(/semcached_entries_semantic_off [1-9]/.test(m), 'metric');
  assert(/semcached_feedback_total\{verdict="bad"\} [4-9]/.test(m), 'feedback metric');
  const other = await chat('What is the capital city of France?', LOW);
  assert(other.headers.get('x-semcache-entry') !== String(id), 'not served semantically');
  const exact = await chat('What is the capital of France?');
  assertEq(exact.headers.get('x-semcache'), 'hit-exact', 'still exact-servable');
});

test('/cache/lookup gives the request id; /stats shows the budget', async () => {
  const r = await json(`${srv.url}/cache/lookup`, { prompt: 'How do I reset my password?', model: 'gpt-4o-mini' });
  assertEq(r.body.hit, true, r.text);
  assert(/^[0-9a-f]{16}$/.test(r.body.request), r.text);
  const bad = await json(`${srv.url}/cache/lookup`, { prompt: 'x', max_error_rate: 0.9 });
  assertEq(bad.status, 400, bad.text);
  const badHdr = await chat('anything at all', { 'x-semcache-max-error-rate': 'lots' });
  assertEq(badHdr.status, 400, badHdr.text);
  assert(/X-Semcache-Max-Error-Rate/.test(badHdr.body.error.message), badHdr.text);
  const st = await stats();
  const ns = st.learn.namespaces.default;
  assert(ns, JSON.stringify(st.learn));
  assertEq(ns.max_error_rate, 0.05);
  assertEq(ns.learned, false, 'not enough evidence yet: the configured threshold');
  assert(ns.verdicts_bad >= 4 && ns.blocked_prompts >= 1 && ns.entries_off >= 1, JSON.stringify(ns));
  assertEq(ns.observations, 1, 'exact hits judged count for the entry, not the calibration');
});

test('restart keeps what was learned', async () => {
  const before = await stats();
  await stopServer(srv);
  srv = await startServer({ embedder: 'semcache-embed', dataDir: srv.dataDir,
    args: ['--upstream', up.url, '--max-error-rate', '0.05'] });
  const after = await stats();
  assertEq(after.learn.entries_off, before.learn.entries_off);
  assertEq(after.learn.blocked_prompts, before.learn.blocked_prompts);
  assertEq(after.learn.namespaces.default.verdicts_bad, before.learn.namespaces.default.verdicts_bad);
  assertEq((await entry(offId)).learned.semantic, false, 'quarantine kept');
  const other = await chat("What's the capital of France?", LOW);
  assert(other.headers.get('x-semcache-entry') !== String(offId), 'not served semantically after the restart');
  /* Request ids do not survive a restart. */
  const r = await feedback({ request: other.headers.get('x-semcache-request') || '0123456789abcdef', correct: false });
  assertEq(r.status, 404, r.text);
});

test('RESP: SEM.GET answers a request id; SEM.FEEDBACK judges it', async () => {
  const c = createClient({ socket: { host: '127.0.0.1', port: srv.respPort, reconnectStrategy: false } });
  c.on('error', () => {});
  await c.connect();
  await c.sendCommand(['SEM.SET', 'resp', 'How do I close my account?', 'Settings, then Close account.']);
  const exact = await c.sendCommand(['SEM.GET', 'resp', 'How do I close my account?']);
  assertEq(exact.length, 4);
  assert(/^[0-9a-f]{16}$/.test(exact[3]), JSON.stringify(exact));
  const memo = await c.sendCommand(['SEM.GET', 'resp', 'How do I close my account?']);
  assert(memo[3] !== exact[3], 'each answer from the memo is its own decision');
  const hit = await c.sendCommand(['SEM.GET', 'resp', 'how can I close my account', 'THRESHOLD', '0.5']);
  assert(Array.isArray(hit) && hit.length === 4, JSON.stringify(hit));
  let err = null;
  try { await c.sendCommand(['SEM.FEEDBACK', 'resp', hit[3], 'MAYBE']); } catch (e) { err = e.message; }
  assert(/GOOD or BAD/.test(err), err);
  try { await c.sendCommand(['SEM.FEEDBACK', 'resp', 'zz', 'BAD']); } catch (e) { err = e.message; }
  assert(/16 hex/.test(err), err);
  try { await c.sendCommand(['SEM.FEEDBACK', 'other', hit[3], 'BAD']); } catch (e) { err = e.message; }
  assert(/NOPERM/.test(err), err);
  assertEq(await c.sendCommand(['SEM.FEEDBACK', 'resp', hit[3], 'BAD']), 'OK');
  const next = await c.sendCommand(['SEM.GET', 'resp', 'how can I close my account', 'THRESHOLD', '0.5']);
  assertEq(next, null, 'the wrong hit does not repeat');
  try { await c.sendCommand(['SEM.GET', 'resp', 'x', 'MAXERROR', '2']); } catch (e) { err = e.message; }
  assert(/MAXERROR/.test(err), err);
  await c.quit();
});

test('a user key judges only its own namespace; an admin any', async () => {
  const KA = 'fb-key-a-0000000001', KB = 'fb-key-b-0000000002', KADM = 'fb-key-admin-000003';
  const s = await startServer({ embedder: 'semcache-embed', args: ['--upstream', up.url,
    '--api-key', `${KA} ns-a user`, '--api-key', `${KB} ns-b user`, '--api-key', `${KADM} ops admin`] });
  const hA = { authorization: `Bearer ${KA}` }, hB = { authorization: `Bearer ${KB}` };
  await seed('How do I reset my password?', 'Use the link.', { s, namespace: 'ns-a', headers: { authorization: `Bearer ${KADM}` } });
  const hit = await chat('How do I reset my password?', hA, s);
  assertEq(hit.headers.get('x-semcache'), 'hit-exact', hit.text);
  const rid = hit.headers.get('x-semcache-request');
  assert(rid, hit.text);
  const byB = await feedback({ request: rid, correct: false }, hB, s);
  assertEq(byB.status, 403, byB.text);
  const noKey = await feedback({ request: rid, correct: false }, {}, s);
  assertEq(noKey.status, 401, noKey.text);
  const byA = await feedback({ request: rid, correct: true }, hA, s);
  assertEq(byA.status, 200, byA.text);
  const hit2 = await chat('How do I reset my password?', hA, s);
  const byAdm = await feedback({ request: hit2.headers.get('x-semcache-request'), correct: true },
    { authorization: `Bearer ${KADM}` }, s);
  assertEq(byAdm.status, 200, byAdm.text);
  assert(!s.stderr().includes(KA) && !s.stderr().includes(KB), 'keys never logged');
  await stopServer(s);
});

test('shadow checks: a hit is checked upstream in the background; the day budget stops them', async () => {
  const s = await startServer({ embedder: 'semcache-embed', args: ['--upstream', up.url, '--shadow-rate', '1',
    '--shadow-budget-usd', '0.000001', '--price', 'gpt-4o-mini 1000 1000'] });
  await seed('What is the capital of Italy?', 'Rome.', { s });
  const calls0 = (await up.calls()).total;
  const hit = await chat("What's the capital of Italy?", LOW, s);
  assertEq(hit.headers.get('x-semcache'), 'hit-semantic', hit.text);
  let st;
  for (let i = 0; i < 100; i++) {
    st = await stats(s);
    if (st.shadow.compared >= 1) break;
    await sleep(50);
  }
  assertEq(st.shadow.started, 1, JSON.stringify(st.shadow));
  assertEq(st.shadow.compared, 1, JSON.stringify(st.shadow));
  assertEq(st.shadow.wrong, 1, 'the mock echoes the prompt, not "Rome.": the answers differ');
  assert(st.shadow.usd_total > 0, 'its cost is counted apart');
  assertEq((await up.calls()).total, calls0 + 1, 'one upstream call');
  const e = await entry(Number(hit.headers.get('x-semcache-entry')), s);
  assertEq(e.learned.bad, 1, JSON.stringify(e.learned));
  /* The day's budget is spent: the next hit is not checked. */
  const hit2 = await chat('Which city is the capital of Italy?', LOW, s);
  if (hit2.headers.get('x-semcache') === 'hit-semantic') {
    await sleep(300);
    st = await stats(s);
    assertEq(st.shadow.started, 1);
    assert(st.shadow.skipped_budget >= 1, JSON.stringify(st.shadow));
    assertEq((await up.calls()).total, calls0 + 1);
  }
  const m = await (await fetch(`${s.url}/metrics`)).text();
  assert(/semcached_checks_total\{source="shadow",result="disagree"\} 1/.test(m), 'metric');
  assert(/semcached_shadow_usd_total 0\.0/.test(m), m.match(/semcached_shadow_usd_total.*/)[0]);
  await stopServer(s);
});

test('no sanitizer reports', async () => {
  const log = srv.stderr();
  assert(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(log), log.slice(0, 2000));
  await stopServer(srv);
  await up.close();
});

run();
