// The monitoring kit against a running semcached with traffic: /metrics
// passes `promtool check metrics` (Prometheus naming conventions); the
// scrape example passes `promtool check config`; a real Prometheus (Debian's
// `prometheus`) scrapes the server, and every query of the Grafana board
// (contrib/grafana/semcached.json) is valid PromQL there and names only
// metrics the server exports.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, test, run, startServer, stopServer, freePort, sleep, assert, assertEq } = require('./lib');
const mock = require('./mock_upstream');

const ROOT = path.resolve(__dirname, '../..');
const PROMTOOL = process.env.PROMTOOL || '/usr/bin/promtool';
const PROMETHEUS = process.env.PROMETHEUS || '/usr/bin/prometheus';
const BOARD = path.join(ROOT, 'contrib/grafana/semcached.json');

let up, srv, metricsText;

async function chat(prompt, headers = {}) {
  const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }) });
  await r.text();
}

test('setup: semcached with traffic in two namespaces, one failing call', async () => {
  up = await mock.start({ port: 0, name: 'mock-a', counter: false });
  srv = await startServer({ args: ['--upstream', up.url, '--retries', '0'] });
  for (let i = 0; i < 30; i++) await chat(`question ${i % 10}`);
  for (let i = 0; i < 10; i++) await chat(`other question ${i % 5}`, { 'x-semcache-namespace': 'ns-b' });
  await chat('this one fails', { 'x-mock-fault': '500' });
  metricsText = await (await fetch(`${srv.url}/metrics`)).text();
  assert(metricsText.includes('semcached_upstream_errors_total'), 'upstream metrics present');
});

test('promtool check metrics: /metrics follows the naming conventions', async () => {
  assert(fs.existsSync(PROMTOOL), `${PROMTOOL} missing (Debian package prometheus; make deps)`);
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: metricsText, encoding: 'utf8' });
  assertEq(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
  assertEq((r.stdout + r.stderr).trim(), '', 'no lint findings');
});

test('promtool check config: the scrape example is valid', async () => {
  const r = spawnSync(PROMTOOL, ['check', 'config', path.join(ROOT, 'contrib/prometheus/prometheus.yml')], { encoding: 'utf8' });
  assertEq(r.status, 0, `${r.stdout}${r.stderr}`);
});

// Grafana's variables, as a dashboard would expand them.
function expand(expr) {
  return expr.replace(/\$__rate_interval/g, '30s').replace(/\$__range/g, '5m')
    .replace(/\$job/g, '.*').replace(/\$instance/g, '.*');
}

test('the Grafana board: well formed, names only exported metrics', async () => {
  const board = JSON.parse(fs.readFileSync(BOARD, 'utf8'));
  assertEq(board.uid, 'semcached', 'uid');
  const ids = new Set();
  const exported = new Set(metricsText.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
  let exprs = 0;
  for (const p of board.panels) {
    assert(!ids.has(p.id), `duplicate panel id ${p.id}`);
    ids.add(p.id);
    assert(p.gridPos && p.gridPos.w > 0 && p.title, `panel ${p.id} layout/title`);
    for (const t of p.targets || []) {
      exprs++;
      for (const m of t.expr.match(/semcached_[a-z_]+/g) || [])
        assert(exported.has(m), `panel "${p.title}": ${m} is not exported by /metrics`);
    }
  }
  assert(exprs >= 15, `queries: ${exprs}`);
});

test('a real Prometheus scrapes semcached and runs every query of the board', async () => {
  assert(fs.existsSync(PROMETHEUS), `${PROMETHEUS} missing (Debian package prometheus; make deps)`);
  const dir = tmpDir('sc_prom_');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', 'scrape_configs:', '  - job_name: semcached',
    '    static_configs:', `      - targets: ["127.0.0.1:${srv.port}"]`, ''].join('\n'));
  const prom = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  prom.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  const api = `http://127.0.0.1:${port}/api/v1`;
  try {
    // Wait for a few scrapes with traffic in between (rates need two).
    const t0 = Date.now();
    for (;;) {
      await chat(`question ${Date.now() % 10}`);
      try {
        const r = await (await fetch(`${api}/query?query=${encodeURIComponent('count_over_time(semcached_entries[1m])')}`)).json();
        if (r.status === 'success' && r.data.result.length && Number(r.data.result[0].value[1]) >= 3) break;
      } catch (_) { /* not up yet */ }
      if (Date.now() - t0 > 30000) throw new Error(`prometheus did not scrape: ${err}`);
      await sleep(300);
    }
    const board = JSON.parse(fs.readFileSync(BOARD, 'utf8'));
    let withData = 0, all = 0;
    for (const p of board.panels)
      for (const t of p.targets || []) {
        all++;
        const q = expand(t.expr);
        const r = await (await fetch(`${api}/query?query=${encodeURIComponent(q)}`)).json();
        assertEq(r.status, 'success', `panel "${p.title}": ${q}: ${r.error || ''}`);
        if (r.data.result.length) withData++;
      }
    console.log(`# ${withData} of ${all} board queries returned data after a few seconds of traffic`);
    assert(withData >= all / 2, `only ${withData} of ${all} queries returned data`);
  } finally {
    prom.kill('SIGKILL');
  }
});

test('teardown', async () => { await stopServer(srv); await up.close(); });

run();
