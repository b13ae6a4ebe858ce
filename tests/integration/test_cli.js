// Issue 6: semcache-cli and semcache-example against a real semcached:
// every subcommand, --json output, exit codes (0 ok, 1 miss, 2 usage,
// 3 connection/server error, 4 rejected import lines), import from a file
// and from stdin with a progress bar on a (pseudo) terminal, and API keys.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tmpDir, test, run, startServer, freePort, assert, assertEq } = require('./lib');

const build = process.env.SC_BUILD || path.resolve(__dirname, '../../build');
const CLI = process.env.SEMCACHE_CLI || path.join(build, 'semcache-cli');
const EXAMPLE = path.join(build, 'semcache-example');
let srv;
const tmp = tmpDir('sc_cli_');

function cli(args, opts = {}) {
  const base = srv ? ['-p', String(srv.respPort), '--http-port', String(srv.port)] : [];
  const r = spawnSync(CLI, [...base, ...args], { encoding: 'utf8', timeout: 30000, input: opts.input,
    env: { ...process.env, ...(opts.env || {}) } });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('start semcached', async () => {
  srv = await startServer();
});

test('--help prints usage with commands and exit codes, exit 0', async () => {
  const r = cli(['--help']);
  assertEq(r.code, 0);
  for (const s of ['get PROMPT', 'set PROMPT RESPONSE', 'del ID', 'flush', 'stats', 'embed TEXT', 'import FILE.jsonl', '--json', 'Exit codes'])
    assert(r.out.includes(s), `usage mentions ${s}`);
});

test('usage errors exit 2', async () => {
  assertEq(cli([]).code, 2);
  const r = cli(['frobnicate']);
  assertEq(r.code, 2);
  assert(r.err.includes("unknown command 'frobnicate'"), r.err);
  assertEq(cli(['--port', 'abc', 'stats']).code, 2);
  assertEq(cli(['--threshold', '2', 'get', 'x']).code, 2);
  assertEq(cli(['--no-such-option', 'stats']).code, 2);
  assertEq(cli(['get']).code, 2);
  assertEq(cli(['set', 'only-prompt']).code, 2);
  assertEq(cli(['del', 'x1']).code, 2);
  assertEq(cli(['import', path.join(tmp, 'missing.jsonl')]).code, 2);
});

test('set prints an id; get prints the response; a miss exits 1', async () => {
  const s = cli(['-n', 'clitest', 'set', 'What is the capital of France?', 'Paris.']);
  assertEq(s.code, 0, s.err);
  assert(/^\d+\n$/.test(s.out), s.out);
  const g = cli(['-n', 'clitest', 'get', 'what is the capital of france?']);
  assertEq(g.code, 0);
  assertEq(g.out, 'Paris.\n');
  const m = cli(['-n', 'clitest', 'get', 'how tall is mount everest']);
  assertEq(m.code, 1);
  assertEq(m.out, '');
  assertEq(cli(['-n', 'other', 'get', 'what is the capital of france?']).code, 1);
});

test('--json output of get, set, del, flush, stats', async () => {
  const s = JSON.parse(cli(['--json', '-n', 'cj', 'set', 'json prompt', 'json "answer"\nline 2', '--ttl', '100']).out);
  assert(typeof s.id === 'number', JSON.stringify(s));
  const g = cli(['--json', '-n', 'cj', 'get', 'json prompt']);
  const gj = JSON.parse(g.out);
  assertEq(gj.hit, true);
  assertEq(gj.response, 'json "answer"\nline 2');
  assertEq(gj.similarity, 1);
  assertEq(gj.id, s.id);
  const m = cli(['--json', '-n', 'cj', 'get', 'nothing like it', '--threshold', '0.99']);
  assertEq(m.code, 1);
  assertEq(JSON.parse(m.out).hit, false);
  const st = JSON.parse(cli(['--json', 'stats']).out);
  assert(st.entries >= 2 && typeof st.hit_ratio === 'number' && st.embedder === 'hash/1', JSON.stringify(st));
  const d = cli(['--json', '-n', 'cj', 'del', String(s.id)]);
  assertEq(d.code, 0);
  assertEq(JSON.parse(d.out).deleted, true);
  const d2 = cli(['--json', '-n', 'cj', 'del', String(s.id)]);
  assertEq(d2.code, 1);
  assertEq(JSON.parse(d2.out).deleted, false);
  cli(['-n', 'cj', 'set', 'a', 'b']);
  cli(['-n', 'cj', 'set', 'c', 'd']);
  assertEq(JSON.parse(cli(['--json', '-n', 'cj', 'flush']).out).flushed, 2);
  const text = cli(['stats']).out;
  assert(/^entries\s+\d+$/m.test(text), text);
});

test('embed prints one row per text (HTTP /cache/embed); --json passes the answer through', async () => {
  const r = cli(['embed', 'hello world', 'good morning']);
  assertEq(r.code, 0, r.err);
  const rows = r.out.trim().split('\n');
  assertEq(rows.length, 2);
  assertEq(rows[0].split(' ').length, 256);
  const j = JSON.parse(cli(['--json', 'embed', 'hello']).out);
  assertEq(j.dim, 256);
  assertEq(j.embeddings.length, 1);
});

test('import: a JSONL file with bad lines stores the good ones and exits 4 with a summary', async () => {
  const lines = [];
  for (let i = 0; i < 300; i++) lines.push(JSON.stringify({ prompt: `import question ${i}`, response: `answer ${i}`, ttl: i === 7 ? 3600 : undefined }));
  lines.splice(10, 0, '{"prompt": "no response"}');
  lines.splice(50, 0, 'this is not json');
  lines.splice(100, 0, '');
  lines.push(JSON.stringify({ namespace: 'bad ns!', prompt: 'p', response: 'r' }));
  lines.push(JSON.stringify({ namespace: 'imp2', prompt: 'elsewhere', response: 'in imp2' }));
  const f = path.join(tmp, 'a.jsonl');
  fs.writeFileSync(f, lines.join('\n') + '\n');
  const r = cli(['-n', 'imp', 'import', f]);
  assertEq(r.code, 4, r.err);
  assert(r.out.includes('imported 304 lines: 301 stored, 3 rejected'), r.out);
  assert(r.err.includes('line 11 rejected: response: missing'), r.err);
  assert(r.err.includes('line 51 rejected: not a JSON object'), r.err);
  assert(/line 30\d rejected: ERR invalid namespace/.test(r.err), r.err);
  assertEq(cli(['-n', 'imp', 'get', 'import question 299']).out, 'answer 299\n');
  assertEq(cli(['-n', 'imp2', 'get', 'elsewhere']).out, 'in imp2\n');
  const j = JSON.parse(cli(['--json', '-n', 'imp3', 'import', f]).out);
  assertEq(j.lines, 304);
  assertEq(j.stored, 301);
  assertEq(j.rejected, 3);
});

test('import from stdin, all good: exit 0', async () => {
  const input = Array.from({ length: 50 }, (_, i) => JSON.stringify({ prompt: `stdin q ${i}`, response: `r ${i}` })).join('\n');
  const r = cli(['-n', 'imps', 'import', '-'], { input });
  assertEq(r.code, 0, r.err);
  assert(r.out.includes('50 stored, 0 rejected'), r.out);
  assertEq(cli(['-n', 'imps', 'get', 'stdin q 49']).out, 'r 49\n');
});

test('import on a terminal draws a progress bar with rate and ETA', async () => {
  const f = path.join(tmp, 'big.jsonl');
  fs.writeFileSync(f, Array.from({ length: 3000 }, (_, i) => JSON.stringify({ prompt: `tty question ${i}`, response: 'x'.repeat(200) })).join('\n'));
  const cmd = `${CLI} -p ${srv.respPort} -n tty import ${f}`;
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60000 });
  assertEq(r.status, 0, r.stdout);
  assert(r.stdout.includes('100%') && r.stdout.includes('lines/s') && r.stdout.includes('ETA'), r.stdout.slice(-400));
  assert(r.stdout.includes('3000 stored, 0 rejected'), r.stdout.slice(-300));
  // Not a terminal: no bar.
  const plain = cli(['-n', 'tty2', 'import', f]);
  assert(!plain.err.includes('ETA'), 'no bar without a terminal');
});

test('connection failures exit 3 with the reason', async () => {
  const port = await freePort();
  const r = spawnSync(CLI, ['-p', String(port), 'stats'], { encoding: 'utf8' });
  assertEq(r.status, 3);
  assert(/cannot connect to 127\.0\.0\.1:\d+: Connection refused/.test(r.stderr), r.stderr);
  const e = spawnSync(CLI, ['-p', String(port), '--http-port', String(port), 'embed', 'x'], { encoding: 'utf8' });
  assertEq(e.status, 3);
});

test('API keys: refused without a key (exit 3), accepted with -a or SEMCACHE_KEY', async () => {
  const a = await startServer({ args: ['--api-key', 'clikey1 tenant user'] });
  const base = ['-p', String(a.respPort)];
  const no = spawnSync(CLI, [...base, '-n', 'tenant', 'stats'], { encoding: 'utf8' });
  assertEq(no.status, 3);
  assert(no.stderr.includes('NOAUTH'), no.stderr);
  const bad = spawnSync(CLI, [...base, '-a', 'wrong', 'stats'], { encoding: 'utf8' });
  assertEq(bad.status, 3);
  assert(bad.stderr.includes('WRONGPASS'), bad.stderr);
  const ok = spawnSync(CLI, [...base, '-a', 'clikey1', '-n', 'tenant', 'set', 'p', 'r'], { encoding: 'utf8' });
  assertEq(ok.status, 0, ok.stderr);
  const env = spawnSync(CLI, [...base, '-n', 'tenant', 'get', 'p'], { encoding: 'utf8', env: { ...process.env, SEMCACHE_KEY: 'clikey1' } });
  assertEq(env.stdout, 'r\n');
  const other = spawnSync(CLI, [...base, '-a', 'clikey1', '-n', 'elsewhere', 'get', 'p'], { encoding: 'utf8' });
  assertEq(other.status, 3);
  assert(other.stderr.includes('NOPERM'), other.stderr);
});

test('semcache-example stores, finds a reworded question, and cleans up', async () => {
  const r = spawnSync(EXAMPLE, ['127.0.0.1', String(srv.respPort)], { encoding: 'utf8' });
  assertEq(r.status, 0, r.stderr + r.stdout);
  assert(/stored entry \d+/.test(r.stdout), r.stdout);
  assert(r.stdout.includes("-> Click 'Forgot password'"), r.stdout);
});

run().finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
