// Issue 7 seen from outside: API keys and tenants, /metrics (checked by a
// Prometheus text-format parser written here) and /stats with counters the
// test computes itself, the cost table, the access log, and routing over two
// fault-injecting mock upstreams (fallback, circuit breaker open ->
// half-open -> closed, timeouts, Retry-After, 429 -> retry -> success).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { execFile } = require('node:child_process');
const OpenAI = require('openai');
const { tmpDir, test, run, skip, startServer, stopServer, sleep, assert, assertEq, json } = require('./lib');
const mockUpstream = require('./mock_upstream');

let mock, srv, accessLog;
const KEYS = ['ukey tenantA user', 'akey tenantA admin', 'bkey tenantB user', 'ckey tenantC user'];
const PRICE_IN = 1.0, PRICE_OUT = 2.0;   // USD per million tokens of gpt-test

const mkClient = (s, key, headers = {}) =>
  new OpenAI({ baseURL: s.url + '/v1', apiKey: key, maxRetries: 0, timeout: 20000, defaultHeaders: headers });
const user = (text) => [{ role: 'user', content: text }];
const settle = () => sleep(300);   // write-back is asynchronous

async function chat(c, body, headers = {}) {
  const { data, response } = await c.chat.completions.create(body, { headers }).withResponse();
  return { data, h: response.headers, content: data.choices[0].message.content };
}
const errOf = async (p) => { try { await p; } catch (e) { return e; } throw new Error('expected an error'); };

function curl(url, headers = {}) {
  const args = ['-s', '-S', '--max-time', '10', '-w', '\n%{http_code}'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  return new Promise((resolve, reject) => execFile('curl', args, { maxBuffer: 16 << 20 }, (err, out, stderr) => {
    if (err) return reject(new Error(`curl: ${stderr || err.message}`));
    const i = out.lastIndexOf('\n');
    resolve({ status: Number(out.slice(i + 1)), text: out.slice(0, i) });
  }));
}

/* ------------------------------------------------------------------ */
/* Prometheus text format (0.0.4) checker                              */
/* ------------------------------------------------------------------ */

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad sample value '${s}'`);
  return Number(s);
}

// Parses one sample line: name{a="x",b="y"} value [timestamp].
function parseSample(line) {
  const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/);
  if (!m) throw new Error(`bad sample line: ${line}`);
  const labels = {};
  let rest = m[3] || '';
  while (rest.length) {
    const lm = rest.match(/^([^=]+)="((?:[^"\\]|\\.)*)"(,|$)/);
    if (!lm) throw new Error(`bad labels in: ${line}`);
    if (!LABEL.test(lm[1])) throw new Error(`bad label name '${lm[1]}' in: ${line}`);
    if (lm[1] in labels) throw new Error(`duplicate label '${lm[1]}' in: ${line}`);
    if (/\\[^\\"n]/.test(lm[2])) throw new Error(`bad escape in label value: ${line}`);
    labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    rest = rest.slice(lm[0].length);
  }
  return { name: m[1], labels, value: parseValue(m[4]) };
}

// Checks the whole exposition; returns {types, samples, get(name, labels)}.
function checkPrometheus(text) {
  assert(text.endsWith('\n'), 'ends with a newline');
  const types = {}, help = {}, samples = [], seen = new Set(), closed = new Set();
  let current = null;
  const family = (name) => {
    for (const suf of ['_bucket', '_sum', '_count']) {
      const base = name.slice(0, -suf.length);
      if (name.endsWith(suf) && (types[base] === 'histogram' || types[base] === 'summary')) return base;
    }
    return name;
  };
  const lines = text.slice(0, -1).split('\n');
  for (const line of lines) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = line.match(/^# (HELP|TYPE) (\S+)(?: (.*))?$/);
      if (!m) { if (/^# (HELP|TYPE)/.test(line)) throw new Error(`bad comment: ${line}`); continue; }
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad type: ${line}`);
        if (name in types) throw new Error(`second TYPE for ${name}`);
        if (samples.some((s) => family(s.name) === name)) throw new Error(`TYPE for ${name} after its samples`);
        types[name] = rest;
      } else {
        if (name in help) throw new Error(`second HELP for ${name}`);
        help[name] = rest || '';
      }
      continue;
    }
    const s = parseSample(line);
    const fam = family(s.name);
    if (!(fam in types)) throw new Error(`sample before (or without) its TYPE: ${line}`);
    if (fam !== current) {
      if (closed.has(fam)) throw new Error(`samples of ${fam} are not contiguous`);
      if (current) closed.add(current);
      current = fam;
    }
    const key = s.name + JSON.stringify(Object.entries(s.labels).sort());
    if (seen.has(key)) throw new Error(`duplicate series: ${line}`);
    seen.add(key);
    if (types[fam] === 'counter' && !(s.value >= 0)) throw new Error(`negative counter: ${line}`);
    samples.push(s);
  }
  // Histograms: per label set, buckets cumulative in le order, +Inf == _count.
  for (const [fam, type] of Object.entries(types)) {
    if (type !== 'histogram') continue;
    const groups = {};
    for (const s of samples) {
      if (!s.name.startsWith(fam)) continue;
      const { le, ...rest } = s.labels;
      const g = JSON.stringify(Object.entries(rest).sort());
      groups[g] = groups[g] || { buckets: [], count: null, sum: null };
      if (s.name === fam + '_bucket') {
        if (le === undefined) throw new Error(`${fam}_bucket without le`);
        groups[g].buckets.push([parseValue(le), s.value]);
      } else if (s.name === fam + '_count') groups[g].count = s.value;
      else if (s.name === fam + '_sum') groups[g].sum = s.value;
    }
    for (const [g, h] of Object.entries(groups)) {
      assert(h.buckets.length > 0, `${fam}${g}: no buckets`);
      for (let i = 1; i < h.buckets.length; i++) {
        assert(h.buckets[i][0] > h.buckets[i - 1][0], `${fam}${g}: le not increasing`);
        assert(h.buckets[i][1] >= h.buckets[i - 1][1], `${fam}${g}: buckets not cumulative`);
      }
      const last = h.buckets[h.buckets.length - 1];
      assertEq(last[0], Infinity, `${fam}${g}: last bucket is +Inf`);
      assertEq(last[1], h.count, `${fam}${g}: +Inf bucket equals _count`);
      assert(h.sum !== null, `${fam}${g}: has _sum`);
    }
  }
  const get = (name, labels = {}) => {
    const hit = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (hit.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${hit.length} series`);
    return hit[0].value;
  };
  return { types, samples, get };
}

async function metrics(s = srv, key = 'akey') {
  const r = await curl(`${s.url}/metrics`, key ? { Authorization: `Bearer ${key}` } : {});
  assertEq(r.status, 200, r.text.slice(0, 200));
  return checkPrometheus(r.text);
}
async function stats(s = srv, key = 'akey') {
  const r = await json(`${s.url}/stats`, undefined, { method: 'GET', headers: key ? { Authorization: `Bearer ${key}` } : {} });
  assertEq(r.status, 200, r.text.slice(0, 200));
  return r.body;
}

test('the Prometheus checker rejects what it must', async () => {
  const bad = [
    'x_total 1\n',                                                        // no TYPE
    '# TYPE x counter\nx{a="1"} 1\n# TYPE x counter\n',                   // second TYPE
    '# TYPE x counter\nx{1a="1"} 1\n',                                    // bad label name
    '# TYPE x counter\nx 1\n# TYPE y counter\ny 1\nx{a="b"} 2\n',         // not contiguous
    '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n',  // not cumulative
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',  // +Inf != count
    '# TYPE x counter\nx one\n',                                          // bad value
    '# TYPE x counter\nx 1\nx 2\n',                                       // duplicate series
    '# TYPE x counter\nx 1',                                              // no final newline
  ];
  for (const t of bad) {
    let threw = false;
    try { checkPrometheus(t); } catch (_) { threw = true; }
    assert(threw, `accepted: ${JSON.stringify(t)}`);
  }
  const good = checkPrometheus('# HELP x A thing.\n# TYPE x counter\nx{a="q\\"uote"} 1\n# TYPE h histogram\n' +
    'h_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.7\nh_count 2\n');
  assertEq(good.get('x', { a: 'q"uote' }), 1);
});

/* ------------------------------------------------------------------ */
/* Auth and tenants                                                    */
/* ------------------------------------------------------------------ */

test('start semcached with API keys, a price and an access log', async () => {
  mock = await mockUpstream.start({ port: 0, name: 'mock' });
  accessLog = path.join(tmpDir('sc_log_'), 'access.log');
  const args = ['--upstream', mock.url, '--verify', 'off', '--price', `gpt-test ${PRICE_IN} ${PRICE_OUT}`,
    '--access-log', accessLog, '--retries', '0'];
  for (const k of KEYS) args.push('--api-key', k);
  srv = await startServer({ args, logLevel: 'debug' });   // keys must not appear even in debug logs
});

test('/v1 without a key or with a bad key -> 401; nothing goes upstream', async () => {
  const before = mock.calls().total;
  for (const key of [null, 'wrong', 'ukeyx', 'uke', '']) {
    const headers = key === null ? {} : { Authorization: `Bearer ${key}` };
    const r = await json(`${srv.url}/v1/chat/completions`, { model: 'gpt-test', messages: user('hello?') }, { headers });
    assertEq(r.status, 401, `key ${key}: ${r.text}`);
    assertEq(r.body.error.type, 'authentication_error');
    const m = await json(`${srv.url}/v1/models`, undefined, { method: 'GET', headers });
    assertEq(m.status, 401, `models with key ${key}`);
  }
  const e = await errOf(chat(mkClient(srv, 'nope'), { model: 'gpt-test', messages: user('hello?') }));
  assertEq(e.status, 401);
  assertEq(mock.calls().total - before, 0);
  // healthz stays open; the keys never appear in the log or errors.
  assertEq((await fetch(`${srv.url}/healthz`)).status, 200);
  // x-api-key is accepted as well as Authorization: Bearer.
  const ok = await json(`${srv.url}/v1/models`, undefined, { method: 'GET', headers: { 'x-api-key': 'ukey' } });
  assertEq(ok.status, 200, ok.text);
});

test("tenant A's entries are never served to tenant B; the namespace header is ignored", async () => {
  const A = mkClient(srv, 'ukey'), B = mkClient(srv, 'bkey');
  const before = mock.calls().total;
  const body = { model: 'gpt-test-tenants', messages: user('What is our secret roadmap?') };
  const a1 = await chat(A, body);
  assertEq(a1.h.get('x-semcache'), 'miss');
  await settle();
  const a2 = await chat(A, body);
  assertEq(a2.h.get('x-semcache'), 'hit-exact');
  const b1 = await chat(B, body);
  assertEq(b1.h.get('x-semcache'), 'miss', 'B does not see A');
  assert(b1.content !== a1.content, 'B got its own answer');
  assertEq(mock.calls().total - before, 2);
  await settle();
  // B asks for A's namespace by header: ignored, B stays in tenantB.
  const b2 = await chat(B, body, { 'X-Semcache-Namespace': 'tenantA' });
  assertEq(b2.h.get('x-semcache'), 'hit-exact');
  assertEq(b2.content, b1.content, "B's own entry");
  // A semantic near-duplicate under a low threshold never crosses tenants either.
  const b3 = await chat(B, { ...body, messages: user('What is our secret roadmap please?') },
    { 'X-Semcache-Namespace': 'tenantA', 'X-Semcache-Threshold': '0.3' });
  assertEq(b3.content, b1.content, 'semantic hit in B only');
  // C (no entries) with A's namespace header: a miss.
  const C = mkClient(srv, 'ckey', { 'X-Semcache-Namespace': 'tenantA' });
  const c1 = await chat(C, { model: 'gpt-test-tenants', messages: user('What is our secret roadmap?') });
  assertEq(c1.h.get('x-semcache'), 'miss');
  assertEq(mock.calls().total - before, 3);
  // The admin key of tenantA shares tenantA's entries on /v1.
  const ad = await chat(mkClient(srv, 'akey'), body);
  assertEq(ad.h.get('x-semcache'), 'hit-exact');
  assertEq(ad.content, a1.content);
  // The upstream never sees a client key.
  for (const r of mock.calls().requests) {
    const h = r.headers.authorization || '';
    assert(!/ukey|bkey|ckey|akey/.test(h), `client key forwarded: ${h}`);
  }
});

test('single-flight never shares a call across tenants', async () => {
  const A = mkClient(srv, 'ukey'), B = mkClient(srv, 'bkey');
  const before = mock.calls().total;
  const body = { model: 'gpt-test-tenants', messages: user('Concurrent tenant question') };
  mock.plan(['slow:300', 'slow:300']);
  const rs = await Promise.all([chat(A, body), chat(B, body), chat(A, body), chat(B, body)]);
  assertEq(mock.calls().total - before, 2, 'one call per tenant');
  assertEq(rs[2].content, rs[0].content);
  assertEq(rs[3].content, rs[1].content);
  assert(rs[0].content !== rs[1].content, 'tenants got their own answers');
});

test('admin endpoints need an admin key (401 without, 403 with a user key)', async () => {
  const ep = [
    ['POST', '/cache/store', { namespace: 'tenantB', prompt: 'Admin stored question', response: 'admin answer', model: 'gpt-test-tenants' }],
    ['POST', '/cache/lookup', { namespace: 'tenantB', prompt: 'Admin stored question', model: 'gpt-test-tenants' }],
    ['POST', '/cache/flush', { namespace: 'tenantZ' }],
    ['GET', '/cache/entries/1', undefined],
    ['GET', '/stats', undefined],
    ['GET', '/metrics', undefined],
  ];
  for (const [method, p, body] of ep) {
    const none = await json(`${srv.url}${p}`, body, { method });
    assertEq(none.status, 401, `${p} without key`);
    const u = await json(`${srv.url}${p}`, body, { method, headers: { Authorization: 'Bearer ukey' } });
    assertEq(u.status, 403, `${p} with a user key: ${u.text}`);
    assertEq(u.body.error.type, 'permission_error');
  }
  // /cache/embed reads no tenant data: any valid key, but a key.
  assertEq((await json(`${srv.url}/cache/embed`, { input: ['x'] })).status, 401);
  assertEq((await json(`${srv.url}/cache/embed`, { input: ['x'] }, { headers: { Authorization: 'Bearer ukey' } })).status, 200);
  const imp = await json(`${srv.url}/cache/import`, '{"prompt":"p","response":"r"}\n', { headers: { Authorization: 'Bearer bkey' } });
  assertEq(imp.status, 403);
  // The admin may name any namespace: store into tenantB, B's users get it.
  const s = await json(`${srv.url}/cache/store`, ep[0][2], { headers: { Authorization: 'Bearer akey' } });
  assertEq(s.status, 200, s.text);
  assertEq(s.body.namespace, 'tenantB');
  const before = mock.calls().total;
  const b = await chat(mkClient(srv, 'bkey'), { model: 'gpt-test-tenants', messages: user('Admin stored question') });
  assertEq(b.h.get('x-semcache'), 'hit-exact');
  assertEq(b.content, 'admin answer');
  const a = await chat(mkClient(srv, 'ukey'), { model: 'gpt-test-tenants', messages: user('Admin stored question') });
  assertEq(a.h.get('x-semcache'), 'miss', 'tenantA does not see it');
  assertEq(mock.calls().total - before, 1);
  const l = await json(`${srv.url}/cache/lookup`, ep[1][2], { headers: { Authorization: 'Bearer akey' } });
  assertEq(l.body.hit, true);
});

test('RESP needs a key too (-NOAUTH), and the key picks the namespace', async () => {
  const talk = (cmds) => new Promise((resolve) => {
    const s = net.connect(srv.respPort, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('error', (e) => resolve(e.code === 'ECONNREFUSED' ? null : out));
    s.on('close', () => resolve(out));
    const enc = (a) => `*${a.length}\r\n` + a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('');
    s.write(cmds.map(enc).join('') + enc(['QUIT']));
    setTimeout(() => { s.destroy(); resolve(out); }, 3000);
  });
  const r1 = await talk([['PING']]);
  if (r1 === null) throw skip('no RESP listener in this build');
  assert(r1.startsWith('-NOAUTH'), r1);
  const r2 = await talk([['AUTH', 'wrong']]);
  assert(r2.startsWith('-'), r2);
  const r3 = await talk([['AUTH', 'bkey'], ['PING']]);
  assert(r3.startsWith('+OK\r\n+PONG\r\n'), JSON.stringify(r3));
  // A user key names only its own namespace (-NOPERM otherwise).
  const r4 = await talk([['AUTH', 'bkey'], ['SEM.SET', 'tenantA', 'resp secret', 'nope'], ['SEM.SET', 'tenantB', 'resp question', 'resp answer']]);
  assert(/^\+OK\r\n-NOPERM[^\r]*\r\n:\d+\r\n/.test(r4), JSON.stringify(r4));
  // B's entry is in tenantB, invisible to A over RESP and HTTP.
  const r5 = await talk([['AUTH', 'ukey'], ['SEM.GET', 'tenantA', 'resp question'], ['SEM.GET', 'tenantB', 'resp question']]);
  assert(/^\+OK\r\n(\$-1|\*-1)\r\n-NOPERM/.test(r5), JSON.stringify(r5));
  const l = await json(`${srv.url}/cache/lookup`, { namespace: 'tenantB', prompt: 'resp question' }, { headers: { Authorization: 'Bearer akey' } });
  assertEq(l.body.response, 'resp answer');
  const la = await json(`${srv.url}/cache/lookup`, { namespace: 'tenantA', prompt: 'resp secret', threshold: 0 }, { headers: { Authorization: 'Bearer akey' } });
  assert(!la.body.hit || la.body.response !== 'nope', 'the refused SET stored nothing');
  // SEM.SET EX 1 just before a whole second still lives a full second.
  while (Date.now() % 1000 < 800 || Date.now() % 1000 > 900) await sleep(10);
  const t0 = Date.now();
  const r6 = await talk([['AUTH', 'bkey'], ['SEM.SET', 'tenantB', 'resp short lived', 'brief', 'EX', '1']]);
  assert(/^\+OK\r\n:\d+\r\n/.test(r6), JSON.stringify(r6));
  await sleep(Math.max(0, 350 - (Date.now() - t0)));
  const r7 = await talk([['AUTH', 'bkey'], ['SEM.GET', 'tenantB', 'resp short lived']]);
  assert(r7.startsWith('+OK\r\n*4\r\n$5\r\nbrief\r\n'), `alive 350 ms later: ${JSON.stringify(r7)}`);
});

/* ------------------------------------------------------------------ */
/* Metrics, stats, cost, access log                                    */
/* ------------------------------------------------------------------ */

test('/metrics is valid Prometheus text and counts what the test did', async () => {
  const C = mkClient(srv, 'ckey');
  const m0 = await metrics();
  const s0 = await stats();
  const t0 = s0.namespaces.tenantC || { outcomes: { miss: 0, 'hit-exact': 0, 'hit-semantic': 0 } };
  const long = (w) => Array.from({ length: 120 }, (_, i) => `${w}${i}`).join(' ');
  // 3 misses, 4 exact hits, 1 semantic hit, all model gpt-test (priced).
  const usages = {};
  let spent = 0;
  for (const w of ['alpha', 'beta', 'gamma']) {
    const r = await chat(C, { model: 'gpt-test', messages: user(long(w)) });
    assertEq(r.h.get('x-semcache'), 'miss');
    usages[w] = r.data.usage;
    spent += (r.data.usage.prompt_tokens * PRICE_IN + r.data.usage.completion_tokens * PRICE_OUT) / 1e6;
  }
  await settle();
  let savedP = 0, savedC = 0;
  for (const w of ['alpha', 'alpha', 'beta', 'gamma']) {
    const r = await chat(C, { model: 'gpt-test', messages: user(long(w)) });
    assertEq(r.h.get('x-semcache'), 'hit-exact');
    assertEq(JSON.stringify(r.data.usage), JSON.stringify(usages[w]), 'the hit carries the stored usage');
    savedP += usages[w].prompt_tokens;
    savedC += usages[w].completion_tokens;
  }
  const sem = await chat(C, { model: 'gpt-test', messages: user(long('alpha') + ' extra') }, { 'X-Semcache-Threshold': '0.5' });
  assertEq(sem.h.get('x-semcache'), 'hit-semantic');
  savedP += usages.alpha.prompt_tokens;
  savedC += usages.alpha.completion_tokens;
  const savedUsd = (savedP * PRICE_IN + savedC * PRICE_OUT) / 1e6;

  const m1 = await metrics();
  const d = (name, labels) => m1.get(name, labels) - m0.get(name, labels);
  assertEq(d('semcached_cache_requests_total', { outcome: 'miss' }), 3);
  assertEq(d('semcached_cache_requests_total', { outcome: 'hit-exact' }), 4);
  assertEq(d('semcached_cache_requests_total', { outcome: 'hit-semantic' }), 1);
  assertEq(m1.get('semcached_namespace_requests_total', { namespace: 'tenantC', outcome: 'hit-exact' }) - t0.outcomes['hit-exact'], 4);
  assertEq(d('semcached_saved_tokens_total', { kind: 'prompt' }), savedP);
  assertEq(d('semcached_saved_tokens_total', { kind: 'completion' }), savedC);
  const closeTo = (a, b, what) => assert(Math.abs(a - b) < 2e-6, `${what}: got ${a}, want ${b}`);
  closeTo(d('semcached_saved_usd_total'), savedUsd, 'saved USD');
  closeTo(d('semcached_upstream_spent_usd_total'), spent, 'spent USD');
  closeTo(d('semcached_upstream_cost_usd_total', { upstream: 'default' }), spent, 'upstream cost USD');
  assertEq(d('semcached_upstream_calls_total', { upstream: 'default' }), 3);
  assertEq(d('semcached_request_duration_seconds_count', { kind: 'hit' }), 5);
  assertEq(d('semcached_request_duration_seconds_count', { kind: 'miss' }), 3);
  assertEq(m1.types.semcached_request_duration_seconds, 'histogram');
  // Requests by endpoint and status: the 401s of the auth test are there.
  assert(m1.get('semcached_http_requests_total', { endpoint: '/v1/chat/completions', status: '401' }) >= 5, '401s counted');
  assertEq(d('semcached_http_requests_total', { endpoint: '/v1/chat/completions', status: '200' }), 8);
  assert(m1.get('semcached_entries') >= 3, 'entries gauge');
  assertEq(m1.get('semcached_upstream_breaker_state', { upstream: 'default' }), 0);

  // /stats: the same numbers as JSON, plus the namespace's hit rate and savings.
  const s1 = await stats();
  const t1 = s1.namespaces.tenantC;
  const hits = t1.outcomes['hit-exact'] + t1.outcomes['hit-semantic'];
  const all = hits + t1.outcomes.miss;
  assert(Math.abs(t1.hit_rate - hits / all) < 1e-9, `hit_rate ${t1.hit_rate} vs ${hits}/${all}`);
  assertEq(t1.outcomes['hit-exact'] - t0.outcomes['hit-exact'], 4);
  assertEq(t1.saved_prompt_tokens - (t0.saved_prompt_tokens || 0), savedP);
  assertEq(t1.saved_completion_tokens - (t0.saved_completion_tokens || 0), savedC);
  closeTo(t1.saved_usd - (t0.saved_usd || 0), savedUsd, 'namespace saved USD');
  closeTo(t1.upstream_spent_usd - (t0.upstream_spent_usd || 0), spent, 'namespace spent USD');
  closeTo(s1.saved.usd - s0.saved.usd, savedUsd, 'total saved USD');
  assertEq(s1.saved.prompt_tokens - s0.saved.prompt_tokens, savedP);
  const up = s1.upstreams.find((u) => u.name === 'default');
  assertEq(up.breaker, 'closed');
  closeTo(up.cost_usd - s0.upstreams.find((u) => u.name === 'default').cost_usd, spent, '/stats upstream cost');
});

test('pass-through requests are counted as bypasses, with their upstream and namespace', async () => {
  const m0 = await metrics();
  const s0 = await stats();
  const C = mkClient(srv, 'ckey');
  await C.models.list();
  await C.embeddings.create({ model: 'text-embedding-3-small', input: ['count me'], encoding_format: 'float' });
  const m1 = await metrics();
  assertEq(m1.get('semcached_cache_requests_total', { outcome: 'bypass' }) - m0.get('semcached_cache_requests_total', { outcome: 'bypass' }), 2);
  assertEq(m1.get('semcached_http_requests_total', { endpoint: '/v1/other', status: '200' }) -
    (m0.samples.some((x) => x.name === 'semcached_http_requests_total' && x.labels.endpoint === '/v1/other' && x.labels.status === '200')
      ? m0.get('semcached_http_requests_total', { endpoint: '/v1/other', status: '200' }) : 0), 2);
  const s1 = await stats();
  assertEq(s1.namespaces.tenantC.outcomes.bypass - s0.namespaces.tenantC.outcomes.bypass, 2);
  assertEq(s1.namespaces.tenantC.hit_rate, s0.namespaces.tenantC.hit_rate, 'bypasses do not change the hit rate');
  const log = fs.readFileSync(accessLog, 'utf8').trim().split('\n');
  assert(log.some((l) => l.includes('GET /v1/models 200') && /ns=tenantC outcome=bypass upstream=default/.test(l)), log.slice(-3).join('\n'));
});

test('access log: one line per request with namespace, outcome, upstream, status; no keys', async () => {
  const before = mock.calls().total;
  const C = mkClient(srv, 'ckey');
  await chat(C, { model: 'gpt-test', messages: user('access log line please') });
  await settle();
  await chat(C, { model: 'gpt-test', messages: user('access log line please') });
  // A streamed miss gets its line too.
  const { data: st } = await C.chat.completions.create({ model: 'gpt-test', stream: true,
    messages: user('access log stream please') }).withResponse();
  for await (const _ of st) { /* drain */ }
  assertEq(mock.calls().total - before, 2);
  await sleep(100);
  const lines = fs.readFileSync(accessLog, 'utf8').trim().split('\n');
  const mine = lines.filter((l) => l.includes('/v1/chat/completions') && l.includes('ns=tenantC')).slice(-3);
  assertEq(mine.length, 3, lines.slice(-4).join('\n'));
  assert(/ 200 /.test(mine[2]) && /outcome=miss/.test(mine[2]) && /upstream=default/.test(mine[2]) &&
    /tokens=[1-9]/.test(mine[2]), `streamed miss line: ${mine[2]}`);
  assert(/ 200 /.test(mine[0]) && /outcome=miss/.test(mine[0]), mine[0]);
  assert(/upstream=default/.test(mine[0]), `miss line names the upstream: ${mine[0]}`);
  assert(/tokens=[1-9]/.test(mine[0]), `miss line has the tokens used: ${mine[0]}`);
  assert(/outcome=hit-exact/.test(mine[1]) && /similarity=1\.0+/.test(mine[1]), mine[1]);
  assert(/tokens=[1-9]/.test(mine[1]), `hit line has the tokens saved: ${mine[1]}`);
  assert(/\d+\.\d+ms/.test(mine[1]), 'latency');
  assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /.test(mine[1]), 'timestamp');
  assert(lines.some((l) => / 401 /.test(l)), '401s logged');
  const all = lines.join('\n');
  for (const k of ['ukey', 'akey', 'bkey', 'ckey']) assert(!all.includes(k), `key ${k} logged`);
});

test('stop the auth server', async () => {
  const r = await stopServer(srv, 'SIGTERM');
  assertEq(r.code, 0);
  const err = srv.stderr();
  for (const k of ['ukey', 'akey', 'bkey', 'ckey']) assert(!err.includes(k), `key ${k} in stderr`);
});

/* ------------------------------------------------------------------ */
/* Routing over two upstreams                                          */
/* ------------------------------------------------------------------ */

let ma, mb, rs;
const upstreamStats = async (name) => (await stats(rs, null)).upstreams.find((u) => u.name === name);

test('routing: 500 on a -> the fallback b serves it', async () => {
  ma = await mockUpstream.start({ port: 0, name: 'a' });
  mb = await mockUpstream.start({ port: 0, name: 'b' });
  rs = await startServer({ args: ['--upstream-def', `a ${ma.url} -`, '--upstream-def', `b ${mb.url} -`,
    '--route', '* a,b', '--retries', '0', '--breaker-failures', '2', '--breaker-cooldown-ms', '1000',
    '--first-byte-timeout-ms', '500', '--verify', 'off'] });
  const c = mkClient(rs, 'x');
  const ok = await chat(c, { model: 'gpt-r', messages: user('route me 0') });
  assert(ok.data.id.startsWith('chatcmpl-a-'), `served by a: ${ok.data.id}`);
  assertEq(ok.h.get('x-semcache-upstream'), 'a');
  ma.plan(['500']);
  const r = await chat(c, { model: 'gpt-r', messages: user('route me 1') });
  assertEq(r.h.get('x-semcache'), 'miss');
  assertEq(r.h.get('x-semcache-upstream'), 'b');
  assert(r.data.id.startsWith('chatcmpl-b-'), r.data.id);
  assertEq(ma.calls().total, 2);
  assertEq(mb.calls().total, 1);
  const a = await upstreamStats('a');
  assertEq(a.err_5xx, 1);
  assertEq(a.fallbacks, 1);
  assertEq(a.breaker, 'closed', 'one failure does not open it');
});

test('routing: the breaker opens after 2 failures, skips a, then recovers through half-open', async () => {
  const c = mkClient(rs, 'x');
  ma.plan(['500']);
  const r = await chat(c, { model: 'gpt-r', messages: user('route me 2') });
  assertEq(r.h.get('x-semcache-upstream'), 'b');
  assertEq(ma.calls().total, 3);
  let a = await upstreamStats('a');
  assertEq(a.breaker, 'open');
  assertEq(a.breaker_opens, 1);
  const m = await metrics(rs, null);
  assertEq(m.get('semcached_upstream_breaker_state', { upstream: 'a' }), 1);
  assertEq(m.get('semcached_upstream_breaker_state', { upstream: 'b' }), 0);
  // While open: no call reaches a.
  for (let i = 3; i < 6; i++) {
    const x = await chat(c, { model: 'gpt-r', messages: user(`route me ${i}`) });
    assertEq(x.h.get('x-semcache-upstream'), 'b');
  }
  assertEq(ma.calls().total, 3, 'a skipped while open');
  a = await upstreamStats('a');
  assertEq(a.skipped_open, 3);
  // After the cool-down one probe goes to a; it fails -> open again.
  await sleep(1100);
  ma.plan(['500']);
  const p1 = await chat(c, { model: 'gpt-r', messages: user('route me probe 1') });
  assertEq(p1.h.get('x-semcache-upstream'), 'b');
  assertEq(ma.calls().total, 4, 'one probe');
  a = await upstreamStats('a');
  assertEq(a.breaker, 'open', 'failed probe reopens');
  assertEq(a.breaker_opens, 2);
  await chat(c, { model: 'gpt-r', messages: user('route me 7') });
  assertEq(ma.calls().total, 4, 'still skipped');
  // Next cool-down: the probe succeeds -> closed, a serves again.
  await sleep(1100);
  const p2 = await chat(c, { model: 'gpt-r', messages: user('route me probe 2') });
  assertEq(p2.h.get('x-semcache-upstream'), 'a');
  assertEq(ma.calls().total, 5);
  a = await upstreamStats('a');
  assertEq(a.breaker, 'closed');
  const p3 = await chat(c, { model: 'gpt-r', messages: user('route me 8') });
  assertEq(p3.h.get('x-semcache-upstream'), 'a');
  assertEq((await metrics(rs, null)).get('semcached_upstream_breaker_state', { upstream: 'a' }), 0);
});

test('routing: a hang on a times out (first byte) and b serves', async () => {
  const c = mkClient(rs, 'x');
  const a0 = ma.calls().total, b0 = mb.calls().total;
  ma.plan(['hang']);
  const t0 = Date.now();
  const r = await chat(c, { model: 'gpt-r', messages: user('route me slowly') });
  const dt = Date.now() - t0;
  assertEq(r.h.get('x-semcache-upstream'), 'b');
  assert(dt >= 450 && dt < 3000, `took ${dt} ms`);
  assertEq(ma.calls().total - a0, 1);
  assertEq(mb.calls().total - b0, 1);
  assertEq((await upstreamStats('a')).err_timeout, 1);
});

test('routing: every target fails -> 502 naming what was tried; not cached', async () => {
  const c = mkClient(rs, 'x');
  // One success first so a's breaker is closed with no failures counted.
  await chat(c, { model: 'gpt-r', messages: user('route me reset') });
  ma.plan(['500']);
  mb.plan(['503']);
  const e = await errOf(chat(c, { model: 'gpt-r', messages: user('route me nowhere') }));
  assertEq(e.status, 502);
  const msg = (e.error && e.error.message) || e.message;
  assert(/\ba\b/.test(msg) && /\bb\b/.test(msg) && msg.includes('500') && msg.includes('503'), msg);
  const again = await chat(c, { model: 'gpt-r', messages: user('route me nowhere') });
  assertEq(again.h.get('x-semcache'), 'miss');
});

test('routing: a model rewrite reaches the upstream; MAX_CONCURRENT queues calls', async () => {
  const s = await startServer({ args: ['--upstream-def', `a ${ma.url} - 1`, '--upstream-def', `b ${mb.url} -`,
    '--route', 'gpt-rw a:alpha-model,b:beta-model', '--route', '* a', '--retries', '0', '--verify', 'off'] });
  try {
    const c = mkClient(s, 'x');
    const r = await chat(c, { model: 'gpt-rw', messages: user('rewrite me') });
    assertEq(ma.calls().last_request.body.model, 'alpha-model');
    assertEq(r.data.model, 'alpha-model');
    ma.plan(['500']);
    const r2 = await chat(c, { model: 'gpt-rw', messages: user('rewrite me twice') });
    assertEq(r2.h.get('x-semcache-upstream'), 'b');
    assertEq(mb.calls().last_request.body.model, 'beta-model');
    // The cache key is the client's model: a second ask is a hit.
    await settle();
    assertEq((await chat(c, { model: 'gpt-rw', messages: user('rewrite me') })).h.get('x-semcache'), 'hit-exact');
    // One transfer at a time to a: three slow calls take three turns.
    ma.plan(['slow:300', 'slow:300', 'slow:300']);
    const t0 = Date.now();
    const a0 = ma.calls().total;
    const rs = await Promise.all([0, 1, 2].map((i) => chat(c, { model: 'gpt-q', messages: user(`queued ${i}`) })));
    const dt = Date.now() - t0;
    assertEq(ma.calls().total - a0, 3);
    assert(rs.every((x) => x.h.get('x-semcache-upstream') === 'a'), 'all served by a');
    assert(dt >= 850, `queued, not parallel: ${dt} ms`);
  } finally {
    assertEq((await stopServer(s, 'SIGTERM')).code, 0);
  }
});

test('stop the routing server', async () => {
  assertEq((await stopServer(rs, 'SIGTERM')).code, 0);
});

test('retries: 429 -> retry -> success on the same upstream; Retry-After waited out', async () => {
  const s = await startServer({ args: ['--upstream-def', `a ${ma.url} -`, '--upstream-def', `b ${mb.url} -`,
    '--route', '* a,b', '--retries', '1', '--verify', 'off'] });
  try {
    const c = mkClient(s, 'x');
    const a0 = ma.calls().total, b0 = mb.calls().total;
    ma.plan(['429']);
    const r = await chat(c, { model: 'gpt-r', messages: user('retry me') });
    assertEq(r.h.get('x-semcache-upstream'), 'a');
    assertEq(ma.calls().total - a0, 2, '429 then success');
    assertEq(mb.calls().total - b0, 0);
    // Retry-After: 1 -> the retry waits about a second.
    ma.plan(['429:1']);
    const t0 = Date.now();
    const r2 = await chat(c, { model: 'gpt-r', messages: user('retry me later') });
    const dt = Date.now() - t0;
    assertEq(r2.h.get('x-semcache-upstream'), 'a');
    assert(dt >= 950 && dt < 3000, `Retry-After 1 honoured: ${dt} ms`);
    assertEq(ma.calls().total - a0, 4);
    // Retry-After beyond the cap (10 s): straight to the next target.
    ma.plan(['429:60']);
    const t1 = Date.now();
    const r3 = await chat(c, { model: 'gpt-r', messages: user('retry me much later') });
    assertEq(r3.h.get('x-semcache-upstream'), 'b');
    assert(Date.now() - t1 < 2000, `moved on without waiting: ${Date.now() - t1} ms`);
    assertEq(ma.calls().total - a0, 5);
    const st = await stats(s, null);
    const a = st.upstreams.find((u) => u.name === 'a');
    assertEq(a.err_429, 3);
    assertEq(a.retries, 2);
    const m = await metrics(s, null);
    assertEq(m.get('semcached_upstream_retries_total', { upstream: 'a' }), 2);
    assertEq(m.get('semcached_upstream_fallbacks_total', { upstream: 'a' }), 1);
  } finally {
    assertEq((await stopServer(s, 'SIGTERM')).code, 0);
    await ma.close();
    await mb.close();
    await mock.close();
  }
});

run();
