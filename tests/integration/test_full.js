// A full store: the LMDB map full (--map-size-mb) and the data dir's disk
// full (a small tmpfs), in both durability modes. Each store past the limit
// gets HTTP 507 (RESP: -ERR) with a message naming the cause; reads keep
// working; once space is back (a flush, or a file removed from the disk)
// stores work again without a restart, and nothing stored before is lost.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { tmpDir, test, run, skip, startServer, stopServer, assert, assertEq, json } = require('./lib');

const BIG = 'x'.repeat(60000);
const redisCli = (srv, args) => execFileSync('redis-cli', ['-p', String(srv.respPort), ...args], { encoding: 'utf8' }).trim();

// Stores until one fails; returns { stored: [ids], fail: response }.
async function fillUp(srv, ns, max = 2000) {
  const stored = [];
  for (let i = 0; i < max; i++) {
    const r = await json(`${srv.url}/cache/store`, { namespace: ns, prompt: `filler ${i}`, response: BIG });
    if (r.status !== 200) return { stored, fail: r };
    stored.push(r.body.id);
  }
  throw new Error(`no failure after ${max} stores`);
}

async function checkReads(srv, ns, ids) {
  const r = await json(`${srv.url}/cache/lookup`, { namespace: ns, prompt: 'filler 0' });
  assertEq(r.status, 200, r.text);
  assertEq(r.body.hit, true, 'an old entry still answers');
  for (const id of [ids[0], ids[ids.length - 1]]) {
    const e = await json(`${srv.url}/cache/entries/${id}`, undefined, { method: 'GET' });
    assertEq(e.status, 200, `entry ${id}`);
    assertEq(e.body.response.length, BIG.length, 'whole');
  }
}

for (const durability of ['sync', 'nosync']) {
  test(`LMDB map full (${durability}): 507 naming --map-size-mb, reads work, a flush makes room`, async () => {
    const srv = await startServer({ args: ['--map-size-mb', '16', '--durability', durability, '--sync-window-ms', '50'] });
    const { stored, fail } = await fillUp(srv, 'fill');
    assert(stored.length > 20, `only ${stored.length} stored`);
    assertEq(fail.status, 507, fail.text);
    assert(/map-size-mb/.test(fail.body.error.message), fail.body.error.message);
    assertEq(fail.body.error.code, 'SC_EFULL', 'code');
    const resp = redisCli(srv, ['SEM.SET', 'fill', 'one more', BIG.slice(0, 50000)]);
    assert(/^ERR .*store is full/.test(resp), `RESP: ${resp}`);
    await checkReads(srv, 'fill', stored);
    // Room again without a restart: flush a namespace, then store.
    const f = await json(`${srv.url}/cache/flush`, { namespace: 'fill' });
    assertEq(f.status, 200, f.text);
    const again = await json(`${srv.url}/cache/store`, { namespace: 'after', prompt: 'q', response: BIG });
    assertEq(again.status, 200, `after the flush: ${again.text}`);
    assertEq(redisCli(srv, ['SEM.GET', 'after', 'q']).split('\n')[0].length, BIG.length, 'readable');
    await stopServer(srv);
  });
}

for (const durability of ['sync', 'nosync']) {
  test(`disk full (${durability}): 507 naming the disk, reads work, recovery once space is back`, async () => {
    if (process.getuid && process.getuid() !== 0) throw skip('needs root to mount a small tmpfs');
    const mnt = tmpDir('sc_full_');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) throw skip(`cannot mount a tmpfs here: ${(m.stderr || '').trim()}`);
    let srv;
    try {
      // A 1.5 MB file holds space we give back later.
      fs.writeFileSync(path.join(mnt, 'ballast'), Buffer.alloc(1536 * 1024, 1));
      srv = await startServer({ dataDir: path.join(mnt, 'data'), args: ['--durability', durability, '--sync-window-ms', '50'] });
      const { stored, fail } = await fillUp(srv, 'fill');
      assert(stored.length > 5, `only ${stored.length} stored`);
      assertEq(fail.status, 507, fail.text);
      assert(/no space left/.test(fail.body.error.message), fail.body.error.message);
      assertEq(fail.body.error.code, 'SC_ENOSPACE', 'code');
      const resp = redisCli(srv, ['SEM.SET', 'fill', 'one more', BIG]);
      assert(/^ERR .*no space left/.test(resp), `RESP: ${resp}`);
      await checkReads(srv, 'fill', stored);
      // Space back: the ballast goes; the next store works, no restart.
      fs.unlinkSync(path.join(mnt, 'ballast'));
      const again = await json(`${srv.url}/cache/store`, { namespace: 'after', prompt: 'q', response: BIG });
      assertEq(again.status, 200, `after freeing space: ${again.text}`);
      assertEq((await json(`${srv.url}/healthz`, undefined, { method: 'GET' })).status, 200, 'healthy');
      // Nothing acknowledged was lost: restart and read everything.
      await stopServer(srv);
      srv = await startServer({ dataDir: path.join(mnt, 'data') });
      for (const id of [...stored, again.body.id]) {
        const e = await json(`${srv.url}/cache/entries/${id}`, undefined, { method: 'GET' });
        assertEq(e.status, 200, `entry ${id} after restart`);
      }
      await stopServer(srv);
      srv = null;
    } finally {
      if (srv) await stopServer(srv);
      spawnSync('umount', ['-l', mnt]);
    }
  });
}

run();
