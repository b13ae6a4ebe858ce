// Issue 2: the server skeleton. The real semcached on ephemeral ports: health,
// JSON 404, bad flags, oversized headers (431), malformed HTTP (400), bodies
// over the limit (413), a silent client (closed after the idle timeout),
// pipelining, half-closed sockets, and a clean stop on SIGTERM.
'use strict';
const { spawnSync } = require('node:child_process');
const { semcachedBin, test, run, startServer, stopServer, rawExchange, sendMoreThenRead, assert, assertEq, json } = require('./lib');

let srv;
const health = async () => assertEq((await fetch(`${srv.url}/healthz`)).status, 200, 'still healthy');

test('start and GET /healthz answers JSON', async () => {
  srv = await startServer({ args: ['--idle-timeout-ms', '400', '--max-body', '65536'] });
  const r = await json(`${srv.url}/healthz`, undefined, { method: 'GET' });
  assertEq(r.status, 200);
  assertEq(r.body.status, 'ok');
  assert(/application\/json/.test(r.headers.get('content-type')), 'json content type');
});

test('unknown path is a JSON 404 naming the path', async () => {
  const r = await json(`${srv.url}/no/such/thing`, undefined, { method: 'GET' });
  assertEq(r.status, 404);
  assert(r.body.error.message.includes('/no/such/thing'), r.text);
});

test('--no-such-flag exits 2 naming the flag', async () => {
  const r = spawnSync(semcachedBin, ['--no-such-flag', '1'], { encoding: 'utf8' });
  assertEq(r.status, 2);
  assert(r.stderr.includes('--no-such-flag'), r.stderr);
});

test('bad value exits 2 naming the option', async () => {
  const r = spawnSync(semcachedBin, ['--port', 'abc'], { encoding: 'utf8' });
  assertEq(r.status, 2);
  assert(r.stderr.includes("'port'"), r.stderr);
  const r2 = spawnSync(semcachedBin, ['--threshold', '1.5'], { encoding: 'utf8' });
  assertEq(r2.status, 2);
  assert(r2.stderr.includes('threshold'), r2.stderr);
  // The error-budget options (issue 19): out of range or malformed.
  for (const [flag, value, name] of [['--max-error-rate', '0.9', 'max-error-rate'], ['--shadow-rate', '2', 'shadow-rate'],
    ['--namespace-max-error-rate', 'faq 0.9', 'namespace-max-error-rate'],
    ['--namespace-max-error-rate', 'onlyname', 'namespace-max-error-rate']]) {
    const r3 = spawnSync(semcachedBin, [flag, value], { encoding: 'utf8' });
    assertEq(r3.status, 2, `${flag} ${value}`);
    assert(r3.stderr.includes(name), r3.stderr);
  }
});

test('--help prints usage to stdout and exits 0', async () => {
  const r = spawnSync(semcachedBin, ['--help'], { encoding: 'utf8' });
  assertEq(r.status, 0);
  assert(r.stdout.includes('--resp-port') && r.stdout.includes('--threshold'), 'lists options');
});

test('oversized headers get 431 and the server stays up', async () => {
  const big = 'x'.repeat(20000);
  const r = await rawExchange(srv.port, `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${big}\r\n\r\n`);
  assert(r.data.startsWith('HTTP/1.1 431'), r.data.slice(0, 80));
  const many = Array.from({ length: 150 }, (_, i) => `X-H${i}: v`).join('\r\n');
  const r2 = await rawExchange(srv.port, `GET /healthz HTTP/1.1\r\nHost: a\r\n${many}\r\n\r\n`);
  assert(r2.data.startsWith('HTTP/1.1 431'), r2.data.slice(0, 80));
  await health();
});

test('malformed HTTP gets 400 and a close', async () => {
  for (const bad of ['HELLO WORLD\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'GET /healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n',
    '\x00\x01\x02\x03\r\n\r\n', 'POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']) {
    const r = await rawExchange(srv.port, bad);
    assert(r.data.startsWith('HTTP/1.1 400'), `for ${JSON.stringify(bad)}: ${r.data.slice(0, 80)}`);
    assert(r.closed, 'connection closed');
  }
  await health();
});

test('body over the limit gets 413 before it is read', async () => {
  const r = await rawExchange(srv.port, 'POST /cache/store HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999\r\n\r\n{');
  assert(r.data.startsWith('HTTP/1.1 413'), r.data.slice(0, 80));
  const chunk = 'x'.repeat(70000);
  const r2 = await rawExchange(srv.port, `POST /cache/store HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
  assert(r2.data.startsWith('HTTP/1.1 413'), r2.data.slice(0, 80));
  await health();
});

test('a client that sends nothing is closed after the idle timeout', async () => {
  const r = await rawExchange(srv.port, [], { ms: 5000 });
  assert(r.closed, 'closed by server');
  assert(r.elapsed >= 300 && r.elapsed < 3000, `closed after ${r.elapsed} ms`);
});

test('slowloris: a request dribbled byte by byte is cut at the timeout', async () => {
  const req = 'GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ' + 'y'.repeat(200);
  const r = await rawExchange(srv.port, req.split(''), { ms: 6000, delay: 20 });
  assert(r.closed, 'closed');
  assert(!r.data.includes('200 OK'), 'never completed');
  await health();
});

test('pipelined requests are answered in order', async () => {
  const one = 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n';
  const r = await rawExchange(srv.port, one + 'GET /nope HTTP/1.1\r\nHost: a\r\n\r\n' + one + 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
  assertEq(statuses.join(','), '200,404,200,200');
  assert(r.closed, 'closed after Connection: close');
});

// Regression: a request carrying "Connection: Upgrade" (curl --http2 on an
// http:// URL sends "Upgrade: h2c") left llhttp in the upgraded state, so the
// next request on the connection was answered 400 and the connection closed.
// The server does not upgrade: the header is ignored.
test('an Upgrade request header is ignored; the connection stays HTTP/1.1', async () => {
  const up = 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n';
  const r = await rawExchange(srv.port, up + 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
  assertEq(statuses.join(','), '200,200');
  const body = JSON.stringify({ a: 1 });
  const r2 = await rawExchange(srv.port, `POST /cache/lookup HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
    'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  assertEq([...r2.data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]).join(','), '400,200');
});

test('half-closed socket still gets its answer', async () => {
  const net = require('node:net');
  const data = await new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => { s.end('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'); });
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
  assert(data.startsWith('HTTP/1.1 200'), data.slice(0, 60));
});

// Regression: a client that half-closes after pipelining more than the
// socket buffers hold used to lose the answers still queued in the server
// (the EOF closed the connection at once, cancelling the pending writes).
test('half-closed socket after many pipelined requests gets every answer', async () => {
  const net = require('node:net');
  const n = 100000;
  /* Its own server: the shared one's 400 ms idle timeout is about the
   * client's deliberate 200 ms pause plus scheduling on a loaded machine
   * (a flake under ASan with other work on the cores); what is tested is
   * that the EOF does not close the connection with answers queued. */
  const s2 = await startServer({ args: ['--idle-timeout-ms', '5000'] });
  const out = await new Promise((resolve) => {
    const s = net.connect(s2.port, '127.0.0.1', async () => {
      s.pause();   /* read nothing until the server has queued its answers */
      s.end('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(n));
      await new Promise((r) => setTimeout(r, 200));
      s.resume();
    });
    const bufs = [];
    s.on('data', (d) => bufs.push(d));
    s.on('close', () => resolve(Buffer.concat(bufs).toString('latin1')));
    s.on('error', () => {});
  });
  assertEq((out.match(/HTTP\/1\.1 200/g) || []).length, n, 'answers received');
  await health();
  await stopServer(s2);
});

// Regression: when the server closed a connection while the client was
// still sending (a bad request with more bytes behind it, or a
// "Connection: close" request followed by more pipelined input), the unread
// input made the kernel reset the connection, and the client lost the
// answers it had not read yet: no 400 telling it what was wrong, only
// ECONNRESET. The server now shuts its sending side and reads on until the
// client closes (lingering close).
test('a bad request with more input behind it still gets its 400 (no reset)', async () => {
  const r = await sendMoreThenRead(srv.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nBLAH BLAH\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n', 20e6);
  assertEq(r.err, null, 'no connection error');
  assertEq([...r.data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]).join(','), '200,400');
  assert(/malformed HTTP request/.test(r.data), r.data.slice(-300));
  await health();
});

test('"Connection: close" with more input pipelined behind it still gets its answer', async () => {
  const r = await sendMoreThenRead(srv.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n', 20e6);
  assertEq(r.err, null, 'no connection error');
  assertEq((r.data.match(/HTTP\/1\.1 200/g) || []).length, 1, 'one answer');
});

// Regression: the idle timer ran from the last request, not from the last
// write, so a client still reading its answers (for longer than the idle
// timeout, but steadily) was cut off with answers still queued.
test('a client reading its answers slowly but steadily is not cut at the idle timeout', async () => {
  const net = require('node:net');
  /* About 18 MB of answers (/metrics is ~7 KB), far more than the socket
   * buffers hold, from only ~90 KB of requests: those reach the server at
   * once. (With 100,000 /healthz requests, 3.4 MB, the requests themselves
   * sometimes stalled in TCP for over the idle timeout on a loaded machine
   * under ASan: the server had answered all it had received, so it was
   * idle by its own measure, and closed; not what this test is about.) */
  const n = 2500;
  const out = await new Promise((resolve) => {
    const bufs = [];
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.write('GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(n));
    });
    s.on('data', (d) => {   /* about 64 KB per 5 ms: over a second in all, above the 400 ms idle timeout */
      bufs.push(d);
      s.pause();
      setTimeout(() => s.resume(), 5);
    });
    s.on('close', () => resolve(Buffer.concat(bufs).toString('latin1')));   /* the idle close, once all is read */
    s.on('error', () => {});
  });
  assertEq((out.match(/HTTP\/1\.1 200/g) || []).length, n, 'answers received');
});

// Regression: a graceful stop closed every connection without a request in
// progress at once, dropping answers already queued for a client that had
// not read them yet.
test('SIGTERM delivers the answers already queued before closing', async () => {
  const net = require('node:net');
  const s2 = await startServer({ args: ['--idle-timeout-ms', '5000'] });
  const n = 100000;
  const sock = net.connect(s2.port, '127.0.0.1');
  sock.pause();
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(n));
  /* Wait until all are answered (mostly still queued), by the server's own
   * count: a fixed sleep is too short on a loaded machine under ASan. */
  const answered = async () => {
    const m = await (await fetch(`${s2.url}/metrics`)).text();
    const re = /semcached_http_requests_total\{endpoint="[^"]*health[^"]*",status="200"\} (\d+)/g;
    let t = 0;
    for (const x of m.matchAll(re)) t += Number(x[1]);
    return t;
  };
  const deadline = Date.now() + 60000;
  while ((await answered()) < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const exited = stopServer(s2, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  const bufs = [];
  sock.on('data', (d) => bufs.push(d));
  const closed = new Promise((r) => sock.on('close', r));
  sock.resume();
  await closed;
  const out = Buffer.concat(bufs).toString('latin1');
  assertEq((out.match(/HTTP\/1\.1 200/g) || []).length, n, 'answers received');
  assertEq((await exited).code, 0, 'clean exit');
});

// Issue 16: a graceful stop lingers on a client still sending its request:
// the rest is read and answered (Connection: close) before the exit; one
// that never finishes is closed after a bounded wait and the stop ends.
test('SIGTERM while a request is still arriving: it is read, answered, then the server exits', async () => {
  const net = require('node:net');
  const s2 = await startServer({ args: ['--idle-timeout-ms', '1500'] });
  const body = JSON.stringify({ prompt: 'stop while sending', response: 'still stored' });
  const half = body.length >> 1;
  const open = async () => {
    const sock = net.connect(s2.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    const bufs = [];
    sock.on('data', (d) => bufs.push(d));
    const closed = new Promise((r) => sock.on('close', () => r(Buffer.concat(bufs).toString('latin1'))));
    return { sock, closed };
  };
  const a = await open();   /* finishes its request after the signal */
  const b = await open();   /* never finishes: closed after the stop's grace */
  const head = `POST /cache/store HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  a.sock.write(head + body.slice(0, half));
  b.sock.write(head + body.slice(0, half));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  const exited = stopServer(s2, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  a.sock.write(body.slice(half));
  const outA = await a.closed;
  assert(/^HTTP\/1\.1 200/.test(outA), `late request answered: ${outA.slice(0, 300)}`);
  assert(/connection: close/i.test(outA), 'answered with Connection: close');
  assert(/"id"/.test(outA), outA);
  const outB = await b.closed;
  assertEq(outB, '', 'the unfinished request gets no answer');
  const ex = await exited;
  assertEq(ex.code, 0, 'clean exit');
  assert(Date.now() - t0 < 8000, `stop took ${Date.now() - t0} ms`);
  /* What was answered was stored: the next start finds it. */
  const s3 = await startServer({ dataDir: s2.dataDir });
  const r = await json(`${s3.url}/cache/lookup`, { prompt: 'stop while sending' });
  assertEq(r.body.hit, true, JSON.stringify(r.body));
  await stopServer(s3);
});

test('SIGTERM stops cleanly with exit 0', async () => {
  const r = await stopServer(srv, 'SIGTERM');
  assertEq(r.code, 0, `exit code (stderr: ${srv.stderr().slice(-300)})`);
});

run();
