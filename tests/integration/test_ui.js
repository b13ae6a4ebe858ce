// The dashboard (GET /ui) in a real browser: headless Chromium (Debian's
// `chromium`, driven by puppeteer-core) loads the page from a running
// semcached that has served mixed traffic through the mock upstream, and
// checks that the numbers in the DOM equal /stats, that the entry
// browser's delete deletes, and that a user key sees its namespace only.
// Also the JSON endpoints behind the page (/ui/data, /cache/search) and
// the headers the page is served with.
'use strict';
const fs = require('node:fs');
const { test, run, skip, startServer, stopServer, assert, assertEq, json, sleep } = require('./lib');
const mock = require('./mock_upstream');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
let puppeteer = null;
try { puppeteer = require('puppeteer-core'); } catch (_) { /* reported by the tests */ }

async function chat(url, prompt, { key, ns, headers = {} } = {}) {
  const h = { 'content-type': 'application/json', ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (ns) h['x-semcache-namespace'] = ns;
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: h,
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }) });
  await r.text();
  return r;
}

// Mixed traffic: misses (new prompts), exact hits (repeats), bypasses
// (Cache-Control: no-cache, no-store), in two namespaces.
async function traffic(url, n, opts = {}) {
  const prompts = Array.from({ length: 40 }, (_, i) => `how do I reset password number ${i} on my account`);
  for (let i = 0; i < n; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 8); j++) {
      const p = prompts[(j * 7) % prompts.length];
      const headers = j % 13 === 0 ? { 'cache-control': 'no-cache, no-store' } : {};
      batch.push(chat(url, p, { ...opts, headers }));
    }
    await Promise.all(batch);
  }
}

async function browser() {
  if (!puppeteer) throw new Error('puppeteer-core is not installed (make deps)');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (Debian package chromium; make deps)`);
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'] });
}

// Waits until the page has polled at least `more` more times.
async function polls(page, more) {
  const now = Number(await page.evaluate(() => document.body.dataset.polls || 0));
  await page.waitForFunction((n) => Number(document.body.dataset.polls || 0) >= n, { timeout: 20000 }, now + more);
}

const dv = (page, id) => page.$eval(`#${id}`, (e) => e.dataset.value);

let up;
test('setup: mock upstream', async () => { up = await mock.start({ port: 0, name: 'mock-a', counter: false }); });

test('the page and its files: headers, ETag, 404, 405, no auth needed for the files', async () => {
  const srv = await startServer({ args: ['--api-key', 'adm1 default admin'] });
  const r = await fetch(`${srv.url}/ui`);
  assertEq(r.status, 200, '/ui');
  assert(r.headers.get('content-type').startsWith('text/html'), 'html');
  const csp = r.headers.get('content-security-policy') || '';
  assert(csp.includes("default-src 'none'") && csp.includes("frame-ancestors 'none'"), `csp: ${csp}`);
  assertEq(r.headers.get('x-content-type-options'), 'nosniff', 'nosniff');
  const html = await r.text();
  assert(html.includes('/ui/app.js') && html.includes('/ui/app.css'), 'page links its files');
  assert(!/https?:\/\//.test(html.replace('http://www.w3.org/2000/svg', '')), 'no outside URL in the page');
  const etag = r.headers.get('etag');
  const r304 = await fetch(`${srv.url}/ui`, { headers: { 'if-none-match': etag } });
  assertEq(r304.status, 304, 'If-None-Match');
  let bytes = Buffer.byteLength(html);
  for (const f of ['app.js', 'app.css']) {
    const a = await fetch(`${srv.url}/ui/${f}`);
    assertEq(a.status, 200, f);
    const body = await a.text();
    bytes += Buffer.byteLength(body);
    assert(!/https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(body), `${f}: no outside URL`);
  }
  console.log(`# page weight: ${bytes} bytes (html + js + css, uncompressed)`);
  assert(bytes < 64 * 1024, `page weight ${bytes} bytes, want < 64 KiB`);
  assertEq((await fetch(`${srv.url}/ui/nope.js`)).status, 404, 'unknown file');
  assertEq((await fetch(`${srv.url}/ui/../stats`)).status !== 200, true, 'no escape from /ui/');
  assertEq((await fetch(`${srv.url}/ui`, { method: 'POST' })).status, 405, 'POST /ui');
  // The data is not public.
  assertEq((await fetch(`${srv.url}/ui/data`)).status, 401, '/ui/data without a key');
  assertEq((await fetch(`${srv.url}/ui/data`, { headers: { authorization: 'Bearer wrong' } })).status, 401, 'bad key');
  await stopServer(srv);
});

test('/cache/search: nearest entries over every partition, validation', async () => {
  const srv = await startServer();
  for (const [p, model] of [['the cat sat on the mat', null], ['a cat sits on a mat', 'gpt-4o'], ['stock prices today', null]]) {
    const r = await json(`${srv.url}/cache/store`, { prompt: p, response: `answer to ${p}`, ...(model ? { model } : {}) });
    assertEq(r.status, 200, `store ${p}`);
  }
  const r = await json(`${srv.url}/cache/search`, { prompt: 'the cat sat on the mat', k: 3 });
  assertEq(r.status, 200, r.text);
  assertEq(r.body.namespace, 'default', 'namespace');
  assertEq(r.body.partitions, 2, 'two partitions (no model, gpt-4o)');
  assertEq(r.body.results.length, 3, 'three entries');
  assertEq(r.body.results[0].prompt, 'the cat sat on the mat', 'the same prompt first');
  assert(Math.abs(r.body.results[0].similarity - 1) < 1e-3, 'similarity 1');
  for (let i = 1; i < 3; i++) assert(r.body.results[i].similarity <= r.body.results[i - 1].similarity, 'best first');
  assert(r.body.results.some((e) => e.model === 'gpt-4o'), 'the other partition is searched');
  assertEq((await json(`${srv.url}/cache/search`, { prompt: 'x', namespace: 'empty' })).body.results.length, 0, 'empty ns');
  for (const [body, what] of [[{}, 'prompt'], [{ prompt: '' }, 'prompt'], [{ prompt: 'x', k: 0 }, 'k'],
    [{ prompt: 'x', k: 51 }, 'k'], [{ prompt: 'x', k: 'a' }, 'k'], [{ prompt: 'x', namespace: 'bad ns' }, 'namespace']]) {
    const b = await json(`${srv.url}/cache/search`, body);
    assertEq(b.status, 400, `${JSON.stringify(body)}: ${b.text}`);
    assert(b.text.includes(what), `error names ${what}: ${b.text}`);
  }
  assertEq((await json(`${srv.url}/cache/search`, '{bad')).status, 400, 'bad JSON');
  assertEq((await fetch(`${srv.url}/cache/search`)).status, 405, 'GET');
  // A long answer comes back cut, marked, and valid UTF-8.
  const long = 'é'.repeat(3000);
  await json(`${srv.url}/cache/store`, { prompt: 'long answer', response: long });
  const l = await json(`${srv.url}/cache/search`, { prompt: 'long answer', k: 1 });
  assertEq(l.body.results[0].response_truncated, true, 'truncated');
  assert(l.body.results[0].response.length <= 1000 && /^é+$/.test(l.body.results[0].response), 'cut at a character');
  await stopServer(srv);
});

let srvA;   // no auth, traffic through the mock
test('browser: the numbers on the page equal /stats', async () => {
  if (!puppeteer || !fs.existsSync(CHROMIUM)) throw new Error('chromium or puppeteer-core missing (make deps)');
  srvA = await startServer({ args: ['--upstream', up.url, '--threshold', '0.5'] });
  await traffic(srvA.url, 400);
  await traffic(srvA.url, 60, { ns: 'team-b' });
  const b = await browser();
  try {
    const page = await b.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(`${srvA.url}/ui`, { waitUntil: 'load' });
    await polls(page, 2);
    const st = (await json(`${srvA.url}/stats`, undefined, { method: 'GET' })).body;
    const o = st.outcomes;
    assert(o.miss > 0 && o['hit-exact'] > 0 && o.bypass > 0, `mixed traffic: ${JSON.stringify(o)}`);
    for (const k of ['hit-exact', 'hit-semantic', 'miss', 'bypass', 'error'])
      assertEq(Number(await dv(page, `n-${k}`)), o[k], `#n-${k}`);
    const total = Object.values(o).reduce((s, v) => s + v, 0);
    assertEq(Number(await dv(page, 'n-requests')), total, 'requests');
    assert(Math.abs(Number(await dv(page, 'n-hit-rate')) - st.hit_rate) < 1e-9, 'hit rate');
    assertEq(Number(await dv(page, 'n-saved-tokens')), st.saved.prompt_tokens + st.saved.completion_tokens, 'tokens saved');
    assert(Math.abs(Number(await dv(page, 'n-saved-usd')) - st.saved.usd) < 1e-9, 'usd saved');
    assert(Math.abs(Number(await dv(page, 'n-spent-usd')) - st.upstream_spent_usd) < 1e-9, 'usd spent');
    assertEq(Number(await dv(page, 'n-entries')), st.cache.entries, 'entries');
    // Namespace table: one row per namespace with /stats' numbers.
    const rows = await page.$$eval('#t-ns tbody tr', (trs) => trs.map((tr) =>
      [tr.dataset.ns, ...[...tr.cells].slice(1).map((td) => td.dataset.value)]));
    assertEq(rows.map((r) => r[0]).join(','), Object.keys(st.namespaces).sort().join(','), 'namespaces');
    for (const r of rows) {
      const n = st.namespaces[r[0]];
      assertEq(Number(r[1]), n.outcomes['hit-exact'], `${r[0]} exact`);
      assertEq(Number(r[3]), n.outcomes.miss, `${r[0]} miss`);
      assertEq(Number(r[4]), n.outcomes.bypass, `${r[0]} bypass`);
    }
    // Upstream table, charts, threshold view.
    const ups = await page.$$eval('#t-up tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
    assertEq(ups.length, st.upstreams.length, 'upstream rows');
    assertEq(ups[0][1], st.upstreams[0].breaker, 'breaker state');
    assertEq(Number(ups[0][2].replace(/,/g, '')), st.upstreams[0].calls, 'upstream calls');
    await polls(page, 1);
    assert(await page.$('#chart-rate path'), 'rate chart drawn');
    assert((await page.$$('#chart-latency rect')).length >= 16, 'latency histogram drawn');
    const circles = (await page.$$('#chart-thr circle')).length;
    assert(circles > 0, 'threshold view has recent lookups');
    const summary = await page.$eval('#thr-summary', (e) => e.textContent);
    assert(/semantic lookups/.test(summary), summary);
    // Moving the slider re-counts without a request.
    await page.$eval('#thr', (e) => { e.value = '1'; e.dispatchEvent(new Event('input')); });
    assert((await page.$eval('#thr-summary', (e) => e.textContent)).includes('At 1.000'), 'slider');
    assertEq(errors.length, 0, `page errors: ${errors.join('; ')}`);
    // A screenshot for the docs when asked (make ui-screenshot).
    if (process.env.SC_UI_SCREENSHOT) {
      await page.setViewport({ width: 1280, height: 1500 });
      await page.$eval('#s-q', (e) => { e.value = 'reset my password'; });
      await page.click('#search-form button[type=submit]');
      await page.waitForSelector('#t-entries tbody tr');
      await polls(page, 1);
      await page.screenshot({ path: process.env.SC_UI_SCREENSHOT, fullPage: true });
    }
  } finally {
    await b.close();
  }
});

test('browser: the entry browser finds, opens and deletes an entry', async () => {
  if (!srvA) throw skip('needs the previous test');
  const b = await browser();
  try {
    const page = await b.newPage();
    await page.goto(`${srvA.url}/ui`, { waitUntil: 'load' });
    await polls(page, 1);
    await page.$eval('#s-q', (e) => { e.value = 'how do I reset password number 3 on my account'; });
    await page.click('#search-form button[type=submit]');
    await page.waitForSelector('#t-entries tbody tr');
    const first = await page.$eval('#t-entries tbody tr', (tr) => ({ id: tr.dataset.id, prompt: tr.cells[1].textContent,
      sim: Number(tr.cells[0].dataset.value) }));
    assertEq(first.prompt, 'how do I reset password number 3 on my account', 'nearest is the same prompt');
    assert(first.sim > 0.999, `similarity ${first.sim}`);
    const before = await json(`${srvA.url}/cache/entries/${first.id}`, undefined, { method: 'GET' });
    assertEq(before.status, 200, 'entry exists');
    // Open shows the entry's fields.
    await page.click(`#t-entries tr[data-id="${first.id}"] button:not(.delete)`);
    await page.waitForFunction(() => !document.getElementById('entry').hidden);
    const fields = await page.$$eval('#entry-fields dd', (dds) => dds.map((d) => d.textContent));
    assert(fields.includes(before.body.response), 'opened entry shows its answer');
    // Delete arms on the first click, deletes on the second.
    const del = `#t-entries tr[data-id="${first.id}"] button.delete`;
    await page.click(del);
    await sleep(200);
    assertEq((await json(`${srvA.url}/cache/entries/${first.id}`, undefined, { method: 'GET' })).status, 200,
      'one click does not delete');
    await page.click(del);
    await page.waitForFunction((id) => document.getElementById('s-msg').textContent.includes(`Deleted entry ${id}`),
      { timeout: 10000 }, first.id);
    assertEq((await json(`${srvA.url}/cache/entries/${first.id}`, undefined, { method: 'GET' })).status, 404, 'deleted');
    assertEq(await page.$(`#t-entries tr[data-id="${first.id}"]`), null, 'row removed');
  } finally {
    await b.close();
  }
  await stopServer(srvA);
});

test('browser and API: a user key sees its own namespace only', async () => {
  if (!puppeteer || !fs.existsSync(CHROMIUM)) throw new Error('chromium or puppeteer-core missing (make deps)');
  const srv = await startServer({ args: ['--upstream', up.url, '--api-key', 'adm-key default admin',
    '--api-key', 'key-a team-a user', '--api-key', 'key-b team-b user'] });
  await traffic(srv.url, 48, { key: 'key-a' });
  await traffic(srv.url, 48, { key: 'key-b' });
  await chat(srv.url, 'a secret question of team b', { key: 'key-b' });
  // The JSON: only team-a, no upstreams, no latency of others.
  const d = (await json(`${srv.url}/ui/data`, undefined, { method: 'GET', headers: { authorization: 'Bearer key-a' } })).body;
  assertEq(d.role, 'user', 'role');
  assertEq(d.namespace, 'team-a', 'namespace');
  assertEq(Object.keys(d.stats.namespaces).join(','), 'team-a', 'namespaces');
  assertEq(d.stats.upstreams, undefined, 'no upstreams');
  assertEq(d.latency, undefined, 'no latency');
  assert(d.recent.every((x) => x.namespace === 'team-a'), 'recent: own namespace');
  assertEq(JSON.stringify(d).includes('team-b'), false, 'team-b appears nowhere');
  const adm = (await json(`${srv.url}/ui/data`, undefined, { method: 'GET', headers: { authorization: 'Bearer adm-key' } })).body;
  assertEq(adm.role, 'admin', 'admin role');
  assert(adm.stats.namespaces['team-b'] && adm.stats.upstreams, 'admin sees everything');
  // Search: a user key is held to its namespace whatever it asks for.
  const s = await json(`${srv.url}/cache/search`, { prompt: 'a secret question of team b', namespace: 'team-b' },
    { headers: { authorization: 'Bearer key-a' } });
  assertEq(s.status, 200, s.text);
  assertEq(s.body.namespace, 'team-a', 'held to team-a');
  assert(s.body.results.every((e) => !e.prompt.includes('team b')), 'no team-b entry');
  // Admin actions stay admin-only.
  const anyId = s.body.results[0].id;
  assertEq((await json(`${srv.url}/cache/entries/${anyId}`, undefined, { method: 'DELETE',
    headers: { authorization: 'Bearer key-a' } })).status, 403, 'user key cannot delete');
  assertEq((await json(`${srv.url}/cache/flush`, { namespace: 'team-a' }, { headers: { authorization: 'Bearer key-a' } })).status,
    403, 'user key cannot flush');
  // The page: asks for a key, then shows team-a alone.
  const b = await browser();
  try {
    const page = await b.newPage();
    await page.goto(`${srv.url}/ui`, { waitUntil: 'load' });
    await page.waitForFunction(() => !document.getElementById('login').hidden, { timeout: 10000 });
    assertEq(await page.$eval('#main', (e) => e.hidden), true, 'nothing shown before a key');
    await page.type('#key', 'key-a');
    await page.click('#login-form button');
    await page.waitForFunction(() => !document.getElementById('main').hidden, { timeout: 10000 });
    await polls(page, 1);
    const nss = await page.$$eval('#t-ns tbody tr', (trs) => trs.map((tr) => tr.dataset.ns));
    assertEq(nss.join(','), 'team-a', 'page namespaces');
    const st = d.stats.outcomes;
    assertEq(Number(await dv(page, 'n-miss')) >= st.miss, true, 'own misses shown');
    assertEq(await page.$eval('#t-up', (e) => e.closest('section').offsetParent === null), true, 'upstreams hidden');
    assertEq(await page.$eval('#flush', (e) => e.offsetParent === null), true, 'flush hidden');
    assertEq(await page.$eval('#s-ns', (e) => e.disabled && e.value), 'team-a', 'namespace fixed');
    const html = await page.content();
    assertEq(html.includes('team-b'), false, 'team-b nowhere in the page');
    // A wrong key is refused and asked again.
    await page.evaluate(() => sessionStorage.setItem('semcached-key', 'nope'));
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction(() => document.getElementById('login-err').textContent.includes('refused'), { timeout: 10000 });
  } finally {
    await b.close();
  }
  await stopServer(srv);
});

test('teardown', async () => { await up.close(); });

run();
