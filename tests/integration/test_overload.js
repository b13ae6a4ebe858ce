// Overload: far more semantic lookups than the workers can embed. With
// --workers 1 and --max-queue-ms 20, a burst of distinct prompts queues up;
// each lookup that waited past the bound skips the semantic layer:
//   - the proxy forwards it upstream at once (X-Semcache-Overload: 1) and
//     does not write the answer back (storing would embed again);
//   - /cache/lookup answers 503 with Retry-After (an exact hit is still
//     served);
// exact hits keep flowing all along, and /stats and /metrics count it.
'use strict';
const { test, run, startServer, stopServer, sleep, assert, assertEq, json } = require('./lib');
const mock = require('./mock_upstream');

let up, srv;

// Long prompts (~60 tokens): each keeps the one worker busy for a few
// milliseconds even with the int8 embedder, so a burst outlasts the 20 ms
// bound on a fast machine too.
const FILL = ' and then a few more words that make this question long enough to keep the only worker busy for a while';
const long = (s) => s + FILL + FILL + FILL;

async function chat(content, headers = {}) {
  const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }) });
  await r.text();
  return r;
}

test('setup: semcache-embed on one worker, a 20 ms queue bound', async () => {
  up = await mock.start({ port: 0, name: 'mock', counter: false });
  srv = await startServer({ embedder: 'semcache-embed', args: ['--upstream', up.url, '--workers', '1', '--max-queue-ms', '20'] });
  assertEq((await chat('what is the capital of france')).headers.get('x-semcache'), 'miss', 'seed');
  await json(`${srv.url}/cache/store`, { namespace: 'faq', prompt: 'how do I reset my password', response: 'Use the link.' });
});

test('proxy: a burst of distinct prompts; the overflow goes upstream unstored, exact hits keep flowing', async () => {
  const burst = Array.from({ length: 150 }, (_, i) => chat(long(`a completely new question number ${i} about topic ${i * 7}`)));
  const exact = Array.from({ length: 30 }, () => chat('what is the capital of france'));
  const rs = await Promise.all([...burst, ...exact]);
  assert(rs.every((r) => r.status === 200), `statuses ${[...new Set(rs.map((r) => r.status))]}`);
  const over = rs.slice(0, 150).filter((r) => r.headers.get('x-semcache-overload') === '1');
  assert(over.length > 0, 'no lookup was overloaded: the burst was too small for this machine');
  assert(over.every((r) => r.headers.get('x-semcache') === 'miss'), 'overloaded answers are misses');
  assert(rs.slice(150).every((r) => r.headers.get('x-semcache') === 'hit-exact'), 'exact hits during the burst');
  // An overloaded answer was not written back: the same prompt is a miss again.
  const i = rs.indexOf(over[0]);
  const again = await chat(long(`a completely new question number ${i} about topic ${i * 7}`));
  assertEq(again.headers.get('x-semcache'), 'miss', 'not stored');
  console.log(`# ${over.length} of 150 overloaded`);
});

test('/cache/lookup: 503 with Retry-After past the bound; exact hits still answered', async () => {
  const burst = Array.from({ length: 100 }, (_, i) =>
    json(`${srv.url}/cache/lookup`, { namespace: 'faq', prompt: long(`something else entirely ${i}`) }));
  const exact = Array.from({ length: 20 }, () =>
    json(`${srv.url}/cache/lookup`, { namespace: 'faq', prompt: 'how do I reset my password' }));
  const rs = await Promise.all([...burst, ...exact]);
  const busy = rs.slice(0, 100).filter((r) => r.status === 503);
  assert(busy.length > 0, 'no 503 under the burst');
  for (const r of busy) {
    assertEq(r.headers.get('retry-after'), '1', 'Retry-After');
    assertEq(r.body.error.code, 'overloaded', r.text);
    assert(/max-queue-ms/.test(r.body.error.message), r.text);
  }
  assert(rs.slice(0, 100).every((r) => r.status === 200 || r.status === 503), 'only 200 or 503');
  for (const r of rs.slice(100)) {
    assertEq(r.status, 200, r.text);
    assertEq(r.body.kind, 'exact', 'exact hit under load');
  }
});

test('RESP SEM.GET: -OVERLOADED past the bound; exact hits still answered', async () => {
  const net = require('node:net');
  const before = (await json(`${srv.url}/stats`, undefined, { method: 'GET' })).body.overloaded;
  const bulk = (a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  const frame = (...args) => `*${args.length}\r\n${args.map(bulk).join('')}`;
  /* 24 connections, each pipelining 4 distinct prompts and one exact hit:
   * their batches queue for the one worker. */
  const conns = await Promise.all(Array.from({ length: 24 }, (_, k) => new Promise((resolve) => {
    const sock = net.connect(srv.respPort, '127.0.0.1');
    let out = '';
    sock.on('data', (d) => {
      out += d.toString('latin1');
      const replies = out.match(/^(\$-1|-[^\r]*|\*4)\r\n/gm) || [];
      if (replies.length >= 5) { sock.destroy(); resolve(out); }
    });
    sock.on('error', () => resolve(out));
    sock.on('connect', () => {
      let cmds = '';
      for (let i = 0; i < 4; i++) cmds += frame('SEM.GET', 'faq', long(`resp burst ${k} question ${i} about ${k * 13 + i}`));
      cmds += frame('SEM.GET', 'faq', 'how do I reset my password');
      sock.write(cmds);
    });
  })));
  const over = conns.join('').match(/^-OVERLOADED [^\r]*/gm) || [];
  assert(over.length > 0, 'no SEM.GET was overloaded');
  assert(/max-queue-ms/.test(over[0]), over[0]);
  for (const out of conns) {
    assert(!/^-(?!OVERLOADED)/m.test(out), `unexpected error: ${out.slice(0, 300)}`);
    assert(/Use the link\./.test(out), `the exact hit was answered: ${out.slice(0, 300)}`);
  }
  const after = (await json(`${srv.url}/stats`, undefined, { method: 'GET' })).body.overloaded;
  assert(after - before >= over.length, `counted ${after - before} of ${over.length}`);
  console.log(`# ${over.length} of 96 RESP lookups overloaded`);
});

test('a write-back that still has to embed, queued past the bound, is dropped and counted apart', async () => {
  // A new context: nothing is stored there, so the lookup needs no
  // embedding and the write-back must embed the prompt. The upstream
  // answers after 200 ms; meanwhile two imports hold both threads of the
  // pool (--workers 1 gives it two) for longer than that (~3 s here; sized
  // so that a sanitizer build still finishes well inside the test's 60 s).
  const stats = async () => (await json(`${srv.url}/stats`, undefined, { method: 'GET' })).body;
  const st0 = await stats();
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [
    { role: 'system', content: 'a context of its own' }, { role: 'user', content: 'a question asked once' }] });
  const send = async () => {
    const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await r.text();
    return r;
  };
  up.plan(['slow:200']);
  const a = send();
  await sleep(50);
  const imp = [0, 1].map((k) => fetch(`${srv.url}/cache/import`, { method: 'POST', body: Array.from({ length: 400 }, (_, i) =>
    JSON.stringify({ namespace: 'bulk', prompt: long(`imported question ${k} ${i} about ${i * 3}`), response: 'r' })).join('\n') + '\n' }));
  const ra = await a;
  assertEq(ra.status, 200);
  assertEq(ra.headers.get('x-semcache'), 'miss');
  assertEq(ra.headers.get('x-semcache-overload'), null, 'its lookup was not overloaded');
  for (const ri of await Promise.all(imp)) {
    await ri.text();
    assertEq(ri.status, 200);
  }
  await sleep(200);
  const st1 = await stats();
  assert(st1.writebacks_dropped > st0.writebacks_dropped, `writebacks_dropped ${st0.writebacks_dropped} -> ${st1.writebacks_dropped}`);
  assertEq(st1.overloaded, st0.overloaded, 'not counted as an overloaded lookup');
  assertEq((await send()).headers.get('x-semcache'), 'miss', 'not stored');
  // Without the queue, the same kind of miss is stored.
  await sleep(300);
  const st2 = await stats();
  assertEq((await send()).headers.get('x-semcache'), 'hit-exact', 'stored the second time');
  assertEq(st2.writebacks_dropped, st1.writebacks_dropped);
  const m = await (await fetch(`${srv.url}/metrics`)).text();
  assert(new RegExp(`semcached_writebacks_dropped_total ${st2.writebacks_dropped}`).test(m), 'metric');
});

test('/stats and /metrics count the overloaded lookups', async () => {
  const st = (await json(`${srv.url}/stats`, undefined, { method: 'GET' })).body;
  assert(st.overloaded > 0, `overloaded ${st.overloaded}`);
  const m = await (await fetch(`${srv.url}/metrics`)).text();
  assert(new RegExp(`semcached_overloaded_total ${st.overloaded}`).test(m), 'metric');
  await stopServer(srv);
  await up.close();
});

run();
