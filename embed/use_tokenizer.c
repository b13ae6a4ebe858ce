/* The USE-lite tokenizer: SentencePiece unigram encoding that reproduces
 * the TF.js tokenizer of @tensorflow-models/universal-sentence-encoder
 * (and its copy in @energetic-ai/embeddings) id for id.
 *
 * What that tokenizer does, and so what this file does:
 *  - NFKC-normalise the text; if the result is empty there are no tokens;
 *    otherwise put U+2581 in front and replace every U+0020 by U+2581
 *    (other white space stays as it is).
 *  - Work on code points. Every vocabulary piece from id 6 on is a path in
 *    a trie (a later duplicate piece replaces an earlier one). At each
 *    position every piece that is a prefix of the rest is an edge; when
 *    none is, the single code point is an "unknown" edge (id 0, score 0).
 *  - Viterbi with its quirks: best[] starts at 0 and 0 counts as "unset",
 *    so a candidate replaces it whatever its score; ties go to the later
 *    candidate, and candidates for one end position come in ascending
 *    start order. Scores are summed in double precision as in JS.
 *  - A null score in vocab.json (a few pieces have one) counts as 0, as
 *    JS's `null + x` does.
 *  - Walk back from the end, stepping by each chosen piece's length in
 *    UTF-16 code units (the JS string length), then collapse runs of
 *    unknown ids into one.
 * The trie is a hash table of (node, code point) -> child. Read-only after
 * load; sc_use_encode() may run on many threads at once. */
#include "embed/use.h"
#include "embed/embed_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define RESERVED_PIECES 6
#define SEPARATOR 0x2581

typedef struct tnode {
    int32_t id;      /* vocabulary id ending here, or -1 */
    double score;
} tnode;

struct sc_use_vocab {
    uint32_t size;
    uint8_t *js_len;      /* [size] piece length in UTF-16 code units */
    tnode *nodes;
    uint32_t nnodes, cap_nodes;
    uint64_t *keys;       /* hash table: (parent << 21 | cp) + 1, 0 = empty */
    uint32_t *vals;
    uint32_t hmask;
    /* Every U+2581 is a forced cut of the lattice: "▁" is a piece and no
     * piece has U+2581 past its first code point (or an astral code point,
     * whose UTF-16 length would differ from its length in code points).
     * Then a prefix ending before a U+2581 encodes to a prefix of the ids. */
    int cut_safe;
    int fold;             /* case-fold and drop end punctuation (use.h) */
};

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

/* Child of node `parent` for code point cp, or -1. */
static int64_t child(const sc_use_vocab *v, uint32_t parent, int32_t cp)
{
    uint64_t key = (((uint64_t)parent << 21) | (uint32_t)cp) + 1;
    for (uint64_t i = mix(key) & v->hmask;; i = (i + 1) & v->hmask) {
        if (v->keys[i] == key) return v->vals[i];
        if (v->keys[i] == 0) return -1;
    }
}

static uint32_t add_child(sc_use_vocab *v, uint32_t parent, int32_t cp)
{
    int64_t c = child(v, parent, cp);
    if (c >= 0) return (uint32_t)c;
    if (v->nnodes == v->cap_nodes) {
        v->cap_nodes *= 2;
        v->nodes = sc_realloc(v->nodes, v->cap_nodes * sizeof *v->nodes);
    }
    uint32_t id = v->nnodes++;
    v->nodes[id] = (tnode){-1, 0};
    uint64_t key = (((uint64_t)parent << 21) | (uint32_t)cp) + 1;
    uint64_t i = mix(key) & v->hmask;
    while (v->keys[i] != 0) i = (i + 1) & v->hmask;
    v->keys[i] = key;
    v->vals[i] = id;
    return id;
}

int sc_use_vocab_load(sc_use_vocab **out, const char *json, size_t len, char *err, size_t errlen)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "vocab.json: not valid JSON (line %d: %s)", jerr.line, jerr.text);
        return SC_ECORRUPT;
    }
    size_t n = json_is_array(root) ? json_array_size(root) : 0;
    if (n <= RESERVED_PIECES || n > 1000000) {
        snprintf(err, errlen, "vocab.json: expected an array of [piece, score] pairs");
        json_decref(root);
        return SC_ECORRUPT;
    }
    /* Total code points bound the trie size. */
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(root, i), *p = json_array_get(e, 0), *s = json_array_get(e, 1);
        if (!json_is_array(e) || !json_is_string(p) || !(json_is_number(s) || json_is_null(s))) {
            snprintf(err, errlen, "vocab.json: entry %zu is not a [piece, score] pair", i);
            json_decref(root);
            return SC_ECORRUPT;
        }
        total += json_string_length(p);
    }
    sc_use_vocab *v = SC_NEW(sc_use_vocab);
    v->size = (uint32_t)n;
    v->js_len = sc_calloc(n, 1);
    v->cap_nodes = 1024;
    v->nodes = sc_malloc(v->cap_nodes * sizeof *v->nodes);
    v->nodes[0] = (tnode){-1, 0};
    v->nnodes = 1;
    uint32_t hcap = 1024;
    while (hcap < 2 * total) hcap *= 2;
    v->keys = sc_calloc(hcap, sizeof *v->keys);
    v->vals = sc_calloc(hcap, sizeof *v->vals);
    v->hmask = hcap - 1;
    int rc = 0, has_sep = 0;
    v->cut_safe = 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *e = json_array_get(root, i);
        const uint8_t *s = (const uint8_t *)json_string_value(json_array_get(e, 0));
        size_t sl = json_string_length(json_array_get(e, 0));
        /* A few scores are null; JS arithmetic treats null as 0. */
        double score = json_number_value(json_array_get(e, 1));
        uint32_t node = 0, units = 0;
        size_t k = 0;
        while (k < sl) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t step = utf8proc_iterate(s + k, (utf8proc_ssize_t)(sl - k), &cp);
            if (step <= 0) {
                snprintf(err, errlen, "vocab.json: entry %zu is not valid UTF-8", i);
                rc = SC_ECORRUPT;
                break;
            }
            k += (size_t)step;
            units += cp > 0xFFFF ? 2 : 1;
            if (i >= RESERVED_PIECES) node = add_child(v, node, cp);
        }
        if (rc) break;
        if (i >= RESERVED_PIECES) {
            /* Checks for cut_safe (see the struct). */
            uint32_t ncp = 0;
            for (size_t q = 0; q < sl;) {
                utf8proc_int32_t c2;
                q += (size_t)utf8proc_iterate(s + q, (utf8proc_ssize_t)(sl - q), &c2);
                if ((c2 == SEPARATOR && ncp > 0) || c2 > 0xFFFF) v->cut_safe = 0;
                ncp++;
            }
            if (ncp == 1 && node != 0 && s[0] == 0xE2 && sl == 3 && s[1] == 0x96 && s[2] == 0x81)
                has_sep = 1;
        }
        if (units == 0 || units > 255) {
            snprintf(err, errlen, "vocab.json: entry %zu has a bad length", i);
            rc = SC_ECORRUPT;
            break;
        }
        v->js_len[i] = (uint8_t)units;
        if (i >= RESERVED_PIECES) {
            v->nodes[node].id = (int32_t)i;
            v->nodes[node].score = score;
        }
    }
    json_decref(root);
    v->cut_safe = v->cut_safe && has_sep;
    if (rc) {
        sc_use_vocab_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void sc_use_vocab_free(sc_use_vocab *v)
{
    if (!v) return;
    free(v->js_len);
    free(v->nodes);
    free(v->keys);
    free(v->vals);
    free(v);
}

uint32_t sc_use_vocab_size(const sc_use_vocab *v) { return v->size; }

int sc_use_vocab_cut_safe(const sc_use_vocab *v) { return v->cut_safe; }

void sc_use_vocab_set_fold(sc_use_vocab *v, int on) { v->fold = on != 0; }

int sc_use_vocab_folds(const sc_use_vocab *v) { return v->fold; }

static int end_punct(int32_t c)
{
    return c == ' ' || c == '?' || c == '.' || c == '!' || c == '\t' || c == '\n' || c == '\r';
}

/* Offers the edge (piece `id`, `score`) from start to end to the lattice. */
static inline void relax(double *best, int32_t *words, size_t start, size_t end, double score,
                         int32_t id)
{
    double cand = score + best[start];
    if (best[end] == 0 || cand >= best[end]) {
        best[end] = cand;
        words[end] = id;
    }
}

/* Viterbi over sym[0..m) as the reference does it; writes the ids to out
 * (m entries of room) and returns their number. */
static size_t viterbi(const sc_use_vocab *v, const int32_t *sym, size_t m, double *best,
                      int32_t *words, int32_t *out)
{
    memset(best, 0, (m + 1) * sizeof *best);
    memset(words, 0, (m + 1) * sizeof *words);
    /* Forward pass, start positions ascending: each end position sees its
     * candidates in the same order as the reference's per-end loop. */
    for (size_t s = 0; s < m; s++) {
        int found = 0;
        int64_t node = child(v, 0, sym[s]);
        for (size_t i = s; node >= 0;) {
            const tnode *t = &v->nodes[node];
            if (t->id >= 0) {
                relax(best, words, s, i + 1, t->score, t->id);
                found = 1;
            }
            if (++i >= m) break;
            node = child(v, (uint32_t)node, sym[i]);
        }
        if (!found) relax(best, words, s, s + 1, 0.0, 0);
    }
    /* Backward pass (reversed order), merging runs of unknowns. */
    size_t k = 0;
    int prev_unk = 0;
    for (size_t it = m; it > 0;) {
        int32_t id = words[it];
        if (!(prev_unk && id == 0)) out[k++] = id;
        prev_unk = id == 0;
        size_t step = v->js_len[id];
        it = step >= it ? 0 : it - step;
    }
    for (size_t i = 0; i < k / 2; i++) {
        int32_t t = out[i];
        out[i] = out[k - 1 - i];
        out[k - 1 - i] = t;
    }
    return k;
}

/* whole: text is the whole prompt, not a prefix of it (only the whole
 * prompt's end punctuation is dropped when folding). */
static int encode_text(const sc_use_vocab *v, const char *text, size_t len, int whole, size_t max_ids,
                       int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    int32_t *cps;
    size_t ncp;
    int rc = sc_embed_normalize(text, len, v->fold ? UTF8PROC_CASEFOLD : 0, &cps, &ncp);
    if (rc != 0) return rc;
    if (v->fold && whole)
        while (ncp > 0 && end_punct(cps[ncp - 1])) ncp--;
    if (ncp == 0) {
        free(cps);
        return 0;
    }
    size_t m = ncp + 1;
    int32_t *sym = sc_malloc(m * sizeof *sym);
    sym[0] = SEPARATOR;
    for (size_t i = 0; i < ncp; i++) sym[i + 1] = cps[i] == ' ' ? SEPARATOR : cps[i];
    free(cps);
    double *best = sc_malloc((m + 1) * sizeof *best);
    int32_t *words = sc_malloc((m + 1) * sizeof *words);
    int32_t *out = sc_malloc(m * sizeof *out);
    size_t k = 0, limit = 2048;
    /* A long text is encoded by growing prefixes that end before a U+2581
     * (exact when cut_safe): once a prefix yields more than max_ids ids,
     * the rest cannot change them. */
    for (;;) {
        size_t cut = m;
        if (v->cut_safe && max_ids > 0 && limit < m) {
            cut = limit;
            while (cut < m && sym[cut] != SEPARATOR) cut++;
        }
        k = viterbi(v, sym, cut, best, words, out);
        if (cut == m || k > max_ids) break;
        limit *= 4;
    }
    free(sym);
    free(best);
    free(words);
    *ids = out;
    *n = k;
    return 0;
}

/* 1 when an ASCII letter or digit is in text[from, len). */
static int alnum_after(const char *text, size_t len, size_t from)
{
    for (size_t i = len; i > from; i--) {
        unsigned char ch = (unsigned char)text[i - 1];
        if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')) return 1;
    }
    return 0;
}

/* Long texts: normalisation dominates (~50-100 ms for 1 MiB), so the text
 * is first encoded by growing byte prefixes that end before an ASCII space.
 * NFKC never reaches across U+0020 (a starter that composes with nothing),
 * and in the lattice the space becomes a forced U+2581 cut, so the ids of
 * such a prefix are a prefix of the ids of the whole text. When folding,
 * the whole text's end punctuation is dropped and that may reach back
 * into the prefix ("... . . ."), so a prefix only counts when an ASCII
 * letter or digit (which no normalisation turns into end punctuation)
 * comes after it. */
int sc_use_encode(const sc_use_vocab *v, const char *text, size_t len, size_t max_ids,
                  int32_t **ids, size_t *n)
{
    for (size_t limit = 16384; max_ids > 0 && v->cut_safe && limit < len; limit *= 4) {
        const char *sp = memchr(text + limit, ' ', len - limit);
        if (!sp || (v->fold && !alnum_after(text, len, (size_t)(sp - text)))) break;
        int rc = encode_text(v, text, (size_t)(sp - text), 0, max_ids, ids, n);
        if (rc != 0 || *n > max_ids) return rc;
        free(*ids);
    }
    return encode_text(v, text, len, 1, max_ids, ids, n);
}
