// `make chaos` (part 2): the upstream fault matrix through the real proxy.
//
// Two mock upstreams (tests/integration/mock_upstream.js): "a", which
// misbehaves, and "b", healthy. For each fault, a fresh semcached with
// --retries 1, first-byte timeout 1 s, idle timeout 500 ms, answers bounded
// to 64 KiB, breaker after 3 failures; two routes: gpt-solo -> a only,
// gpt-fb -> a then b. Per fault it records what the client saw (status, who
// answered, latency), whether anything got cached (the same request again,
// with "a" healthy: a hit would mean the failure was stored), and, after
// three more failing calls, what a's breaker did and whether calls then
// skipped it. Prints a markdown table; exits 1 when an invariant breaks:
// an error or a partial answer cached, a latency past its bound, or a
// fallback that did not answer.
'use strict';
const net = require('node:net');
const lib = require('../integration/lib');
const mock = require('../integration/mock_upstream');

const RETRIES = 1, FIRST_BYTE_MS = 1000, IDLE_MS = 500, MAX_BODY = 65536;
const BIG = 'word '.repeat(14000);   // echoed back: an answer past 64 KiB

const FAULTS = [
  { name: 'connection refused', refused: true },
  { name: 'reset before the body', plan: 'drop' },
  { name: 'reset during the body', plan: 'truncate' },
  { name: 'stall before the first byte', plan: 'hang' },
  { name: 'stall mid-stream', plan: 'slowstream:1500', stream: true },
  { name: 'stream cut short', plan: 'truncate', stream: true },
  { name: '429 without Retry-After', plan: '429' },
  { name: '429 with Retry-After: 1', plan: '429:1' },
  { name: '500', plan: '500' },
  { name: '502', plan: '502' },
  { name: '503', plan: '503' },
  { name: 'malformed JSON', plan: 'badjson' },
  { name: '200 with an HTML page (text/html)', plan: 'ctype:text/html' },
  // The fallback echoes the same long prompt: its answer is too big too.
  { name: 'answer past the size bound', plan: null, big: true, noFallback: true },
  { name: 'slow-drip answer (16 B / 100 ms)', plan: 'drip:100' },
];

async function closedPort() {
  return new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
}

async function chat(url, model, content, stream) {
  const t0 = Date.now();
  try {
    const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, stream: !!stream, messages: [{ role: 'user', content }] }) });
    const text = await r.text();
    let json = true;
    if (!stream) { try { JSON.parse(text); } catch (_) { json = false; } }
    const done = stream ? text.includes('data: [DONE]') : json;
    return { status: r.status, ms: Date.now() - t0, upstream: r.headers.get('x-semcache-upstream') || '-',
      cache: r.headers.get('x-semcache'), complete: r.status === 200 && done, text };
  } catch (e) {
    return { status: 'reset', ms: Date.now() - t0, upstream: '-', cache: '-', complete: false, text: '' };
  }
}

async function upstreamStats(url, name) {
  const st = await (await fetch(`${url}/stats`)).json();
  return st.upstreams.find((u) => u.name === name);
}

async function row(f, A, B) {
  const aUrl = f.refused ? `http://127.0.0.1:${await closedPort()}` : A.url;
  const srv = await lib.startServer({ args: ['--upstream', B.url, '--retries', String(RETRIES),
    '--first-byte-timeout-ms', String(FIRST_BYTE_MS), '--upstream-idle-timeout-ms', String(IDLE_MS),
    '--max-upstream-body', String(MAX_BODY), '--breaker-failures', '3', '--breaker-cooldown-ms', '60000',
    '--upstream-def', `a ${aUrl} -`, '--upstream-def', `b ${B.url} -`,
    '--route', 'gpt-solo a', '--route', 'gpt-fb a,b'] });
  const bad = [];
  const prompt = (k) => (f.big ? `${BIG} ${k}` : `question ${k} for ${f.name}`);
  const arm = async (n) => { await A.reset(); if (f.plan) await A.plan(Array(n).fill(f.plan)); };
  try {
    // 1. No fallback: what the client sees.
    await arm(RETRIES + 1);
    const solo = await chat(srv.url, 'gpt-solo', prompt('solo'), f.stream);
    await A.reset();
    await lib.sleep(150);
    const soloAgain = await chat(srv.url, 'gpt-solo', prompt('solo'), f.stream);
    const soloCached = soloAgain.cache === 'hit-exact' || soloAgain.cache === 'hit-semantic';
    const soloOk = solo.complete;
    if (!soloOk && soloCached) bad.push('a failed answer was cached');
    if (solo.status === 200 && !solo.complete && !f.stream) bad.push('a 200 that is not a valid answer was relayed');
    // 2. With a fallback.
    await arm(RETRIES + 1);
    const fb = await chat(srv.url, 'gpt-fb', prompt('fb'), f.stream);
    const relayedBeforeFail = f.stream && fb.status === 200 && !fb.complete;   // a stream cut after it started
    if (!fb.complete && !relayedBeforeFail && !f.noFallback) bad.push(`the fallback did not answer (${fb.status})`);
    if (f.noFallback && fb.complete) bad.push('an answer past the bound was relayed');
    // 3. Three more failing calls: the breaker.
    await arm(3 * (RETRIES + 1));
    for (let k = 0; k < 3; k++) await chat(srv.url, 'gpt-fb', prompt(`brk ${k}`), f.stream);
    const a1 = await upstreamStats(srv.url, 'a');
    const after = await chat(srv.url, 'gpt-fb', prompt('after'), f.stream);
    const a2 = await upstreamStats(srv.url, 'a');
    const skipped = a2.skipped_open > a1.skipped_open;
    // Latency bound: each attempt ends by the first-byte timeout (or the
    // idle timeout after the first byte), plus backoff (<= 2 s per retry).
    const bound = (RETRIES + 1) * (FIRST_BYTE_MS + IDLE_MS) + RETRIES * 2000 + 1500;
    for (const [what, r] of [['solo', solo], ['fallback', fb]])
      if (r.ms > bound) bad.push(`${what} took ${r.ms} ms > ${bound} ms`);
    return { f, solo, soloCached, fb, breaker: a1.breaker, skipped, after, bound, bad };
  } finally {
    await lib.stopServer(srv);
  }
}

async function main() {
  const A = await mock.start({ port: 0, name: 'a', counter: false });
  const B = await mock.start({ port: 0, name: 'b', counter: false });
  const rows = [];
  for (const f of FAULTS) rows.push(await row(f, A, B));
  await A.close();
  await B.close();
  const out = ['| fault | client sees, no fallback | cached | with fallback: answered by, latency | breaker of "a" after 4 failing calls | next call skips "a" | problems |',
    '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const solo = r.solo.complete ? `200 from ${r.solo.upstream} (${r.solo.ms} ms)` :
      `${r.solo.status}${r.solo.status === 200 ? ' cut short' : ''} (${r.solo.ms} ms)`;
    const fb = r.fb.complete ? `${r.fb.upstream} (${r.fb.ms} ms)` : `${r.fb.status}${r.fb.status === 200 ? ' cut short' : ''} (${r.fb.ms} ms)`;
    out.push(`| ${r.f.name}${r.f.stream ? ' (streamed)' : ''} | ${solo} | ${r.soloCached ? (r.solo.complete ? 'yes (complete answer)' : '**YES**') : 'no'} | ${fb} | ` +
      `${r.breaker} | ${r.skipped ? 'yes' : 'no'} | ${r.bad.length ? r.bad.join('; ') : 'none'} |`);
  }
  console.log(out.join('\n'));
  const problems = rows.reduce((n, r) => n + r.bad.length, 0);
  console.log(`\nfault matrix: ${rows.length} faults, latency bound ${rows[0].bound} ms per call, problems ${problems}`);
  process.exit(problems ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
