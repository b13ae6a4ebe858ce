// Streamed misses at their edges: the real semcached relays SSE from the
// fault-injecting mock upstream to the real `openai` npm client and to a
// raw HTTP client. An answer past --max-upstream-body cannot be relayed
// whole, so the client gets the whole events before it and then one error
// event in OpenAI's format, never a stream with bytes silently missing.
// A streamed miss names the upstream that served it (after fallbacks) in
// X-Semcache-Upstream, as a non-streamed miss does.
'use strict';
const OpenAI = require('openai');
const { test, run, startServer, stopServer, sleep, assert, assertEq } = require('./lib');
const mockUpstream = require('./mock_upstream');

let mock, mock2, srv, client;
const MAX_UP = 4096;
const user = (text) => [{ role: 'user', content: text }];
const settle = () => sleep(300);

function mkClient(url) {
  return new OpenAI({ baseURL: url + '/v1', apiKey: 'x', maxRetries: 0, timeout: 20000 });
}

// POSTs a chat request and returns the status, headers and SSE events
// (the text between blank lines) of the answer.
async function rawStream(url, body) {
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, events: text.split('\n\n').filter(Boolean) };
}

test('start mock upstream and semcached', async () => {
  mock = await mockUpstream.start({ port: 0, name: 'mock' });
  mock2 = await mockUpstream.start({ port: 0, name: 'mock2' });
  // gpt-fb*: first "first" (the mock, made to fail by its plan), then "second".
  srv = await startServer({ args: ['--upstream', mock.url, '--retries', '0', '--verify', 'off',
    '--max-upstream-body', String(MAX_UP), '--upstream-def', `first ${mock.url} -`,
    '--upstream-def', `second ${mock2.url} -`, '--route', 'gpt-fb* first,second'] });
  client = mkClient(srv.url);
});

test('an SSE event larger than --max-upstream-body: whole events, then an OpenAI error event; nothing stored', async () => {
  const q = user('one two three');
  mock.plan([`bigevent:${2 * MAX_UP}`]);
  const r = await rawStream(srv.url, { model: 'gpt-big', messages: q });
  assertEq(r.status, 200);
  assertEq(r.headers.get('x-semcache'), 'miss');
  assert(!r.text.includes('xxxxxxxx'), 'no part of the oversized event is relayed');
  const last = r.events[r.events.length - 1];
  assert(last.startsWith('data: {"error":'), `ends with an error event: ${last}`);
  const err = JSON.parse(last.slice(6)).error;
  assertEq(err.code, 'upstream_too_large');
  assertEq(err.type, 'upstream_error');
  assert(/max-upstream-body/.test(err.message), err.message);
  // Every event before it is a whole chunk of the upstream's, as sent.
  const chunks = r.events.slice(0, -1).map((e) => { assert(e.startsWith('data: {'), e); return JSON.parse(e.slice(6)); });
  assertEq(chunks[0].object, 'chat.completion.chunk');
  assertEq(chunks.map((c) => c.choices[0].delta.content || '').join(''), 'echo:', 'the content before the big event');
  assert(!r.text.includes('[DONE]'), 'no [DONE]');

  // The SDK raises the error with its message.
  mock.plan([`bigevent:${2 * MAX_UP}`]);
  let seen = '';
  let thrown = null;
  try {
    const stream = await client.chat.completions.create({ model: 'gpt-big', messages: q, stream: true });
    for await (const ch of stream) for (const c of ch.choices) seen += c.delta.content || '';
  } catch (e) { thrown = e; }
  assert(thrown, 'the SDK raised an error');
  assert(/max-upstream-body/.test(thrown.message), thrown.message);
  assertEq(seen, 'echo:');

  // Not stored: the next ask is a miss and goes upstream.
  await settle();
  const before = mock.calls().total;
  const again = await client.chat.completions.create({ model: 'gpt-big', messages: q }).withResponse();
  assertEq(again.response.headers.get('x-semcache'), 'miss');
  assertEq(mock.calls().total - before, 1);
  const st = await fetch(`${srv.url}/healthz`);
  assertEq(st.status, 200);
});

test('a streamed miss names the upstream that served it, after a fallback (X-Semcache-Upstream)', async () => {
  const before = mock2.calls().total;
  mock.plan(['503']);
  const r = await rawStream(srv.url, { model: 'gpt-fb-1', messages: user('who answers this stream') });
  assertEq(r.status, 200);
  assertEq(r.headers.get('x-semcache'), 'miss');
  assertEq(r.headers.get('x-semcache-upstream'), 'second');
  assert(r.text.endsWith('data: [DONE]\n\n'), 'the whole stream');
  assertEq(mock2.calls().total - before, 1, 'the fallback served it');
  // Through the SDK; and without a failure the primary serves.
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'gpt-fb-1', messages: user('and who answers this one'), stream: true }).withResponse();
  for await (const ch of stream) void ch;
  assertEq(response.headers.get('x-semcache-upstream'), 'first');
  assertEq(mock2.calls().total - before, 1);
  // The implicit route names the implicit upstream.
  const d = await rawStream(srv.url, { model: 'gpt-other', messages: user('a stream on the default route') });
  assertEq(d.headers.get('x-semcache-upstream'), 'default');
  // Same as a non-streamed miss after the same fallback.
  mock.plan(['503']);
  const j = await client.chat.completions.create({ model: 'gpt-fb-2', messages: user('who answers this') }).withResponse();
  assertEq(j.response.headers.get('x-semcache-upstream'), 'second');
  // A hit has no upstream.
  await settle();
  const h = await rawStream(srv.url, { model: 'gpt-fb-1', messages: user('who answers this stream') });
  assertEq(h.headers.get('x-semcache'), 'hit-exact');
  assertEq(h.headers.get('x-semcache-upstream'), null);
});

test('stop', async () => {
  const r = await stopServer(srv, 'SIGTERM');
  assertEq(r.code, 0, `exit code (stderr: ${srv.stderr().slice(-300)})`);
  await mock.close();
  await mock2.close();
});

run();
