/* Unit tests for index/: the SIMD kernels against the scalar reference,
 * the flat backend (recall against exact fp32 search, tombstones,
 * compaction, replacement, namespace isolation, concurrency) and the faiss
 * backend (Flat agrees with the flat backend, HNSW32 and an IVF index that
 * trains itself once enough rows arrived). */
#include "tap.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "index/index.h"
#include "common/half.h"
#include "index/index_int.h"
#include "common/pair.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------
 * Helpers: deterministic random vectors
 * ------------------------------------------------------------------- */

typedef struct { uint64_t s; } rng;

static uint64_t rnext(rng *r)
{
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->s = x;
}

static double runif(rng *r) { return ((double)(rnext(r) >> 11) + 0.5) / 9007199254740992.0; }

static float rgauss(rng *r)
{
    return (float)(sqrt(-2.0 * log(runif(r))) * cos(6.283185307179586 * runif(r)));
}

static void normalise(float *v, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++) s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < d; i++) v[i] *= inv;
}

static float *rand_unit(rng *r, size_t n, size_t d)
{
    float *v = sc_malloc(n * d * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) v[i * d + j] = rgauss(r);
        normalise(v + i * d, d);
    }
    return v;
}

/* q = normalise(base + sigma * gaussian). */
static void near_dup(rng *r, const float *base, float *q, size_t d, float sigma)
{
    for (size_t j = 0; j < d; j++) q[j] = base[j] + sigma * rgauss(r);
    normalise(q, d);
}

static double dotd(const float *a, const float *b, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++) s += (double)a[i] * b[i];
    return s;
}

/* Index of the exact fp32 (double-accumulated) nearest row. */
static size_t exact_top1(const float *db, size_t n, size_t d, const float *q)
{
    size_t best = 0;
    double bs = -2;
    for (size_t i = 0; i < n; i++) {
        double s = dotd(db + i * d, q, d);
        if (s > bs) {
            bs = s;
            best = i;
        }
    }
    return best;
}

static uint32_t scan_bits = 8; /* for the flat tests run with both scans (8 unless a test sets 4) */
static uint32_t ann_min_rows;  /* flat 4-bit: 0 = the default (no IVF at these sizes) */

static sc_index *mk(uint32_t dim, const char *backend, const char *desc)
{
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = dim, .backend = backend, .faiss_desc = desc, .scan_bits = scan_bits,
                       .ann_min_rows = ann_min_rows};
    int rc = sc_index_create(&ix, &o);
    if (rc) sc_test_fail(__FILE__, __LINE__, "sc_index_create: %s", sc_strerror(rc));
    return ix;
}

/* A flat 4-bit index with the ANN path from ann_min live rows
 * (UINT32_MAX: never), probing nprobe lists (0: the default rule). */
static sc_index *mk_ann(size_t dim, uint32_t ann_min, uint32_t nprobe)
{
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = (uint32_t)dim, .scan_bits = 4, .ann_min_rows = ann_min, .ann_nprobe = nprobe};
    int rc = sc_index_create(&ix, &o);
    if (rc) sc_test_fail(__FILE__, __LINE__, "sc_index_create: %s", sc_strerror(rc));
    return ix;
}

/* ---------------------------------------------------------------------
 * Kernels
 * ------------------------------------------------------------------- */

SC_TEST(index_kernels_match_scalar)
{
    static const size_t dims[] = {1, 2, 3, 15, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129,
                                  255, 384, 500, 512, 768, 1000, 1024, 4096};
    static const size_t rows[] = {1, 2, 3, 4, 5, 7, 8, 9, 17, 64};
    static const char *kernels[] = {"scalar", "avx2", "avx512vnni"};
    rng r = {0x1234567};
    int8_t *q = sc_malloc(4096);
    int8_t *m = sc_malloc(64 * 4096);
    int32_t ref[64], got[64];
    int tested = 0;
    for (size_t ki = 0; ki < SC_COUNTOF(kernels); ki++) {
        int rc = sc_index_kernel_force(kernels[ki]);
        if (rc == SC_EUNSUPPORTED) {
            printf("# kernel %s not supported here, skipped\n", kernels[ki]);
            continue;
        }
        REQUIRE(rc == 0);
        REQUIRE(strcmp(sc_index_kernel_name(), kernels[ki]) == 0);
        tested++;
        for (size_t di = 0; di < SC_COUNTOF(dims); di++) {
            size_t d = dims[di];
            for (size_t ri = 0; ri < SC_COUNTOF(rows); ri++) {
                size_t n = rows[ri];
                /* Mix of extremes (+-127, overflow-prone) and random bytes. */
                int mode = (int)((di + ri) % 3);
                for (size_t j = 0; j < d; j++)
                    q[j] = mode == 0 ? (int8_t)((rnext(&r) & 1) ? 127 : -127)
                                     : (int8_t)((int)(rnext(&r) % 255) - 127);
                for (size_t j = 0; j < n * d; j++)
                    m[j] = mode == 1 ? (int8_t)((rnext(&r) & 1) ? 127 : -127)
                                     : (int8_t)((int)(rnext(&r) % 255) - 127);
                sc_index_dot_i8_scalar(q, m, n, d, ref);
                sc_index_dot_i8(q, m, n, d, got);
                for (size_t i = 0; i < n; i++)
                    if (ref[i] != got[i]) {
                        sc_test_fail(__FILE__, __LINE__, "%s d=%zu n=%zu row %zu: %d != %d",
                                     kernels[ki], d, n, i, got[i], ref[i]);
                        goto next_kernel;
                    }
            }
        }
        /* fp32 kernel: close to a double-precision reference. */
        for (size_t di = 0; di < SC_COUNTOF(dims); di++) {
            size_t d = dims[di];
            float *a = rand_unit(&r, 2, d);
            double want = dotd(a, a + d, d);
            float gotf = sc_index_dot_f32(a, a + d, d);
            CHECK(fabs(gotf - want) < 1e-5);
            /* fp32 x fp16: close to the double-precision dot product of a
             * with b rounded to halves (every tail length is in dims). */
            uint16_t *h = sc_malloc(d * sizeof(uint16_t));
            sc_half_encode(h, a + d, d);
            double wanth = 0;
            for (size_t j = 0; j < d; j++) wanth += (double)a[j] * sc_half_to_float(h[j]);
            float goth = sc_index_dot_f16(a, h, d);
            if (!(fabs(goth - wanth) < 1e-5))
                sc_test_fail(__FILE__, __LINE__, "%s f16 d=%zu: %f != %f", kernels[ki], d, goth, wanth);
            /* and within fp16's rounding of the fp32 one */
            CHECK(fabs(goth - want) < 2e-3);
            free(h);
            free(a);
        }
    next_kernel:;
    }
    CHECK(tested >= 1);
    CHECK_OK(sc_index_kernel_force("auto"));
    CHECK_EQ_INT(sc_index_kernel_force("nope"), SC_EINVAL);
    printf("# dispatched kernel: %s\n", sc_index_kernel_name());
    free(q);
    free(m);
}

SC_TEST(index_kernels_i4_match_scalar)
{
    static const size_t dims[] = {1, 2, 63, 64, 65, 100, 127, 128, 129, 255, 256, 384, 500,
                                  512, 768, 1000, 4096};
    static const size_t rows[] = {1, 2, 3, 4, 5, 7, 9, 17, 64};
    static const char *kernels[] = {"scalar", "avx2", "avx512vnni"};
    rng r = {0x777};
    int8_t *q = sc_calloc(4096, 1);
    uint8_t *m = sc_malloc(64 * SC_INDEX_I4_BYTES(4096));
    int32_t ref[64], got[64];
    for (size_t ki = 0; ki < SC_COUNTOF(kernels); ki++) {
        int rc = sc_index_kernel_force(kernels[ki]);
        if (rc == SC_EUNSUPPORTED) continue;
        REQUIRE(rc == 0);
        for (size_t di = 0; di < SC_COUNTOF(dims); di++) {
            size_t d = dims[di], rb = SC_INDEX_I4_BYTES(d);
            memset(q, 0, SC_INDEX_I4_QLEN(d));
            for (size_t ri = 0; ri < SC_COUNTOF(rows); ri++) {
                size_t n = rows[ri];
                int mode = (int)((di + ri) % 3);
                for (size_t j = 0; j < d; j++)
                    q[j] = mode == 0 ? (int8_t)((rnext(&r) & 1) ? 127 : -127)
                                     : (int8_t)((int)(rnext(&r) % 255) - 127);
                /* Any nibbles, padding included: the result must not care. */
                for (size_t j = 0; j < n * rb; j++)
                    m[j] = mode == 1 ? (uint8_t)((rnext(&r) & 1) ? 0xff : 0x00) : (uint8_t)rnext(&r);
                sc_index_dot_i4_scalar(q, m, n, d, ref);
                sc_index_dot_i4(q, m, n, d, got);
                for (size_t i = 0; i < n; i++)
                    if (ref[i] != got[i]) {
                        sc_test_fail(__FILE__, __LINE__, "%s d=%zu n=%zu row %zu: %d != %d",
                                     kernels[ki], d, n, i, got[i], ref[i]);
                        goto next_kernel;
                    }
            }
        }
    next_kernel:;
    }
    CHECK_OK(sc_index_kernel_force("auto"));
    /* Quantisation: codes round-trip within half a step. */
    float *v = rand_unit(&r, 1, 300), sc;
    uint8_t codes[SC_INDEX_I4_BYTES(300)];
    CHECK_EQ_INT(sc_index_quantize_i4(v, codes, 300, &sc), SC_INDEX_I4_BYTES(300));
    CHECK(sc > 0);
    for (size_t i = 0; i < 300; i++) {
        uint8_t byte = codes[(i / 128) * 64 + (i % 128) % 64];
        int c = ((i % 128) < 64 ? (byte & 0x0f) : (byte >> 4)) - 8;
        CHECK(c >= -7 && c <= 7);
        CHECK(fabsf((float)c * sc / 7.0f - v[i]) <= sc / 14.0f + 1e-6f);
    }
    CHECK_EQ_INT(codes[SC_INDEX_I4_BYTES(300) - 1] >> 4, 8); /* padding */
    free(v);
    free(q);
    free(m);
}

/* Whole searches give the same results with every kernel (the int8 and
 * 4-bit scores are exact integers; the candidate filter and the fp32
 * re-scoring differ only in float rounding). */
SC_TEST(index_search_same_across_kernels)
{
    static const char *kernels[] = {"scalar", "avx2", "avx512vnni"};
    const size_t d = 100, N = 3000, Q = 50;
    for (uint32_t bits = 4; bits <= 8; bits += 4) {
        rng r = {bits};
        float *v = rand_unit(&r, N, d), *q = sc_malloc(Q * d * sizeof(float));
        for (size_t i = 0; i < Q; i++) near_dup(&r, v + (rnext(&r) % N) * d, q + i * d, d, 0.1f);
        sc_index_hit ref[Q][10];
        size_t refn[Q];
        int first = 1;
        for (size_t ki = 0; ki < SC_COUNTOF(kernels); ki++) {
            if (sc_index_kernel_force(kernels[ki]) != 0) continue;
            scan_bits = bits;
            sc_index *ix = mk(d, NULL, NULL);
            scan_bits = 8;
            REQUIRE(ix);
            for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, "k", 0, i, v + i * d));
            for (size_t i = 0; i < N; i += 5) CHECK_OK(sc_index_remove(ix, i));
            for (size_t i = 0; i < Q; i++) {
                sc_index_hit h[10];
                size_t n;
                CHECK_OK(sc_index_search(ix, "k", 0, q + i * d, 10, h, &n));
                if (first) {
                    memcpy(ref[i], h, sizeof h);
                    refn[i] = n;
                    continue;
                }
                CHECK_EQ_INT(n, refn[i]);
                for (size_t j = 0; j < n && j < refn[i]; j++) {
                    CHECK(fabsf(h[j].score - ref[i][j].score) < 1e-5f);
                    if (j == 0) CHECK_EQ_INT(h[j].id, ref[i][j].id);
                }
            }
            first = 0;
            sc_index_destroy(ix);
        }
        free(v);
        free(q);
    }
    CHECK_OK(sc_index_kernel_force("auto"));
}

SC_TEST(index_quantize)
{
    float v[6] = {1.0f, -1.0f, 0.5f, -0.004f, 2.0f, 0.0f};
    int8_t q[6];
    sc_index_quantize(v, q, 6);
    CHECK_EQ_INT(q[0], 127);
    CHECK_EQ_INT(q[1], -127);
    CHECK_EQ_INT(q[2], 64);
    CHECK_EQ_INT(q[3], -1);
    CHECK_EQ_INT(q[4], 127);
    CHECK_EQ_INT(q[5], 0);
}

/* ---------------------------------------------------------------------
 * Flat backend
 * ------------------------------------------------------------------- */

/* sc_index_rows: a partition's live rows, 0 for one that does not exist
 * or whose last row went (the cache skips a lookup's embedding then). */
SC_TEST(index_rows_counts_live_rows)
{
    const size_t d = 32;
    rng r = {7};
    sc_index *ix = mk(d, NULL, NULL);
    REQUIRE(ix);
    float *v = rand_unit(&r, 4, d);
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 1), 0);
    for (size_t i = 0; i < 3; i++) CHECK_OK(sc_index_add(ix, "ns", 1, 10 + i, v + i * d));
    CHECK_OK(sc_index_add(ix, "ns", 2, 20, v + 3 * d));
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 1), 3);
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 2), 1);
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 3), 0);
    CHECK_EQ_INT(sc_index_rows(ix, "other", 1), 0);
    CHECK_OK(sc_index_add(ix, "ns", 1, 11, v));          /* a re-add replaces */
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 1), 3);
    CHECK_OK(sc_index_remove(ix, 10));
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 1), 2);
    CHECK_OK(sc_index_remove(ix, 20));                   /* its last row: dropped */
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 2), 0);
    CHECK_OK(sc_index_add(ix, "ns", 2, 21, v));
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 2), 1);
    CHECK_OK(sc_index_flush_ns(ix, "ns"));
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 1), 0);
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 2), 0);
    free(v);
    sc_index_destroy(ix);
}

/* A conversation's later turns each have a context of their own: many
 * partitions of one row. Each holds about one row's memory (a first chunk
 * of one row, then doubling), not a chunk of 16; rows still found. */
SC_TEST(index_one_row_partitions_hold_one_row)
{
    const size_t d = 512, np = 1000;
    rng r = {11};
    sc_index *ix = mk_ann(d, 0, 0);
    REQUIRE(ix);
    float *v = rand_unit(&r, np, d);
    for (size_t i = 0; i < np; i++) CHECK_OK(sc_index_add(ix, "ns", 100 + i, 1 + i, v + i * d));
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.partitions, np);
    const size_t per_row = d * 2 + 8 + d / 2 + 4;   /* fp16 row, id, 4-bit codes, scale */
    printf("# %zu one-row partitions: %llu bytes of rows (%zu a row)\n", np,
           (unsigned long long)st.bytes, per_row);
    CHECK(st.bytes <= np * per_row);
    sc_index_hit h[2];
    size_t n = 0;
    for (size_t i = 0; i < np; i += 97) {
        CHECK_OK(sc_index_search(ix, "ns", 100 + i, v + i * d, 2, h, &n));
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_INT(h[0].id, 1 + i);
    }
    /* Rows past the small chunks land where they should: one partition
     * grown through chunks of 1, 2, 4, ... rows, every row found. */
    float *w = rand_unit(&r, 300, d);
    for (size_t i = 0; i < 300; i++) CHECK_OK(sc_index_add(ix, "big", 1, 5000 + i, w + i * d));
    for (size_t i = 0; i < 300; i++) {
        CHECK_OK(sc_index_search(ix, "big", 1, w + i * d, 1, h, &n));
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_INT(h[0].id, 5000 + i);
    }
    free(v);
    free(w);
    sc_index_destroy(ix);
}

/* The rows either side of the chunk boundaries (the small chunks end at
 * row 16,382; full chunks of 16,384 start at 16,383 and 32,767) are found,
 * before and after a compaction moves every row. */
SC_TEST(index_rows_at_chunk_boundaries)
{
    const size_t d = 32, rows = 33000;
    rng r = {29};
    sc_index *ix = mk_ann(d, UINT32_MAX, 0);
    REQUIRE(ix);
    float *v = rand_unit(&r, rows, d);
    for (size_t i = 0; i < rows; i++) CHECK_OK(sc_index_add(ix, "ns", 1, 1 + i, v + i * d));
    static const size_t edge[] = {0, 1, 2, 3, 6, 7, 8190, 8191, 16381, 16382, 16383, 16384,
                                  32765, 32766, 32767, 32768, 32999};
    sc_index_hit h[1];
    size_t n = 0;
    for (size_t e = 0; e < SC_COUNTOF(edge); e++) {
        CHECK_OK(sc_index_search(ix, "ns", 1, v + edge[e] * d, 1, h, &n));
        CHECK_EQ_INT(n, 1);
        if (h[0].id != 1 + edge[e]) sc_test_fail(__FILE__, __LINE__, "row %zu: found id %llu", edge[e],
                                                 (unsigned long long)h[0].id);
    }
    /* Remove a third of the rows (not the edges): past a quarter of
     * tombstones the partition compacts, every live row moving to a new
     * place in new chunks. */
    size_t removed = 0;
    for (size_t i = 4; i < rows; i += 3) {
        int is_edge = 0;
        for (size_t e = 0; e < SC_COUNTOF(edge); e++) is_edge |= edge[e] == i;
        if (is_edge) continue;
        CHECK_OK(sc_index_remove(ix, 1 + i));
        removed++;
    }
    CHECK_EQ_INT(sc_index_rows(ix, "ns", 1), rows - removed);
    for (size_t e = 0; e < SC_COUNTOF(edge); e++) {
        CHECK_OK(sc_index_search(ix, "ns", 1, v + edge[e] * d, 1, h, &n));
        CHECK_EQ_INT(n, 1);
        if (h[0].id != 1 + edge[e]) sc_test_fail(__FILE__, __LINE__, "after compaction, row %zu: found id %llu",
                                                 edge[e], (unsigned long long)h[0].id);
    }
    free(v);
    sc_index_destroy(ix);
}

SC_TEST(index_basic_add_search_remove)
{
    const size_t d = 64;
    rng r = {42};
    sc_index *ix = mk(d, NULL, NULL);
    REQUIRE(ix);
    float *v = rand_unit(&r, 100, d);
    sc_index_hit hits[5];
    size_t n = 99;
    CHECK_OK(sc_index_search(ix, "ns", 1, v, 5, hits, &n));
    CHECK_EQ_INT(n, 0);
    for (size_t i = 0; i < 100; i++) CHECK_OK(sc_index_add(ix, "ns", 1, 1000 + i, v + i * d));
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.partitions, 1);
    CHECK_EQ_INT(st.vectors, 100);
    CHECK(st.bytes >= 100 * d * 2); /* fp16 rows + 4-bit codes */
    for (size_t i = 0; i < 100; i++) {
        CHECK_OK(sc_index_search(ix, "ns", 1, v + i * d, 5, hits, &n));
        CHECK_EQ_INT(n, 5);
        CHECK_EQ_INT(hits[0].id, 1000 + i);
        CHECK(fabsf(hits[0].score - 1.0f) < 1e-3f); /* fp16 rows */
        for (size_t j = 1; j < n; j++) CHECK(hits[j - 1].score >= hits[j].score);
    }
    /* Unnormalised queries and vectors are normalised. */
    float big[64];
    for (size_t j = 0; j < d; j++) big[j] = v[7 * d + j] * 3.0f;
    CHECK_OK(sc_index_search(ix, "ns", 1, big, 1, hits, &n));
    CHECK_EQ_INT(hits[0].id, 1007);
    CHECK(fabsf(hits[0].score - 1.0f) < 1e-3f); /* fp16 rows */
    /* k larger than the partition. */
    sc_index_hit many[200];
    CHECK_OK(sc_index_search(ix, "ns", 1, v, 200, many, &n));
    CHECK_EQ_INT(n, 100);
    /* Replace id 1000 with vector 50's value: both now match vector 50. */
    CHECK_OK(sc_index_add(ix, "ns", 1, 1000, v + 50 * d));
    CHECK_OK(sc_index_search(ix, "ns", 1, v, 3, hits, &n));
    CHECK(hits[0].id != 1000);
    CHECK_OK(sc_index_search(ix, "ns", 1, v + 50 * d, 2, hits, &n));
    CHECK_EQ_INT(n, 2);
    CHECK((hits[0].id == 1000 && hits[1].id == 1050) || (hits[0].id == 1050 && hits[1].id == 1000));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.vectors, 100);
    /* Re-adding the same ids over and over compacts: memory stays bounded. */
    uint64_t bytes0 = st.bytes;
    for (int round = 0; round < 50; round++)
        for (size_t i = 60; i < 100; i++) CHECK_OK(sc_index_add(ix, "ns", 1, 1000 + i, v + i * d));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.vectors, 100);
    CHECK(st.bytes <= bytes0 * 3); /* at most 25% dead, chunks double */
    CHECK_OK(sc_index_search(ix, "ns", 1, v + 80 * d, 1, hits, &n));
    CHECK_EQ_INT(hits[0].id, 1080);
    /* Remove. */
    CHECK_OK(sc_index_remove(ix, 1050));
    CHECK_EQ_INT(sc_index_remove(ix, 1050), SC_ENOTFOUND);
    CHECK_EQ_INT(sc_index_remove(ix, 424242), SC_ENOTFOUND);
    CHECK_OK(sc_index_search(ix, "ns", 1, v + 50 * d, 1, hits, &n));
    CHECK_EQ_INT(hits[0].id, 1000);
    /* Other partition keys are empty. */
    CHECK_OK(sc_index_search(ix, "ns", 2, v, 5, hits, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(sc_index_search(ix, "other", 1, v, 5, hits, &n));
    CHECK_EQ_INT(n, 0);
    /* k = 0 */
    CHECK_OK(sc_index_search(ix, "ns", 1, v, 0, hits, &n));
    CHECK_EQ_INT(n, 0);
    sc_index_destroy(ix);
    free(v);
}

/* scan_bits 0 is the default, the 4-bit scan (its memory per row is the
 * 4-bit one: dim/2 + 4 bytes of scan codes instead of dim). */
SC_TEST(index_default_scan_is_4bit)
{
    const uint32_t d = 512;
    static const uint32_t bits[3] = {0, 4, 8};
    uint64_t bytes[3];
    rng r = {99};
    float *v = rand_unit(&r, 100, d);
    for (int b = 0; b < 3; b++) {
        sc_index *ix = NULL;
        sc_index_opts o = {.dim = d, .scan_bits = bits[b]};
        REQUIRE(sc_index_create(&ix, &o) == 0);
        for (size_t i = 0; i < 100; i++) CHECK_OK(sc_index_add(ix, "a", 0, i, v + i * d));
        sc_index_hit h[4];
        size_t n;
        CHECK_OK(sc_index_search(ix, "a", 0, v + 7 * d, 4, h, &n));
        CHECK(n == 4 && h[0].id == 7);
        sc_index_stats st;
        sc_index_stats_get(ix, &st);
        bytes[b] = st.bytes;
        sc_index_destroy(ix);
    }
    CHECK(bytes[0] == bytes[1]);
    CHECK(bytes[0] < bytes[2]);
    free(v);
}

SC_TEST(index_invalid_args)
{
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = 0};
    CHECK_EQ_INT(sc_index_create(&ix, &o), SC_EINVAL);
    o.dim = SC_INDEX_MAX_DIM + 1;
    CHECK_EQ_INT(sc_index_create(&ix, &o), SC_EINVAL);
    o.dim = 8;
    o.scan_bits = 5;
    CHECK_EQ_INT(sc_index_create(&ix, &o), SC_EINVAL);
    o.scan_bits = 0;
    o.backend = "annoy";
    CHECK_EQ_INT(sc_index_create(&ix, &o), SC_EINVAL);
    o.backend = "faiss";
    o.faiss_desc = "NoSuchIndex";
    int lvl = sc_log_level;
    sc_log_level = SC_LOG_OFF;
    CHECK_EQ_INT(sc_index_create(&ix, &o), SC_EINVAL);
    sc_log_level = lvl;
    CHECK(ix == NULL);
    ix = mk(8, "flat", NULL);
    REQUIRE(ix);
    float zero[8] = {0}, one[8] = {1, 0, 0, 0, 0, 0, 0, 0}, bad[8] = {NAN, 1};
    CHECK_EQ_INT(sc_index_add(ix, "a", 0, 1, zero), SC_EINVAL);
    CHECK_EQ_INT(sc_index_add(ix, "a", 0, 1, bad), SC_EINVAL);
    CHECK_EQ_INT(sc_index_add(ix, "a", 0, UINT64_MAX, one), SC_EINVAL);
    CHECK_EQ_INT(sc_index_add(ix, NULL, 0, 1, one), SC_EINVAL);
    CHECK_OK(sc_index_add(ix, "a", 0, 1, one));
    sc_index_hit h[2];
    size_t n;
    CHECK_EQ_INT(sc_index_search(ix, "a", 0, zero, 1, h, &n), SC_EINVAL);
    CHECK_EQ_INT(sc_index_search(ix, "a", 0, one, SC_INDEX_MAX_K + 1, h, &n), SC_EINVAL);
    CHECK_OK(sc_index_search(ix, "a", 0, one, 2, h, &n));
    CHECK_EQ_INT(n, 1);
    sc_index_destroy(ix);
}

/* Recall@1 of the index against exact fp32 search, near-duplicate queries. */
static double recall_at_1(const char *backend, const char *desc, size_t nvec, size_t d,
                          size_t nq, float sigma, uint64_t seed)
{
    rng r = {seed};
    sc_index *ix = mk((uint32_t)d, backend, desc);
    if (!ix) return 0;
    float *db = rand_unit(&r, nvec, d);
    for (size_t i = 0; i < nvec; i++) sc_index_add(ix, "ns", 7, i, db + i * d);
    float *q = sc_malloc(d * sizeof(float));
    size_t good = 0;
    for (size_t t = 0; t < nq; t++) {
        near_dup(&r, db + (rnext(&r) % nvec) * d, q, d, sigma);
        size_t want = exact_top1(db, nvec, d, q);
        sc_index_hit h[10];
        size_t n = 0;
        sc_index_search(ix, "ns", 7, q, 10, h, &n);
        if (n && h[0].id == want) good++;
    }
    free(q);
    free(db);
    sc_index_destroy(ix);
    return (double)good / (double)nq;
}

SC_TEST(index_recall_near_duplicates)
{
    /* sigma per component: 0.5/sqrt(d) gives cosine ~0.9 to the source,
     * 1.5/sqrt(d) about 0.55, where neighbours start to crowd in. */
    const size_t d = 384;
    double r1 = recall_at_1(NULL, NULL, 20000, d, 400, 0.5f / sqrtf((float)d), 11);
    double r2 = recall_at_1(NULL, NULL, 20000, d, 400, 1.5f / sqrtf((float)d), 12);
    double r3 = recall_at_1(NULL, NULL, 3000, 100, 400, 1.0f / sqrtf(100.0f), 13);
    printf("# recall@1 flat: %.4f (cos~0.9) %.4f (cos~0.55) %.4f (d=100)\n", r1, r2, r3);
    CHECK(r1 >= 0.999);
    CHECK(r2 >= 0.999);
    CHECK(r3 >= 0.999);
}

SC_TEST(index_recall_near_duplicates_4bit)
{
    const size_t d = 512;
    scan_bits = 4;
    double r1 = recall_at_1(NULL, NULL, 20000, d, 400, 0.5f / sqrtf((float)d), 14);
    double r2 = recall_at_1(NULL, NULL, 20000, d, 400, 1.5f / sqrtf((float)d), 15);
    double r3 = recall_at_1(NULL, NULL, 3000, 100, 400, 1.0f / sqrtf(100.0f), 16);
    scan_bits = 8;
    printf("# recall@1 flat 4-bit: %.4f (cos~0.9) %.4f (cos~0.55) %.4f (d=100)\n", r1, r2, r3);
    CHECK(r1 >= 0.999);
    CHECK(r2 >= 0.999);
    CHECK(r3 >= 0.999);
}

SC_TEST(index_namespace_isolation)
{
    const size_t d = 32;
    rng r = {5};
    sc_index *ix = mk(d, NULL, NULL);
    REQUIRE(ix);
    float *v = rand_unit(&r, 40, d);
    for (size_t i = 0; i < 20; i++) {
        CHECK_OK(sc_index_add(ix, "a", 9, i, v + i * d));
        CHECK_OK(sc_index_add(ix, "b", 9, 100 + i, v + i * d)); /* same vectors, same fp */
        CHECK_OK(sc_index_add(ix, "a", 10, 200 + i, v + (20 + i) * d));
    }
    sc_index_hit h[64];
    size_t n;
    for (size_t i = 0; i < 20; i++) {
        CHECK_OK(sc_index_search(ix, "a", 9, v + i * d, 64, h, &n));
        CHECK_EQ_INT(n, 20);
        for (size_t j = 0; j < n; j++) CHECK(h[j].id < 20);
        CHECK_OK(sc_index_search(ix, "b", 9, v + i * d, 64, h, &n));
        CHECK_EQ_INT(n, 20);
        for (size_t j = 0; j < n; j++) CHECK(h[j].id >= 100 && h[j].id < 120);
        CHECK_EQ_INT(h[0].id, 100 + i);
    }
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.partitions, 3);
    CHECK_EQ_INT(st.vectors, 60);
    /* Namespace "a" is a prefix-free distinct key: "ab" must not be hit. */
    CHECK_OK(sc_index_flush_ns(ix, "ab"));
    CHECK_OK(sc_index_flush_ns(ix, "a"));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.partitions, 1);
    CHECK_EQ_INT(st.vectors, 20);
    CHECK_OK(sc_index_search(ix, "a", 9, v, 5, h, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(sc_index_search(ix, "a", 10, v, 5, h, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(sc_index_search(ix, "b", 9, v, 5, h, &n));
    CHECK_EQ_INT(h[0].id, 100);
    /* Ids of the flushed namespace are gone from the id map too. */
    CHECK_EQ_INT(sc_index_remove(ix, 3), SC_ENOTFOUND);
    CHECK_OK(sc_index_remove(ix, 103));
    /* An id can move between partitions; the old copy disappears. */
    CHECK_OK(sc_index_add(ix, "b", 9, 7777, v));
    CHECK_OK(sc_index_add(ix, "c", 1, 7777, v));
    CHECK_OK(sc_index_search(ix, "b", 9, v, 1, h, &n));
    CHECK_EQ_INT(h[0].id, 100);
    CHECK_OK(sc_index_search(ix, "c", 1, v, 1, h, &n));
    CHECK_EQ_INT(h[0].id, 7777);
    sc_index_destroy(ix);
    free(v);
}

static void check_tombstones(const char *backend, const char *desc)
{
    const size_t d = 48, N = 5000;
    rng r = {77};
    sc_index *ix = mk(d, backend, desc);
    if (!ix) return;
    float *v = rand_unit(&r, N, d);
    for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, "t", 1, i, v + i * d));
    char *gone = sc_calloc(N, 1);
    /* Remove 60% in random order: several compactions run on the way. */
    size_t removed = 0;
    while (removed < N * 6 / 10) {
        size_t i = rnext(&r) % N;
        if (gone[i]) continue;
        CHECK_OK(sc_index_remove(ix, i));
        gone[i] = 1;
        removed++;
        if (removed % 500 == 0) {
            sc_index_hit h[8];
            size_t n;
            for (size_t t = 0; t < 50; t++) {
                size_t j = rnext(&r) % N;
                CHECK_OK(sc_index_search(ix, "t", 1, v + j * d, 8, h, &n));
                CHECK_EQ_INT(n, 8);
                for (size_t x = 0; x < n; x++) CHECK(!gone[h[x].id]);
                if (!gone[j]) CHECK_EQ_INT(h[0].id, j);
            }
        }
    }
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.vectors, N - removed);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
        int rc = sc_index_remove(ix, i);
        if (gone[i] ? rc != SC_ENOTFOUND : rc != 0) bad++;
        if (!gone[i]) CHECK_OK(sc_index_add(ix, "t", 1, i, v + i * d)); /* put it back */
    }
    CHECK_EQ_INT(bad, 0);
    for (size_t i = 0; i < N; i += 7) {
        sc_index_hit h[1];
        size_t n;
        CHECK_OK(sc_index_search(ix, "t", 1, v + i * d, 1, h, &n));
        CHECK_EQ_INT(n, 1);
        if (!gone[i]) CHECK_EQ_INT(h[0].id, i);
        else CHECK(!gone[h[0].id]);
    }
    /* Remove everything: the partition is dropped. */
    for (size_t i = 0; i < N; i++)
        if (!gone[i]) CHECK_OK(sc_index_remove(ix, i));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.vectors, 0);
    CHECK_EQ_INT(st.partitions, 0);
    CHECK_EQ_INT(st.bytes, 0);
    sc_index_destroy(ix);
    free(gone);
    free(v);
}

SC_TEST(index_tombstones_and_compaction)
{
    check_tombstones(NULL, NULL);
    scan_bits = 4;
    check_tombstones(NULL, NULL);
    ann_min_rows = 1024; /* the ANN path: built, retrained, remapped, dropped */
    check_tombstones(NULL, NULL);
    ann_min_rows = 0;
    scan_bits = 8;
}

/* Changes made to a partition while it compacts (deterministically, from
 * the compaction's test hook): removals, re-adds and new rows are carried
 * over; a flush meanwhile lets the compaction go. */
enum { HD = 16, HN = 400 };
static sc_index *hook_ix;
static const float *hook_v;
static int hook_mode, hook_runs;

static void compact_hook(void)
{
    if (hook_runs++) return;
    if (hook_mode == 1) {
        CHECK_OK(sc_index_flush_ns(hook_ix, "c"));
        return;
    }
    for (uint64_t id = 300; id < 320; id++) CHECK_OK(sc_index_remove(hook_ix, id));
    for (uint64_t id = 320; id < 330; id++) /* re-added with another id's vector */
        CHECK_OK(sc_index_add(hook_ix, "c", 0, id, hook_v + (id + 100) * HD));
    for (uint64_t id = 1000; id < 1050; id++)
        CHECK_OK(sc_index_add(hook_ix, "c", 0, id, hook_v + (id - 1000 + 450) * HD));
}

static void check_compact_meanwhile(const char *backend, const char *desc)
{
    rng r = {55};
    float *v = rand_unit(&r, 600, HD);
    for (hook_mode = 0; hook_mode < 2; hook_mode++) {
        sc_index *ix = mk(HD, backend, desc);
        if (!ix) break;
        for (uint64_t id = 0; id < HN; id++) CHECK_OK(sc_index_add(ix, "c", 0, id, v + id * HD));
        hook_ix = ix;
        hook_v = v;
        hook_runs = 0;
        sc_index__compact_hook = compact_hook;
        for (uint64_t id = 0; id <= HN / 4; id++) CHECK_OK(sc_index_remove(ix, id)); /* compacts */
        sc_index__compact_hook = NULL;
        CHECK_EQ_INT(hook_runs, 1);
        sc_index_stats st;
        sc_index_stats_get(ix, &st);
        sc_index_hit h[1];
        size_t n;
        if (hook_mode == 1) {
            CHECK_EQ_INT(st.partitions, 0);
            CHECK_EQ_INT(st.vectors, 0);
            CHECK_EQ_INT(st.bytes, 0);
            CHECK_OK(sc_index_search(ix, "c", 0, v, 1, h, &n));
            CHECK_EQ_INT(n, 0);
        } else {
            CHECK_EQ_INT(st.vectors, HN - (HN / 4 + 1) - 20 + 50);
            for (uint64_t id = 0; id < 1050; id++) {
                if (id >= HN && id < 1000) continue;
                int gone = id <= HN / 4 || (id >= 300 && id < 320);
                const float *vec = id >= 1000 ? v + (id - 1000 + 450) * HD
                                   : id >= 320 && id < 330 ? v + (id + 100) * HD : v + id * HD;
                CHECK_OK(sc_index_search(ix, "c", 0, vec, 1, h, &n));
                REQUIRE(n == 1);
                if (!gone) CHECK_EQ_INT(h[0].id, id);
                if (gone) CHECK(h[0].id > HN / 4 && !(h[0].id >= 300 && h[0].id < 320));
            }
            /* The id map was renumbered consistently: removing works. */
            size_t present = 0;
            for (uint64_t id = 0; id < 1050; id++)
                if (sc_index_remove(ix, id) == 0) present++;
            CHECK_EQ_INT(present, HN - (HN / 4 + 1) - 20 + 50);
            sc_index_stats_get(ix, &st);
            CHECK_EQ_INT(st.partitions, 0);
        }
        sc_index_destroy(ix);
    }
    free(v);
}

SC_TEST(index_compaction_with_changes_meanwhile)
{
    check_compact_meanwhile(NULL, NULL);
    scan_bits = 4;
    check_compact_meanwhile(NULL, NULL);
    ann_min_rows = 128;
    check_compact_meanwhile(NULL, NULL);
    ann_min_rows = 0;
    scan_bits = 8;
    check_compact_meanwhile("faiss", "Flat");
    check_compact_meanwhile("faiss", "HNSW32");
}

/* ---------------------------------------------------------------------
 * Concurrency: 2 searching threads, 1 writer adding and removing
 * ------------------------------------------------------------------- */

enum { CD = 64, CN = 3000 };

typedef struct {
    sc_index *ix;
    const float *v;
    atomic_int stop;
    atomic_long searches, writes, bad;
} conc;

static void *searcher(void *arg)
{
    conc *c = arg;
    rng r = {(uint64_t)(uintptr_t)&r | 1};
    while (!atomic_load(&c->stop)) {
        size_t i = rnext(&r) % CN;
        sc_index_hit h[10];
        size_t n = 0;
        static const char *const names[] = {"x", "y", "z", "x", "w", "x", "y", "x"};
        const char *ns = names[rnext(&r) & 7];
        if (sc_index_search(c->ix, ns, 3, c->v + i * CD, 10, h, &n) != 0) atomic_fetch_add(&c->bad, 1);
        for (size_t j = 0; j < n; j++) {
            uint64_t lo = ns[0] == 'x' ? 0 : ns[0] == 'w' ? 4 * CN : CN;
            if (h[j].id < lo || h[j].id >= lo + CN || !(h[j].score <= 1.0001f && h[j].score >= -1.0001f))
                atomic_fetch_add(&c->bad, 1);
            if (j && h[j - 1].score < h[j].score) atomic_fetch_add(&c->bad, 1);
        }
        /* Ids below CN stay in "x" for the whole test: always found. */
        if (ns[0] == 'x' && (n == 0 || h[0].id != i)) atomic_fetch_add(&c->bad, 1);
        /* Live rows, read beside the writers (the cache asks before a lookup). */
        size_t live = sc_index_rows(c->ix, ns, 3);
        if (live > 5 * CN || (ns[0] == 'x' && live < CN)) atomic_fetch_add(&c->bad, 1);
        atomic_fetch_add(&c->searches, 1);
    }
    return NULL;
}

static void *writer(void *arg)
{
    conc *c = arg;
    rng r = {99};
    while (!atomic_load(&c->stop)) {
        size_t i = rnext(&r) % CN;
        uint64_t id = CN + i;
        if (rnext(&r) % 3 == 0) {
            (void)sc_index_remove(c->ix, id);
        } else {
            sc_index_add(c->ix, (rnext(&r) & 1) ? "y" : "z", 3, id, c->v + i * CD);
        }
        if (rnext(&r) % 500 == 0) sc_index_flush_ns(c->ix, "z"); /* drops under searches */
        atomic_fetch_add(&c->writes, 1);
    }
    return NULL;
}

/* Second writer: fills partition "w" and empties it again, so that big
 * compactions (and the drop of the partition) run while the first writer
 * keeps changing other partitions and the searchers read. */
static void *bulk_writer(void *arg)
{
    conc *c = arg;
    rng r = {7};
    while (!atomic_load(&c->stop)) {
        for (size_t i = 0; i < CN && !atomic_load(&c->stop); i++) {
            sc_index_add(c->ix, "w", 3, 4 * CN + i, c->v + i * CD);
            atomic_fetch_add(&c->writes, 1);
        }
        for (size_t i = 0; i < CN && !atomic_load(&c->stop); i++) {
            size_t j = (i * 7919 + (rnext(&r) % 2)) % CN; /* a scattered order */
            (void)sc_index_remove(c->ix, 4 * CN + j);
            atomic_fetch_add(&c->writes, 1);
        }
        for (size_t i = 0; i < CN && !atomic_load(&c->stop); i++) (void)sc_index_remove(c->ix, 4 * CN + i);
    }
    return NULL;
}

static void run_concurrency(const char *backend, const char *desc, double secs)
{
    rng r = {1234};
    conc c = {.ix = mk(CD, backend, desc)};
    if (!c.ix) return;
    float *v = rand_unit(&r, CN, CD);
    c.v = v;
    for (size_t i = 0; i < CN; i++) CHECK_OK(sc_index_add(c.ix, "x", 3, i, v + i * CD));
    pthread_t t[4];
    pthread_create(&t[0], NULL, searcher, &c);
    pthread_create(&t[1], NULL, searcher, &c);
    pthread_create(&t[2], NULL, writer, &c);
    pthread_create(&t[3], NULL, bulk_writer, &c);
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("# %s: %ld searches, %ld writes, %ld bad\n", backend ? backend : "flat",
           atomic_load(&c.searches), atomic_load(&c.writes), atomic_load(&c.bad));
    CHECK_EQ_INT(atomic_load(&c.bad), 0);
    CHECK(atomic_load(&c.searches) > 10);
    CHECK(atomic_load(&c.writes) > 10);
    /* Afterwards the index is consistent: every id of "x" finds itself,
     * and the id map agrees with the partitions' contents. */
    sc_index_hit h[1];
    size_t n, bad = 0;
    for (size_t i = 0; i < CN; i++)
        if (sc_index_search(c.ix, "x", 3, v + i * CD, 1, h, &n) || n != 1 || h[0].id != i) bad++;
    CHECK_EQ_INT(bad, 0);
    sc_index_stats st;
    sc_index_stats_get(c.ix, &st);
    size_t present = 0;
    for (uint64_t id = 0; id < 5 * CN; id++)
        if (sc_index_remove(c.ix, id) == 0) present++;
    CHECK_EQ_INT(present, st.vectors);
    sc_index_stats_get(c.ix, &st);
    CHECK_EQ_INT(st.vectors, 0);
    CHECK_EQ_INT(st.partitions, 0);
    sc_index_destroy(c.ix);
    free(v);
}

SC_TEST(index_concurrent_search_and_write)
{
    run_concurrency(NULL, NULL, 1.0);
    scan_bits = 4;
    run_concurrency(NULL, NULL, 0.5);
    ann_min_rows = 512; /* IVF builds, tail merges and drops under searches */
    run_concurrency(NULL, NULL, 1.0);
    ann_min_rows = 0;
    scan_bits = 8;
}

SC_TEST(index_quantizers_match_scalar)
{
    static const size_t dims[] = {1, 15, 16, 17, 100, 128, 256, 384, 500, 512, 1024};
    rng r = {31337};
    float *v = sc_malloc(1024 * sizeof(float));
    int8_t a[1024], b[1024];
    uint8_t ca[SC_INDEX_I4_BYTES(1024)], cb[SC_INDEX_I4_BYTES(1024)];
    for (int k = 0; k < 2; k++) {
        int rc = sc_index_kernel_force(k ? "avx512vnni" : "auto");
        if (rc == SC_EUNSUPPORTED) continue;
        for (size_t di = 0; di < SC_COUNTOF(dims); di++)
            for (int t = 0; t < 50; t++) {
                size_t d = dims[di];
                for (size_t j = 0; j < d; j++) v[j] = rgauss(&r) / (t % 5 ? 8.0f : 0.5f);
                if (t == 7) v[d / 2] = NAN; /* NaN quantises to 0, alike */
                if (t == 9) v[0] = 3.0f;    /* past 1: clamped */
                if (t == 11) memset(v, 0, d * sizeof(float));
                sc_index_quantize(v, a, d);
                sc_index_quantize_scalar(v, b, d);
                CHECK(memcmp(a, b, d) == 0);
                if (t == 7) continue;
                float sa, sb;
                CHECK_EQ_INT(sc_index_quantize_i4(v, ca, d, &sa), SC_INDEX_I4_BYTES(d));
                sc_index_quantize_i4_scalar(v, cb, d, &sb);
                CHECK(memcmp(ca, cb, SC_INDEX_I4_BYTES(d)) == 0);
                CHECK(sa == sb);
            }
    }
    sc_index_kernel_force("auto");
    free(v);
}

/* ---------------------------------------------------------------------
 * The ANN path (IVF over the 4-bit codes)
 * ------------------------------------------------------------------- */

/* Clustered unit vectors: nc centres, each row a centre plus noise (real
 * embeddings cluster; uniform random ones do not). */
static float *clustered(rng *r, size_t n, size_t d, size_t nc, float sigma)
{
    float *cent = rand_unit(r, nc, d), *v = sc_malloc(n * d * sizeof(float));
    for (size_t i = 0; i < n; i++) near_dup(r, cent + (rnext(r) % nc) * d, v + i * d, d, sigma);
    free(cent);
    return v;
}

/* Exact top-k ids (double dot products) of q among the rows not gone. */
static void exact_topk(const float *db, size_t n, size_t d, const char *gone, const float *q, size_t k,
                       size_t *out)
{
    double best[16];
    for (size_t j = 0; j < k; j++) best[j] = -3, out[j] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (gone && gone[i]) continue;
        double s = dotd(db + i * d, q, d);
        if (s <= best[k - 1]) continue;
        size_t j = k - 1;
        while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = s;
        out[j] = i;
    }
}

/* recall@1 and @10 of ix's partition ("a", 1) against exact search. */
static void ann_recall(sc_index *ix, const float *v, size_t n, size_t d, rng *r, double *r1, double *r10)
{
    size_t hit1 = 0, hit10 = 0, nq = 300;
    float q[64];
    for (size_t t = 0; t < nq; t++) {
        near_dup(r, v + (rnext(r) % n) * d, q, d, 0.5f / sqrtf((float)d));
        size_t truth[10], m;
        exact_topk(v, n, d, NULL, q, 10, truth);
        sc_index_hit h[10];
        CHECK_OK(sc_index_search(ix, "a", 1, q, 10, h, &m));
        REQUIRE(m == 10);
        hit1 += h[0].id == truth[0];
        for (size_t i = 0; i < 10; i++)
            for (size_t j = 0; j < 10; j++) hit10 += h[i].id == truth[j];
    }
    *r1 = (double)hit1 / (double)nq;
    *r10 = (double)hit10 / (double)(nq * 10);
}

SC_TEST(index_ann_recall_and_upkeep)
{
    /* Rows arrive one by one: the IVF is trained at 2,000 live rows,
     * trained again at 4,000, 8,000 and 16,000, and rows added between
     * are scanned whole until there are enough to put into lists. */
    const size_t d = 64, N = 20000;
    rng r = {4242};
    sc_index *ix = mk_ann(d, 2000, 0), *ex = mk_ann(d, UINT32_MAX, 0); /* ex: the same rows, exact scan */
    REQUIRE(ix && ex);
    float *v = clustered(&r, N, d, 200, 1.0f / sqrtf((float)d));
    sc_index_stats st;
    for (size_t i = 0; i < N; i++) {
        CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
        CHECK_OK(sc_index_add(ex, "a", 1, i, v + i * d));
        if (i == 1998) {
            sc_index_stats_get(ix, &st);
            CHECK_EQ_INT(st.ann_partitions, 0);
        }
    }
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 1);
    CHECK_EQ_INT(st.vectors, N);
    double r1, r10, e1, e10;
    rng ra = r, rb = r; /* the same queries for both */
    ann_recall(ix, v, N, d, &ra, &r1, &r10);
    ann_recall(ex, v, N, d, &rb, &e1, &e10);
    r = ra;
    printf("# ANN recall@1 %.4f recall@10 %.4f; exact scan %.4f %.4f\n", r1, r10, e1, e10);
    CHECK(r1 >= 0.97);
    CHECK(r10 >= 0.95);
    /* Every row finds itself (its list is the one nearest its vector). */
    size_t self = 0;
    for (size_t i = 0; i < N; i += 7) {
        sc_index_hit h[1];
        size_t m;
        CHECK_OK(sc_index_search(ix, "a", 1, v + i * d, 1, h, &m));
        self += m == 1 && h[0].id == i;
    }
    CHECK_EQ_INT(self, (N + 6) / 7);
    /* Probing every list finds what the exact scan finds. */
    sc_index_destroy(ix);
    REQUIRE((ix = mk_ann(d, 2000, 1024)));
    for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    size_t same = 0;
    float q[64];
    for (size_t t = 0; t < 300; t++) {
        near_dup(&r, v + (rnext(&r) % N) * d, q, d, 1.5f / sqrtf((float)d));
        sc_index_hit ha[10], hb[10];
        size_t na, nb;
        CHECK_OK(sc_index_search(ix, "a", 1, q, 10, ha, &na));
        CHECK_OK(sc_index_search(ex, "a", 1, q, 10, hb, &nb));
        same += na == nb && ha[0].id == hb[0].id;
    }
    CHECK(same >= 297);
    sc_index_destroy(ix);
    sc_index_destroy(ex);
    free(v);
}

/* sc_index_stop: no IVF build starts after it, one under way gives up,
 * and the partition keeps answering (exactly) either way. */
typedef struct build_job {
    sc_index *ix;
} build_job;

/* Every 97th row of v (ids = row numbers, partition ("a", 1)) is its own
 * nearest neighbour. */
static void finds_every_97th(sc_index *ix, const float *v, size_t d, size_t n)
{
    for (size_t i = 0; i < n; i += 97) {
        sc_index_hit h[1];
        size_t m;
        CHECK_OK(sc_index_search(ix, "a", 1, v + i * d, 1, h, &m));
        CHECK(m == 1 && h[0].id == i);
    }
}

static void *bulk_off(void *arg)
{
    sc_index_bulk_load(((build_job *)arg)->ix, 0);
    return NULL;
}

SC_TEST(index_ann_stop_gives_builds_up)
{
    const size_t d = 32, N = 40000;
    rng r = {7};
    float *v = clustered(&r, N, d, 80, 3.0f / sqrtf((float)d));
    sc_index_stats st;
    /* stopped before the start-up build: none is made, now or later */
    sc_index *ix = mk_ann(d, 1000, 0);
    REQUIRE(ix);
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < N / 4; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    sc_index_stop(ix);
    sc_index_bulk_load(ix, 0);
    for (size_t i = N / 4; i < N; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 0);
    CHECK_EQ_INT(st.vectors, N);
    finds_every_97th(ix, v, d, N);
    sc_index_destroy(ix);
    /* stopped while the build runs (wherever it is: k-means, assignment,
     * or already done): every row is still found */
    ix = mk_ann(d, 1000, 0);
    REQUIRE(ix);
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    build_job j = {ix};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, bulk_off, &j) == 0);
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    sc_index_stop(ix);
    pthread_join(th, NULL);
    sc_index_stats_get(ix, &st);
    printf("# stopped after 2 ms: %llu ANN partitions\n", (unsigned long long)st.ann_partitions);
    finds_every_97th(ix, v, d, N);
    sc_index_destroy(ix);
    /* k-means itself gives up when the flag is set, and finishes when not */
    atomic_int stop = 1;
    float *cent = malloc(sizeof(float) * 16 * d);
    CHECK_EQ_INT(sc_index__kmeans(v, 4000, d, 16, 1, &stop, 1, cent), SC_ECLOSED);
    atomic_store(&stop, 0);
    CHECK_OK(sc_index__kmeans(v, 4000, d, 16, 1, &stop, 1, cent));
    CHECK_OK(sc_index__kmeans(v, 4000, d, 16, 1, NULL, 2, cent));
    free(cent);
    free(v);
}

/* Two threads build the same IVF as one: k-means (a fixed half of the
 * sample per thread), the assignment and the list fill (sc_index__par_min lowered so
 * that a small partition takes the two-thread path), tombstones included. */
static sc_index *ann_built(const float *v, size_t n, size_t d, size_t par_min)
{
    size_t saved = sc_index__par_min;
    sc_index__par_min = par_min;
    sc_index *ix = mk_ann(d, 1000, 0);
    if (!ix) return NULL;
    /* Built at the end of a bulk load from the first 12,000 rows, then
     * the rest added one by one: past 4,096 unassigned rows they are put
     * into the existing lists (the fill after old lists' rows). */
    size_t first = n < 12000 ? n : 12000;
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < first; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    for (size_t i = 0; i < first; i += 13) CHECK_OK(sc_index_remove(ix, i));
    sc_index_bulk_load(ix, 0);
    for (size_t i = first; i < n; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    sc_index__par_min = saved;
    return ix;
}

/* The build's many-row assignment picks the list sc_index__nearest picks,
 * for every row, with every kernel: dims that are not whole quads, list
 * counts that are not whole groups of 64, row counts that are not whole
 * groups of 4, negative-only dot products, and exact ties (repeated
 * centroids: the first one wins). */
SC_TEST(index_nearest_rows_match_nearest)
{
    static const size_t dims[] = {1, 3, 5, 32, 100, 512, 513};
    static const uint32_t lists[] = {1, 16, 17, 64, 100, 128, 256, 1024};
    static const char *kernels[] = {"scalar", "avx2", "avx512vnni"};
    rng r = {0x5eed51};
    const size_t n = 23;
    int8_t *c8 = sc_malloc((size_t)1024 * 513), *q = sc_malloc(n * 513);
    uint32_t got[23];
    size_t tested = 0, rows = 0, ties = 0, packed = 0;
    for (size_t ki = 0; ki < SC_COUNTOF(kernels); ki++) {
        int rc = sc_index_kernel_force(kernels[ki]);
        if (rc == SC_EUNSUPPORTED) continue;
        REQUIRE(rc == 0);
        tested++;
        for (size_t di = 0; di < SC_COUNTOF(dims); di++)
            for (size_t li = 0; li < SC_COUNTOF(lists); li++) {
                const size_t d = dims[di];
                const uint32_t nl = lists[li];
                for (size_t i = 0; i < (size_t)nl * d; i++) c8[i] = (int8_t)((int)(rnext(&r) % 255) - 127);
                /* Repeats: list 3k+2 is a copy of list k (ties). */
                for (uint32_t l = 2; l < nl; l += 3) memcpy(c8 + (size_t)l * d, c8 + (size_t)(l / 3) * d, d);
                for (size_t i = 0; i < n * d; i++) q[i] = (int8_t)((int)(rnext(&r) % 255) - 127);
                /* Row 0 is a centroid (copied), row 1 the negated list 0: its
                 * best dot may be negative. */
                memcpy(q, c8 + (size_t)(rnext(&r) % nl) * d, d);
                for (size_t i = 0; i < d; i++) q[d + i] = (int8_t)-c8[i];
                sc_index__cents c;
                REQUIRE(sc_index__cents_init(&c, c8, nl, d) == 0);
                CHECK((c.packed != NULL) == (strcmp(kernels[ki], "avx512vnni") == 0));
                packed += c.packed != NULL;
                for (size_t m = 0; m <= n; m += (m < 5 ? 1 : 9)) {
                    sc_index__nearest_rows(&c, q, m, got);
                    for (size_t i = 0; i < m; i++) {
                        uint32_t want = sc_index__nearest(c8, nl, d, q + i * d);
                        if (got[i] != want) {
                            printf("# %s d=%zu nlist=%u row %zu: %u, want %u\n", kernels[ki], d, nl, i, got[i], want);
                            CHECK(0);
                        }
                        rows++;
                        int32_t dots[1024], hi = INT32_MIN, at = 0;
                        sc_index_dot_i8(q + i * d, c8, nl, d, dots);
                        for (uint32_t l = 0; l < nl; l++) {
                            at = dots[l] > hi ? 1 : at + (dots[l] == hi);
                            hi = dots[l] > hi ? dots[l] : hi;
                        }
                        ties += at > 1;
                    }
                }
                sc_index__cents_free(&c);
            }
    }
    sc_index_kernel_force("auto");
    CHECK(tested >= 1);
    CHECK(rows > 1000);
    CHECK(ties > 0);
    printf("# %zu kernels, %zu rows, %zu with tied lists; %zu packed (VNNI) sets\n", tested, rows, ties, packed);
    if (!packed) printf("# no AVX-512 VNNI here: only the one-row path was compared\n");
    int32_t bad = sc_index__cents_init(&(sc_index__cents){0}, c8, 0, 8);
    CHECK_EQ_INT(bad, SC_EINVAL);
    free(c8);
    free(q);
}

/* 1 when two searches gave the same hits, ids and scores, in order. */
static int same_hits(const sc_index_hit *a, size_t na, const sc_index_hit *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].id != b[i].id || a[i].score != b[i].score) return 0;
    return 1;
}

SC_TEST(index_ann_two_threads_build_the_same)
{
    const size_t d = 32, N = 17000;
    rng r = {2027};
    float *v = clustered(&r, N, d, 60, 3.0f / sqrtf((float)d));
    float *c1 = malloc(sizeof(float) * 64 * d), *c2 = malloc(sizeof(float) * 64 * d);
    REQUIRE(c1 && c2);
    CHECK_OK(sc_index__kmeans(v, 8192, d, 64, 5, NULL, 1, c1));
    CHECK_OK(sc_index__kmeans(v, 8192, d, 64, 5, NULL, 2, c2));
    CHECK(memcmp(c1, c2, sizeof(float) * 64 * d) == 0);
    sc_index *one = ann_built(v, N, d, SIZE_MAX), *two = ann_built(v, N, d, 1);
    REQUIRE(one && two);
    sc_index_stats sa, sb;
    sc_index_stats_get(one, &sa);
    sc_index_stats_get(two, &sb);
    CHECK_EQ_INT(sa.ann_partitions, 1);
    CHECK_EQ_INT(sb.ann_partitions, 1);
    CHECK_EQ_INT(sa.bytes, sb.bytes);
    size_t differ = 0;
    float q[32];
    for (size_t t = 0; t < 300; t++) {
        near_dup(&r, v + (rnext(&r) % N) * d, q, d, 1.0f / sqrtf((float)d));
        sc_index_hit ha[10], hb[10];
        size_t na, nb;
        CHECK_OK(sc_index_search(one, "a", 1, q, 10, ha, &na));
        CHECK_OK(sc_index_search(two, "a", 1, q, 10, hb, &nb));
        differ += !same_hits(ha, na, hb, nb);
        for (size_t i = 0; i < na; i++) CHECK(ha[i].id >= 12000 || ha[i].id % 13 != 0); /* removed rows stay out */
    }
    CHECK_EQ_INT(differ, 0);
    sc_index_destroy(one);
    sc_index_destroy(two);
    free(c1);
    free(c2);
    free(v);
}

/* Searches of ix split with the shared helper (common/pair.h) and unsplit
 * give the same hits (these rows have no equal scores, where the candidate
 * kept at the cut could depend on the order), and the helper does take
 * halves (when there is one). */
static void split_same(sc_index *ix, rng *r, const float *v, size_t n, size_t d)
{
    sc_pair *pair = sc_pair_shared();
    unsigned long h0 = pair ? sc_pair_helped(pair) : 0;
    size_t differ = 0, found = 0;
    float q[32];
    for (size_t t = 0; t < 300; t++) {
        near_dup(r, v + (rnext(r) % n) * d, q, d, 1.0f / sqrtf((float)d));
        sc_index_hit ha[10], hb[10];
        size_t na, nb;
        sc_index__split_off = 0;
        CHECK_OK(sc_index_search(ix, "a", 1, q, 10, ha, &na));
        sc_index__split_off = 1;
        CHECK_OK(sc_index_search(ix, "a", 1, q, 10, hb, &nb));
        differ += !same_hits(ha, na, hb, nb);
        found += na;
    }
    sc_index__split_off = 0;
    CHECK_EQ_INT(differ, 0);
    CHECK(found > 2000);
    if (pair) {
        /* A half is small here, and the helper must wake to take one:
         * search on (up to 5 s) until it has. */
        sc_index_hit hh[10];
        size_t nh;
        for (int t = 0; t < 500000 && sc_pair_helped(pair) == h0; t++)
            CHECK_OK(sc_index_search(ix, "a", 1, q, 10, hh, &nh));
        printf("# the helper scanned %lu halves\n", sc_pair_helped(pair) - h0);
        CHECK(sc_pair_helped(pair) > h0);
    } else {
        printf("# no helper thread here (one CPU or SC_EMBED_PAIR=0): both paths unsplit\n");
    }
}

/* A lone ANN search scans every other probed list on the helper thread
 * and merges the two heaps. */
SC_TEST(index_ann_split_search_same_hits)
{
    const size_t d = 32, N = 17000;
    rng r = {4049};
    float *v = clustered(&r, N, d, 60, 3.0f / sqrtf((float)d));
    sc_index *ix = ann_built(v, N, d, SIZE_MAX);
    REQUIRE(ix);
    split_same(ix, &r, v, N, d);
    sc_index_destroy(ix);
    free(v);
}

/* The exact 4-bit scan of a big partition (no IVF; 32-d codes are 64
 * bytes, so 4 MiB is 65,536 rows) splits its rows in two halves the same
 * way; tombstones on both sides of the middle. The rows at the edges of
 * the halves (the first, both sides of the middle, the last) are each
 * found first when searched for. */
SC_TEST(index_exact_split_search_same_hits)
{
    const size_t d = 32, N = 65601, mid = N / 2;
    rng r = {733};
    float *v = clustered(&r, N, d, 40, 3.0f / sqrtf((float)d));
    sc_index *ix = mk_ann(d, UINT32_MAX, 0);
    REQUIRE(ix);
    for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    for (size_t i = 3; i < N; i += 19) CHECK_OK(sc_index_remove(ix, i));
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 0);
    split_same(ix, &r, v, N, d);
    static const size_t edge[] = {0, 1, mid - 1, mid, mid + 1, N - 2, N - 1};
    for (size_t e = 0; e < SC_COUNTOF(edge); e++) {
        sc_index_hit h[4];
        size_t nh;
        CHECK_OK(sc_index_search(ix, "a", 1, v + edge[e] * d, 4, h, &nh));
        CHECK(nh > 0 && h[0].id == edge[e]);
    }
    sc_index_destroy(ix);
    free(v);
}

SC_TEST(index_ann_bulk_load_builds_once_at_the_end)
{
    const size_t d = 32, N = 6000;
    rng r = {99};
    sc_index *ix = mk_ann(d, 1000, 0);
    REQUIRE(ix);
    float *v = clustered(&r, N, d, 50, 3.0f / sqrtf((float)d));
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, i % 2 ? "a" : "b", 1, i, v + i * d));
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 0);
    uint64_t before = st.bytes;
    sc_index_bulk_load(ix, 0);
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 2);
    /* The lists hold the codes; the chunks they cover gave theirs back
     * (only the last, partly filled chunk of each partition keeps them). */
    CHECK(st.bytes < before * 5 / 4);
    for (size_t i = 0; i < N; i += 5) {
        sc_index_hit h[1];
        size_t m;
        CHECK_OK(sc_index_search(ix, i % 2 ? "a" : "b", 1, v + i * d, 1, h, &m));
        CHECK(m == 1 && h[0].id == i);
    }
    /* "b" emptied below half the ANN size: a compaction on the way puts
     * it back on the exact scan; emptied, it is dropped. */
    for (size_t i = 0; i < N; i += 2) {
        CHECK_OK(sc_index_remove(ix, i));
        if (i == 5400) {
            sc_index_stats_get(ix, &st);
            CHECK_EQ_INT(st.ann_partitions, 1);
            CHECK_EQ_INT(st.partitions, 2);
        }
    }
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.partitions, 1);
    CHECK_EQ_INT(st.ann_partitions, 1);
    CHECK_OK(sc_index_flush_ns(ix, "a"));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.partitions, 0);
    CHECK_EQ_INT(st.bytes, 0);
    sc_index_destroy(ix);
    free(v);
}

/* ---------------------------------------------------------------------
 * FAISS backend
 * ------------------------------------------------------------------- */

SC_TEST(index_faiss_flat_matches_flat)
{
    const size_t d = 128, N = 4000;
    rng r = {321};
    sc_index *a = mk(d, "flat", NULL), *b = mk(d, "faiss", "Flat");
    REQUIRE(a && b);
    float *v = rand_unit(&r, N, d);
    for (size_t i = 0; i < N; i++) {
        CHECK_OK(sc_index_add(a, "n", 1, i, v + i * d));
        CHECK_OK(sc_index_add(b, "n", 1, i, v + i * d));
    }
    for (size_t i = 0; i < N; i += 3) {
        CHECK_OK(sc_index_remove(a, i));
        CHECK_OK(sc_index_remove(b, i));
    }
    float q[128];
    size_t same = 0, total = 300;
    for (size_t t = 0; t < total; t++) {
        near_dup(&r, v + (rnext(&r) % N) * d, q, d, (t % 2 ? 1.0f : 0.3f) / sqrtf((float)d));
        sc_index_hit ha[5], hb[5];
        size_t na, nb;
        CHECK_OK(sc_index_search(a, "n", 1, q, 5, ha, &na));
        CHECK_OK(sc_index_search(b, "n", 1, q, 5, hb, &nb));
        CHECK_EQ_INT(na, 5);
        CHECK_EQ_INT(nb, 5);
        if (na && nb && ha[0].id == hb[0].id) same++;
        if (na && nb) CHECK(fabsf(ha[0].score - hb[0].score) < 1e-4f);
        for (size_t j = 0; j < nb; j++) CHECK(hb[j].id % 3 != 0);
    }
    CHECK_EQ_INT(same, total);
    sc_index_stats st;
    sc_index_stats_get(b, &st);
    CHECK_EQ_INT(st.vectors, N - (N + 2) / 3);
    sc_index_destroy(a);
    sc_index_destroy(b);
    free(v);
}

SC_TEST(index_faiss_hnsw)
{
    double r1 = recall_at_1("faiss", "HNSW32", 5000, 64, 200, 0.5f / 8.0f, 21);
    printf("# recall@1 faiss HNSW32: %.4f\n", r1);
    CHECK(r1 >= 0.98);
    check_tombstones("faiss", "HNSW32");
}

SC_TEST(index_faiss_ivf_trains_itself)
{
    /* IVF16,Flat needs training: below the first attempt the partition is
     * scanned exactly; past it the FAISS index is trained and used. */
    const size_t d = 32;
    rng r = {8};
    sc_index *ix = mk(d, "faiss", "IVF16,Flat");
    REQUIRE(ix);
    float *v = rand_unit(&r, 2000, d);
    sc_index_hit h[3];
    size_t n;
    for (size_t i = 0; i < 2000; i++) {
        CHECK_OK(sc_index_add(ix, "i", 0, i, v + i * d));
        if (i == 100 || i == 1999) {
            for (size_t j = 0; j <= i; j += 17) {
                CHECK_OK(sc_index_search(ix, "i", 0, v + j * d, 3, h, &n));
                CHECK(n >= 1);
                if (n) CHECK_EQ_INT(h[0].id, j);
            }
        }
    }
    sc_index_destroy(ix);
    free(v);
}

SC_TEST(index_faiss_concurrent)
{
    run_concurrency("faiss", "Flat", 0.5);
}

/* A partition whose IVF is dropped by an add (live rows under half of
 * ann_min, no compaction due) gets its chunks' scan codes back: searches
 * go on on the exact scan (this crashed: the codes were in the IVF only). */
SC_TEST(index_ann_dropped_by_an_add)
{
    const size_t d = 32, N = 6000;
    rng r = {2024};
    sc_index *ix = mk_ann(d, 1000, 0);
    REQUIRE(ix);
    float *v = clustered(&r, N + 1, d, 40, 3.0f / sqrtf((float)d));
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < N; i++) CHECK_OK(sc_index_add(ix, "a", 1, i, v + i * d));
    sc_index_bulk_load(ix, 0);
    sc_index_stats st;
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 1);
    for (size_t i = 0; i < N - 498; i++) CHECK_OK(sc_index_remove(ix, i));
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 1); /* the last compaction kept it */
    CHECK_OK(sc_index_add(ix, "a", 1, N, v + N * d)); /* drops the IVF */
    sc_index_stats_get(ix, &st);
    CHECK_EQ_INT(st.ann_partitions, 0);
    CHECK_EQ_INT(st.vectors, 499);
    size_t self = 0;
    for (size_t i = N - 498; i <= N; i++) {
        sc_index_hit h[1];
        size_t m;
        CHECK_OK(sc_index_search(ix, "a", 1, v + i * d, 1, h, &m));
        self += m == 1 && h[0].id == i;
    }
    CHECK_EQ_INT(self, 499);
    sc_index_destroy(ix);
    free(v);
}
