// A hostile tenant: with --api-key users A and B (and an admin), user A
// tries every path to B's data and to admin actions and must be refused
// every time: 401/403 on HTTP, -NOPERM/-ERR on RESP, or an answer that
// holds nothing of B's. Paths: the proxy with B's namespace header, the
// cache admin API (store, lookup, import, flush, entries by id), search,
// embed, stats, metrics, the dashboard's data, RESP AUTH/SELECT/SEM.*/INFO
// with redis-cli and a Redis client library. Afterwards B's entries are all
// still there, and no key appears in the server's log or access log.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { createClient } = require('redis');
const { tmpDir, test, run, startServer, stopServer, assert, assertEq, json, sleep } = require('./lib');
const mock = require('./mock_upstream');

const KEY_A = 'tenant-a-secret-key-1111', KEY_B = 'tenant-b-secret-key-2222', KEY_ADM = 'admin-secret-key-9999';
const B_SECRET = 'the launch date of project nightingale';
let up, srv, logFile, bIds = [];

const hA = { authorization: `Bearer ${KEY_A}` };
const hB = { authorization: `Bearer ${KEY_B}` };
const hAdm = { authorization: `Bearer ${KEY_ADM}` };
const get = (p, headers) => json(`${srv.url}${p}`, undefined, { method: 'GET', headers });
const post = (p, body, headers) => json(`${srv.url}${p}`, body, { headers });
const del = (p, headers) => json(`${srv.url}${p}`, undefined, { method: 'DELETE', headers });
const redisCli = (args) => execFileSync('redis-cli', ['-p', String(srv.respPort), '--no-auth-warning', ...args],
  { encoding: 'utf8' }).trim();

// What only B's entries hold: their answers stored through RESP, the
// namespace name, and their ids.
function noB(r, what) {
  const t = r.text || '';
  assert(!t.includes('March 3') && !t.includes('2.1M') && !t.includes('tenant-b'),
    `${what}: B's data leaked: ${t.slice(0, 200)}`);
  const ids = [];
  try { JSON.stringify(r.body, (k, v) => { if (k === 'id' || k === 'candidate') ids.push(v); return v; }); } catch (_) { /* no body */ }
  for (const id of ids) assert(!bIds.includes(id), `${what}: B's entry ${id} leaked`);
}

async function chat(headers, content) {
  return json(`${srv.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content }] },
    { headers });
}

test('setup: tenants A and B with their own entries', async () => {
  up = await mock.start({ port: 0, name: 'mock', counter: false });
  const dir = tmpDir('sc_tenant_');
  logFile = path.join(dir, 'access.log');
  srv = await startServer({ logLevel: 'debug', args: ['--upstream', up.url, '--access-log', logFile,
    '--api-key', `${KEY_A} tenant-a user`, '--api-key', `${KEY_B} tenant-b user`, '--api-key', `${KEY_ADM} ops admin`] });
  // B's entries: one through the proxy, two through RESP.
  assertEq((await chat(hB, `what is ${B_SECRET}?`)).status, 200, 'B proxy');
  const b = createClient({ socket: { port: srv.respPort }, password: KEY_B });
  b.on('error', () => {});
  await b.connect();
  bIds.push(await b.sendCommand(['SEM.SET', 'tenant-b', `when is ${B_SECRET}`, 'March 3, nightingale']));
  bIds.push(await b.sendCommand(['SEM.SET', 'tenant-b', 'nightingale budget', '2.1M, nightingale']));
  await b.quit();
  await sleep(200);
  const s = await post('/cache/search', { prompt: B_SECRET, k: 50 }, hB);
  assertEq(s.status, 200, s.text);
  bIds = s.body.results.map((e) => e.id);
  assertEq(bIds.length, 3, "B's entries");
  assertEq((await chat(hA, 'hello from A')).status, 200, 'A proxy');
});

test("A through the proxy: B's namespace header is ignored, B's answers never served", async () => {
  let first = true;
  for (const h of [{ ...hA, 'x-semcache-namespace': 'tenant-b' }, hA, { ...hA, 'x-semcache-threshold': '0' }]) {
    for (const q of [`what is ${B_SECRET}?`, `when is ${B_SECRET}`, 'nightingale budget']) {
      const r = await chat(h, q);
      assertEq(r.status, 200, r.text);
      if (first) assertEq(r.headers.get('x-semcache'), 'miss', 'the first time, a miss: not served from B');
      first = false;
      const entry = Number(r.headers.get('x-semcache-entry') || 0);
      assert(!bIds.includes(entry), `served B's entry ${entry}`);
      noB(r, `proxy ${q}`);
    }
  }
});

test('A on the cache admin API: every call is 403, whatever namespace it names', async () => {
  const calls = [
    ['POST', '/cache/store', { namespace: 'tenant-b', prompt: 'x', response: 'poison' }],
    ['POST', '/cache/store', { prompt: 'x', response: 'y' }],
    ['POST', '/cache/lookup', { namespace: 'tenant-b', prompt: `what is ${B_SECRET}?` }],
    ['POST', '/cache/lookup', { prompt: `what is ${B_SECRET}?` }],
    ['POST', '/cache/flush', { namespace: 'tenant-b' }],
    ['POST', '/cache/flush', { namespace: 'tenant-a' }],
    ['POST', '/cache/import', '{"namespace":"tenant-b","prompt":"x","response":"poison"}\n'],
  ];
  for (const [m, p, body] of calls) {
    const r = await post(p, body, hA);
    assertEq(r.status, 403, `${m} ${p} ${JSON.stringify(body)}: ${r.text}`);
    noB(r, p);
  }
  for (const id of bIds) {
    for (const f of [get, del]) {
      const r = await f(`/cache/entries/${id}`, { ...hA, 'x-semcache-namespace': 'tenant-b' });
      assertEq(r.status, 403, `${f === get ? 'GET' : 'DELETE'} entry ${id}: ${r.text}`);
      noB(r, `entry ${id}`);
    }
  }
  for (const p of ['/stats', '/metrics']) {
    const r = await get(p, hA);
    assertEq(r.status, 403, `${p}: ${r.text}`);
    noB(r, p);
  }
});

test("A on search, embed and the dashboard: only A's own namespace", async () => {
  for (const body of [{ prompt: B_SECRET, namespace: 'tenant-b', k: 50 }, { prompt: B_SECRET, k: 50 }]) {
    const r = await post('/cache/search', body, { ...hA, 'x-semcache-namespace': 'tenant-b' });
    assertEq(r.status, 200, r.text);
    assertEq(r.body.namespace, 'tenant-a', 'search namespace');
    noB(r, 'search');
  }
  const e = await post('/cache/embed', { input: [B_SECRET] }, hA);
  assertEq(e.status, 200, 'embed works for a user key (no stored data in it)');
  noB({ text: JSON.stringify(Object.keys(e.body)) }, 'embed');
  const d = await get('/ui/data?after=0', { ...hA, 'x-semcache-namespace': 'tenant-b' });
  assertEq(d.status, 200, d.text);
  assertEq(d.body.namespace, 'tenant-a', 'dashboard namespace');
  noB(d, '/ui/data');
  assertEq((await get('/ui/data', {})).status, 401, '/ui/data without a key');
  assertEq((await get('/ui/data', { authorization: `Bearer ${KEY_B}x` })).status, 401, 'a near key');
});

test('A on RESP (redis-cli and a client library): -NOPERM for B, nothing of B comes back', async () => {
  const a = createClient({ socket: { port: srv.respPort }, password: KEY_A });
  a.on('error', () => {});
  await a.connect();
  const refused = async (args) => {
    let err = null, rep;
    try { rep = await a.sendCommand(args); } catch (x) { err = x; }
    assert(err, `${args.join(' ')}: answered ${JSON.stringify(rep)}`);
    assert(/^(NOPERM|ERR)/.test(err.message), `${args.join(' ')}: ${err.message}`);
    noB({ text: err.message }, args[0]);
  };
  await refused(['SEM.GET', 'tenant-b', `when is ${B_SECRET}`]);
  await refused(['SEM.GET', 'tenant-b', `when is ${B_SECRET}`, 'THRESHOLD', '0']);
  await refused(['SEM.SET', 'tenant-b', 'x', 'poison']);
  await refused(['SEM.FLUSH', 'tenant-b']);
  for (const id of bIds) await refused(['SEM.DEL', 'tenant-b', String(id)]);
  await refused(['SELECT', '1']);
  // In its own namespace, B's ids delete nothing and B's prompts miss.
  for (const id of bIds) assertEq(await a.sendCommand(['SEM.DEL', 'tenant-a', String(id)]), 0, `SEM.DEL own ns ${id}`);
  assertEq(await a.sendCommand(['SEM.GET', 'tenant-a', `when is ${B_SECRET}`, 'THRESHOLD', '0']), null, 'own ns');
  const info = await a.sendCommand(['INFO']);
  noB({ text: info }, 'INFO');
  // Re-AUTH with a wrong key keeps nothing of B either, and B's key is not guessable by prefix.
  let e = null;
  try { await a.sendCommand(['AUTH', KEY_B.slice(0, -1)]); } catch (x) { e = x; }
  assert(e && /WRONGPASS/.test(e.message), String(e));
  await a.quit();
  // redis-cli: the same refusals.
  const out = redisCli(['-a', KEY_A, 'SEM.GET', 'tenant-b', `when is ${B_SECRET}`]);
  assert(/NOPERM/.test(out), out);
  assert(/NOAUTH/.test(redisCli(['SEM.GET', 'tenant-b', 'x'])), 'no key: NOAUTH');
});

test("A on feedback: B's hits cannot be judged, through HTTP or RESP", async () => {
  // B is served a hit; A learns its request id (say, from a shared log) and tries to judge it.
  const hit = await chat(hB, `what is ${B_SECRET}?`);
  const rid = hit.headers.get('x-semcache-request');
  assert(/^[0-9a-f]{16}$/.test(rid), hit.text);
  const r = await post('/cache/feedback', { request: rid, correct: false }, hA);
  assertEq(r.status, 403, r.text);
  noB(r, 'feedback');
  const a = createClient({ socket: { port: srv.respPort }, password: KEY_A });
  a.on('error', () => {});
  await a.connect();
  for (const ns of ['tenant-b', 'tenant-a']) {
    let err = null;
    try { await a.sendCommand(['SEM.FEEDBACK', ns, rid, 'BAD']); } catch (x) { err = x; }
    assert(err && /^(NOPERM|ERR)/.test(err.message), `SEM.FEEDBACK ${ns}: ${err && err.message}`);
  }
  await a.quit();
  // Nothing was learned about B's entry: B's own verdict still counts once.
  const mine = await post('/cache/feedback', { request: rid, correct: true }, hB);
  assertEq(mine.status, 200, mine.text);
  assertEq(mine.body.learned.bad, 0, 'A changed nothing');
});

test("afterwards: B's entries are all there and answer B", async () => {
  for (const id of bIds) {
    const r = await get(`/cache/entries/${id}`, hAdm);
    assertEq(r.status, 200, `entry ${id}: ${r.text}`);
    assertEq(r.body.namespace, 'tenant-b', 'namespace');
    assert(!/poison/.test(r.body.response), 'poisoned');
  }
  const r = await chat(hB, `what is ${B_SECRET}?`);
  assertEq(r.headers.get('x-semcache'), 'hit-exact', 'B still hits');
  const s = await post('/cache/search', { prompt: 'x', k: 50 }, hB);
  assert(s.body.results.every((e) => !/poison/.test(e.response)), 'nothing stored into B by A');
});

test('no key appears in the log or the access log (debug level)', async () => {
  await stopServer(srv);
  const log = srv.stderr() + (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  assert(log.length > 0, 'empty logs');
  for (const k of [KEY_A, KEY_B, KEY_ADM, KEY_B.slice(0, -1), `${KEY_B}x`])
    assert(!log.includes(k.slice(0, 16)), `a key appears in the logs: ${k.slice(0, 8)}...`);
  await up.close();
});

run();
