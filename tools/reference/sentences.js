// The fixture's sentences: hand-picked cases (unicode, emoji, CJK, empty,
// white space, very long, NFKC-sensitive text) plus deterministic random
// ones built from vocabulary pieces and from assorted Unicode ranges.
'use strict';

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const fixed = [
  '', ' ', '   ', '\t', '\n\n', ' \t \n ', 'a', 'I', '.', '?!', '\u00a0', '\u3000',
  'Hello world', 'hello world', 'HELLO WORLD', 'Hello, world!', '  leading and trailing spaces  ',
  'double  spaces   inside', 'tabs\tand\nnewlines\r\nmixed', 'How do I reset my password?',
  'How can I change my password?', 'What is the capital of France?', 'Paris is the capital of France.',
  'The quick brown fox jumps over the lazy dog.', 'I love machine learning and natural language processing.',
  "Don't you think it's strange that we're here?", 'e-mail: john.doe@example.com, phone +1 (555) 123-4567',
  'https://www.example.com/path?query=1&x=y#frag', 'C:\\Program Files\\app.exe', '$100.00 or €85,50 or ¥10000',
  '3.14159 2.71828 1.41421 6.02214076e23', '2024-01-15T10:30:00Z', '#hashtag @mention', 'int main(void) { return 0; }',
  'SELECT * FROM users WHERE id = 42;', '<html><body>Hi</body></html>', '"quoted" \'single\' `back`', '…—–‘’“”',
  '”5', '”5 dollars', 'naïve café résumé coöperate', 'Straße Fußball größer', 'İstanbul ılık ışık',
  'Ελληνικά γράμματα', 'Русский язык очень красивый', 'العربية لغة جميلة', 'עברית היא שפה', 'हिन्दी भाषा',
  'ภาษาไทย', 'Tiếng Việt có dấu', '日本語のテキストです。', '中文句子测试一下。', '한국어 문장입니다.', 'ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３',
  'ﬁnancial ﬂow', 'x² + y³ = z⁴', '½ ¼ ¾', '①②③', 'ℌℑℜ ℕℤℚ', 'Ａ', 'ｶﾀｶﾅ', '㍿ ㌔', 'e\u0301 vs é', 'n\u0303o',
  'A\u030aB', '\u1100\u1161\u11a8', 'zero\u200bwidth', 'soft\u00adhyphen', 'bidi \u202etext\u202c', 'ctrl\u0001\u0002chars',
  'emoji 😀', '😀😃😄', '👍🏽 thumbs', '👨‍👩‍👧‍👦 family', '🇫🇷🇩🇪 flags', '❤️ love', '🙂🙃', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝒔𝒄𝒓𝒊𝒑𝒕', '𠀀𠀁 rare CJK',
  '\ufffd replacement', '™ ® ©', 'mixed 中文 and English 😀 text', '!!!???...', '----', '____', '****',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'antidisestablishmentarianism', 'pneumonoultramicroscopicsilicovolcanoconiosis',
  'The cat sat on the mat.', 'A cat was sitting on a mat.', 'Stock markets fell sharply today.',
  'What time does the store open tomorrow?', 'Can you recommend a good Italian restaurant nearby?',
  'Explain quantum entanglement in simple terms.', 'Write a Python function that reverses a linked list.',
  'Translate "good morning" into Spanish.', 'Why is the sky blue?', 'who won the world cup in 2018',
  'Summarize the following text in three bullet points.', 'I need help with my order #12345.',
  'Is it safe to eat raw cookie dough?', 'My flight was cancelled, what are my options?',
];

function long(words, n, r) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(words[Math.floor(r() * words.length)]);
  return out.join(' ');
}

module.exports = function sentences(vocab) {
  const r = rng(12345);
  const list = fixed.slice();
  const base = 'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if more no out do so can what up said about other into than its time only could new them man some these then two first any may like now my such make over our even most me state after also made many before must years back through'.split(' ');
  // Long inputs: beyond the 128-token clip of the graph.
  list.push(long(base, 150, r), long(base, 400, r), long(base, 127, r), long(base, 128, r), long(base, 129, r));
  list.push('word '.repeat(300).trim(), '😀'.repeat(200), '中'.repeat(300), 'a b c d e f g '.repeat(40));
  // Random sentences from vocabulary pieces (with and without the marker).
  const pieces = vocab.slice(6).map((p) => p[0]);
  for (let i = 0; i < 70; i++) {
    const n = 1 + Math.floor(r() * 30);
    let s = '';
    for (let j = 0; j < n; j++) {
      const p = pieces[Math.floor(r() * pieces.length)];
      s += p.replace(/\u2581/g, r() < 0.8 ? ' ' : '');
    }
    list.push(s);
  }
  // Random strings over assorted Unicode ranges (no lone surrogates).
  const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f],
    [0x3040, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xacff], [0xff00, 0xffef], [0x1f300, 0x1f64f], [0x2000, 0x206f],
    [0x300, 0x36f], [0xfb00, 0xfb4f], [0x2460, 0x24ff], [0x3300, 0x33ff]];
  for (let i = 0; i < 60; i++) {
    const n = 1 + Math.floor(r() * 40);
    let s = '';
    for (let j = 0; j < n; j++) {
      if (r() < 0.2) { s += ' '; continue; }
      const [a, b] = ranges[Math.floor(r() * ranges.length)];
      s += String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
    }
    list.push(s);
  }
  return list;
};
