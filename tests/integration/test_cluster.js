// Multi-node mode (issue 15) against a real Redis Cluster (3 masters + 3
// replicas on loopback, tests/cluster/cluster.sh) and 3 semcached nodes
// started with --redis-cluster: a store on A is an exact hit on B and C at
// once and a semantic hit within the feed's lag; a delete on B and a flush
// on C reach the others; a node killed with SIGKILL catches up from its
// saved feed positions; a fresh node copies everything; with the cluster
// gone, stores fail (never acknowledged) and lookups still answer.
'use strict';
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { tmpDir, test, run, skip, startServer, stopServer, sleep, assert, assertEq, json } = require('./lib');
const mockUpstream = require('./mock_upstream');

const CLUSTER = path.resolve(__dirname, '../cluster/cluster.sh');
let dir, base, seeds, A, B, C;
const ARGS = () => ['--redis-cluster', seeds, '--verify', 'off', '--threshold', '0.8', '--log-level', 'warn'];

const post = (s, p, body) => json(`${s.url}${p}`, body);
const lookup = (s, ns, prompt) => post(s, '/cache/lookup', { namespace: ns, prompt });
const stats = async (s) => (await json(`${s.url}/stats`, undefined, { method: 'GET' })).body.cache;

async function until(what, fn, ms = 5000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

// The Redis nodes run as daemons: stopped whatever happens to this test.
process.on('exit', () => { if (dir) { try { execFileSync('bash', [CLUSTER, 'stop', dir]); } catch (_) { /* gone */ } } });

test('a Redis Cluster and three semcached nodes', async () => {
  try { execFileSync('redis-server', ['--version']); } catch (_) { throw skip('redis-server not installed'); }
  dir = tmpDir('sc_cluster_');
  base = 20010 + (process.pid % 50) * 200;   // bus ports at +100; below the ephemeral range
  execFileSync('bash', [CLUSTER, 'start', dir, String(base)], { stdio: 'inherit' });
  seeds = `127.0.0.1:${base},127.0.0.1:${base + 1}`;
  A = await startServer({ args: ARGS() });
  B = await startServer({ args: ARGS() });
  C = await startServer({ args: ARGS() });
  const h = await json(`${A.url}/healthz`, undefined, { method: 'GET' });
  assertEq(h.body.cluster, 'up', h.text);
});

test('stored on A: an exact hit on B and C at once, a semantic hit within the feed lag', async () => {
  const t0 = Date.now();
  const s = await post(A, '/cache/store', { namespace: 'faq', prompt: 'How do I reset my password?', response: 'Use the reset link.' });
  assertEq(s.status, 200, s.text);
  for (const n of [B, C]) {
    const l = await lookup(n, 'faq', 'how do i reset my password?');
    assertEq(l.body.hit, true, l.text);
    assertEq(l.body.kind, 'exact');
    assertEq(l.body.response, 'Use the reset link.');
  }
  // A second entry, only ever looked up semantically (it has to arrive
  // through the feed into the node's own index).
  const t1 = Date.now();
  assertEq((await post(A, '/cache/store', { namespace: 'faq', prompt: 'Where can I download my monthly invoice?', response: 'Billing > Invoices.' })).status, 200);
  const lags = [];
  for (const n of [B, C]) {
    lags.push(await until('a semantic hit', async () => {
      const l = await lookup(n, 'faq', 'where can i download my monthly invoice please');
      return l.body.hit && l.body.kind === 'semantic' && l.body.response === 'Billing > Invoices.';
    }));
  }
  console.log(`# semantic hit on B after ${lags[0]} ms, on C after ${lags[1]} ms (store acknowledged on A after ${t1 - t0} ms)`);
  assert(Math.max(...lags) < 1000, `lags ${lags}`);
});

test('a delete on B and a flush on C reach the other nodes', async () => {
  const s = await post(A, '/cache/store', { namespace: 'faq', prompt: 'What are your opening hours?', response: '9 to 5.' });
  assertEq(s.status, 200, s.text);
  // Lookups on B right after the store race the feed: each may apply the
  // entry from the cluster's exact keys while the feed applies its event.
  // One entry, one id, and that id stays (a DELETE of an id served this
  // way once got 404 when a second apply replaced the first).
  const onBs = await Promise.all(Array.from({ length: 8 }, () => lookup(B, 'faq', 'what are your opening hours?')));
  for (const l of onBs) assertEq(l.body.hit, true, l.text);
  const ids = new Set(onBs.map((l) => l.body.id));
  assertEq(ids.size, 1, `ids served on B: ${[...ids]}`);
  const id = onBs[0].body.id;
  await new Promise((r) => setTimeout(r, 200));   /* the feed's event, applied by now */
  assertEq((await lookup(B, 'faq', 'what are your opening hours?')).body.id, id, 'the id stays');
  const d = await json(`${B.url}/cache/entries/${id}`, undefined, { method: 'DELETE' });
  assertEq(d.status, 200, d.text);
  for (const n of [A, C]) {
    const ms = await until('the delete', async () => !(await lookup(n, 'faq', 'what are your opening hours?')).body.hit);
    console.log(`# delete seen after ${ms} ms`);
  }
  for (let i = 0; i < 5; i++) assertEq((await post(A, '/cache/store', { namespace: 'tmp', prompt: `temporary ${i}`, response: `t${i}` })).status, 200);
  await until('the tmp entries on C', async () => (await lookup(C, 'tmp', 'temporary 4')).body.hit);
  const f = await post(C, '/cache/flush', { namespace: 'tmp' });
  assertEq(f.status, 200, f.text);
  for (const n of [A, B]) {
    await until('the flush', async () => {
      for (let i = 0; i < 5; i++) if ((await lookup(n, 'tmp', `temporary ${i}`)).body.hit) return false;
      return true;
    });
  }
});

test('a node killed with SIGKILL catches up; a fresh node copies everything', async () => {
  const before = (await stats(A)).entries;
  await stopServer(C, 'SIGKILL');
  for (let i = 0; i < 30; i++) assertEq((await post(A, '/cache/store', { namespace: 'away', prompt: `while C was away ${i}`, response: `a${i}` })).status, 200);
  C = await startServer({ args: ARGS(), dataDir: C.dataDir });
  const want = before + 30;
  await until('C caught up', async () => (await stats(C)).entries === want, 10000);
  // A node with an empty data dir: the whole shared cache copied in.
  const D = await startServer({ args: ARGS() });
  await until('D copied everything', async () => (await stats(D)).entries === want, 10000);
  const l = await lookup(D, 'away', 'while C was away 7 please');
  assertEq(l.body.hit, true, l.text);
  assertEq(l.body.response, 'a7');
  await stopServer(D, 'SIGTERM');
});

test('a semcached node killed with SIGKILL under write load: the others serve, it catches up, nothing missing', async () => {
  const acked = [];
  let refused = 0;
  const writer = (async () => {
    for (let i = 0; i < 150; i++) {
      const s = await post(A, '/cache/store', { namespace: 'load', prompt: `entry under load ${i}`, response: `l${i}` });
      if (s.status === 200) acked.push(i); else refused++;
    }
  })();
  await until('30 acknowledged stores', async () => acked.length >= 30, 20000);
  await stopServer(C, 'SIGKILL');
  const l = await lookup(B, 'faq', 'where can i download my monthly invoice please');
  assertEq(l.body.hit, true, 'B serves while C is down');
  await writer;
  assertEq(refused, 0, 'no store refused: the cluster is fine');
  C = await startServer({ args: ARGS(), dataDir: C.dataDir });
  const want = (await stats(A)).entries;
  await until('C caught up', async () => (await stats(C)).entries === want, 10000);
  let missing = 0;
  for (const n of [A, B, C])
    for (const i of acked) {
      const r = await lookup(n, 'load', `entry under load ${i}`);
      if (!(r.body.hit && r.body.response === `l${i}`)) missing++;
    }
  console.log(`# C killed after 30 of ${acked.length} acknowledged stores; caught up to ${want} entries; ${missing} missing on A, B, C`);
  assertEq(missing, 0);
});

test('auth and namespaces as on one node: a tenant sees only its own entries, on every node', async () => {
  // Users reach the cache through the proxy with their keys (their
  // namespace comes from the key): tenant A's answer, cached through E, is
  // a hit for A on F, and a miss (an upstream call) for B on F.
  const up = await mockUpstream.start({ port: 0, name: 'tenants' });
  const KA = 'cluster-tenant-a-key-1', KB = 'cluster-tenant-b-key-2';
  const auth = ['--upstream', up.url, '--api-key', `${KA} tenant-a user`, '--api-key', `${KB} tenant-b user`];
  const E = await startServer({ args: [...ARGS(), ...auth] }), F = await startServer({ args: [...ARGS(), ...auth] });
  const chat = (n, key, text) => fetch(`${n.url}/v1/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: text }] }) });
  const q = 'What is the launch date of project nightingale?';
  const first = await chat(E, KA, q);
  assertEq(first.status, 200);
  assertEq(first.headers.get('x-semcache'), 'miss');
  await sleep(300); // the write-back is asynchronous
  const a = await chat(F, KA, q);
  assertEq(a.headers.get('x-semcache'), 'hit-exact', 'A on F');
  const callsBefore = up.calls().total;
  const b = await chat(F, KB, q);
  assertEq(b.status, 200);
  assertEq(b.headers.get('x-semcache'), 'miss', 'B must not get A\'s answer');
  assertEq(up.calls().total, callsBefore + 1);
  assertEq((await chat(F, 'not-a-key', q)).status, 401);
  await stopServer(E, 'SIGTERM');
  await stopServer(F, 'SIGTERM');
  await up.close();
});

test('a Redis master killed with SIGKILL under write load: no acknowledged store missing', async () => {
  // With --redis-wait yes, a store to the slots of the promoted replica
  // (which has no replica of its own) is refused after WAIT's second:
  // the writer runs for a bounded time.
  const acked = [];
  // It stops once 10 stores were acknowledged after the kill, or 20 s
  // after it, whichever is first (a slow machine refuses more, each after
  // WAIT's second, so a fixed time could leave too few).
  let refused = 0, killedAt = 0, ackedAtKill = 0;
  const enough = () => killedAt && (acked.length - ackedAtKill >= 10 || Date.now() - killedAt > 20000);
  const writer = (async () => {
    for (let i = 0; i < 600 && !enough(); i++) {
      const s = await post(A, '/cache/store', { namespace: 'dur', prompt: `durable entry number ${i}`, response: `d${i}` });
      if (s.status === 200) acked.push(i); else refused++;
    }
  })();
  await until('50 acknowledged stores', async () => acked.length >= 50, 20000);
  const nodes = execFileSync('redis-cli', ['-p', String(base + 1), 'cluster', 'nodes'], { encoding: 'utf8' });
  const victim = nodes.split('\n').map((l) => l.split(' ')).find((f) => f[2] && f[2].includes('master') && !f[2].includes('fail'));
  const port = Number(victim[1].split(':')[1].split('@')[0]);
  const t0 = Date.now();
  execFileSync('bash', [CLUSTER, 'kill', dir, String(port)]);
  ackedAtKill = acked.length;
  killedAt = Date.now();
  await writer;
  // Read back through a node started afterwards: its copy and its exact
  // lookups both come from Redis.
  const D = await startServer({ args: ARGS() });
  let missing = 0;
  for (const i of acked) {
    const l = await lookup(D, 'dur', `durable entry number ${i}`);
    if (!(l.body.hit && l.body.response === `d${i}`)) missing++;
  }
  console.log(`# master ${port} killed after ${ackedAtKill} acknowledged stores; then ${acked.length - ackedAtKill} more acknowledged, ${refused} refused (${Date.now() - t0} ms); ${missing} of ${acked.length} missing`);
  assertEq(missing, 0);
  assert(acked.length - ackedAtKill >= 5, `stores went on after the failover: ${acked.length - ackedAtKill}`);
  await stopServer(D, 'SIGTERM');
});

test('the cluster gone: stores fail, never acknowledged; lookups still answer', async () => {
  execFileSync('bash', [CLUSTER, 'stop', dir]);
  const t0 = Date.now();
  const s = await post(A, '/cache/store', { namespace: 'faq', prompt: 'A question while Redis is down', response: 'no' });
  assert(s.status >= 500, `store without the cluster: ${s.status} ${s.text}`);
  assert(Date.now() - t0 < 20000, 'bounded');
  const l = await lookup(B, 'faq', 'where can i download my monthly invoice please');
  assertEq(l.body.hit, true, l.text);
  const h = await json(`${A.url}/healthz`, undefined, { method: 'GET' });
  assertEq(h.status, 200);
  assertEq(h.body.cluster, 'down', h.text);
  const m = await (await fetch(`${A.url}/metrics`)).text();
  assert(/^semcached_cluster_up 0$/m.test(m), 'semcached_cluster_up 0');
  assert(/^semcached_cluster_events_total\{kind="published"\} [1-9]/m.test(m), 'published events counted');
  const mb = await (await fetch(`${B.url}/metrics`)).text();
  assert(/^semcached_cluster_events_total\{kind="applied"\} [1-9]/m.test(mb), 'applied events counted on B');
  for (const n of [A, B, C]) assertEq((await stopServer(n, 'SIGTERM')).code, 0);
});

run();
