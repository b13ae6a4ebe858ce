/* libFuzzer target for the USE-lite tokenizer (embed/use_tokenizer.c),
 * which encodes every client prompt: untrusted bytes, invalid UTF-8, NULs
 * and long runs included.
 *
 * The real vocabulary is loaded once: $SC_USE_VOCAB when set, else
 * models/use-lite/dist/vocab.json found from the working directory or up
 * to three levels above it (run.sh runs the standalone build from the
 * repository root and the libFuzzer build from build/fuzz). Without it
 * the target aborts on its first input: run make deps. Everything is freed
 * at exit, so the leak check sees anything the tokenizer loses.
 *
 * Checks on each input (the whole input is the text):
 *   1. sc_use_encode(max_ids 0): every id is in [0, vocab size), the
 *      reserved ids 1..5 never appear, no two unknowns (id 0) are adjacent
 *      (runs are merged), and a second encode gives the same ids.
 *   2. sc_use_encode(max_ids > 0, derived from the input), against the
 *      contract in use.h: a caller that keeps the first min(k, max_ids) of
 *      the k ids and reads k > max_ids as "cut" must see exactly the first
 *      min(n, max_ids) ids of the full encoding (n ids) and the same "cut".
 *      Without cut_safe nothing may stop early: the ids must be identical.
 *      For about one input in 64 this is also done on the input repeated
 *      past 16 KiB, which reaches both early-stopping paths (byte prefixes
 *      past 16 KiB, code point prefixes past 2048 symbols), with max_ids
 *      aimed at the edges of those prefixes (see long_max_ids()).
 *   3. Inputs up to REF_MAX_BYTES are also encoded by an independent
 *      reference written here from the TF.js tokenizer
 *      (@tensorflow-models/universal-sentence-encoder, tokenizer/index.js
 *      and trie.js), which use_tokenizer.c promises to reproduce id for id:
 *      bytes decoded as WHATWG's TextDecoder does (maximal invalid
 *      subparts become one U+FFFD; embed.c makes one per invalid byte,
 *      which gives the same ids only because U+FFFD is in no piece and
 *      unknown runs merge), NFKC with utf8proc_map, U+2581 in
 *      front and for every U+0020, then the lattice over UTF-16 code units
 *      with pieces looked up by brute force in a hash table of their own
 *      (no trie), the forward pass in TF.js order (per end position, start
 *      positions ascending, "best == 0 means unset", ties to the later
 *      candidate), the backward walk by each piece's UTF-16 length, and the
 *      merge of unknown runs. Since that order fixes every tie, the ids
 *      must be identical, not just the total score; on a mismatch both id
 *      lists and both path scores are printed. Normalisation is not
 *      re-implemented (utf8proc is the NFKC both sides trust); the
 *      decoding, the lattice and the walk are.
 */
// fuzz-sources: embed/use_tokenizer.c embed/embed.c common/alloc.c common/err.c common/log.c
// fuzz-libs: -ljansson -lutf8proc
#include "embed/embed_internal.h"
#include "embed/use.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* embed.c's backend table; only sc_embed_normalize() is used here. */
const sc_embed_backend sc_embed_use_backend = {.name = "use-lite"};
const sc_embed_backend sc_embed_bin_backend = {.name = "semcache-embed"};
const sc_embed_backend sc_embed_hash_backend = {.name = "hash"};
const sc_embed_backend sc_embed_remote_backend = {.name = "remote"};

#define VOCAB_REL "models/use-lite/dist/vocab.json"
#define REF_MAX_BYTES 128
#define LONG_MIN_BYTES 17000
#define SEP 0x2581
#define MAX_UNITS 64 /* longest piece in UTF-16 units we accept */

/* ---- the reference's vocabulary ------------------------------------------ */

typedef struct ref_piece {
    uint16_t u[MAX_UNITS];
    uint8_t len;
    int32_t id;
    double score;
} ref_piece;

static sc_use_vocab *vocab;
static uint32_t nvocab;
static ref_piece *pieces;    /* one per distinct piece (later duplicates win) */
static uint32_t npieces;
static uint32_t *slots;      /* hash table of piece index + 1, 0 = empty */
static uint32_t smask;
static uint8_t *js_len;      /* [nvocab] UTF-16 length of each piece string */
static uint32_t max_units;   /* longest piece */

static uint64_t hash_units(const uint16_t *u, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ u[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Index of the piece spelled u[0..n), or -1. */
static int64_t lookup(const uint16_t *u, size_t n)
{
    for (uint64_t i = hash_units(u, n) & smask;; i = (i + 1) & smask) {
        if (slots[i] == 0) return -1;
        const ref_piece *p = &pieces[slots[i] - 1];
        if (p->len == n && memcmp(p->u, u, n * sizeof *u) == 0) return slots[i] - 1;
    }
}

/* UTF-8 (valid) to UTF-16; returns the number of units or -1. */
static long to_utf16(const uint8_t *s, size_t n, uint16_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
        if (step <= 0) return -1;
        i += (size_t)step;
        if (k + 2 > cap) return -1;
        if (c > 0xFFFF) {
            out[k++] = (uint16_t)(0xD800 + ((c - 0x10000) >> 10));
            out[k++] = (uint16_t)(0xDC00 + ((c - 0x10000) & 0x3FF));
        } else {
            out[k++] = (uint16_t)c;
        }
    }
    return (long)k;
}

static void cleanup(void)
{
    sc_use_vocab_free(vocab);
    free(pieces);
    free(slots);
    free(js_len);
    vocab = NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
            fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = n > 0 ? (size_t)n : 0;
    }
    fclose(f);
    return buf;
}

static void load(void)
{
    static const char *const up[] = {"", "../", "../../", "../../../"};
    char path[4096];
    size_t len = 0;
    char *text = NULL;
    const char *env = getenv("SC_USE_VOCAB");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
        text = read_file(path, &len);
    } else {
        for (size_t i = 0; i < sizeof up / sizeof up[0] && !text; i++) {
            snprintf(path, sizeof path, "%s%s", up[i], VOCAB_REL);
            text = read_file(path, &len);
        }
    }
    if (!text) {
        fprintf(stderr, "fuzz_use_tokenizer: cannot read %s (from the repository root or "
                "build/fuzz, or $SC_USE_VOCAB): run make deps\n",
                env && *env ? env : VOCAB_REL);
        abort();
    }
    char err[256] = "";
    if (sc_use_vocab_load(&vocab, text, len, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_use_tokenizer: %s: %s\n", path, err);
        abort();
    }
    nvocab = sc_use_vocab_size(vocab);

    /* The reference's own reading of the same file. */
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root || json_array_size(root) != nvocab) {
        fprintf(stderr, "fuzz_use_tokenizer: %s: %u pieces per the tokenizer, %zu per jansson\n",
                path, nvocab, root ? json_array_size(root) : 0);
        abort();
    }
    pieces = calloc(nvocab, sizeof *pieces);
    js_len = calloc(nvocab, 1);
    uint32_t cap = 1;
    while (cap < 4 * nvocab) cap *= 2;
    slots = calloc(cap, sizeof *slots);
    smask = cap - 1;
    if (!pieces || !js_len || !slots) abort();
    for (uint32_t i = 0; i < nvocab; i++) {
        json_t *e = json_array_get(root, i), *s = json_array_get(e, 0);
        uint16_t u[MAX_UNITS];
        long n = to_utf16((const uint8_t *)json_string_value(s), json_string_length(s), u, MAX_UNITS);
        if (n <= 0) {
            fprintf(stderr, "fuzz_use_tokenizer: piece %u is empty, bad or too long\n", i);
            abort();
        }
        js_len[i] = (uint8_t)n;
        if (i < 6) continue; /* reserved: never matched */
        /* JS: null + x == x, so a null score is 0 (json_number_value(null)). */
        double score = json_number_value(json_array_get(e, 1));
        int64_t at = lookup(u, (size_t)n);
        if (at >= 0) { /* the trie's later insert overwrites score and index */
            pieces[at].id = (int32_t)i;
            pieces[at].score = score;
            continue;
        }
        ref_piece *p = &pieces[npieces];
        memcpy(p->u, u, (size_t)n * sizeof *u);
        p->len = (uint8_t)n;
        p->id = (int32_t)i;
        p->score = score;
        uint64_t h = hash_units(u, (size_t)n) & smask;
        while (slots[h]) h = (h + 1) & smask;
        slots[h] = ++npieces;
        if ((uint32_t)n > max_units) max_units = (uint32_t)n;
    }
    json_decref(root);
    atexit(cleanup);
}

/* ---- the reference tokenizer ---------------------------------------------- */

/* WHATWG UTF-8 decode (TextDecoder, replacement mode) to code points;
 * returns their number (out has room for n). */
static size_t whatwg_decode(const uint8_t *s, size_t n, int32_t *out)
{
    size_t k = 0, i = 0;
    while (i < n) {
        uint8_t b = s[i];
        int need;
        int32_t cp;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b < 0x80) {
            out[k++] = b;
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            need = 1, cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2, cp = b & 0x0F;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3, cp = b & 0x07;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else {
            out[k++] = 0xFFFD;
            i++;
            continue;
        }
        size_t j = i + 1;
        int ok = 1;
        for (int t = 0; t < need; t++, j++) {
            if (j >= n || s[j] < lo || s[j] > hi) {
                ok = 0;
                break;
            }
            cp = (cp << 6) | (s[j] & 0x3F);
            lo = 0x80, hi = 0xBF;
        }
        /* A bad or missing continuation ends the maximal subpart: one
         * U+FFFD for the bytes consumed, the offending byte is read again. */
        out[k++] = ok ? cp : 0xFFFD;
        i = j;
    }
    return k;
}

/* Encodes like TF.js; *ids is allocated (free() it). Returns the number
 * of ids; *path_score is best[] at the end of the lattice. */
static size_t ref_encode(const uint8_t *data, size_t size, int32_t **ids, double *path_score)
{
    *ids = NULL;
    *path_score = 0;
    int32_t *cps = malloc((size + 1) * sizeof *cps);
    uint8_t *utf8 = malloc(4 * size + 1);
    if (!cps || !utf8) abort();
    size_t ncp = whatwg_decode(data, size, cps), nb = 0;
    for (size_t i = 0; i < ncp; i++) nb += (size_t)utf8proc_encode_char(cps[i], utf8 + nb);
    free(cps);
    uint8_t *nfkc = NULL;
    utf8proc_ssize_t nl = utf8proc_map(utf8, (utf8proc_ssize_t)nb, &nfkc,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    free(utf8);
    if (nl < 0) abort(); /* the input is valid UTF-8 by now */
    if (nl == 0) {
        free(nfkc);
        return 0;
    }
    /* U+2581 in front and for each U+0020, as UTF-16. */
    size_t cap = 2 * (size_t)nl + 2, L = 0;
    uint16_t *u = malloc(cap * sizeof *u);
    if (!u) abort();
    u[L++] = SEP;
    for (utf8proc_ssize_t i = 0; i < nl;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate(nfkc + i, nl - i, &c);
        if (step <= 0) abort();
        i += step;
        if (c == ' ') c = SEP;
        if (c > 0xFFFF) {
            u[L++] = (uint16_t)(0xD800 + ((c - 0x10000) >> 10));
            u[L++] = (uint16_t)(0xDC00 + ((c - 0x10000) & 0x3FF));
        } else {
            u[L++] = (uint16_t)c;
        }
    }
    free(nfkc);

    /* The lattice: edge (s, e) is the piece u[s..e) when there is one; a
     * start where no piece begins gets the one-unit unknown edge. */
    double *best = calloc(L + 1, sizeof *best);
    int32_t *words = calloc(L + 1, sizeof *words);
    uint8_t *any = calloc(L + 1, 1);
    if (!best || !words || !any) abort();
    for (size_t s = 0; s < L; s++)
        for (size_t n = 1; n <= max_units && s + n <= L && !any[s]; n++) any[s] = lookup(u + s, n) >= 0;
    for (size_t e = 1; e <= L; e++) {
        for (size_t s = e > max_units ? e - max_units : 0; s < e; s++) {
            double sc;
            int32_t id;
            int64_t p = lookup(u + s, e - s);
            if (p >= 0) {
                sc = pieces[p].score, id = pieces[p].id;
            } else if (!any[s] && e == s + 1) {
                sc = 0, id = 0;
            } else {
                continue;
            }
            double cand = sc + best[s];
            if (best[e] == 0 || cand >= best[e]) {
                best[e] = cand;
                words[e] = id;
            }
        }
    }
    *path_score = best[L];
    /* Backward walk by UTF-16 piece length, then merge unknown runs. */
    int32_t *out = malloc((L + 1) * sizeof *out);
    if (!out) abort();
    size_t k = 0;
    int prev_unk = 0;
    for (long it = (long)L; it > 0; it -= js_len[words[it]]) {
        int32_t id = words[it];
        if (!(prev_unk && id == 0)) out[k++] = id;
        prev_unk = id == 0;
    }
    for (size_t i = 0; i < k / 2; i++) {
        int32_t t = out[i];
        out[i] = out[k - 1 - i];
        out[k - 1 - i] = t;
    }
    free(u);
    free(best);
    free(words);
    free(any);
    *ids = out;
    return k;
}

/* ---- checks ----------------------------------------------------------------- */

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "%s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
}

static void fail(const char *msg, const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    fprintf(stderr, "fuzz_use_tokenizer: %s\n", msg);
    if (a) print_ids("  tokenizer", a, na);
    if (b) print_ids("  other    ", b, nb);
    abort();
}

/* Path score of a tokenizer result, for the mismatch report: the sum of
 * its pieces' scores (unknowns score 0). */
static double score_of(const int32_t *ids, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 6) continue;
        for (uint32_t p = 0; p < npieces; p++)
            if (pieces[p].id == ids[i]) {
                s += pieces[p].score;
                break;
            }
    }
    return s;
}

static void encode_ok(const uint8_t *t, size_t len, size_t max_ids, int32_t **ids, size_t *n)
{
    if (sc_use_encode(vocab, (const char *)t, len, max_ids, ids, n) != 0)
        fail("sc_use_encode failed", NULL, 0, NULL, 0);
    if (*n > 0 && !*ids) fail("ids NULL with n > 0", NULL, 0, NULL, 0);
    for (size_t i = 0; i < *n; i++) {
        int32_t id = (*ids)[i];
        if (id < 0 || (uint32_t)id >= nvocab) fail("id out of range", *ids, *n, NULL, 0);
        if (id >= 1 && id <= 5) fail("reserved id 1..5 in the output", *ids, *n, NULL, 0);
        if (i > 0 && id == 0 && (*ids)[i - 1] == 0) fail("unknown run not merged", *ids, *n, NULL, 0);
    }
}

/* The max_ids contract of use.h for text t whose full encoding is full[n]. */
static void check_prefix(const uint8_t *t, size_t len, const int32_t *full, size_t n, size_t max_ids)
{
    int32_t *pre;
    size_t k;
    encode_ok(t, len, max_ids, &pre, &k);
    if (!sc_use_vocab_cut_safe(vocab)) {
        if (k != n || (n && memcmp(pre, full, n * sizeof *full) != 0))
            fail("max_ids changed the ids of a vocabulary that is not cut-safe", pre, k, full, n);
    } else {
        if ((k > max_ids) != (n > max_ids)) fail("max_ids: 'cut' differs from the full encoding", pre, k, full, n);
        size_t keep = k < max_ids ? k : max_ids, want = n < max_ids ? n : max_ids;
        if (keep != want || (keep && memcmp(pre, full, keep * sizeof *full) != 0))
            fail("max_ids: the first ids differ from the full encoding", pre, k, full, n);
    }
    free(pre);
}

/* A max_ids for the long text t (nf ids in full), picked by sel: small;
 * just under all of them; or one off the number of ids of the byte prefix
 * that ends before the first space at or past 2047 or 16384 bytes. These
 * are where the early stop must, or must not, happen: sc_use_encode()
 * tries byte prefixes from 16 KiB and code point prefixes from 2048
 * symbols, which for ASCII text are the same cut. */
static size_t long_max_ids(const uint8_t *t, size_t len, size_t nf, uint8_t sel)
{
    int d = sel / 4 % 3 - 1;
    switch (sel % 4) {
    case 0: return 1 + sel % 16;
    case 1: return nf > 8 ? nf - sel / 4 % 8 : 1;
    default: {
        size_t from = sel % 4 == 2 ? 2047 : 16384;
        const uint8_t *sp = from < len ? memchr(t + from, ' ', len - from) : NULL;
        if (!sp) return 1 + sel;
        int32_t *ids;
        size_t np;
        encode_ok(t, (size_t)(sp - t), 0, &ids, &np);
        free(ids);
        return (long)np + d > 0 ? (size_t)((long)np + d) : 1;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!vocab) load();

    /* 1. Full encoding: ranges, merged unknowns, determinism. */
    int32_t *a, *b;
    size_t na, nb;
    encode_ok(data, size, 0, &a, &na);
    encode_ok(data, size, 0, &b, &nb);
    if (na != nb || (na && memcmp(a, b, na * sizeof *a) != 0)) fail("not deterministic", a, na, b, nb);
    free(b);

    /* 2. max_ids from the input's ends: 1..512. */
    size_t max_ids = size ? 1 + (size_t)((data[0] | data[size - 1] << 8) % 512) : 1;
    check_prefix(data, size, a, na, max_ids);
    if (size && data[size - 1] % 64 == 0) {
        size_t reps = LONG_MIN_BYTES / size + 1, len = reps * size;
        uint8_t *t = malloc(len);
        if (!t) abort();
        for (size_t r = 0; r < reps; r++) memcpy(t + r * size, data, size);
        int32_t *full;
        size_t nf;
        encode_ok(t, len, 0, &full, &nf);
        check_prefix(t, len, full, nf, long_max_ids(t, len, nf, (uint8_t)(data[0] + size)));
        free(full);
        free(t);
    }

    /* 3. The independent reference on short inputs. */
    if (size <= REF_MAX_BYTES) {
        int32_t *r;
        double rs;
        size_t nr = ref_encode(data, size, &r, &rs);
        if (nr != na || (na && memcmp(a, r, na * sizeof *a) != 0)) {
            fprintf(stderr, "path scores: tokenizer ids %.9g, reference best %.9g\n", score_of(a, na), rs);
            fail("differs from the TF.js reference", a, na, r, nr);
        }
        free(r);
    }
    free(a);
    return 0;
}
