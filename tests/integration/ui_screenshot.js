// `make ui-screenshot`: the README's dashboard screenshot, taken with real
// traffic. Starts the mock upstream and semcached on its default embedder,
// opens /ui in headless Chromium, sends a few thousand requests (repeats,
// paraphrases, new questions, bypasses, a few upstream failures) in two
// namespaces over about 40 s while the page polls, then writes docs/dashboard.png.
// Not part of `make test` (it takes about a minute).
'use strict';
const path = require('node:path');
const puppeteer = require('puppeteer-core');
const { startServer, stopServer, sleep } = require('./lib');
const mock = require('./mock_upstream');

const OUT = process.argv[2] || path.resolve(__dirname, '../../docs/dashboard.png');
const N = Number(process.env.N || 3000);

const TOPICS = ['reset my password', 'change my email address', 'cancel my subscription', 'update my billing card',
  'export my data', 'delete my account', 'turn on two-factor authentication', 'invite a teammate',
  'download an invoice', 'change the language', 'enable dark mode', 'contact support'];
const FORMS = [(t) => `how do I ${t}?`, (t) => `How can I ${t}`, (t) => `what is the way to ${t}?`,
  (t) => `I want to ${t}, how?`, (t) => `steps to ${t}`, (t) => `can you tell me how to ${t}`];

async function chat(url, prompt, headers) {
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }) });
  await r.text();
}

async function main() {
  const up = await mock.start({ port: 0, name: 'openai', counter: false });
  const srv = await startServer({ embedder: 'semcache-embed', args: ['--upstream', up.url, '--retries', '0'] });
  const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1500 });
    await page.goto(`${srv.url}/ui`, { waitUntil: 'load' });
    // One upstream call in 40 fails (500): errors and the breaker's view.
    await up.plan(Array.from({ length: N }, (_, i) => (i % 40 === 39 ? '500' : null)));
    let seq = 0;
    const t0 = Date.now();
    const worker = async () => {
      while (seq < N) {
        const i = seq++;
        const ns = i % 4 === 3 ? 'chat' : 'support';
        const topic = TOPICS[(i * 7) % TOPICS.length];
        const form = FORMS[Math.floor(i / 50) % FORMS.length];
        // Mostly FAQ phrasings; some one-off questions (misses).
        const prompt = i % 9 === 0 ? `question ${i}: what is ${i} squared plus ${i % 13}?` : form(topic);
        const headers = { 'x-semcache-namespace': ns };
        if (i % 29 === 0) headers['cache-control'] = 'no-cache, no-store';
        await chat(srv.url, prompt, headers);
        await sleep(40 + (i % 7) * 10);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    console.log(`${N} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await page.$eval('#s-ns', (e) => { e.value = 'support'; });
    await page.$eval('#s-q', (e) => { e.value = 'how to reset a password'; });
    await page.click('#search-form button[type=submit]');
    await page.waitForSelector('#t-entries tbody tr');
    await sleep(2500);
    await page.screenshot({ path: OUT });
    console.log(`wrote ${OUT}`);
  } finally {
    await browser.close();
    await stopServer(srv);
    await up.close();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
