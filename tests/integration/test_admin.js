// Contract section 4, the cache admin API, driven by the real `curl`
// binary: /cache/store, /cache/lookup, /cache/entries/{id} (GET, DELETE),
// /cache/flush, /cache/import (JSONL), /cache/embed; entries surviving a
// restart on the same data dir; and the proxy serving an answer pre-loaded
// with /cache/store {model} as a valid chat.completion.
'use strict';
const { execFile } = require('node:child_process');
const { test, run, startServer, stopServer, sleep, assert, assertEq } = require('./lib');
const mockUpstream = require('./mock_upstream');

let srv, mock;
const ARGS = () => ['--upstream', mock.url, '--verify', 'off', '--threshold', '0.95'];

// Runs curl; resolves {status, body (parsed JSON or null), text, headers}.
function curl(method, path, body, { headers = {}, base } = {}) {
  const args = ['-s', '-S', '-X', method, '-D', '-', '--max-time', '20'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  if (body !== undefined) {
    args.push('-H', 'Content-Type: application/json', '--data-binary', '@-');
  }
  args.push(`${base || srv.url}${path}`);
  return new Promise((resolve, reject) => {
    const child = execFile('curl', args, { maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && !stdout) return reject(new Error(`curl failed: ${stderr || err.message}`));
      // Headers (possibly several blocks, e.g. 100 Continue) then the body.
      let rest = stdout, head = '';
      for (;;) {
        const i = rest.indexOf('\r\n\r\n');
        if (i < 0) break;
        head = rest.slice(0, i);
        rest = rest.slice(i + 4);
        if (!/^HTTP\/1\.1 100/.test(head)) break;
      }
      const status = Number((head.match(/^HTTP\/1\.1 (\d+)/) || [])[1]);
      const hdrs = {};
      for (const l of head.split('\r\n').slice(1)) {
        const k = l.indexOf(':');
        if (k > 0) hdrs[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim();
      }
      let parsed = null;
      try { parsed = JSON.parse(rest); } catch (_) { /* not JSON */ }
      resolve({ status, body: parsed, text: rest, headers: hdrs });
    });
    if (body !== undefined) child.stdin.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
}

const store = (o) => curl('POST', '/cache/store', o);
const lookup = (o) => curl('POST', '/cache/lookup', o);

test('start semcached (verify off, threshold 0.95) and a mock upstream', async () => {
  mock = await mockUpstream.start({ port: 0, name: 'mock' });
  srv = await startServer({ args: ARGS() });
});

test('/cache/store -> id; /cache/lookup exact hit returns it', async () => {
  const r = await store({ namespace: 'faq', prompt: 'How do I reset my password?', response: 'Use the reset link.' });
  assertEq(r.status, 200, r.text);
  assert(Number.isInteger(r.body.id) && r.body.id > 0, r.text);
  const l = await lookup({ namespace: 'faq', prompt: 'how do i reset my password?' });
  assertEq(l.status, 200);
  assertEq(l.body.hit, true, l.text);
  assertEq(l.body.id, r.body.id);
  assertEq(l.body.similarity, 1);
  assertEq(l.body.response, 'Use the reset link.');
});

test('/cache/lookup: semantic hit under a low threshold, miss above it, miss elsewhere', async () => {
  const r = await store({ namespace: 'faq2', prompt: 'Where can I download my monthly invoice?', response: 'Billing > Invoices.' });
  const near = 'Where can I download my monthly invoice please?';
  const lo = await lookup({ namespace: 'faq2', prompt: near, threshold: 0.6 });
  assertEq(lo.body.hit, true, lo.text);
  assertEq(lo.body.kind, 'semantic');
  assertEq(lo.body.id, r.body.id);
  assert(lo.body.similarity >= 0.6 && lo.body.similarity < 1, `similarity ${lo.body.similarity}`);
  const hi = await lookup({ namespace: 'faq2', prompt: near, threshold: 0.999 });
  assertEq(hi.body.hit, false, hi.text);
  assertEq(hi.body.id, null);
  assertEq(hi.body.response, null);
  assert(hi.body.similarity > 0 && hi.body.similarity < 0.999, `similarity still reported: ${hi.body.similarity}`);
  const other = await lookup({ namespace: 'faq', prompt: 'Where can I download my monthly invoice?' });
  assertEq(other.body.hit, false, 'another namespace never sees it');
  const none = await lookup({ namespace: 'faq2', prompt: 'Completely unrelated topic about volcanoes' });
  assertEq(none.body.hit, false);
  // Bad input.
  assertEq((await lookup({ namespace: 'faq2' })).status, 400);
  assertEq((await lookup({ namespace: 'faq2', prompt: 'x', threshold: 1.5 })).status, 400);
  assertEq((await lookup({ namespace: 'faq2', prompt: 'x', threshold: 'high' })).status, 400);
  assertEq((await curl('POST', '/cache/lookup', '{not json')).status, 400);
  const bad = await store({ namespace: 'faq2', prompt: '', response: 'x' });
  assertEq(bad.status, 400);
  assert(bad.body.error.message.includes('prompt'), bad.text);
  assertEq((await store({ namespace: 'faq2', prompt: 'p' })).status, 400, 'response required');
  assertEq((await store({ namespace: 'bad ns', prompt: 'p', response: 'r' })).status, 400);
  assertEq((await store({ namespace: 'faq2', prompt: 'p', response: 'r', ttl: -1 })).status, 400);
  assertEq((await curl('GET', '/cache/store')).status, 405);
});

test('GET and DELETE /cache/entries/{id}; 404 after delete; 400 on a bad id', async () => {
  const r = await store({ namespace: 'ent', prompt: 'Entry to delete', response: 'bye', model: 'gpt-x' });
  const id = r.body.id;
  const g = await curl('GET', `/cache/entries/${id}`);
  assertEq(g.status, 200, g.text);
  assertEq(g.body.id, id);
  assertEq(g.body.namespace, 'ent');
  assertEq(g.body.prompt, 'Entry to delete');
  assertEq(g.body.response, 'bye');
  assertEq(g.body.model, 'gpt-x');
  // With X-Semcache-Namespace, the entry must be in that namespace.
  assertEq((await curl('GET', `/cache/entries/${id}`, undefined, { headers: { 'X-Semcache-Namespace': 'other' } })).status, 404);
  assertEq((await curl('DELETE', `/cache/entries/${id}`, undefined, { headers: { 'X-Semcache-Namespace': 'other' } })).status, 404);
  assertEq((await curl('GET', `/cache/entries/${id}`, undefined, { headers: { 'X-Semcache-Namespace': 'ent' } })).status, 200);
  const d = await curl('DELETE', `/cache/entries/${id}`);
  assertEq(d.status, 200, d.text);
  assertEq(d.body.deleted, true);
  assertEq((await curl('GET', `/cache/entries/${id}`)).status, 404);
  const d2 = await curl('DELETE', `/cache/entries/${id}`);
  assertEq(d2.status, 404);
  assertEq(d2.body.error.code, 'not_found');
  assertEq((await lookup({ namespace: 'ent', prompt: 'Entry to delete', model: 'gpt-x' })).body.hit, false);
  for (const bad of ['abc', '0', '-1', '12abc', '99999999999999999999999']) {
    const b = await curl('GET', `/cache/entries/${bad}`);
    assertEq(b.status, 400, `id ${bad}: ${b.text}`);
    assertEq(b.body.error.type, 'invalid_request_error');
  }
  assertEq((await curl('GET', '/cache/entries/987654321')).status, 404);
  assertEq((await curl('PUT', `/cache/entries/${id}`)).status, 405);
});

test('/cache/flush {namespace} -> count; other namespaces untouched', async () => {
  for (let i = 0; i < 3; i++) assertEq((await store({ namespace: 'fl-a', prompt: `flush me ${i}`, response: `a${i}` })).status, 200);
  for (let i = 0; i < 2; i++) assertEq((await store({ namespace: 'fl-b', prompt: `keep me ${i}`, response: `b${i}` })).status, 200);
  const f = await curl('POST', '/cache/flush', { namespace: 'fl-a' });
  assertEq(f.status, 200, f.text);
  assertEq(f.body.flushed, 3);
  for (let i = 0; i < 3; i++) assertEq((await lookup({ namespace: 'fl-a', prompt: `flush me ${i}`, threshold: 0 })).body.hit, false);
  for (let i = 0; i < 2; i++) {
    const l = await lookup({ namespace: 'fl-b', prompt: `keep me ${i}` });
    assertEq(l.body.hit, true);
    assertEq(l.body.response, `b${i}`);
  }
  const again = await curl('POST', '/cache/flush', { namespace: 'fl-a' });
  assertEq(again.body.flushed, 0);
  assertEq((await curl('POST', '/cache/flush', {})).status, 400, 'namespace required');
});

test('/cache/import JSONL: stored/rejected counts and line numbers', async () => {
  const lines = [
    JSON.stringify({ namespace: 'imp', prompt: 'Import question one', response: 'one' }),
    '{"namespace": "imp", "prompt": broken',
    JSON.stringify({ namespace: 'imp', response: 'no prompt' }),
    JSON.stringify({ namespace: 'imp', prompt: 'Import question two', response: 'two', ttl: 3600 }),
    '',
    JSON.stringify({ namespace: 'imp', prompt: 'Bad response', response: 42 }),
    JSON.stringify({ prompt: 'Import question three', response: 'three', model: 'gpt-imp' }),
    '[1,2]',
  ];
  const r = await curl('POST', '/cache/import', lines.join('\n') + '\n');
  assertEq(r.status, 200, r.text);
  assertEq(r.body.stored, 3);
  assertEq(r.body.rejected, 4);
  assertEq(r.body.errors.map((e) => e.line).join(','), '2,3,6,8');
  assert(r.body.errors[1].message.includes('prompt'), JSON.stringify(r.body.errors[1]));
  assertEq((await lookup({ namespace: 'imp', prompt: 'Import question one' })).body.response, 'one');
  assertEq((await lookup({ namespace: 'imp', prompt: 'Import question two' })).body.response, 'two');
  // No namespace in the line: the default namespace (or the header's).
  assertEq((await lookup({ namespace: 'default', prompt: 'Import question three', model: 'gpt-imp' })).body.response, 'three');
  const allBad = await curl('POST', '/cache/import', 'nope\n{}\n');
  assertEq(allBad.status, 400);
  assertEq(allBad.body.stored, 0);
  assertEq(allBad.body.rejected, 2);
});

test('/cache/embed: dim, unit-length vectors, equal for equal input', async () => {
  const r = await curl('POST', '/cache/embed', { input: ['hello world', 'hello world', 'something else entirely'] });
  assertEq(r.status, 200, r.text);
  assert(Number.isInteger(r.body.dim) && r.body.dim > 0, r.text.slice(0, 200));
  assert(typeof r.body.model === 'string' && r.body.model.length > 0, 'model named');
  const e = r.body.embeddings;
  assertEq(e.length, 3);
  for (const v of e) {
    assertEq(v.length, r.body.dim);
    const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    assert(Math.abs(n - 1) < 1e-4, `norm ${n}`);
  }
  assertEq(JSON.stringify(e[0]), JSON.stringify(e[1]), 'equal input, equal vector');
  assert(JSON.stringify(e[0]) !== JSON.stringify(e[2]), 'different input, different vector');
  // The vectors are the cache's own: the lookup similarity is their cosine
  // on the embedder's scale (1 - (1 - cos)^gamma; gamma 1: the cosine).
  const g = r.body.similarity_gamma;
  assert(g >= 1 && g <= 3, `similarity_gamma ${g}`);
  await store({ namespace: 'emb', prompt: 'hello world', response: 'hi' });
  const l = await lookup({ namespace: 'emb', prompt: 'something else entirely', threshold: 0 });
  const cos = e[0].reduce((a, x, i) => a + x * e[2][i], 0);
  const sim = cos > 0 ? 1 - Math.pow(1 - cos, g) : cos;
  assert(Math.abs(l.body.similarity - sim) < 1e-3, `lookup similarity ${l.body.similarity} vs cosine ${cos} on the scale ${sim}`);
  // A single string is accepted as a list of one (as OpenAI's API does).
  const one = await curl('POST', '/cache/embed', { input: 'hello world' });
  assertEq(one.status, 200);
  assertEq(JSON.stringify(one.body.embeddings), JSON.stringify([e[0]]));
  assertEq((await curl('POST', '/cache/embed', { input: [] })).status, 400);
  assertEq((await curl('POST', '/cache/embed', { input: [1, 2] })).status, 400);
  assertEq((await curl('POST', '/cache/embed', {})).status, 400);
});

test('entries survive a restart (SIGTERM, same data dir)', async () => {
  const r = await store({ namespace: 'persist', prompt: 'Do you survive restarts?', response: 'Yes.' });
  const id = r.body.id;
  // And an answer the proxy wrote back.
  const ask = { model: 'gpt-persist', messages: [{ role: 'user', content: 'Proxy answer across restarts' }] };
  const p1 = await curl('POST', '/v1/chat/completions', ask);
  assertEq(p1.headers['x-semcache'], 'miss');
  await sleep(300);
  const st = await stopServer(srv, 'SIGTERM');
  assertEq(st.code, 0, 'clean exit');
  srv = await startServer({ dataDir: srv.dataDir, args: ARGS() });
  const l = await lookup({ namespace: 'persist', prompt: 'Do you survive restarts?' });
  assertEq(l.body.hit, true, l.text);
  assertEq(l.body.id, id);
  assertEq(l.body.response, 'Yes.');
  // The semantic layer (index rebuilt from LMDB) too.
  const s = await lookup({ namespace: 'persist', prompt: 'Do you really survive restarts?', threshold: 0.5 });
  assertEq(s.body.hit, true, s.text);
  assertEq(s.body.kind, 'semantic');
  assertEq((await curl('GET', `/cache/entries/${id}`)).body.response, 'Yes.');
  const calls0 = mock.calls().total;
  const p2 = await curl('POST', '/v1/chat/completions', ask);
  assertEq(p2.headers['x-semcache'], 'hit-exact');
  assertEq(p2.body.choices[0].message.content, p1.body.choices[0].message.content);
  assertEq(p2.body.usage.total_tokens, p1.body.usage.total_tokens);
  assertEq(mock.calls().total, calls0);
  // Earlier namespaces too; the flushed one stays empty.
  assertEq((await lookup({ namespace: 'fl-b', prompt: 'keep me 0' })).body.hit, true);
  assertEq((await lookup({ namespace: 'fl-a', prompt: 'flush me 0' })).body.hit, false);
});

test('the proxy serves a /cache/store {model} answer as a valid chat.completion', async () => {
  const before = mock.calls().total;
  const q = 'What are your opening hours?';
  const r = await store({ namespace: 'default', prompt: q, response: 'We are open 9 to 5.', model: 'gpt-faq' });
  assertEq(r.status, 200);
  const c = await curl('POST', '/v1/chat/completions', { model: 'gpt-faq', messages: [{ role: 'user', content: q }] });
  assertEq(c.status, 200, c.text);
  assertEq(c.headers['x-semcache'], 'hit-exact');
  assertEq(c.headers['x-semcache-entry'], String(r.body.id));
  assert(/application\/json/.test(c.headers['content-type']), c.headers['content-type']);
  const b = c.body;
  assertEq(b.object, 'chat.completion');
  assert(typeof b.id === 'string' && b.id.length > 0, 'id');
  assert(Number.isInteger(b.created) && Math.abs(b.created - Date.now() / 1000) < 600, `created ${b.created}`);
  assertEq(b.model, 'gpt-faq');
  assertEq(b.choices.length, 1);
  assertEq(b.choices[0].index, 0);
  assertEq(b.choices[0].message.role, 'assistant');
  assertEq(b.choices[0].message.content, 'We are open 9 to 5.');
  assertEq(b.choices[0].finish_reason, 'stop');
  assert(b.usage && Number.isInteger(b.usage.total_tokens), 'usage object');
  // Streamed: replayed as SSE ending with [DONE].
  const s = await curl('POST', '/v1/chat/completions', { model: 'gpt-faq', stream: true, messages: [{ role: 'user', content: q }] });
  assertEq(s.status, 200);
  assertEq(s.headers['x-semcache'], 'hit-exact');
  assert(/text\/event-stream/.test(s.headers['content-type']), s.headers['content-type']);
  const events = s.text.split('\n\n').filter((x) => x.startsWith('data: ')).map((x) => x.slice(6));
  assertEq(events[events.length - 1], '[DONE]');
  const text = events.slice(0, -1).map((e) => JSON.parse(e)).map((e) => e.choices.map((ch) => ch.delta.content || '').join('')).join('');
  assertEq(text, 'We are open 9 to 5.');
  // Legacy completions can be served the same entry? No: a different
  // endpoint is a different context. A different model or a system prompt too.
  const other = await curl('POST', '/v1/chat/completions', { model: 'gpt-other', messages: [{ role: 'user', content: q }] });
  assertEq(other.headers['x-semcache'], 'miss');
  const sys = await curl('POST', '/v1/chat/completions', { model: 'gpt-faq', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: q }] });
  assertEq(sys.headers['x-semcache'], 'miss');
  assertEq(mock.calls().total - before, 2, 'only the two misses reached upstream');
  // A paraphrase reaches the FAQ entry through the semantic layer.
  const para = await curl('POST', '/v1/chat/completions', { model: 'gpt-faq', messages: [{ role: 'user', content: 'What are your opening hours today?' }] },
    { headers: { 'X-Semcache-Threshold': '0.5' } });
  assertEq(para.headers['x-semcache'], 'hit-semantic', para.text);
  assertEq(para.body.choices[0].message.content, 'We are open 9 to 5.');
  assertEq(mock.calls().total - before, 2);
});

test('the ANN path: a big partition is searched through an IVF, kept across a restart', async () => {
  // --index-ann-min-rows 1500: imported entries cross it one by one (the
  // IVF is trained, then rows added later are put into lists); a restart
  // builds it once after the load. Each entry must still be found through
  // a paraphrase, deleted entries never.
  const args = ['--upstream', mock.url, '--verify', 'off', '--index-ann-min-rows', '1500'];
  let s2 = await startServer({ args });
  const N = 3000;
  const topics = ['invoice', 'password', 'refund', 'shipping', 'account', 'printer', 'router', 'garden'];
  const lines = [];
  for (let i = 0; i < N; i++) {
    lines.push(JSON.stringify({ namespace: 'big', prompt: `how do I fix ${topics[i % 8]} problem number ${i} on model x${i * 7919 % 10007}`,
      response: `answer ${i}` }));
  }
  const imp = await curl('POST', '/cache/import', lines.join('\n') + '\n', { base: s2.url });
  assertEq(imp.status, 200, imp.text);
  assertEq(imp.body.stored, N);
  const stats = async (srvX) => JSON.parse((await curl('GET', '/stats', undefined, { base: srvX.url })).text).cache;
  let st = await stats(s2);
  assertEq(st.index_ann_partitions, 1, JSON.stringify(st));
  const metrics = (await curl('GET', '/metrics', undefined, { base: s2.url })).text;
  assert(/^semcached_index_ann_partitions 1$/m.test(metrics), 'the gauge in /metrics');
  const gone = new Set([5, 77, 2999]);
  for (const i of gone) {
    const l = await curl('POST', '/cache/lookup', { namespace: 'big', prompt: JSON.parse(lines[i]).prompt }, { base: s2.url });
    assertEq((await curl('DELETE', `/cache/entries/${l.body.id}`, undefined, { base: s2.url })).status, 200);
  }
  const check = async (srvX) => {
    let right = 0, n = 0;
    for (let i = 0; i < N; i += 97) {
      const prompt = JSON.parse(lines[i]).prompt + ' please';
      const l = await curl('POST', '/cache/lookup', { namespace: 'big', prompt, threshold: 0.8 }, { base: srvX.url });
      assertEq(l.status, 200, l.text);
      n++;
      if (l.body.hit && l.body.response === `answer ${i}`) right++;
      assert(!l.body.hit || l.body.kind === 'semantic', l.text);
    }
    for (const i of gone) {
      const l = await curl('POST', '/cache/lookup', { namespace: 'big', prompt: JSON.parse(lines[i]).prompt + ' please', threshold: 0.8 }, { base: srvX.url });
      assert(l.body.response !== `answer ${i}`, `deleted entry ${i} served`);
    }
    return right / n;
  };
  const before = await check(s2);
  assert(before >= 0.95, `paraphrases answered right through the IVF: ${before}`);
  assertEq((await stopServer(s2, 'SIGTERM')).code, 0);
  s2 = await startServer({ args, dataDir: s2.dataDir });
  // The lists are built in the background after start-up.
  for (let t = 0; t < 200 && (st = await stats(s2)).index_ann_partitions !== 1; t++) await sleep(50);
  assertEq(st.index_ann_partitions, 1, JSON.stringify(st));
  assertEq(st.index_vectors, N - gone.size);
  const after = await check(s2);
  assert(after >= before - 0.02, `after the restart: ${after} vs ${before}`);
  assertEq((await stopServer(s2, 'SIGTERM')).code, 0);
});

test('stop', async () => {
  const st = await stopServer(srv, 'SIGTERM');
  assertEq(st.code, 0);
  await mock.close();
});

run();
