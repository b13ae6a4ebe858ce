/* The "hash" embedder: a model-free sentence vector from signed feature
 * hashing (id "hash/1", 256 dimensions). The text is normalised (NFKC,
 * case folding, default-ignorable code points removed; invalid UTF-8
 * bytes become U+FFFD), split into words (runs of letters, digits and
 * marks; every other non-space symbol such as punctuation or an emoji is a
 * word of its own), and four kinds of features are hashed with XXH3 into
 * 256 buckets, each adding +w or -w depending on one hash bit:
 * word unigrams (w 1.0), word bigrams (w 0.7), and character 3- and
 * 4-grams over " word word ... " (w 0.4). The sum is L2-normalised. An
 * empty text maps to a fixed unit vector. Deterministic across runs and
 * machines; changing anything here must bump the id. Pure; any thread. */
#include "embed/embed_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define HASH_DIM 256u
#define SEED_WORD 0x5C0001u
#define SEED_BIGRAM 0x5C0002u
#define SEED_CHAR3 0x5C0003u
#define SEED_CHAR4 0x5C0004u
#define SEED_EMPTY 0x5C0005u

/* Adds the feature `bytes` with weight w into v. */
static void add_feature(float *v, const void *bytes, size_t n, uint64_t seed, float w)
{
    uint64_t h = sc_hash64(bytes, n, seed);
    uint32_t bucket = (uint32_t)(h % HASH_DIM);
    v[bucket] += (h >> 63) ? -w : w;
}

static int is_word_cp(int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

static int is_space_cp(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return c == ' ' || (c >= 9 && c <= 13) || k == UTF8PROC_CATEGORY_ZS ||
           k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP || k == UTF8PROC_CATEGORY_CC;
}

/* UTF-8 encodes cps[0..n) into out (4 bytes per code point at most). */
static size_t encode(const int32_t *cps, size_t n, uint8_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)utf8proc_encode_char(cps[i], out + k);
    return k;
}

int sc_embed_hash_text(const char *text, size_t len, float *v, uint32_t *nwords)
{
    memset(v, 0, HASH_DIM * sizeof *v);
    int32_t *cps = NULL;
    size_t n = 0;
    int rc = sc_embed_normalize(text, len, UTF8PROC_CASEFOLD | UTF8PROC_IGNORE, &cps, &n);
    if (rc != 0) return rc;

    /* Line the words up as " w1 w2 ... " in line[], word starts/ends aside. */
    int32_t *line = sc_malloc((2 * n + 2) * sizeof *line);
    size_t *ws = sc_malloc((n + 1) * sizeof *ws), *we = sc_malloc((n + 1) * sizeof *we);
    size_t ln = 0, nw = 0;
    line[ln++] = ' ';
    for (size_t i = 0; i < n;) {
        if (is_space_cp(cps[i])) {
            i++;
            continue;
        }
        ws[nw] = ln;
        if (is_word_cp(cps[i])) {
            while (i < n && is_word_cp(cps[i])) line[ln++] = cps[i++];
        } else {
            line[ln++] = cps[i++];
        }
        we[nw++] = ln;
        line[ln++] = ' ';
    }
    uint8_t *tmp = sc_malloc(4 * ln + 8);
    for (size_t w = 0; w < nw; w++) {
        size_t k = encode(line + ws[w], we[w] - ws[w], tmp);
        add_feature(v, tmp, k, SEED_WORD, 1.0f);
        if (w + 1 < nw) {
            k = encode(line + ws[w], we[w + 1] - ws[w], tmp); /* "a b" */
            add_feature(v, tmp, k, SEED_BIGRAM, 0.7f);
        }
    }
    if (nw > 0) {
        for (size_t i = 0; i + 3 <= ln; i++) {
            size_t k = encode(line + i, 3, tmp);
            add_feature(v, tmp, k, SEED_CHAR3, 0.4f);
            if (i + 4 <= ln) {
                k = encode(line + i, 4, tmp);
                add_feature(v, tmp, k, SEED_CHAR4, 0.4f);
            }
        }
    }
    int zero = 1;
    for (uint32_t i = 0; i < HASH_DIM; i++)
        if (v[i] != 0.0f) zero = 0;
    if (zero) add_feature(v, "", 0, SEED_EMPTY, 1.0f); /* empty or fully cancelled */
    sc_embed_l2_normalize(v, HASH_DIM);
    free(tmp);
    free(ws);
    free(we);
    free(line);
    free(cps);
    if (nwords) *nwords = (uint32_t)nw;
    return 0;
}

static int hash_open(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen)
{
    e->dim = HASH_DIM;
    snprintf(e->id, sizeof e->id, "hash/1");
    return 0;
}

static void hash_close(sc_embedder *e) {}

static int hash_embed1(sc_embedder *e, const char *text, size_t len, float *out,
                       uint32_t *tokens, int *truncated)
{
    *truncated = 0;
    return sc_embed_hash_text(text, len, out, tokens);
}

const sc_embed_backend sc_embed_hash_backend = {
    .name = "hash",
    .open = hash_open,
    .close = hash_close,
    .embed1 = hash_embed1,
};
