// Integration-test harness: a TAP printer, a real semcached started on
// ephemeral ports with a temporary data dir, and small HTTP helpers.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const tests = [];
function test(name, fn) { tests.push({ name, fn }); }

async function run() {
  console.log(`1..${tests.length}`);
  let i = 0, bad = 0;
  for (const t of tests) {
    i++;
    try {
      await withTimeout(t.fn(), 60000, t.name);
      console.log(`ok ${i} - ${t.name}`);
    } catch (e) {
      if (e && e.skip) { console.log(`ok ${i} - ${t.name} # SKIP ${e.skip}`); continue; }
      bad++;
      console.log(`not ok ${i} - ${t.name}`);
      for (const l of String(e && e.stack || e).split('\n').slice(0, 6)) console.log(`# ${l}`);
    }
  }
  await stopAll();
  process.exit(bad ? 1 : 0);
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(timer)),
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

const servers = new Set();
// Temp dirs this process made (data dirs, logs): removed when it exits,
// whether the tests passed or not.
const tmpDirs = new Set();
function tmpDir(prefix = 'sc_it_') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}
process.on('exit', () => {
  for (const s of servers) { try { s.proc.kill('SIGKILL'); } catch (_) { /* gone */ } }
  for (const d of tmpDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch (_) { /* best effort */ } }
});
// The semcached binary under test (tests/run.sh sets SEMCACHED_BIN).
const semcachedBin = process.env.SEMCACHED_BIN || path.resolve(__dirname, '../../build/semcached');

// Starts semcached; resolves once /healthz answers. opts.args: extra flags;
// opts.dataDir: reuse a data dir (restart tests).
async function startServer(opts = {}) {
  const bin = semcachedBin;
  const port = await freePort();
  const respPort = opts.resp === false ? 0 : await freePort();
  const dataDir = opts.dataDir || tmpDir('sc_it_');
  const args = ['--port', String(port), '--resp-port', String(respPort), '--data-dir', dataDir,
    '--embedder', opts.embedder || 'hash', '--log-level', opts.logLevel || 'warn',
    ...(opts.args || [])];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(opts.env || {}) } });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; if (stderr.length > 1e6) stderr = stderr.slice(-5e5); });
  proc.stdout.on('data', () => {});
  const srv = { proc, port, respPort, dataDir, url: `http://127.0.0.1:${port}`, stderr: () => stderr,
    exited: new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig }))) };
  servers.add(srv);
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`semcached exited (${proc.exitCode}): ${stderr}`);
    try { const r = await fetch(`${srv.url}/healthz`); if (r.ok) break; } catch (_) { /* not yet */ }
    if (Date.now() - t0 > 30000) throw new Error(`semcached did not start: ${stderr}`);
    await sleep(30);
  }
  return srv;
}

async function stopServer(srv, signal = 'SIGTERM') {
  if (!servers.has(srv)) return null;
  servers.delete(srv);
  if (srv.proc.exitCode === null) srv.proc.kill(signal);
  return srv.exited;
}

async function stopAll() { for (const s of [...servers]) await stopServer(s, 'SIGKILL'); }

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Raw TCP exchange: sends data (string/Buffer or array of chunks with
// delays), collects everything until the peer closes or ms pass.
function rawExchange(port, chunks, { ms = 3000, delay = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = Buffer.alloc(0), closed = false;
    const started = Date.now();
    sock.on('data', (d) => { out = Buffer.concat([out, d]); });
    sock.on('error', () => {});
    sock.on('close', () => { closed = true; clearTimeout(timer); resolve({ data: out.toString('latin1'), closed, elapsed: Date.now() - started }); });
    const timer = setTimeout(() => { sock.destroy(); resolve({ data: out.toString('latin1'), closed: false, elapsed: Date.now() - started }); }, ms);
    (async () => {
      for (const c of Array.isArray(chunks) ? chunks : [chunks]) {
        if (closed) break;
        sock.write(c);
        if (delay) await sleep(delay);
      }
    })();
  });
}

// Throw skip('why') from a test to report it as skipped (TAP "# SKIP").
function skip(reason) { const e = new Error(`skipped: ${reason}`); e.skip = reason; return e; }

function assert(cond, msg) { if (!cond) throw new Error(msg || 'assertion failed'); }
function assertEq(a, b, msg) {
  if (a !== b) throw new Error(`${msg || 'not equal'}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}

async function json(url, body, { method = 'POST', headers = {} } = {}) {
  const r = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)) });
  const text = await r.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, body: parsed };
}

// Sends first, then filler repeated to about extraBytes, without reading;
// reads everything 300 ms later. Resolves to { data, err } when the
// server closes: err is the socket error code (ECONNRESET when the server
// reset the connection and the unread answers were lost), or null.
function sendMoreThenRead(port, first, filler, extraBytes) {
  return new Promise((resolve) => {
    const bufs = [];
    let err = null;
    const s = net.connect(port, '127.0.0.1', () => {
      s.pause();
      s.write(first + filler.repeat(Math.ceil(extraBytes / filler.length)));
      setTimeout(() => s.resume(), 300);
    });
    s.on('data', (d) => bufs.push(d));
    s.on('error', (e) => { err = e.code; });
    s.on('close', () => resolve({ data: Buffer.concat(bufs).toString('latin1'), err }));
  });
}

module.exports = { semcachedBin, tmpDir, test, run, skip, startServer, stopServer, freePort, sleep, rawExchange, sendMoreThenRead, assert, assertEq, json };
