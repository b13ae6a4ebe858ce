// Replay benchmark: how often semcached serves a cached answer, and how often
// that answer is wrong, over a long stream of real user queries, for fixed
// thresholds and for error-budget configurations.
//
// Data (--data DIR, or $SC_DATA_DIR): banking77_train.csv, banking77_test.csv
// (text,category) and clinc150_data_full.json.gz ("train", "test", ... lists
// of [text, intent]; the "oos_*" keys are ignored). An oracle upstream
// (benchmarks/oracle_upstream.js) answers every query with "intent: <label>",
// the label prefixed by its data set (banking77/card_arrival), so a served
// answer is right exactly when the cached query shares the intent.
//
// For each configuration it starts its own semcached (fresh data dir, no
// auth, upstream = the oracle), stores 3 train examples per intent (chosen
// with the seed) by sending them through the proxy with Cache-Control:
// no-cache (misses, written back), then replays the banking77 and CLINC150
// test queries through the proxy, shuffled with the seed and reshuffled on
// every pass, until --requests, --concurrency at a time; banking77 under
// namespace "banking77", CLINC150 under "clinc150" (X-Semcache-Namespace).
// Misses are answered by the oracle and written back, so the cache grows
// and exact repeats start after one pass over the ~7,580 queries.
//
// Outputs in --out (default benchmarks/results/; with --quick the names end
// in _quick): replay.csv (per config, per window of 1,000 requests: hit rate
// and served error rate of the window, and cumulative), replay_summary.csv
// (per config: hit rate, served error rate, and both after the warm-up,
// the first --warmup requests, also per namespace; a run shorter than twice
// the warm-up counts its first quarter as warm-up),
// replay_stats.json (each server's final /stats) and replay.png (gnuplot,
// benchmarks/replay.gp). A served error = a cache hit whose content is not
// "intent: <the query's own label>".
//
// Run: bash benchmarks/replay.sh [BUILD] [--quick]   (needs SC_DATA_DIR), or
//   node benchmarks/replay.js --data DIR [--build build] [--requests 20000]
//     [--concurrency 4] [--configs fixed-0.95,budget-0.05] [--seed 1]
//     [--warmup 5000] [--out benchmarks/results] [--request-log FILE] [--quick]
//     [--list]
// --configs takes any fixed-T or budget-R too; --request-log FILE writes one
// CSV row per replayed request (config, outcome, expected and served answer,
// X-Semcache-Request, latency, text) for a closer look at the wrong hits.
// Exits 1 on an infrastructure failure (a server that did not start or
// died, the oracle died, more than 1 % of requests failed); a config whose
// flags the server does not know (exit 2, "unknown option") is reported as
// skipped and the others go on.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const ROOT = path.resolve(__dirname, '..');
const WINDOW = 1000;
const REQUEST_TIMEOUT_MS = 30000;
const START_TIMEOUT_MS = 60000;
const SEEDS_PER_INTENT = 3;
const MAX_ERROR_FRACTION = 0.01;

const BUDGET_FLAGS = (rate) => ['--max-error-rate', rate, '--shadow-rate', '0.05'];
// The fixed sweep spans post-warm-up served error rates from about 5.5 %
// (0.88) to 0 (1.00: exact repeats only) on this data. Thresholds are on
// semcache-embed's score scale (server/cache.h: 0.88, 0.92, 0.94, 0.95,
// 0.96, 0.97, 0.98, 0.99 are the cosines 0.70, 0.76, 0.80, 0.82, 0.84,
// 0.87, 0.89, 0.93).
const CONFIGS = {
  'fixed-0.88': ['--threshold', '0.88'],
  'fixed-0.92': ['--threshold', '0.92'],
  'fixed-0.94': ['--threshold', '0.94'],
  'fixed-0.95': [],                               // the default threshold
  'fixed-0.96': ['--threshold', '0.96'],
  'fixed-0.97': ['--threshold', '0.97'],
  'fixed-0.98': ['--threshold', '0.98'],
  'fixed-0.99': ['--threshold', '0.99'],
  'fixed-1.00': ['--threshold', '1.0'],
  'budget-0.02': BUDGET_FLAGS('0.02'),
  'budget-0.05': BUDGET_FLAGS('0.05'),
};
const QUICK_CONFIGS = ['fixed-0.95', 'fixed-0.98', 'budget-0.05'];

// A config's flags: one of CONFIGS, or any fixed-T (--threshold T) or
// budget-R (--max-error-rate R --shadow-rate 0.05); null when unknown.
function configFlags(name) {
  if (CONFIGS[name]) return CONFIGS[name];
  const m = /^(fixed|budget)-(\d*\.?\d+)$/.exec(name);
  if (!m) return null;
  return m[1] === 'fixed' ? ['--threshold', m[2]] : BUDGET_FLAGS(m[2]);
}

// ---------------------------------------------------------------- options

function usage() {
  return 'usage: node benchmarks/replay.js --data DIR [--build DIR] [--requests N] [--concurrency C]\n' +
    '         [--configs a,b,...] [--seed S] [--warmup N] [--out DIR] [--request-log FILE] [--quick] [--list]\n' +
    `configs: ${Object.keys(CONFIGS).join(' ')} (default), or any fixed-T, budget-R\n`;
}

function parseArgs(argv) {
  const o = { data: process.env.SC_DATA_DIR || '', build: 'build', requests: null, concurrency: 4,
    configs: null, seed: 1, warmup: 5000, out: path.join(ROOT, 'benchmarks/results'), quick: false, list: false,
    requestLog: '' };
  const num = (k, v) => { const n = Number(v); if (!Number.isFinite(n)) throw new Error(`${k} wants a number`); return n; };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    const take = () => { if (v === undefined) throw new Error(`${a} wants a value`); i++; return v; };
    switch (a) {
      case '--data': o.data = take(); break;
      case '--build': o.build = take(); break;
      case '--requests': o.requests = num(a, take()); break;
      case '--concurrency': o.concurrency = num(a, take()); break;
      case '--configs': o.configs = take().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--seed': o.seed = num(a, take()); break;
      case '--warmup': o.warmup = num(a, take()); break;
      case '--out': o.out = take(); break;
      case '--request-log': o.requestLog = take(); break;
      case '--quick': o.quick = true; break;
      case '--list': o.list = true; break;
      case '-h': case '--help': process.stdout.write(usage()); process.exit(0); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (o.requests === null) o.requests = o.quick ? 2000 : 20000;
  if (!o.configs) o.configs = o.quick ? QUICK_CONFIGS : Object.keys(CONFIGS);
  for (const c of o.configs) if (!configFlags(c)) throw new Error(`unknown config ${c}`);
  if (!o.list && !o.data) throw new Error('no data dir: pass --data DIR or set SC_DATA_DIR');
  if (o.requests < 1 || o.concurrency < 1) throw new Error('--requests and --concurrency want >= 1');
  // A run shorter than twice the warm-up measures after a quarter of it.
  if (o.warmup * 2 > o.requests) o.warmup = Math.floor(o.requests / 4);
  o.suffix = o.quick ? '_quick' : '';
  return o;
}

// ------------------------------------------------------------------- data

// mulberry32: a small seeded PRNG, uniform in [0, 1).
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(arr, rnd) {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [arr[i], arr[j]] = [arr[j], arr[i]];
  }
  return arr;
}

// RFC 4180 CSV: quoted fields may hold commas, newlines and "" quotes.
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') { field += '"'; i++; }
      else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function readBanking77(dir, file) {
  const rows = parseCsv(fs.readFileSync(path.join(dir, file), 'utf8'));
  const head = rows.shift() || [];
  if (head[0] !== 'text' || head[1] !== 'category') throw new Error(`${file}: want a "text,category" header`);
  return rows.filter((r) => r.length === 2 && r[0] !== '')
    .map(([text, cat]) => ({ ns: 'banking77', text, label: `banking77/${cat}` }));
}

function readClinc150(dir) {
  const j = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dir, 'clinc150_data_full.json.gz'))));
  const split = (k) => (j[k] || []).map(([text, intent]) => ({ ns: 'clinc150', text, label: `clinc150/${intent}` }));
  return { train: split('train'), val: split('val'), test: split('test') };
}

// The server's exact-match key is the text with white space and case
// normalised; a text that means two intents (after that) would make the
// oracle and the check disagree, so such texts are left out.
const normKey = (ns, text) => `${ns}\u0000${text.trim().replace(/\s+/g, ' ').toLowerCase()}`;

function ambiguousTexts(items) {
  const seen = new Map(), bad = new Set(), byText = new Map();
  for (const it of items) {
    for (const [m, k] of [[seen, normKey(it.ns, it.text)], [byText, it.text]]) {
      if (m.has(k) && m.get(k) !== it.label) bad.add(k); else m.set(k, it.label);
    }
  }
  return (it) => bad.has(normKey(it.ns, it.text)) || bad.has(it.text);
}

function pickSeeds(train, rnd) {
  const byIntent = new Map();
  for (const it of train) {
    if (!byIntent.has(it.label)) byIntent.set(it.label, []);
    byIntent.get(it.label).push(it);
  }
  const seeds = [];
  for (const label of [...byIntent.keys()].sort())
    seeds.push(...shuffle(byIntent.get(label).slice(), rnd).slice(0, SEEDS_PER_INTENT));
  return seeds;
}

function loadData(dir, seed) {
  const b77 = { train: readBanking77(dir, 'banking77_train.csv'), test: readBanking77(dir, 'banking77_test.csv') };
  const clinc = readClinc150(dir);
  const all = [...b77.train, ...b77.test, ...clinc.train, ...clinc.val, ...clinc.test];
  const ambiguous = ambiguousTexts(all);
  const rnd = mulberry32(seed);
  const seeds = pickSeeds([...b77.train, ...clinc.train].filter((it) => !ambiguous(it)), rnd);
  const queries = [...b77.test, ...clinc.test].filter((it) => !ambiguous(it));
  const map = {};
  for (const it of [...seeds, ...queries]) { map[it.text] = it.label; map[it.text.trim()] = it.label; }
  return { seeds, queries, map, dropped: [...b77.test, ...clinc.test].length - queries.length,
    counts: { banking77: b77.test.length, clinc150: clinc.test.length } };
}

// The query stream: the test queries shuffled, reshuffled for each pass.
function queryStream(queries, n, rnd) {
  const out = [];
  while (out.length < n) out.push(...shuffle(queries.slice(), rnd).slice(0, n - out.length));
  return out;
}

// -------------------------------------------------------------- processes

const children = new Set();
const tmpDirs = new Set();

function cleanup() {
  for (const p of children) { try { p.kill('SIGKILL'); } catch (_) { /* gone */ } }
  for (const d of tmpDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch (_) { /* best effort */ } }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    process.stderr.write(`replay: ${sig}, stopping\n`);
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

function tmpDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

function removeDir(d) {
  tmpDirs.delete(d);
  fs.rmSync(d, { recursive: true, force: true });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Spawns a child and keeps the tail of its stderr; .exited resolves on exit.
function spawnChild(bin, args) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const child = { proc, stderr: '', stdout: '' };
  proc.stderr.on('data', (d) => { child.stderr = (child.stderr + d).slice(-20000); });
  child.exited = new Promise((resolve) => {
    const gone = (code, sig) => {
      children.delete(proc);
      if (!child.exit) child.exit = { code, sig };
      resolve(child.exit);
    };
    proc.on('exit', gone);
    proc.on('error', (e) => { child.stderr += `spawn ${bin}: ${e.message}\n`; if (proc.pid === undefined) gone(-1, null); });
  });
  return child;
}

async function stopChild(child, ms = 10000) {
  if (child.exit) return child.exit;
  child.proc.kill('SIGTERM');
  const t = setTimeout(() => { try { child.proc.kill('SIGKILL'); } catch (_) { /* gone */ } }, ms);
  const e = await child.exited;
  clearTimeout(t);
  return e;
}

async function startOracle(map) {
  const dir = tmpDir('sc_replay_oracle_');
  const mapFile = path.join(dir, 'map.json');
  fs.writeFileSync(mapFile, JSON.stringify(map));
  const child = spawnChild(process.execPath, [path.join(__dirname, 'oracle_upstream.js'), '--map', mapFile, '--port', '0']);
  child.port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('oracle did not start in 30 s')), 30000);
    child.proc.stdout.on('data', (d) => {
      child.stdout += d;
      const m = /listening (\d+)/.exec(child.stdout);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    child.exited.then((e) => { clearTimeout(t); reject(new Error(`oracle exited (${e.code ?? e.sig}): ${child.stderr.trim()}`)); });
  });
  return child;
}

class SkipConfig extends Error {}

// Starts semcached for one config; throws SkipConfig when it refuses a flag.
async function startSemcached(bin, oraclePort, flags) {
  const dataDir = tmpDir('sc_replay_data_');
  const port = await freePort();
  const args = ['--port', String(port), '--resp-port', '0', '--data-dir', dataDir,
    '--upstream', `http://127.0.0.1:${oraclePort}`, '--log-level', 'error', '--durability', 'nosync', ...flags];
  const child = spawnChild(bin, args);
  child.dataDir = dataDir;
  child.url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (child.exit) {
      removeDir(dataDir);
      const msg = `semcached ${flags.join(' ')} exited (${child.exit.code ?? child.exit.sig}): ${child.stderr.trim()}`;
      if (child.exit.code === 2 && /unknown option/i.test(child.stderr)) throw new SkipConfig(msg);
      throw new Error(msg);
    }
    try {
      const r = await fetch(`${child.url}/healthz`, { signal: AbortSignal.timeout(2000) });
      await r.text();
      if (r.ok) return child;
    } catch (_) { /* not yet */ }
    if (Date.now() - t0 > START_TIMEOUT_MS) {
      await stopChild(child, 1000);
      removeDir(dataDir);
      throw new Error(`semcached did not answer /healthz in ${START_TIMEOUT_MS / 1000} s: ${child.stderr.trim()}`);
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------- requests

// One chat request through the proxy; never throws, never waits past 30 s.
async function ask(url, item, headers = {}) {
  const body = JSON.stringify({ model: 'replay-model', messages: [{ role: 'user', content: item.text }] });
  const t0 = performance.now();
  try {
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      headers: { 'content-type': 'application/json', 'x-semcache-namespace': item.ns, ...headers } });
    const text = await r.text();
    let content = null;
    try { content = JSON.parse(text).choices[0].message.content; } catch (_) { /* not an answer */ }
    return { status: r.status, cache: r.headers.get('x-semcache') || '', requestId: r.headers.get('x-semcache-request') || '',
      content, ms: performance.now() - t0, error: r.ok ? '' : text.slice(0, 200) };
  } catch (e) {
    return { status: 0, cache: '', requestId: '', content: null, ms: performance.now() - t0,
      error: e.name === 'TimeoutError' ? 'timeout' : String(e.cause && e.cause.code || e.message) };
  }
}

// Runs fn over items, `concurrency` at a time, until done or stop() is true.
async function pool(items, concurrency, fn, stop) {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop()) { const i = next++; await fn(items[i], i); }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function record(i, item, r) {
  const served = r.cache === 'hit-exact' || r.cache === 'hit-semantic';
  const answered = r.status === 200 && r.content !== null;
  return { index: i, ns: item.ns, cache: r.cache, served, wrong: answered && r.content !== `intent: ${item.label}`,
    failed: !answered, requestId: r.requestId, ms: r.ms, error: r.error, content: r.content };
}

// Stores the seeds: Cache-Control: no-cache skips the lookup and stores the
// oracle's answer, so each seed is one entry even when it resembles another.
async function storeSeeds(server, seeds, concurrency, stop) {
  const bad = [];
  await pool(seeds, concurrency, async (it) => {
    const r = await ask(server.url, it, { 'cache-control': 'no-cache' });
    if (r.status !== 200 || r.content !== `intent: ${it.label}`) bad.push(`${r.status} ${r.error || r.content}`);
  }, stop);
  if (bad.length) throw new Error(`${bad.length} of ${seeds.length} seeds failed, e.g. ${bad[0]}`);
}

async function fetchJson(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return r.ok ? await r.json() : null;
  } catch (_) { return null; }
}

const semcachedBin = (opt) => process.env.SEMCACHED_BIN || path.resolve(ROOT, opt.build, 'semcached');

// One configuration: a fresh server, the seeds, then the replay.
async function runConfig(opt, name, stream, data, oracle) {
  const server = await startSemcached(semcachedBin(opt), oracle.port, configFlags(name));
  const stop = () => !!(server.exit || oracle.exit);
  const t0 = Date.now();
  try {
    await storeSeeds(server, data.seeds, opt.concurrency, stop);
    const records = new Array(stream.length);
    let done = 0;
    await pool(stream, opt.concurrency, async (item, i) => {
      records[i] = record(i, item, await ask(server.url, item));
      if (++done % 5000 === 0) process.stderr.write(`  ${name}: ${done} / ${stream.length}\n`);
    }, stop);
    if (oracle.exit) throw new Error(`the oracle died (${oracle.exit.code ?? oracle.exit.sig}): ${oracle.stderr.trim()}`);
    if (server.exit) throw new Error(`semcached died (${server.exit.code ?? server.exit.sig}): ${server.stderr.trim()}`);
    const stats = await fetchJson(`${server.url}/stats`);
    return { records, stats, seconds: (Date.now() - t0) / 1000 };
  } finally {
    const e = await stopChild(server);
    if (e.code !== 0 && !stop()) process.stderr.write(`  ${name}: semcached exited ${e.code ?? e.sig} on SIGTERM\n`);
    removeDir(server.dataDir);
  }
}

// ----------------------------------------------------------------- results

function tally(recs) {
  const t = { n: recs.length, served: 0, wrong: 0, failed: 0, wrongMiss: 0, semantic: 0, wrongSemantic: 0 };
  for (const r of recs) {
    if (r.failed) t.failed++;
    else if (r.served) {
      t.served++;
      if (r.wrong) t.wrong++;
      if (r.cache === 'hit-semantic') { t.semantic++; if (r.wrong) t.wrongSemantic++; }
    } else if (r.wrong) t.wrongMiss++;
  }
  t.hitRate = t.n ? t.served / t.n : NaN;
  t.errRate = t.served ? t.wrong / t.served : NaN;
  return t;
}

function windowRows(name, records) {
  const rows = [];
  for (let s = 0; s < records.length; s += WINDOW) {
    const w = tally(records.slice(s, s + WINDOW)), c = tally(records.slice(0, s + WINDOW));
    rows.push([name, Math.min(s + WINDOW, records.length), w.hitRate, w.errRate, c.hitRate, c.errRate, w.failed]);
  }
  return rows;
}

const NAMESPACES = ['banking77', 'clinc150'];

function summaryRow(name, run, warmup) {
  const all = tally(run.records), postRecs = run.records.slice(warmup), post = tally(postRecs);
  const byNs = {};
  for (const ns of NAMESPACES) {
    const t = tally(postRecs.filter((r) => r.ns === ns));
    byNs[`${ns}_hit_rate_after_warmup`] = t.hitRate;
    byNs[`${ns}_served_error_rate_after_warmup`] = t.errRate;
  }
  return { config: name, requests: all.n, hit_rate: all.hitRate, served_error_rate: all.errRate,
    warmup, hit_rate_after_warmup: post.hitRate, served_error_rate_after_warmup: post.errRate,
    semantic_hits_after_warmup: post.semantic, wrong_semantic_after_warmup: post.wrongSemantic,
    served: all.served, wrong_served: all.wrong, wrong_on_miss: all.wrongMiss, failed: all.failed,
    seconds: run.seconds, ...byNs };
}

const fmt = (x) => (typeof x === 'number' ? (Number.isNaN(x) ? '' : Number.isInteger(x) ? String(x) : x.toFixed(5)) : String(x));

function writeCsv(file, header, rows) {
  fs.writeFileSync(file, [header.join(','), ...rows.map((r) => r.map(fmt).join(','))].join('\n') + '\n');
}

const csvField = (v) => (/[",\n\r]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));

function appendRequestLog(file, name, stream, records) {
  if (!fs.existsSync(file)) fs.writeFileSync(file, 'config,index,namespace,cache,wrong,expected,served,request_id,ms,text\n');
  const lines = records.map((r) => [name, r.index, r.ns, r.failed ? `failed ${r.error}` : r.cache, r.wrong ? 1 : 0,
    stream[r.index].label, r.content === null ? '' : r.content.replace(/^intent: /, ''), r.requestId, r.ms.toFixed(2),
    stream[r.index].text].map(csvField).join(','));
  fs.appendFileSync(file, lines.join('\n') + '\n');
}

function plot(csv, png, configs) {
  const gp = path.join(__dirname, 'replay.gp');
  const q = (s) => s.replace(/'/g, '');
  const r = spawnSync('gnuplot',
    ['-e', `csv='${q(csv)}'; out='${q(png)}'; configs='${configs.join(' ')}'`, gp], { encoding: 'utf8' });
  if (r.error || r.status !== 0) process.stderr.write(`replay: no plot (gnuplot: ${r.error ? r.error.message : r.stderr.trim()})\n`);
}

const pct = (x) => (Number.isNaN(x) ? '   -  ' : `${(100 * x).toFixed(2).padStart(6)}%`);

// For each budget config: the fixed config whose post-warm-up error is the
// closest at or above the budget config's own (if the budget config's hit
// rate is higher, it does better on both counts), and the closest below.
function compareBudgets(summary) {
  const err = (s) => s.served_error_rate_after_warmup;
  const fixed = summary.filter((s) => s.config.startsWith('fixed-') && !Number.isNaN(err(s)))
    .sort((x, y) => err(x) - err(y));
  const desc = (s) => `${s.config} (error ${pct(err(s))}, hit rate ${pct(s.hit_rate_after_warmup)})`;
  const lines = [];
  for (const b of summary.filter((s) => s.config.startsWith('budget-'))) {
    const above = fixed.find((f) => err(f) >= err(b));
    const below = fixed.filter((f) => err(f) < err(b)).pop();
    lines.push(`${b.config}: after warm-up error ${pct(err(b))}, hit rate ${pct(b.hit_rate_after_warmup)}; ` +
      `closest fixed at or above that error: ${above ? desc(above) : 'none'}` +
      (below ? `; closest below: ${desc(below)}` : ''));
  }
  return lines;
}

function printSummary(opt, summary, skipped, failed, seconds) {
  const out = [];
  out.push('', `replay: ${opt.requests} requests per config, concurrency ${opt.concurrency}, seed ${opt.seed}, ` +
    `warm-up ${opt.warmup}; ${seconds.toFixed(0)} s in all`);
  out.push('config        hit rate  served err | after warm-up: hit rate  served err | wrong/served  failed    secs');
  for (const s of summary) {
    out.push(`${s.config.padEnd(12)} ${pct(s.hit_rate)}    ${pct(s.served_error_rate)} |               ` +
      `${pct(s.hit_rate_after_warmup)}    ${pct(s.served_error_rate_after_warmup)} | ` +
      `${String(s.wrong_served).padStart(5)}/${String(s.served).padEnd(6)} ${String(s.failed).padStart(6)} ${s.seconds.toFixed(0).padStart(7)}`);
    out.push(`${''.padEnd(12)}   after warm-up by namespace: ` + NAMESPACES.map((ns) =>
      `${ns} hit ${pct(s[`${ns}_hit_rate_after_warmup`])} err ${pct(s[`${ns}_served_error_rate_after_warmup`])}`).join(', '));
    if (s.wrong_on_miss) out.push(`  ${s.config}: ${s.wrong_on_miss} misses came back wrong from upstream (oracle map?)`);
  }
  for (const l of compareBudgets(summary)) out.push(l);
  for (const [c, why] of skipped) out.push(`SKIPPED ${c}: ${why}`);
  for (const [c, why] of failed) out.push(`FAILED ${c}: ${why}`);
  process.stdout.write(out.join('\n') + '\n');
}

// -------------------------------------------------------------------- main

async function main() {
  let opt;
  try { opt = parseArgs(process.argv.slice(2)); } catch (e) {
    process.stderr.write(`replay: ${e.message}\n${usage()}`);
    return 2;
  }
  if (opt.list) { process.stdout.write(Object.keys(CONFIGS).join('\n') + '\n'); return 0; }
  const bin = semcachedBin(opt);
  if (!fs.existsSync(bin)) { process.stderr.write(`replay: no ${bin}: build it first (make -j2)\n`); return 1; }
  const t0 = Date.now();
  const data = loadData(opt.data, opt.seed);
  const stream = queryStream(data.queries, opt.requests, mulberry32(opt.seed + 1));
  process.stderr.write(`replay: ${data.seeds.length} seeds, ${data.queries.length} test queries ` +
    `(banking77 ${data.counts.banking77}, clinc150 ${data.counts.clinc150}, ${data.dropped} ambiguous left out), ` +
    `${opt.requests} requests, configs ${opt.configs.join(' ')}\n`);
  if (opt.requestLog) fs.rmSync(opt.requestLog, { force: true });
  const oracle = await startOracle(data.map);
  fs.mkdirSync(opt.out, { recursive: true });
  const windows = [], summary = [], skipped = [], failed = [], stats = {};
  for (const name of opt.configs) {
    process.stderr.write(`replay: ${name} (${configFlags(name).join(' ') || 'default flags'})\n`);
    try {
      const run = await runConfig(opt, name, stream, data, oracle);
      windows.push(...windowRows(name, run.records));
      const s = summaryRow(name, run, opt.warmup);
      summary.push(s);
      stats[name] = run.stats;
      if (opt.requestLog) appendRequestLog(opt.requestLog, name, stream, run.records.filter(Boolean));
      if (s.failed > MAX_ERROR_FRACTION * s.requests) {
        const e = run.records.find((r) => r.failed);
        failed.push([name, `${s.failed} requests failed, e.g. status error "${e.error}"`]);
      }
    } catch (e) {
      if (e instanceof SkipConfig) { skipped.push([name, e.message]); process.stderr.write(`replay: SKIPPED ${e.message}\n`); continue; }
      failed.push([name, e.message]);
      process.stderr.write(`replay: FAILED ${name}: ${e.message}\n`);
      if (oracle.exit) break;
    }
  }
  await stopChild(oracle);
  const file = (n) => path.join(opt.out, `${n}${opt.suffix}`);
  writeCsv(`${file('replay')}.csv`, ['config', 'requests_so_far', 'hit_rate_window', 'served_error_rate_window',
    'hit_rate_cumulative', 'served_error_rate_cumulative', 'failed_window'], windows);
  const cols = ['config', 'requests', 'hit_rate', 'served_error_rate', 'warmup', 'hit_rate_after_warmup',
    'served_error_rate_after_warmup', 'semantic_hits_after_warmup', 'wrong_semantic_after_warmup', 'served',
    'wrong_served', 'wrong_on_miss', 'failed', 'seconds',
    ...NAMESPACES.flatMap((ns) => [`${ns}_hit_rate_after_warmup`, `${ns}_served_error_rate_after_warmup`])];
  writeCsv(`${file('replay_summary')}.csv`, cols, summary.map((s) => cols.map((c) => s[c])));
  fs.writeFileSync(`${file('replay_stats')}.json`, JSON.stringify(stats, null, 1) + '\n');
  if (summary.length) plot(`${file('replay')}.csv`, `${file('replay')}.png`, summary.map((s) => s.config));
  printSummary(opt, summary, skipped, failed, (Date.now() - t0) / 1000);
  return failed.length ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e) => {
  process.stderr.write(`replay: ${e && e.stack || e}\n`);
  process.exit(1);
});
