// Offered load for bench_overload.sh. Two phases against a running
// semcached (its URL is the first argument):
//   capacity: 8 clients, each sending distinct prompts to /cache/lookup one
//             after another for CAP_S seconds: completed semantic lookups
//             per second = what the embedder sustains (C);
//   overload: an open loop that starts FACTOR x C lookups per second with
//             distinct prompts for OVER_S seconds, whatever the server's
//             pace (no client waits for an answer before sending the next).
// Prints one JSON object: C, offered and answered counts by status, latency
// percentiles of the 200s and the 503s (from when the request had a socket), the worst latency seen, and the
// server's RSS sampled every second (from /proc, pid as second argument).
'use strict';
const fs = require('node:fs');
const http = require('node:http');

const url = new URL(process.argv[2]);
const pid = Number(process.argv[3]);
const CAP_S = Number(process.env.CAP_S || 5);
const OVER_S = Number(process.env.OVER_S || 15);
const FACTOR = Number(process.env.FACTOR || 4);
/* Enough sockets that lookups queue in the server, not in this client
 * (the server's --max-conns is 10,000 by default). */
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(process.env.SOCKETS || 6000) });
let seq = 0;

function lookup() {
  const body = JSON.stringify({ namespace: 'bench', prompt: `overload question ${seq++} about subject ${seq * 7919 % 1000}` });
  let t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, path: '/cache/lookup', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    /* Latency counts from when the request has a socket: time spent
     * waiting for one inside this client is the client's, not the server's. */
    req.on('socket', () => { t0 = process.hrtime.bigint(); });
    req.on('error', (e) => resolve({ status: `error ${e.code}`, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    req.end(body);
  });
}

function rssMiB() {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch (_) { return null; }
}

const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : null);
const round = (x) => (x == null ? null : Math.round(x * 100) / 100);

async function main() {
  /* Capacity. */
  let done = 0;
  const end = Date.now() + CAP_S * 1000;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (Date.now() < end) if ((await lookup()).status === 200) done++;
  }));
  const cap = done / CAP_S;
  /* Overload: open loop, one tick every 10 ms. */
  const rate = FACTOR * cap;
  const pending = [];
  const rss = [rssMiB()];
  const t0 = Date.now();
  let sent = 0;
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const el = (Date.now() - t0) / 1000;
      if (el >= OVER_S) { clearInterval(tick); resolve(); return; }
      const due = Math.floor(el * rate);
      while (sent < due) { pending.push(lookup()); sent++; }
    }, 10);
    const sampler = setInterval(() => { rss.push(rssMiB()); if (Date.now() - t0 >= OVER_S * 1000) clearInterval(sampler); }, 1000);
  });
  const rs = await Promise.all(pending);
  rss.push(rssMiB());
  const by = {};
  for (const r of rs) (by[r.status] = by[r.status] || []).push(r.ms);
  for (const k of Object.keys(by)) by[k].sort((a, b) => a - b);
  const lat = (k) => (by[k] ? { n: by[k].length, p50: round(pct(by[k], 0.5)), p99: round(pct(by[k], 0.99)), max: round(by[k][by[k].length - 1]) } : { n: 0 });
  const rssv = rss.filter((x) => x != null);
  console.log(JSON.stringify({
    capacity_per_s: round(cap), factor: FACTOR, offered_per_s: round(rate), offered: sent, seconds: OVER_S,
    ok: lat(200), overloaded: lat(503),
    other: Object.keys(by).filter((k) => k !== '200' && k !== '503').map((k) => `${k}:${by[k].length}`).join(' ') || 'none',
    rss_mib_start: round(rssv[0]), rss_mib_max: round(Math.max(...rssv)), rss_mib_end: round(rssv[rssv.length - 1]),
  }));
  agent.destroy();
}

main().catch((e) => { console.error(e); process.exit(1); });
