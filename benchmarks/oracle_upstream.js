// An oracle upstream for the replay benchmark (benchmarks/replay.js): the
// test suite's mock upstream (tests/integration/mock_upstream.js: the OpenAI
// chat-completions wire format, JSON or SSE, usage, /_mock/calls) answering
// every query with its intent's answer, so that a cached answer served for
// another query can be checked: it is right when the two queries share an
// intent. The content is "intent: <label>", <label> the map's label for the
// LAST user message (the exact text, else the text trimmed; "unknown" when
// neither is in the map).
//
// Run: node benchmarks/oracle_upstream.js --map FILE [--port P] [--host H]
//   FILE: a JSON object, query text -> intent label. --port 0 (default)
//   takes an ephemeral port. Prints "listening PORT" on stdout once bound.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const mock = require(path.join(__dirname, '../tests/integration/mock_upstream'));

function parseArgs(argv) {
  const opt = { map: null, port: 0, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    if (a === '--map') { opt.map = v; i++; }
    else if (a === '--port') { opt.port = Number(v); i++; }
    else if (a === '--host') { opt.host = v; i++; }
    else throw new Error(`unknown option ${a}`);
  }
  if (!opt.map) throw new Error('--map FILE is required');
  if (!Number.isInteger(opt.port) || opt.port < 0 || opt.port > 65535) throw new Error('--port wants 0-65535');
  return opt;
}

function loadMap(file) {
  const obj = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new Error(`${file}: want a JSON object`);
  return new Map(Object.entries(obj));
}

function labelFor(map, text) {
  if (map.has(text)) return map.get(text);
  const t = text.trim();
  return map.has(t) ? map.get(t) : 'unknown';
}

function start({ map, port = 0, host = '127.0.0.1' }) {
  return mock.start({ port, host, name: 'oracle', counter: false, reply: (text) => `intent: ${labelFor(map, text)}` });
}

module.exports = { start, labelFor };

if (require.main === module) {
  let opt;
  try { opt = parseArgs(process.argv.slice(2)); } catch (e) {
    process.stderr.write(`oracle_upstream: ${e.message}\nusage: node benchmarks/oracle_upstream.js --map FILE [--port P]\n`);
    process.exit(2);
  }
  Promise.resolve()
    .then(() => start({ map: loadMap(opt.map), port: opt.port, host: opt.host }))
    .then((m) => {
      process.stdout.write(`listening ${m.port}\n`);
      const stop = () => m.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    })
    .catch((e) => { process.stderr.write(`oracle_upstream: ${e.message}\n`); process.exit(1); });
}
