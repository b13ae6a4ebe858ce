// The soak run behind benchmarks/soak.sh: a long mixed load against one
// semcached, sampled every SAMPLE_S seconds.
//
// Load (concurrently, all the time): proxied chat requests through the mock
// upstream over a prompt space bigger than the cache (exact hits, semantic
// hits, misses), /cache/store with short TTLs (expiries), deletes of
// entries stored earlier, RESP SEM.SET/SEM.GET; the server runs with
// --max-entries so evictions happen all along.
// Samples: RSS (kB, /proc), open fds, p99 latency of the chat requests of
// the interval, hit rate of the interval, errors (non-2xx or failed
// requests). Writes CSV to OUT and prints a summary; exits 1 when the run
// fails: after warm-up (the first 20 % of the samples) the median RSS of
// the last five samples is more than 5 % off that of the first five, the
// median fd count grew by more than 2, or any request failed.
//   node benchmarks/soak.js DURATION_S OUT.csv
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createClient } = require('../tests/node_modules/redis');   // installed by make deps
const lib = require('../tests/integration/lib');
const mock = require('../tests/integration/mock_upstream');

const DURATION = Number(process.argv[2] || 1800);
const OUT = process.argv[3] || 'soak.csv';
const SAMPLE_S = Number(process.env.SAMPLE_S || 10);
const MAX_ENTRIES = 1000;

let lat = [], hits = 0, looked = 0, errors = 0, done = 0;
const TOPICS = ['reset my password', 'change my email', 'cancel my plan', 'update my card', 'export my data',
  'delete my account', 'enable two-factor', 'invite a teammate', 'download an invoice', 'change the language'];
const FORMS = [(t, n) => `how do I ${t} (case ${n})?`, (t, n) => `How can I ${t}, case ${n}`,
  (t, n) => `what is the way to ${t} for case ${n}`];

const WORDS = ('apple river cloud engine marble violet tiger lantern garden copper pencil rocket meadow falcon ' +
  'harbor silver canyon button jungle quartz velvet orbit candle walnut glacier thunder saddle pepper ' +
  'compass ladder whistle maple comet anchor prairie fossil lemon timber beacon cobalt').split(' ');
const pick = () => WORDS[Math.floor(Math.random() * WORDS.length)];

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const pct = (a, p) => { if (!a.length) return 0; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const median = (a) => pct(a, 0.5);

async function chatLoop(url, stop) {
  while (!stop.now) {
    // Two in three: FAQ phrasings (exact and semantic hits); one in three: a
    // question made of random words (a miss; together they overflow
    // --max-entries, so evictions run all along).
    const n = Math.floor(Math.random() * 30);
    const prompt = Math.random() < 0.67 ? FORMS[n % 3](TOPICS[n % TOPICS.length], n % 3)
      : `${pick()} ${pick()} ${pick()} ${pick()}: what about ${pick()} and ${pick()}?`;
    const t0 = process.hrtime.bigint();
    try {
      const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }) });
      await r.text();
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const x = r.headers.get('x-semcache') || '';
      if (x.startsWith('hit')) hits++;
      if (x.startsWith('hit') || x === 'miss') looked++;
      if (r.status !== 200) errors++;
      done++;
    } catch (_) { errors++; }
  }
}

async function storeLoop(url, stop) {
  const ids = [];
  let i = 0;
  while (!stop.now) {
    try {
      const r = await fetch(`${url}/cache/store`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace: 'soak', prompt: `stored ${i++}`, response: 'x'.repeat(500), ttl: 1 + (i % 5) }) });
      const b = await r.json();
      if (r.status === 200) ids.push(b.id); else errors++;
      if (ids.length > 400) {   // delete one stored earlier (most have expired: 404 is fine)
        const d = await fetch(`${url}/cache/entries/${ids.shift()}`, { method: 'DELETE' });
        await d.text();
        if (d.status !== 200 && d.status !== 404) errors++;
      }
    } catch (_) { errors++; }
  }
}

async function respLoop(port, stop) {
  const c = createClient({ socket: { host: '127.0.0.1', port } });
  c.on('error', () => { errors++; });
  await c.connect();
  let i = 0;
  while (!stop.now) {
    try {
      await c.sendCommand(['SEM.SET', 'resp', `k ${i % 500}`, `v ${i}`, 'EX', '30']);
      await c.sendCommand(['SEM.GET', 'resp', `k ${(i * 7) % 500}`]);
      i++;
    } catch (_) { errors++; }
  }
  await c.quit();
}

async function main() {
  const up = await mock.start({ port: 0, name: 'soak', counter: false });
  const srv = await lib.startServer({ embedder: process.env.SOAK_EMBEDDER || 'semcache-embed',
    args: ['--upstream', up.url, '--max-entries', String(MAX_ENTRIES), '--durability', 'nosync'] });
  const pid = srv.proc.pid;
  const stop = { now: false };
  const loops = [chatLoop(srv.url, stop), chatLoop(srv.url, stop), chatLoop(srv.url, stop),
    storeLoop(srv.url, stop), respLoop(srv.respPort, stop)];
  const rows = [];
  const out = fs.createWriteStream(OUT);
  out.write('t_s,rss_kb,fds,requests,p99_ms,hit_rate,errors,entries,evicted,expired\n');
  const t0 = Date.now();
  while ((Date.now() - t0) / 1000 < DURATION) {
    await lib.sleep(SAMPLE_S * 1000);
    const st = await (await fetch(`${srv.url}/stats`)).json();
    const row = { t: Math.round((Date.now() - t0) / 1000), rss: rssKb(pid), fds: fds(pid), n: done,
      p99: pct(lat, 0.99), hr: looked ? hits / looked : 0, err: errors, entries: st.cache.entries,
      evicted: st.cache.evicted, expired: st.cache.expired };
    rows.push(row);
    out.write(`${row.t},${row.rss},${row.fds},${row.n},${row.p99.toFixed(2)},${row.hr.toFixed(3)},${row.err},` +
      `${row.entries},${row.evicted},${row.expired}\n`);
    console.log(`t=${row.t}s rss=${row.rss}kB fds=${row.fds} req=${row.n} p99=${row.p99.toFixed(1)}ms ` +
      `hit=${(100 * row.hr).toFixed(1)}% err=${row.err} entries=${row.entries} evicted=${row.evicted} expired=${row.expired}`);
    lat = []; hits = 0; looked = 0; done = 0;
  }
  stop.now = true;
  await Promise.all(loops);
  out.end();
  await lib.stopServer(srv);
  await up.close();
  // Verdict: after warm-up (first 20 %), RSS within +-5 %, fds flat, no error.
  const warm = rows.slice(Math.ceil(rows.length * 0.2));
  const first = median(warm.slice(0, 5).map((r) => r.rss)), last = median(warm.slice(-5).map((r) => r.rss));
  const drift = first ? (last - first) / first : 0;
  // fds move by a connection or two (keep-alive pools): compare medians.
  const fdFirst = median(warm.slice(0, 5).map((r) => r.fds)), fdLast = median(warm.slice(-5).map((r) => r.fds));
  const fdGrowth = fdLast - fdFirst;
  const errs = rows.length ? rows[rows.length - 1].err : 0;
  const ok = Math.abs(drift) <= 0.05 && fdGrowth <= 2 && errs === 0 && rows.length >= 3;
  console.log(`soak ${DURATION}s: RSS after warm-up ${first} -> ${last} kB (${(100 * drift).toFixed(1)} %), ` +
    `fds (median) ${fdFirst} -> ${fdLast}, errors ${errs}, ` +
    `evicted ${rows.length ? rows[rows.length - 1].evicted : 0}, expired ${rows.length ? rows[rows.length - 1].expired : 0}: ` +
    (ok ? 'PASS' : 'FAIL'));
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(2); });
