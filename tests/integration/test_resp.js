// Issue 6: the RESP listener, end to end with real clients: redis-cli
// (Debian redis-tools) and the `redis` npm package (v4), plus raw sockets
// for malformed and oversized frames. Covers set/get/miss, semantic hits,
// namespace isolation, TTL, delete/overwrite invalidating the exact-hit
// memo, errors, pipelining (in order), the connect handshake of client
// libraries (CLIENT SETNAME/SETINFO, SELECT, HELLO, COMMAND), AUTH with
// api keys, half-closed sockets and stalled clients.
'use strict';
const { spawnSync } = require('node:child_process');
const net = require('node:net');
const { createClient } = require('redis');
const { test, run, startServer, sleep, rawExchange, sendMoreThenRead, assert, assertEq } = require('./lib');

let srv, authSrv;
const clients = [];

function cli(args, input) {
  const r = spawnSync('redis-cli', ['-p', String(srv.respPort), '--no-raw', ...args],
    { encoding: 'utf8', input, timeout: 10000 });
  if (r.error) throw r.error;
  return r.stdout.trim();
}

async function client(opts = {}) {
  const c = createClient({ socket: { host: '127.0.0.1', port: opts.port || srv.respPort, reconnectStrategy: false }, ...opts.extra });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

const cmd = (c, ...args) => c.sendCommand(args.map(String));

test('start semcached with RESP on a free port', async () => {
  srv = await startServer({ args: ['--max-body', '65536', '--idle-timeout-ms', '500'] });
  assertEq(cli(['PING']), 'PONG');
});

test('redis-cli: SEM.SET returns an id, SEM.GET an exact hit', async () => {
  const id = cli(['SEM.SET', 'faq', 'How do I reset my password?', 'Use the forgot-password link.']);
  assert(/^\(integer\) \d+$/.test(id), id);
  const hit = cli(['SEM.GET', 'faq', '  how do I RESET my password? ']);
  const lines = hit.split('\n');
  assertEq(lines[0], '1) "Use the forgot-password link."');
  assertEq(lines[1], '2) "1.000000"');
  assertEq(lines[2], `3) ${id}`);
});

test('redis-cli: a close prompt is a semantic hit under a low threshold, a miss under a high one', async () => {
  const low = cli(['SEM.GET', 'faq', 'how can I reset my password', 'THRESHOLD', '0.05']);
  assert(low.startsWith('1) "Use the forgot-password link."'), low);
  const sim = Number(low.split('\n')[1].match(/"([\d.]+)"/)[1]);
  assert(sim > 0 && sim < 1, `similarity ${sim}`);
  assertEq(cli(['SEM.GET', 'faq', 'how can I reset my password', 'THRESHOLD', '1']), '(nil)');
  assertEq(cli(['SEM.GET', 'faq', 'how can I reset my password', 'EXACT']), '(nil)');
  assertEq(cli(['SEM.GET', 'faq', 'completely unrelated question about trains']), '(nil)');
});

test('namespaces are isolated; SEM.FLUSH empties one only', async () => {
  cli(['SEM.SET', 'tenant-a', 'what is the refund policy', 'A: 30 days']);
  cli(['SEM.SET', 'tenant-b', 'what is the refund policy', 'B: 14 days']);
  assert(cli(['SEM.GET', 'tenant-a', 'what is the refund policy']).startsWith('1) "A: 30 days"'));
  assert(cli(['SEM.GET', 'tenant-b', 'what is the refund policy']).startsWith('1) "B: 14 days"'));
  assertEq(cli(['SEM.GET', 'tenant-c', 'what is the refund policy']), '(nil)');
  assertEq(cli(['SEM.FLUSH', 'tenant-a']), '(integer) 1');
  assertEq(cli(['SEM.GET', 'tenant-a', 'what is the refund policy']), '(nil)');
  assert(cli(['SEM.GET', 'tenant-b', 'what is the refund policy']).startsWith('1) "B: 14 days"'));
});

test('TTL: an entry set with EX 2 is gone after it expires (also from the memo)', async () => {
  cli(['SEM.SET', 'ttl', 'short lived', 'soon gone', 'EX', '2']);   // lives >= 1 s (whole seconds)
  const c = await client();
  // Twice: the second answer comes from the exact-hit memo.
  assertEq((await cmd(c, 'SEM.GET', 'ttl', 'short lived'))[0], 'soon gone');
  assertEq((await cmd(c, 'SEM.GET', 'ttl', 'short lived'))[0], 'soon gone');
  await sleep(3100);
  assertEq(await cmd(c, 'SEM.GET', 'ttl', 'short lived'), null);
});

test('SEM.DEL and overwrites are seen at once (the memo is invalidated)', async () => {
  const c = await client();
  const id = await cmd(c, 'SEM.SET', 'del', 'delete me', 'v1');
  assertEq(typeof id, 'number');
  for (let i = 0; i < 3; i++) assertEq((await cmd(c, 'SEM.GET', 'del', 'delete me'))[0], 'v1');
  const id2 = await cmd(c, 'SEM.SET', 'del', 'delete me', 'v2');
  assert(id2 !== id, 'a new id');
  assertEq((await cmd(c, 'SEM.GET', 'del', 'delete me'))[0], 'v2');
  assertEq((await cmd(c, 'SEM.GET', 'del', 'delete me'))[2], id2);
  assertEq(await cmd(c, 'SEM.DEL', 'del', String(id2)), 1);
  assertEq(await cmd(c, 'SEM.GET', 'del', 'delete me'), null);
  assertEq(await cmd(c, 'SEM.DEL', 'del', String(id2)), 0);
  // Another namespace cannot delete it.
  const id3 = await cmd(c, 'SEM.SET', 'del', 'keep me', 'v3');
  assertEq(await cmd(c, 'SEM.DEL', 'other', String(id3)), 0);
  assertEq((await cmd(c, 'SEM.GET', 'del', 'keep me'))[0], 'v3');
});

test('errors: unknown command, arity, bad options, bad namespace, bad id', async () => {
  const c = await client();
  const err = async (args, re) => {
    let e = null;
    try { await cmd(c, ...args); } catch (x) { e = x; }
    assert(e, `expected an error for ${args.join(' ')}`);
    assert(re.test(e.message), `${args.join(' ')}: ${e.message}`);
  };
  await err(['NOSUCH', 'a', 'b'], /^ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b'/);
  await err(['SEM.GET', 'faq'], /^ERR wrong number of arguments for 'sem.get' command/);
  await err(['SEM.SET', 'faq', 'p', 'r', 'EX', '0'], /^ERR invalid expire time/);
  await err(['SEM.SET', 'faq', 'p', 'r', 'EX', 'abc'], /^ERR invalid expire time/);
  await err(['SEM.SET', 'faq', 'p', 'r', 'PX'], /^ERR syntax error/);
  await err(['SEM.GET', 'faq', 'p', 'THRESHOLD', '1.5'], /^ERR THRESHOLD must be a number between 0 and 1/);
  await err(['SEM.GET', 'faq', 'p', 'THRESHOLD', 'nan'], /^ERR THRESHOLD/);
  await err(['SEM.GET', 'bad ns', 'p'], /^ERR invalid namespace/);
  await err(['SEM.GET', '', 'p'], /^ERR invalid namespace/);
  await err(['SEM.DEL', 'faq', '12x'], /^ERR id is not an integer/);
  await err(['SELECT', '3'], /^ERR DB index is out of range/);
  await err(['HELLO', '3'], /^NOPROTO/);
  await err(['CLIENT', 'NOPE'], /^ERR unknown subcommand/);
  assertEq(await c.ping(), 'PONG');
  assert(cli(['FOO']).startsWith("(error) ERR unknown command 'FOO'"), 'redis-cli shows the error');
});

test('the redis npm client connects with a name and database 0; handshake commands answer', async () => {
  const c = await client({ extra: { name: 'tester', database: 0 } });
  assertEq(await c.sendCommand(['CLIENT', 'GETNAME']), 'tester');
  assertEq(await c.ping(), 'PONG');
  assertEq(await c.sendCommand(['ECHO', 'hi']), 'hi');
  const hello = await c.sendCommand(['HELLO', '2']);
  assertEq(hello[0], 'server');
  assertEq(hello[5], 2);
  const count = await c.sendCommand(['COMMAND', 'COUNT']);
  assert(count >= 10, `count ${count}`);
  const info = await c.sendCommand(['COMMAND', 'INFO', 'sem.get', 'nosuch']);
  assertEq(info[0][0], 'sem.get');
  assertEq(info[1], null);
  const docs = await c.sendCommand(['COMMAND', 'DOCS', 'SEM.SET']);
  assertEq(docs[0], 'sem.set');
  assertEq(typeof await c.sendCommand(['CLIENT', 'ID']), 'number');
  const text = await c.info();
  for (const s of ['# Server', '# Clients', '# Stats', '# Keyspace', 'semcached_version:', 'keyspace_hits:'])
    assert(text.includes(s), `INFO has ${s}`);
  assert((await c.info('keyspace')).startsWith('# Keyspace'), 'INFO keyspace only');
  const stats = await c.sendCommand(['SEM.STATS']);
  const m = {};
  for (let i = 0; i < stats.length; i += 2) m[stats[i]] = stats[i + 1];
  assert(m.entries >= 1 && m.puts >= 1 && m.hits_exact >= 1, JSON.stringify(m));
  assertEq(m.embedder, 'hash/1');
  assertEq(typeof await c.dbSize(), 'number');
});

test('pipelining: 500 mixed commands in one go answer in order', async () => {
  const c = await client();
  const ps = [];
  for (let i = 0; i < 500; i++) {
    if (i % 5 === 0) ps.push(cmd(c, 'SEM.SET', 'pipe', `question number ${i}`, `answer ${i}`));
    else if (i % 5 === 1) ps.push(cmd(c, 'SEM.GET', 'pipe', `question number ${i - 1}`));
    else if (i % 5 === 2) ps.push(c.ping());
    else if (i % 5 === 3) ps.push(cmd(c, 'ECHO', `echo ${i}`));
    else ps.push(cmd(c, 'SEM.GET', 'pipe', `never stored ${i}`, 'EXACT'));
  }
  const out = await Promise.all(ps);
  for (let i = 0; i < 500; i++) {
    if (i % 5 === 0) assertEq(typeof out[i], 'number', `reply ${i}`);
    else if (i % 5 === 1) assertEq(out[i][0], `answer ${i - 1}`, `reply ${i}`);
    else if (i % 5 === 2) assertEq(out[i], 'PONG');
    else if (i % 5 === 3) assertEq(out[i], `echo ${i}`);
    else assertEq(out[i], null, `reply ${i}`);
  }
});

test('many connections pipelining cache commands at once (batch slots are shared fairly)', async () => {
  const cs = [];
  for (let k = 0; k < 8; k++) cs.push(await client());
  const t0 = Date.now();
  const work = cs.map((c, k) => (async () => {
    const ps = [];
    for (let i = 0; i < 60; i++) {
      ps.push(cmd(c, 'SEM.SET', `many${k}`, `unique question ${k} ${i}`, `a${k}.${i}`));
      ps.push(cmd(c, 'SEM.GET', `many${k}`, `unique question ${k} ${i}`));
      ps.push(cmd(c, 'SEM.GET', `many${k}`, `never asked ${k} ${i}`, 'EXACT'));
    }
    const out = await Promise.all(ps);
    for (let i = 0; i < 60; i++) {
      assertEq(typeof out[3 * i], 'number');
      assertEq(out[3 * i + 1][0], `a${k}.${i}`);
      assertEq(out[3 * i + 2], null);
    }
  })());
  // HTTP keeps answering meanwhile.
  const h = await fetch(`${srv.url}/healthz`);
  assertEq(h.status, 200);
  await Promise.all(work);
  assert(Date.now() - t0 < 50000, 'finished');
});

test('pipelining on a raw socket: replies in request order, inline commands too', async () => {
  const parts = [];
  for (let i = 0; i < 50; i++) {
    parts.push(`*4\r\n$7\r\nSEM.SET\r\n$3\r\nraw\r\n$${String(`p${i}`).length}\r\np${i}\r\n$${String(`r${i}`).length}\r\nr${i}\r\n`);
    parts.push('PING\r\n');
    parts.push(`SEM.GET raw p${i}\r\n`);
  }
  parts.push('QUIT\r\n');
  const r = await rawExchange(srv.respPort, parts.join(''), { ms: 5000 });
  assert(r.closed, 'QUIT closes');
  const lines = r.data.split('\r\n');
  let k = 0;
  for (let i = 0; i < 50; i++) {
    assert(/^:\d+$/.test(lines[k++]), `id at ${i}: ${lines[k - 1]}`);
    assertEq(lines[k++], '+PONG');
    assertEq(lines[k++], '*4');
    assertEq(lines[k++], `$${String(`r${i}`).length}`);
    assertEq(lines[k++], `r${i}`);
    k += 3;   // similarity bulk, id
    assertEq(lines[k++], '$16');
    assert(/^[0-9a-f]{16}$/.test(lines[k++]), 'request id');
  }
  assertEq(lines[k], '+OK');
});

test('malformed and oversized frames: -ERR Protocol error and a close; others keep being served', async () => {
  const keep = await client();
  assertEq(await keep.ping(), 'PONG');
  const bad = [
    ['*99999\r\n', /invalid multibulk length/],
    ['*1\r\n$70000\r\n', /invalid bulk length/],
    ['*2\r\n$4\r\nPING\r\n*1\r\n$1\r\na\r\n', /expected '\$', got '\*'/],
    ['*1\r\n$4\r\nPINGXX\r\n', /Protocol error/],
    ['*1\r\n$-5\r\n', /invalid bulk length/],
    ['*abc\r\n', /invalid multibulk length/],
    ['SEM.GET "unbalanced\r\n', /unbalanced quotes/],
    ['x'.repeat(70000), /too big inline request/],
    [Buffer.from([0x2a, 0x31, 0x0d, 0x0a, 0x24, 0xff, 0x00, 0x0d, 0x0a]), /invalid bulk length/],
  ];
  for (const [frame, re] of bad) {
    const r = await rawExchange(srv.respPort, frame, { ms: 3000 });
    assert(r.data.startsWith('-ERR Protocol error'), `for ${String(frame).slice(0, 30)}: ${r.data.slice(0, 80)}`);
    assert(re.test(r.data), r.data.slice(0, 100));
    assert(r.closed, 'closed after a protocol error');
  }
  // Commands before the bad frame are answered first.
  const r = await rawExchange(srv.respPort, 'PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n', { ms: 3000 });
  assert(r.data.startsWith('+PONG\r\n+PONG\r\n-ERR Protocol error'), r.data);
  // A bulk string at the limit is fine; one byte more is not.
  const c = await client();
  const big = 'y'.repeat(65536);
  const id = await cmd(c, 'SEM.SET', 'big', 'big value', big);
  assertEq(typeof id, 'number');
  assertEq((await cmd(c, 'SEM.GET', 'big', 'big value'))[0].length, 65536);
  assertEq(await keep.ping(), 'PONG');
  assertEq(cli(['PING']), 'PONG');
});

// Regression: closing right after the error reply while the client was
// still sending made the kernel reset the connection, and a client that
// read late lost the reply (ECONNRESET, no -ERR naming the problem). The
// server now shuts its sending side and reads on until the client closes.
test('a protocol error or QUIT with more input behind it: the reply arrives, no reset', async () => {
  const bad = await sendMoreThenRead(srv.respPort, 'PING\r\n*1\r\n$4\r\nPINGXX\r\n', 'PING\r\n', 20e6);
  assertEq(bad.err, null, 'no connection error');
  assert(bad.data.startsWith('+PONG\r\n-ERR Protocol error'), bad.data.slice(0, 80));
  const quit = await sendMoreThenRead(srv.respPort, 'PING\r\nQUIT\r\n', 'PING\r\n', 20e6);
  assertEq(quit.err, null, 'no connection error');
  assertEq(quit.data, '+PONG\r\n+OK\r\n');
});

test('a slow reader: 300 pipelined 64 KiB replies arrive complete and in order', async () => {
  const c = await client();
  const big = 'z'.repeat(65536);
  await cmd(c, 'SEM.SET', 'slow', 'big one', big);
  const n = 300;
  const req = Array.from({ length: n }, (_, i) => (i % 2 ? 'PING\r\n' : 'SEM.GET slow "big one"\r\n')).join('');
  const got = await new Promise((resolve, reject) => {
    const s = net.connect(srv.respPort, '127.0.0.1');
    const chunks = [];
    let len = 0;
    const want = (n / 2) * (12 + 65536 + 2 + 14 + 4) + (n / 2) * 7;   // a lower bound
    s.on('error', reject);
    s.on('data', (d) => {
      chunks.push(d);
      len += d.length;
      if (len >= want && d.toString('latin1').endsWith('+PONG\r\n')) {
        s.destroy();
        resolve(Buffer.concat(chunks).toString('latin1'));
      }
    });
    s.write(req);
    s.pause();   // let the server's output queue fill up
    setTimeout(() => s.resume(), 700);
    setTimeout(() => { s.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); }, 20000);
  });
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (i % 2) {
      assertEq(got.slice(pos, pos + 7), '+PONG\r\n', `reply ${i}`);
      pos += 7;
    } else {
      assertEq(got.slice(pos, pos + 12), '*4\r\n$65536\r\n', `reply ${i}`);
      pos += 12 + 65536 + 2;
      const m = /^\$8\r\n1\.000000\r\n:\d+\r\n\$16\r\n[0-9a-f]{16}\r\n/.exec(got.slice(pos, pos + 70));
      assert(m, `reply ${i} tail`);
      pos += m[0].length;
    }
  }
});

test('a half-closed socket gets its answers; a client stalled mid-command is closed', async () => {
  const r = await new Promise((resolve) => {
    const s = net.connect(srv.respPort, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.end('PING\r\nSEM.GET faq "how do I reset my password?"\r\n');
  });
  assert(r.startsWith('+PONG\r\n*4\r\n'), r);
  const t0 = Date.now();
  const st = await rawExchange(srv.respPort, '*2\r\n$4\r\nECHO\r\n$10\r\nabc', { ms: 5000 });
  assert(st.closed, 'stalled client closed');
  assert(Date.now() - t0 < 4000, 'closed after the idle timeout');
  // An idle connection between commands stays open.
  const c = await client();
  await sleep(800);
  assertEq(await c.ping(), 'PONG');
});

test('AUTH with api keys: NOAUTH, WRONGPASS, own namespace only for user keys, any for admin', async () => {
  const a = await startServer({ args: ['--api-key', 'userkey1 tenant1 user', '--api-key', 'adminkey9 ops admin'] });
  authSrv = a;
  const raw = await rawExchange(a.respPort, 'SEM.GET tenant1 x\r\nPING\r\nAUTH wrong\r\nAUTH userkey1\r\nPING\r\nQUIT\r\n');
  const lines = raw.data.split('\r\n');
  assert(lines[0].startsWith('-NOAUTH'), lines[0]);
  assert(lines[1].startsWith('-NOAUTH'), lines[1]);
  assert(lines[2].startsWith('-WRONGPASS'), lines[2]);
  assertEq(lines[3], '+OK');
  assertEq(lines[4], '+PONG');
  const u = await client({ port: a.respPort, extra: { password: 'userkey1' } });
  assertEq(typeof await cmd(u, 'SEM.SET', 'tenant1', 'q', 'r'), 'number');
  assertEq((await cmd(u, 'SEM.GET', 'tenant1', 'q'))[0], 'r');
  let e = null;
  try { await cmd(u, 'SEM.GET', 'ops', 'q'); } catch (x) { e = x; }
  assert(e && /^NOPERM this key may only use namespace 'tenant1'/.test(e.message), String(e));
  const adm = await client({ port: a.respPort, extra: { username: 'default', password: 'adminkey9' } });
  assertEq((await cmd(adm, 'SEM.GET', 'tenant1', 'q'))[0], 'r');
  assertEq(typeof await cmd(adm, 'SEM.SET', 'ops', 'q', 'r2'), 'number');
  const hello = await rawExchange(a.respPort, 'HELLO 2 AUTH default userkey1 SETNAME x\r\nCLIENT GETNAME\r\nQUIT\r\n');
  assert(hello.data.startsWith('*14\r\n'), hello.data.slice(0, 40));
  assert(hello.data.includes('$1\r\nx\r\n+OK'), hello.data);
  // AUTH on a server without keys is an error, as in redis.
  assert(cli(['AUTH', 'x']).includes('without any password configured'), 'AUTH without keys');
});

test('SIGTERM stops the server cleanly with RESP clients connected', async () => {
  const s2 = await startServer();
  const c = await client({ port: s2.respPort });
  assertEq(await c.ping(), 'PONG');
  const { stopServer } = require('./lib');
  const ex = await stopServer(s2);
  assertEq(ex.code, 0);
});

// Regression: a stopping server waited for every client to read its queued
// replies; one that never read held the stop until a second signal. It now
// gives such clients a bounded drain (STOP_DRAIN_MS, 5 s), then closes.
test('SIGTERM with a client that never reads its replies still stops (bounded drain)', async () => {
  const s2 = await startServer();
  const c = await client({ port: s2.respPort });
  await cmd(c, 'SEM.SET', 'stop', 'big one', 'z'.repeat(65536));
  const sock = net.connect(s2.respPort, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.pause();   /* never reads: ~20 MB of replies stay queued */
  sock.write('SEM.GET stop "big one"\r\n'.repeat(300));
  await sleep(1000);
  const t0 = Date.now();
  const { stopServer } = require('./lib');
  const ex = await Promise.race([stopServer(s2), sleep(20000).then(() => null)]);
  if (!ex) s2.proc.kill('SIGKILL');
  assert(ex, 'the stop did not finish within 20 s');
  assertEq(ex.code, 0);
  assert(Date.now() - t0 < 15000, `stop took ${Date.now() - t0} ms`);
  sock.destroy();
});

// Issue 16: a command still arriving when the stop begins is read, run and
// answered before the connection closes; the stop then ends.
test('SIGTERM while a command is still arriving: it runs and is answered, then the server exits', async () => {
  const s2 = await startServer();
  const sock = net.connect(s2.respPort, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  const bufs = [];
  sock.on('data', (d) => bufs.push(d));
  const closed = new Promise((r) => sock.on('close', () => r(Buffer.concat(bufs).toString('latin1'))));
  const frame = '*4\r\n$7\r\nSEM.SET\r\n$4\r\nstop\r\n$9\r\nlate one?\r\n$6\r\nkept!!\r\n';
  sock.write(frame.slice(0, 30));
  await sleep(200);
  const { stopServer } = require('./lib');
  const t0 = Date.now();
  const exited = stopServer(s2);
  await sleep(300);
  sock.write(frame.slice(30));
  const out = await closed;
  assert(/^\$\d+\r\n[0-9a-f]+\r\n$/.test(out) || /^\+OK/.test(out) || /^:/.test(out), `reply: ${JSON.stringify(out)}`);
  const ex = await exited;
  assertEq(ex.code, 0);
  assert(Date.now() - t0 < 8000, `stop took ${Date.now() - t0} ms`);
  const s3 = await startServer({ dataDir: s2.dataDir });
  const c = await client({ port: s3.respPort });
  const got = await cmd(c, 'SEM.GET', 'stop', 'late one?');
  assert(JSON.stringify(got).includes('kept!!'), JSON.stringify(got));
  await stopServer(s3);
});

test('no sanitizer reports in the server logs', async () => {
  for (const s of [srv, authSrv]) {
    if (!s) continue;
    const log = s.stderr();
    assert(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(log), log.slice(0, 2000));
  }
});

run().finally(() => { for (const c of clients) { try { c.disconnect(); } catch (_) { /* closed */ } } });
