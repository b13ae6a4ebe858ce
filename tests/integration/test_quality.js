// The hit decision at the defaults (semcache-embed, answer vote, tuned
// threshold), through the server's own API: the held-out look-alike set
// (tests/fixtures/lookalike.tsv, never trained or tuned on) stored and
// looked up pair by pair, a small FAQ where several phrasings share one
// answer, the lookup threshold and RESP THRESHOLD overrides, and a
// missing, truncated or corrupted model refused at start with the file
// named and the data dir left as it was.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { tmpDir, test, run, startServer, stopServer, assert, assertEq, json } = require('./lib');

const MODEL = path.resolve(__dirname, '../../models/semcache-embed-v1');
const DEFAULTS = { embedder: 'semcache-embed', args: [] };

function pairs(file) {
  return fs.readFileSync(file, 'utf8').split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => { const t = l.split('\t'); return { label: Number(t[0]), kind: t[1], a: t[2], b: t[3] }; });
}

// The target is <= 5 % look-alikes with >= 70 % paraphrases; the
// shipped model (third training, folded text) with the cross-check's
// decisive differences and the vote's bonus for an unambiguous winner
// (a lone candidate: server/vote.h) and the verifier trained on banking77
// train measures 3/51 with 37/40 (BENCHMARKS.md, Quality; the verifier
// trained on banking77 test's even intents 2/51 with 35/40; without the
// bonus 2/51 with 30/40, the second training 7/51 with 27/40). This
// guards that level (one or two pairs of slack for float differences
// between CPUs), so a regression fails here.
test('held-out look-alikes: <= 4/51 served, >= 35/40 paraphrases served (defaults, /cache/store + /cache/lookup)', async () => {
  const srv = await startServer(DEFAULTS);
  const ps = pairs(path.resolve(__dirname, '../fixtures/lookalike.tsv'));
  let para = 0, paraHit = 0, look = 0, lookHit = 0;
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i], ns = `la${i}`;
    const st = await json(`${srv.url}/cache/store`, { namespace: ns, prompt: p.a, response: `answer ${i}` });
    assertEq(st.status, 200, st.text);
    const r = await json(`${srv.url}/cache/lookup`, { namespace: ns, prompt: p.b });
    assertEq(r.status, 200, r.text);
    if (p.label === 1) { para++; paraHit += r.body.hit ? 1 : 0; } else { look++; lookHit += r.body.hit ? 1 : 0; }
  }
  console.log(`# paraphrases served ${paraHit}/${para}, look-alikes served ${lookHit}/${look}`);
  assert(para > 20 && look > 20, 'fixture too small');
  assert(lookHit <= 4, `false hits ${lookHit}/${look}`);
  assert(paraHit >= 35, `paraphrases served ${paraHit}/${para}`);
  await stopServer(srv);
});

const FAQ = [
  { answer: 'Go to Settings > Security > Reset password.',
    seeds: ['How do I reset my password?', 'I forgot my password', 'How can I change my password?'],
    queries: ['what do I do if I cannot remember my password', 'password reset steps please'] },
  { answer: 'Settings > Payments > Direct debits > Cancel.',
    seeds: ['How do I cancel a direct debit?', 'Stop a direct debit', 'I want to cancel my direct debit'],
    queries: ['how can i cancel the direct debit on my account'] },
  { answer: 'Settings > Payments > Direct debits > New.',
    seeds: ['How do I set up a direct debit?', 'Create a new direct debit', 'I want to add a direct debit'],
    queries: ['how can i set up a direct debit on my account'] },
  { answer: 'Settings > Display > Dark mode: On.',
    seeds: ['How do I turn on dark mode?', 'Enable dark mode', 'Switch the app to dark theme'],
    queries: ['how can I enable dark mode in the app'] },
  { answer: 'Settings > Display > Dark mode: Off.',
    seeds: ['How do I turn off dark mode?', 'Disable dark mode', 'Switch the app back to the light theme'],
    queries: ['how can I disable dark mode in the app'] },
];

test('FAQ: phrasings that share an answer are served it; opposite actions get their own', async () => {
  const srv = await startServer(DEFAULTS);
  for (const f of FAQ)
    for (const s of f.seeds)
      assertEq((await json(`${srv.url}/cache/store`, { namespace: 'faq', prompt: s, response: f.answer })).status, 200);
  let served = 0, wrong = 0, n = 0;
  for (const f of FAQ)
    for (const q of f.queries) {
      const r = await json(`${srv.url}/cache/lookup`, { namespace: 'faq', prompt: q });
      n++;
      if (r.body.hit) { served++; if (r.body.response !== f.answer) wrong++; }
      if (r.body.hit && r.body.response !== f.answer) console.log(`# wrong: ${q} -> ${r.body.response}`);
    }
  console.log(`# FAQ served ${served}/${n}, wrong ${wrong}`);
  assertEq(wrong, 0, 'a wrong answer was served');
  assert(served >= 2, `only ${served}/${n} served`);
  await stopServer(srv);
});

test('a negation that is all that differs is refused; a paraphrase of the same prompt is still served', async () => {
  // sc_verify_decisive: a negation on one side with every content word
  // aligned. Our own pairs, not from the dev or held-out sets. The first
  // is served without the rule (the verifier gives it 0.33, above the
  // plain 0.30 veto); the rule itself is build/unit_tests
  // verify_decisive_differences. A reworded paraphrase is still served.
  const srv = await startServer(DEFAULTS);
  const cases = [
    ['Why is my order showing as shipped?', "Why isn't my order showing as shipped?", false],
    ['The refund was approved, is that right?', 'The refund was not approved, is that right?', false],
    ['Why is my order showing as shipped?', 'Why does my order say it has shipped?', true],
  ];
  for (let i = 0; i < cases.length; i++) {
    const [a, b, want] = cases[i];
    assertEq((await json(`${srv.url}/cache/store`, { namespace: `neg${i}`, prompt: a, response: `answer ${i}` })).status, 200);
    const r = await json(`${srv.url}/cache/lookup`, { namespace: `neg${i}`, prompt: b });
    assertEq(r.status, 200);
    assertEq(r.body.hit, want, `"${a}" / "${b}": hit ${r.body.hit}, similarity ${r.body.similarity}`);
  }
  await stopServer(srv);
});

test('unambiguous winner: a lone paraphrase below the cosine 0.82 is served, not with --top-k 1', async () => {
  // cosine ~0.76 (BENCHMARKS.md, "Unambiguous winners"): alone it scores
  // cos + 0.4 (1 - cos), past the default; with --top-k 1 the vote cannot
  // tell it is alone (a close rival answer taking the bonus away is
  // build/unit_tests vote_unambiguous_winner_bonus).
  const stored = "I'd like to book a table for tonight", query = 'How can I reserve a table for this evening?';
  const srv = await startServer(DEFAULTS);
  assertEq((await json(`${srv.url}/cache/store`, { namespace: 'lone', prompt: stored, response: 'Booked.' })).status, 200);
  const e = await json(`${srv.url}/cache/embed`, { input: [stored, query] });
  const cos = e.body.embeddings[0].reduce((a, x, j) => a + x * e.body.embeddings[1][j], 0);
  assert(cos > 0.70 && cos < 0.8194, `cosine ${cos} is not in the band this test needs`);
  const hit = await json(`${srv.url}/cache/lookup`, { namespace: 'lone', prompt: query });
  assertEq(hit.body.hit, true, hit.text);
  assertEq(hit.body.response, 'Booked.');
  await stopServer(srv);
  const one = await startServer({ ...DEFAULTS, args: ['--top-k', '1'] });
  assertEq((await json(`${one.url}/cache/store`, { namespace: 'lone', prompt: stored, response: 'Booked.' })).status, 200);
  const miss = await json(`${one.url}/cache/lookup`, { namespace: 'lone', prompt: query });
  assertEq(miss.body.hit, false, miss.text);
  await stopServer(one);
});

test('typed as people type: lower case, no end punctuation, shouting, still the same prompt to the embedder', async () => {
  // The shipped model is trained and served on folded text (model.bin's
  // FOLD flag): case and end punctuation do not change the embedding.
  const srv = await startServer(DEFAULTS);
  const forms = ['What is the capital of France?', 'what is the capital of france',
    'WHAT IS THE CAPITAL OF FRANCE!!', 'What is the capital of France.'];
  const e = await json(`${srv.url}/cache/embed`, { input: forms });
  assertEq(e.status, 200, e.text);
  const v = e.body.embeddings;
  for (let i = 1; i < forms.length; i++) {
    const cos = v[0].reduce((a, x, j) => a + x * v[i][j], 0);
    assert(cos > 0.9999, `"${forms[i]}": cosine ${cos} to "${forms[0]}"`);
  }
  // ... so a typed question is served the answer stored for the written
  // one (a semantic hit: the exact layer keeps punctuation), and a typed
  // look-alike is not.
  const stored = 'How do I cancel a direct debit?';
  assertEq((await json(`${srv.url}/cache/store`, { namespace: 'typed', prompt: stored, response: 'Cancel steps.' })).status, 200);
  const hit = await json(`${srv.url}/cache/lookup`, { namespace: 'typed', prompt: 'how do i cancel a direct debit' });
  assertEq(hit.body.hit, true, hit.text);
  assertEq(hit.body.response, 'Cancel steps.');
  const look = await json(`${srv.url}/cache/lookup`, { namespace: 'typed', prompt: 'how do i set up a direct debit' });
  assertEq(look.body.hit, false, look.text);
  await stopServer(srv);
});

test('answer vote: cached phrasings of one question with differently worded answers do not outvote each other', async () => {
  // LLM answers to paraphrases differ in wording; the vote must not count
  // them as rival answers (vote.h, sc_vote_merge_same).
  const srv = await startServer(DEFAULTS);
  const stores = [['how do i reset my password', 'Open Settings, then Reset password.'],
    ['how can i reset my password', 'Go to Settings and choose Reset password.'],
    ['how do I reset my password?', 'Open Settings, then Reset password.']];
  for (const [p, a] of stores)
    assertEq((await json(`${srv.url}/cache/store`, { namespace: 'pw', prompt: p, response: a })).status, 200);
  const r = await json(`${srv.url}/cache/lookup`, { namespace: 'pw', prompt: 'how would i reset my password' });
  assertEq(r.body.hit, true, r.text);
  assert(/Reset password/.test(r.body.response), r.text);
  await stopServer(srv);
});

test('thresholds: the default (cosine+vote+check) in /stats; /cache/lookup threshold and RESP THRESHOLD override it', async () => {
  const srv = await startServer(DEFAULTS);
  const st = await json(`${srv.url}/stats`, undefined, { method: 'GET' });
  assertEq(st.body.cache.scorer, 'cosine+vote+check', st.text);
  assertEq(st.body.cache.threshold, 0.95, "default threshold");
  assert(st.body.cache.threshold >= 0.92 && st.body.cache.threshold <= 0.97, 'inside the 0.92-0.97 band');
  assert(/^semcache-embed-v1\//.test(st.body.cache.embedder), st.body.cache.embedder);
  await json(`${srv.url}/cache/store`, { namespace: 'th', prompt: 'How do I reset my password?', response: 'R' });
  const q = 'what do I do if I forgot my password';
  const lo = await json(`${srv.url}/cache/lookup`, { namespace: 'th', prompt: q, threshold: 0.3 });
  assertEq(lo.body.hit, true, lo.text);
  const hi = await json(`${srv.url}/cache/lookup`, { namespace: 'th', prompt: q, threshold: 0.999 });
  assertEq(hi.body.hit, false, hi.text);
  // The similarity is the cosine of the cache's own vectors on
  // semcache-embed's score scale: 1 - (1 - cos)^similarity_gamma.
  const e = await json(`${srv.url}/cache/embed`, { input: ['How do I reset my password?', q] });
  assertEq(e.body.similarity_gamma, 1.75, e.text);
  const cos = e.body.embeddings[0].reduce((a, x, j) => a + x * e.body.embeddings[1][j], 0);
  assert(cos > 0 && cos < 1, `cosine ${cos}`);
  const sim = 1 - Math.pow(1 - cos, 1.75);
  assert(Math.abs(hi.body.similarity - sim) < 2e-3, `similarity ${hi.body.similarity} vs ${sim} (cosine ${cos})`);
  assert(hi.body.similarity > cos, 'the scale lifts a cosine below 1');
  // A lookup's threshold set to its own similarity serves it, a hair above does not.
  const at = await json(`${srv.url}/cache/lookup`, { namespace: 'th', prompt: q, threshold: Math.max(0, hi.body.similarity - 1e-4) });
  assertEq(at.body.hit, true, at.text);
  const cli = (args) => execFileSync('redis-cli', ['-p', String(srv.respPort), ...args], { encoding: 'utf8' });
  assert(cli(['SEM.GET', 'th', q, 'THRESHOLD', '0.3']).includes('R'), 'RESP THRESHOLD 0.3 misses');
  assertEq(cli(['SEM.GET', 'th', q, 'THRESHOLD', '0.999']).trim(), '', 'RESP THRESHOLD 0.999 hits');
  await stopServer(srv);
});

function dirHash(dir) {
  const h = crypto.createHash('sha256');
  for (const f of fs.readdirSync(dir).sort()) { h.update(f); h.update(fs.readFileSync(path.join(dir, f))); }
  return h.digest('hex');
}

async function refused(mutate, expect) {
  const bad = tmpDir('sc_model_');
  try {
    fs.copyFileSync(path.join(MODEL, 'vocab.json'), path.join(bad, 'vocab.json'));
    fs.copyFileSync(path.join(MODEL, 'model.bin'), path.join(bad, 'model.bin'));
    mutate(bad);
    // a data dir with an entry in it, written with the good model
    const good = await startServer(DEFAULTS);
    await json(`${good.url}/cache/store`, { namespace: 'x', prompt: 'keep me', response: 'kept' });
    await stopServer(good);
    const before = dirHash(good.dataDir);
    let err = null;
    try { await startServer({ ...DEFAULTS, dataDir: good.dataDir, args: ['--model-dir', bad] }); } catch (e) { err = String(e.message); }
    assert(err, 'semcached started with a broken model');
    assert(err.includes(path.join(bad, expect.file)), `message does not name ${expect.file}: ${err}`);
    assert(expect.words.test(err), `message does not say what is wrong (${expect.words}): ${err}`);
    assertEq(dirHash(good.dataDir), before, 'the data dir changed');
    fs.rmSync(good.dataDir, { recursive: true, force: true });
  } finally {
    fs.rmSync(bad, { recursive: true, force: true });
  }
}

test('a missing model file is refused at start, naming it', async () => {
  await refused((d) => fs.rmSync(path.join(d, 'model.bin')), { file: 'model.bin', words: /cannot open/ });
  await refused((d) => fs.rmSync(path.join(d, 'vocab.json')), { file: 'vocab.json', words: /cannot open/ });
});

test('a truncated model file is refused at start (size)', async () => {
  await refused((d) => { const f = path.join(d, 'model.bin'); fs.truncateSync(f, fs.statSync(f).size - 1000); },
    { file: 'model.bin', words: /size|truncated/ });
});

test('a corrupted model file is refused at start (checksum)', async () => {
  await refused((d) => {
    const f = path.join(d, 'model.bin'), b = fs.readFileSync(f);
    b[b.length >> 1] ^= 0x40;
    fs.writeFileSync(f, b);
  }, { file: 'model.bin', words: /checksum/ });
});

test('a data dir written with another embedder is refused, naming --reembed yes', async () => {
  const srv = await startServer({ embedder: 'use-lite' });
  await json(`${srv.url}/cache/store`, { namespace: 'x', prompt: 'hello', response: 'world' });
  await stopServer(srv);
  let err = null;
  try { await startServer({ ...DEFAULTS, dataDir: srv.dataDir }); } catch (e) { err = String(e.message); }
  assert(err && err.includes('--reembed yes'), `not refused with --reembed yes: ${err}`);
  const again = await startServer({ ...DEFAULTS, dataDir: srv.dataDir, args: ['--reembed', 'yes'] });
  const r = await json(`${again.url}/cache/lookup`, { namespace: 'x', prompt: 'hello' });
  assertEq(r.body.response, 'world');
  await stopServer(again);
  fs.rmSync(srv.dataDir, { recursive: true, force: true });
});

run();
