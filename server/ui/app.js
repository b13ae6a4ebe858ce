// semcached's dashboard. Polls GET /ui/data every POLL_MS (while the tab is
// visible), keeps the last HISTORY snapshots to draw rates over time, and
// drives the cache API for the entry browser. Everything shown is set with
// textContent (never parsed as HTML): prompts and answers are user text.
'use strict';
(function () {
  const POLL_MS = 2000;
  const HISTORY = 150;          // snapshots kept: 5 minutes at 2 s
  const RECENT_KEEP = 500;      // recent semantic decisions kept
  const KEY_STORE = 'semcached-key';
  const OUTCOMES = ['hit-exact', 'hit-semantic', 'miss', 'bypass', 'error'];
  const COLORS = { 'hit-exact': 'var(--exact)', 'hit-semantic': 'var(--semantic)', miss: 'var(--miss)',
    bypass: 'var(--bypass)', error: 'var(--error)' };
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  let key = sessionStorage.getItem(KEY_STORE) || '';
  let role = null, myNs = null, lastSeq = 0, timer = null, history = [], recent = [];
  let thrTouched = false, serverThreshold = null, epoch = null;

  // ---- HTTP -----------------------------------------------------------------
  async function api(path, { method = 'GET', body } = {}) {
    const headers = {};
    if (key) headers.authorization = 'Bearer ' + key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store' });
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    return { status: r.status, data };
  }
  const errText = (r) => (r.data && r.data.error && r.data.error.message) || ('HTTP ' + r.status);

  // ---- formatting -------------------------------------------------------------
  const int = (n) => Number(n || 0).toLocaleString('en-US');
  const pct = (x) => (100 * (x || 0)).toFixed(1) + ' %';
  const usd = (x) => '$' + Number(x || 0).toFixed(4);
  function setNum(id, value, text) {
    const el = $(id);
    el.dataset.value = String(value);
    el.textContent = text;
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function cell(tr, text, value) {
    const td = el('td', text);
    if (value !== undefined) td.dataset.value = String(value);
    tr.appendChild(td);
    return td;
  }

  // ---- SVG charts -------------------------------------------------------------
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const W = 600, H = 200, L = 44, R = 8, T = 8, B = 22;
  function frame(svg, ymax, yfmt) {
    svg.replaceChildren();
    for (let i = 0; i <= 4; i++) {
      const y = T + (H - T - B) * (1 - i / 4);
      svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
      svg.appendChild(svgEl('text', { x: L - 4, y: y + 4, 'text-anchor': 'end' }, yfmt(ymax * i / 4)));
    }
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function lines(svg, series, ymax, yfmt) {
    frame(svg, ymax, yfmt);
    const n = Math.max(2, ...series.map((s) => s.points.length));
    const x = (i) => L + (W - L - R) * i / (n - 1);
    const y = (v) => T + (H - T - B) * (1 - Math.min(v, ymax) / ymax);
    for (const s of series) {
      if (!s.points.length) continue;
      const off = n - s.points.length;
      if (s.points.length === 1) {
        svg.appendChild(svgEl('circle', { cx: x(off), cy: y(s.points[0]), r: 3, fill: s.color }));
        continue;
      }
      const d = s.points.map((v, i) => (i ? 'L' : 'M') + x(i + off).toFixed(1) + ' ' + y(v).toFixed(1)).join(' ');
      svg.appendChild(svgEl('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 1.8 }));
    }
    svg.appendChild(svgEl('text', { x: L, y: H - 6 }, 'last ' + Math.round((n - 1) * POLL_MS / 1000) + ' s'));
  }

  function drawRates() {
    const series = OUTCOMES.map((o) => ({ color: COLORS[o], points: [] }));
    const hr = [];
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1], b = history[i];
      const dt = Math.max(0.001, (b.t - a.t) / 1000);
      OUTCOMES.forEach((o, k) => series[k].points.push(Math.max(0, (b.o[o] - a.o[o]) / dt)));
      const hits = b.o['hit-exact'] - a.o['hit-exact'] + b.o['hit-semantic'] - a.o['hit-semantic'];
      const all = hits + b.o.miss - a.o.miss;
      hr.push(all > 0 ? hits / all : (hr.length ? hr[hr.length - 1] : 0));
    }
    const ymax = niceMax(Math.max(0, ...series.flatMap((s) => s.points)));
    lines($('chart-rate'), series, ymax, (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)));
    lines($('chart-hitrate'), [{ color: 'var(--semantic)', points: hr }], 1, (v) => Math.round(v * 100) + '%');
  }

  function drawLatency(lat) {
    const svg = $('chart-latency');
    if (!lat) return;
    const hit = lat.hit, miss = lat.miss, nb = hit.length;
    const total = (a) => a.reduce((s, v) => s + v, 0) || 1;
    const th = total(hit), tm = total(miss);
    const ph = hit.map((v) => v / th), pm = miss.map((v) => v / tm);
    const ymax = niceMax(Math.max(0.01, ...ph, ...pm));
    frame(svg, ymax, (v) => Math.round(v * 100) + '%');
    const bw = (W - L - R) / nb;
    const y = (v) => T + (H - T - B) * (1 - v / ymax);
    for (let b = 0; b < nb; b++) {
      const x0 = L + b * bw;
      svg.appendChild(svgEl('rect', { x: x0 + 2, y: y(ph[b]), width: bw / 2 - 2, height: y(0) - y(ph[b]), fill: 'var(--exact)' }));
      svg.appendChild(svgEl('rect', { x: x0 + bw / 2, y: y(pm[b]), width: bw / 2 - 2, height: y(0) - y(pm[b]), fill: 'var(--miss)' }));
      const lab = b < lat.le.length ? '≤' + fmtSec(lat.le[b]) : '>' + fmtSec(lat.le[lat.le.length - 1]);
      if (b % 2 === 0) svg.appendChild(svgEl('text', { x: x0 + bw / 2, y: H - 6, 'text-anchor': 'middle' }, lab));
    }
    $('lat-means').textContent = 'mean: hits ' + fmtSec(lat.hit_count ? lat.hit_sum_s / lat.hit_count : 0) +
      ', misses ' + fmtSec(lat.miss_count ? lat.miss_sum_s / lat.miss_count : 0);
  }
  function fmtSec(s) {
    if (s < 0.001) return +(s * 1e6).toPrecision(3) + 'µs';
    return s < 1 ? +(s * 1000).toPrecision(3) + 'ms' : +s.toPrecision(3) + 's';
  }

  function drawThreshold() {
    const svg = $('chart-thr');
    const withCand = recent.filter((d) => d.candidate !== null);
    const t = Number($('thr').value);
    $('thr-val').textContent = t.toFixed(3);
    const lo = Math.min(0.5, ...withCand.map((d) => d.score));
    const x = (v) => L + (W - L - R) * (v - lo) / (1 - lo);
    svg.replaceChildren();
    for (let i = 0; i <= 5; i++) {
      const v = lo + (1 - lo) * i / 5;
      svg.appendChild(svgEl('line', { x1: x(v), x2: x(v), y1: T, y2: H - B, class: 'grid' }));
      svg.appendChild(svgEl('text', { x: x(v), y: H - 6, 'text-anchor': i === 5 ? 'end' : i ? 'middle' : 'start' },
        v.toFixed(2)));
    }
    const n = withCand.length;
    withCand.forEach((d, i) => {   // newest on top
      const yy = T + (H - T - B) * (n > 1 ? i / (n - 1) : 0.5);
      svg.appendChild(svgEl('circle', { cx: x(d.score).toFixed(1), cy: yy.toFixed(1), r: 3,
        fill: d.served ? 'var(--exact)' : 'var(--miss)', 'fill-opacity': 0.75 }));
    });
    if (serverThreshold !== null)
      svg.appendChild(svgEl('line', { x1: x(serverThreshold), x2: x(serverThreshold), y1: T, y2: H - B,
        stroke: 'var(--fg)', 'stroke-dasharray': '4 3' }));
    svg.appendChild(svgEl('line', { x1: x(t), x2: x(t), y1: T, y2: H - B, stroke: 'var(--semantic)', 'stroke-width': 2 }));
    const served = withCand.filter((d) => d.served).length;
    const would = withCand.filter((d) => d.score >= t).length;
    const none = recent.length - n;
    $('thr-summary').textContent = recent.length
      ? `Last ${recent.length} semantic lookups: ${served} served now (dashed line: the configured threshold). ` +
        `At ${t.toFixed(3)}, ${would} of the ${n} with a candidate would pass the threshold` +
        (none ? `; ${none} had no candidate at all.` : '.') + ' Score = what the threshold is compared with.'
      : 'No semantic lookups yet.';
  }

  // ---- tables and numbers ---------------------------------------------------------
  function renderNumbers(st, cache) {
    const o = st.outcomes || {};
    const total = OUTCOMES.reduce((s, k) => s + (o[k] || 0), 0);
    setNum('n-requests', total, int(total));
    setNum('n-hit-rate', st.hit_rate, pct(st.hit_rate));
    for (const k of OUTCOMES) setNum('n-' + k, o[k] || 0, int(o[k]));
    const saved = st.saved || {};
    const tok = (saved.prompt_tokens || 0) + (saved.completion_tokens || 0);
    setNum('n-saved-tokens', tok, int(tok));
    setNum('n-saved-usd', saved.usd || 0, usd(saved.usd));
    setNum('n-spent-usd', st.upstream_spent_usd || 0, usd(st.upstream_spent_usd));
    if (cache) setNum('n-entries', cache.entries, int(cache.entries));
  }

  function renderNamespaces(nss) {
    const tb = $('t-ns').tBodies[0];
    tb.replaceChildren();
    for (const name of Object.keys(nss || {}).sort()) {
      const n = nss[name], o = n.outcomes, tr = el('tr');
      tr.dataset.ns = name;
      cell(tr, name);
      for (const k of OUTCOMES) cell(tr, int(o[k]), o[k]);
      cell(tr, pct(n.hit_rate), n.hit_rate);
      const tok = n.saved_prompt_tokens + n.saved_completion_tokens;
      cell(tr, int(tok), tok);
      cell(tr, usd(n.saved_usd), n.saved_usd);
      cell(tr, usd(n.upstream_spent_usd), n.upstream_spent_usd);
      tb.appendChild(tr);
    }
  }

  function renderUpstreams(ups) {
    const tb = $('t-up').tBodies[0];
    tb.replaceChildren();
    for (const u of ups || []) {
      const tr = el('tr');
      const errs = u.err_connect + u.err_timeout + u.err_429 + u.err_5xx + u.err_4xx + u.err_proto + u.err_toobig;
      cell(tr, u.name);
      cell(tr, u.breaker, u.breaker).className = 'breaker-' + u.breaker;
      cell(tr, int(u.calls), u.calls);
      cell(tr, int(u.ok), u.ok);
      cell(tr, int(errs), errs);
      cell(tr, pct(u.calls ? errs / u.calls : 0));
      cell(tr, int(u.retries), u.retries);
      cell(tr, int(u.fallbacks), u.fallbacks);
      cell(tr, fmtSec(u.latency_ms_avg / 1000));
      cell(tr, usd(u.cost_usd), u.cost_usd);
      tb.appendChild(tr);
    }
    if (!tb.rows.length) { const tr = el('tr'); const td = cell(tr, 'no upstream configured'); td.colSpan = 10; tb.appendChild(tr); }
  }

  // ---- the poll loop --------------------------------------------------------------
  function showLogin(msg) {
    clearTimeout(timer);
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-err').textContent = msg || '';
    $('key').focus();
  }

  async function poll() {
    clearTimeout(timer);
    let r;
    try {
      r = await api('/ui/data?after=' + lastSeq);
    } catch (e) {
      $('status').textContent = 'server unreachable, retrying';
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    if (r.status === 401) { showLogin(key ? 'That key was refused.' : ''); return; }
    if (r.status !== 200 || !r.data) {
      $('status').textContent = 'error: ' + errText(r);
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    const d = r.data;
    if (epoch !== null && d.epoch !== epoch) {   // the server restarted: start over
      lastSeq = 0; recent = []; history = [];
      epoch = d.epoch;
      timer = setTimeout(poll, 0);
      return;
    }
    epoch = d.epoch;
    $('status').textContent = 'updated ' + new Date(d.time_ms).toLocaleTimeString();
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = !key;
    if (role !== d.role) {
      role = d.role;
      myNs = d.namespace;
      document.body.className = 'role-' + (role === 'user' ? 'user' : 'admin');
      $('who').textContent = role === 'user' ? 'namespace ' + myNs + ' (user key)' : role === 'admin' ? 'admin key' : 'no auth';
      if (role === 'user') { $('s-ns').value = myNs; $('s-ns').disabled = true; }
    }
    $('meta').textContent = `v${d.version} · ${d.embedder} · ${d.scorer} · threshold ${d.threshold.toFixed(2)} · up ${Math.round(d.uptime_s)} s`;
    serverThreshold = d.threshold;
    if (!thrTouched) $('thr').value = d.threshold;
    const st = d.stats;
    renderNumbers(st, st.cache);
    renderNamespaces(st.namespaces);
    if (st.upstreams) renderUpstreams(st.upstreams);
    if (d.latency) drawLatency(d.latency);
    history.push({ t: d.time_ms, o: Object.fromEntries(OUTCOMES.map((k) => [k, (st.outcomes || {})[k] || 0])) });
    if (history.length > HISTORY) history.shift();
    drawRates();
    if (d.recent.length) {
      lastSeq = d.recent[0].seq;
      recent = d.recent.concat(recent).slice(0, RECENT_KEEP);
    }
    drawThreshold();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    if (!document.hidden) timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden && !$('main').hidden) poll(); });
  $('thr').addEventListener('input', () => { thrTouched = true; drawThreshold(); });
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    key = $('key').value.trim();
    sessionStorage.setItem(KEY_STORE, key);
    role = null; lastSeq = 0; recent = []; history = [];
    poll();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    key = '';
    location.reload();
  });

  // ---- entry browser -------------------------------------------------------------
  // Destructive buttons arm on the first click and act on the second (within 4 s).
  function armed(btn) {
    if (btn.classList.contains('armed')) { btn.classList.remove('armed'); return true; }
    const old = btn.textContent;
    btn.classList.add('armed');
    btn.textContent = 'Click again to confirm';
    setTimeout(() => { btn.classList.remove('armed'); btn.textContent = old; }, 4000);
    return false;
  }

  async function search() {
    const ns = $('s-ns').value.trim(), q = $('s-q').value.trim();
    const msg = $('s-msg');
    if (!q) { msg.textContent = 'Type some prompt text to search for.'; return; }
    const body = { prompt: q, k: 20 };
    if (role !== 'user' && ns) body.namespace = ns;
    const r = await api('/cache/search', { method: 'POST', body });
    const tb = $('t-entries').tBodies[0];
    tb.replaceChildren();
    if (r.status !== 200) { msg.textContent = 'Search failed: ' + errText(r); return; }
    msg.textContent = `${r.data.results.length} nearest entries in ${r.data.namespace}` +
      ` (${r.data.partitions} partition${r.data.partitions === 1 ? '' : 's'})`;
    for (const e of r.data.results) {
      const tr = el('tr');
      tr.dataset.id = String(e.id);
      cell(tr, e.similarity.toFixed(3), e.similarity);
      cell(tr, e.prompt).className = 'text';
      cell(tr, e.response.length > 240 ? e.response.slice(0, 240) + '…' : e.response).className = 'text';
      cell(tr, int(e.hits), e.hits);
      const td = cell(tr, '');
      const open = el('button', 'Open');
      open.type = 'button';
      open.addEventListener('click', () => openEntry(e));
      td.appendChild(open);
      if (role !== 'user') {
        const del = el('button', 'Delete', 'danger delete');
        del.type = 'button';
        del.addEventListener('click', () => deleteEntry(e.id, del));
        td.appendChild(del);
      }
      tb.appendChild(tr);
    }
  }

  async function openEntry(e) {
    let fields = e;
    if (role !== 'user') {
      const r = await api('/cache/entries/' + e.id);
      if (r.status !== 200) { $('s-msg').textContent = 'Open failed: ' + errText(r); return; }
      fields = r.data;
    }
    $('entry-id').textContent = String(e.id);
    const dl = $('entry-fields');
    dl.replaceChildren();
    for (const k of ['namespace', 'model', 'prompt', 'response', 'hits', 'created', 'last_hit', 'expires',
      'prompt_tokens', 'completion_tokens']) {
      if (fields[k] === undefined) continue;
      let v = fields[k];
      if ((k === 'created' || k === 'last_hit' || k === 'expires') && typeof v === 'number')
        v = v ? new Date(v * 1000).toISOString() : 'never';
      dl.appendChild(el('dt', k));
      dl.appendChild(el('dd', v));
    }
    $('entry').hidden = false;
  }

  async function deleteEntry(id, btn) {
    if (!armed(btn)) return;
    const r = await api('/cache/entries/' + id, { method: 'DELETE' });
    if (r.status !== 200) { $('s-msg').textContent = 'Delete failed: ' + errText(r); return; }
    $('s-msg').textContent = 'Deleted entry ' + id + '.';
    const row = document.querySelector(`#t-entries tr[data-id="${id}"]`);
    if (row) row.remove();
    $('entry').hidden = true;
  }

  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  $('flush').addEventListener('click', async () => {
    const btn = $('flush');
    const ns = $('s-ns').value.trim();
    if (!ns) { $('s-msg').textContent = 'Name the namespace to flush.'; return; }
    if (!armed(btn)) return;
    const r = await api('/cache/flush', { method: 'POST', body: { namespace: ns } });
    $('s-msg').textContent = r.status === 200 ? `Flushed ${r.data.flushed} entries from ${r.data.namespace}.`
      : 'Flush failed: ' + errText(r);
    if (r.status === 200) $('t-entries').tBodies[0].replaceChildren();
  });

  poll();
})();
