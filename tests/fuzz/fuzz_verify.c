/* libFuzzer target for the hit verifier's feature extraction
 * (embed/verify_features.c): a tokenizer and comparison run on every
 * semantic candidate, over untrusted prompt text.
 *
 * The input is split at its first TAB (or NUL) into two prompts; its
 * first byte picks the cosine. Every feature must be finite and in its
 * range (fractions in [0,1], flags 0 or 1), the same input must give the
 * same features, a prompt compared with itself must show no difference,
 * and the model's probability must be in [0,1]. Nothing may leak or read
 * out of bounds (the tokenizer cuts at SC_VERIFY_MAX_BYTES/_TOKENS). */
// fuzz-sources: embed/verify_features.c embed/verify.c common/alloc.c common/err.c common/hash.c common/log.c
// fuzz-libs: -lxxhash
#include "embed/verify.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The diff-word embedding is off here (emb is NULL), so the embedder is
 * never called; these only satisfy the linker. */
uint32_t sc_embedder_dim(const sc_embedder *e) { (void)e; abort(); }
const char *sc_embedder_id(const sc_embedder *e) { (void)e; abort(); }
int sc_embed(sc_embedder *e, const char *const *t, const size_t *l, size_t n, float *out)
{
    (void)e, (void)t, (void)l, (void)n, (void)out;
    abort();
}

static int is_flag(int f)
{
    return f == SC_VF_SUBST || f == SC_VF_NUM_MISMATCH || f == SC_VF_NUM_ONESIDED ||
           f == SC_VF_UNIT_MISMATCH || f == SC_VF_NEG_MISMATCH || f == SC_VF_OPPOSITE ||
           f == SC_VF_SWAP || f == SC_VF_SWAP_REL || f == SC_VF_NAME_MISMATCH ||
           f == SC_VF_NAME_ONESIDED || f == SC_VF_WH_MISMATCH;
}

static void check(const char *a, size_t la, const char *b, size_t lb, float cos)
{
    float x[SC_VF_COUNT], y[SC_VF_COUNT];
    if (sc_verify_features(a, la, b, lb, cos, NULL, x) != 0) abort();
    if (sc_verify_features(a, la, b, lb, cos, NULL, y) != 0) abort();
    if (memcmp(x, y, sizeof x) != 0) abort();
    for (int i = 0; i < SC_VF_COUNT; i++) {
        if (!isfinite(x[i])) abort();
        if (is_flag(i) && x[i] != 0 && x[i] != 1) abort();
    }
    static const int frac[] = {SC_VF_WORD_JACC, SC_VF_ALL_JACC, SC_VF_DIFF_FRAC, SC_VF_CHAR3_JACC,
                               SC_VF_LEN_RATIO};
    for (size_t i = 0; i < sizeof frac / sizeof frac[0]; i++)
        if (x[frac[i]] < 0 || x[frac[i]] > 1) abort();
    if (x[SC_VF_DIFF_LOG] < 0) abort();
    const sc_verify_model *m = sc_verify_builtin("use-lite");
    if (m) {
        double p = sc_verify_model_score(m, x);
        if (!(p >= 0 && p <= 1)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    float cos = (float)data[0] / 127.5f - 1;
    const char *s = (const char *)data + 1;
    size_t n = size - 1, cut = 0;
    while (cut < n && s[cut] != '\t' && s[cut] != '\0') cut++;
    const char *b = cut < n ? s + cut + 1 : s + n;
    size_t lb = cut < n ? n - cut - 1 : 0;
    check(s, cut, b, lb, cos);
    check(b, lb, s, cut, cos);
    /* A prompt against itself: nothing differs. */
    float x[SC_VF_COUNT];
    if (sc_verify_features(s, cut, s, cut, cos, NULL, x) != 0) abort();
    if (x[SC_VF_WORD_JACC] != 1 || x[SC_VF_ALL_JACC] != 1 || x[SC_VF_DIFF_LOG] != 0) abort();
    for (int i = SC_VF_NUM_MISMATCH; i <= SC_VF_WH_MISMATCH; i++)
        if (x[i] != 0) abort();
    if (x[SC_VF_SWAP_REL] != 0) abort();
    return 0;
}
