/* The coarse quantiser of the flat backend's ANN path (index.c decides
 * when a partition uses it and keeps its lists): spherical k-means over a
 * sample of a partition's rows, and the nearest-centroid search used to
 * put rows into lists.
 *
 * Training is Lloyd's algorithm on the unit sphere: each sample row goes
 * to the centroid with the largest dot product, each centroid becomes the
 * normalised sum of its rows (in double), a centroid left without rows is
 * moved onto the sample row its current centroid fits worst. The starting
 * centroids are sample rows picked by a seeded xorshift, so a build is
 * deterministic for the same rows. Every assignment, in training and in
 * the build, compares int8 copies of the row and of the centroids (a row
 * that lands in a near-tied neighbour's list is still found when that
 * list is probed), many rows at a time (sc_index__nearest_rows, below):
 * integer sums, so splitting the rows over two threads gives the same
 * lists as one thread. */
#include "index/index.h"
#include "index/index_int.h"
#include "common/alloc.h"
#include "common/err.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ITERS 8
#define PAR_ROWS 4096  /* sample rows from which two threads assign */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void unit(float *v, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++) s += (double)v[i] * v[i];
    if (!(s > 0)) return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < dim; i++) v[i] *= inv;
}

/* One thread's share of an iteration's assignment step: rows [from, to)
 * of the int8 sample to their nearest centroid. */
typedef struct kjob {
    const sc_index__cents *cents;
    const int8_t *x8;
    size_t dim, from, to;
    uint32_t *best;
} kjob;

static void *kmeans_assign(void *arg)
{
    const kjob *j = arg;
    sc_index__nearest_rows(j->cents, j->x8 + j->from * j->dim, j->to - j->from, j->best + j->from);
    return NULL;
}

int sc_index__kmeans(const float *x, size_t n, size_t dim, size_t k, uint64_t seed, atomic_int *stop,
                     int threads, float *cent)
{
    if (!x || !cent || k == 0 || n < k || k > SC_INDEX_IVF_MAX_LISTS || dim == 0 || dim > SC_INDEX_MAX_DIM)
        return SC_EINVAL;
    int rc = 0;
    /* Distinct starting rows: a partial Fisher-Yates shuffle of 0..n-1. */
    uint32_t *perm = sc_malloc(n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    uint64_t s = seed | 1;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(xorshift(&s) % (n - i));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        memcpy(cent + i * dim, x + (size_t)perm[i] * dim, dim * sizeof(float));
    }
    free(perm);

    int8_t *x8 = sc_malloc(n * dim), *c8 = sc_malloc(k * dim);
    for (size_t i = 0; i < n; i++) sc_index_quantize(x + i * dim, x8 + i * dim, dim);
    double *sum = sc_malloc(k * dim * sizeof(double));
    uint32_t *cnt = sc_malloc(k * sizeof(uint32_t));
    uint32_t *best = sc_malloc(n * sizeof(uint32_t));
    float *fit = sc_malloc(n * sizeof(float));
    for (int it = 0; it < ITERS; it++) {
        if (stop && atomic_load(stop)) {
            rc = SC_ECLOSED;
            break;
        }
        for (size_t c = 0; c < k; c++) sc_index_quantize(cent + c * dim, c8 + c * dim, dim);
        sc_index__cents cs;
        sc_index__cents_init(&cs, c8, (uint32_t)k, dim);
        /* Two threads from PAR_ROWS rows, each on a fixed half: integer
         * dot products, so the same lists as one thread. */
        size_t mid = threads > 1 && n >= PAR_ROWS ? n / 2 : n;
        kjob jobs[2] = {{&cs, x8, dim, 0, mid, best}, {&cs, x8, dim, mid, n, best}};
        pthread_t th;
        int two = mid < n && pthread_create(&th, NULL, kmeans_assign, &jobs[1]) == 0;
        kmeans_assign(&jobs[0]);
        if (two) pthread_join(th, NULL);
        else kmeans_assign(&jobs[1]);
        sc_index__cents_free(&cs);
        memset(sum, 0, k * dim * sizeof(double));
        memset(cnt, 0, k * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) {
            double *d = sum + (size_t)best[i] * dim;
            const float *v = x + i * dim;
            for (size_t j = 0; j < dim; j++) d[j] += v[j];
            cnt[best[i]]++;
        }
        /* How well each row fits its centroid, for the empty ones below
         * (against the centroids it was assigned to, before they move). */
        int empty = 0;
        for (size_t c = 0; c < k; c++) empty |= cnt[c] == 0;
        for (size_t i = 0; empty && i < n; i++)
            fit[i] = sc_index_dot_f32(x + i * dim, cent + (size_t)best[i] * dim, dim);
        for (size_t c = 0; c < k; c++) {
            float *cv = cent + c * dim;
            if (cnt[c]) {
                for (size_t j = 0; j < dim; j++) cv[j] = (float)sum[c * dim + j];
                unit(cv, dim);
                continue;
            }
            /* Empty: take the row that fits its centroid worst (and stop
             * it from being taken twice). */
            size_t w = 0;
            for (size_t i = 1; i < n; i++)
                if (fit[i] < fit[w]) w = i;
            memcpy(cv, x + w * dim, dim * sizeof(float));
            fit[w] = INFINITY;
        }
    }
    free(x8);
    free(c8);
    free(sum);
    free(cnt);
    free(best);
    free(fit);
    return rc;
}

uint32_t sc_index__nearest(const int8_t *c8, uint32_t nlist, size_t dim, const int8_t *q8)
{
    int32_t sc[SC_INDEX_IVF_MAX_LISTS];
    sc_index_dot_i8(q8, c8, nlist, dim, sc);
    uint32_t bi = 0;
    int32_t best = sc[0];
    for (uint32_t c = 1; c < nlist; c++) { /* without branches: the winner moves unpredictably */
        int gt = sc[c] > best;
        best = gt ? sc[c] : best;
        bi = gt ? c : bi;
    }
    return bi;
}

/* ---------------------------------------------------------------------
 * Many rows' nearest centroids (the build's assignment step)
 *
 * sc_index__nearest streams all nlist centroids past one row: 128 KiB of
 * L2 reads and a horizontal sum per 4 centroids for every row. Here four
 * rows share each load, and 16 centroids sit in one register's lanes, so
 * no horizontal sums are needed until the row's winner is picked. The
 * centroids are packed once per build in the layout of vpdpbusd: panel
 * p (centroids 16p..16p+15), quad j (dims 4j..4j+3) is 64 bytes, centroid
 * i's four bytes at 4i. The row is the unsigned operand (byte ^ 0x80 =
 * byte + 128), so each lane gets dot + 128 * sum(centroid); the lanes
 * start at -128 * sum(centroid), and padding lanes (nlist rounded up to
 * 64) at a value no dot reaches. Integer sums, the first of equal maxima
 * wins: the same list as sc_index__nearest for every row.
 * ------------------------------------------------------------------- */

#define CP_GROUP 64 /* centroids per pass over a row block: 4 panels of 16 */
#define CP_NEVER (-(1 << 30))

int sc_index__cents_init(sc_index__cents *c, const int8_t *c8, uint32_t nlist, size_t dim)
{
    memset(c, 0, sizeof *c);
    if (!c8 || nlist == 0 || nlist > SC_INDEX_IVF_MAX_LISTS || dim == 0 || dim > SC_INDEX_MAX_DIM)
        return SC_EINVAL;
    c->c8 = c8;
    c->nlist = nlist;
    c->dim = (uint32_t)dim;
    if (strcmp(sc_index_kernel_name(), "avx512vnni") != 0) return 0;
    const size_t dim4 = (dim + 3) / 4, npad = (nlist + CP_GROUP - 1) / CP_GROUP * CP_GROUP;
    c->npad = (uint32_t)npad;
    c->packed = sc_calloc(npad * dim4 * 4, 1);
    c->init = sc_malloc(npad * sizeof(int32_t));
    for (size_t l = 0; l < npad; l++) {
        if (l >= nlist) {
            c->init[l] = CP_NEVER;
            continue;
        }
        int32_t s = 0;
        const int8_t *row = c8 + l * dim;
        int8_t *panel = c->packed + (l / 16) * dim4 * 64 + (l % 16) * 4;
        for (size_t d = 0; d < dim; d++) {
            s += row[d];
            panel[(d / 4) * 64 + d % 4] = row[d];
        }
        c->init[l] = -128 * s;
    }
    return 0;
}

void sc_index__cents_free(sc_index__cents *c)
{
    free(c->packed);
    free(c->init);
    memset(c, 0, sizeof *c);
}

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* One row's broadcast quad into the accumulators of four panels (b0..b3
 * in scope), and one row's 64 sums stored: the steps of group4_vnni. */
#define ROW4(a0, a1, a2, a3, qr)                \
    do {                                        \
        __m512i x = _mm512_set1_epi32((int)(qr)); \
        a0 = _mm512_dpbusd_epi32(a0, x, b0);    \
        a1 = _mm512_dpbusd_epi32(a1, x, b1);    \
        a2 = _mm512_dpbusd_epi32(a2, x, b2);    \
        a3 = _mm512_dpbusd_epi32(a3, x, b3);    \
    } while (0)
#define STORE4(row, a0, a1, a2, a3)               \
    do {                                          \
        _mm512_storeu_si512(s[row], a0);          \
        _mm512_storeu_si512(s[row] + 16, a1);     \
        _mm512_storeu_si512(s[row] + 32, a2);     \
        _mm512_storeu_si512(s[row] + 48, a3);     \
    } while (0)

/* Group g's 64 sums for rows q0..q3 (dim4 quads each, as unsigned: byte
 * ^ 0x80, zero-padded quads as 0x80808080) into s[row][0..63]. Written out
 * by hand so that the 16 accumulators, 4 centroid panels and a broadcast
 * stay in registers. */
VNNI_TARGET static void group4_vnni(const sc_index__cents *c, size_t g, const uint32_t *q0,
                                    const uint32_t *q1, const uint32_t *q2, const uint32_t *q3,
                                    int32_t s[4][CP_GROUP])
{
    const size_t dim4 = (c->dim + 3) / 4;
    const int8_t *p0 = c->packed + (g / 16) * dim4 * 64;
    const int8_t *p1 = p0 + dim4 * 64, *p2 = p1 + dim4 * 64, *p3 = p2 + dim4 * 64;
    __m512i a00 = _mm512_loadu_si512(c->init + g), a01 = _mm512_loadu_si512(c->init + g + 16);
    __m512i a02 = _mm512_loadu_si512(c->init + g + 32), a03 = _mm512_loadu_si512(c->init + g + 48);
    __m512i a10 = a00, a11 = a01, a12 = a02, a13 = a03, a20 = a00, a21 = a01, a22 = a02, a23 = a03;
    __m512i a30 = a00, a31 = a01, a32 = a02, a33 = a03;
    for (size_t j = 0; j < dim4; j++) {
        __m512i b0 = _mm512_loadu_si512(p0 + j * 64), b1 = _mm512_loadu_si512(p1 + j * 64);
        __m512i b2 = _mm512_loadu_si512(p2 + j * 64), b3 = _mm512_loadu_si512(p3 + j * 64);
        ROW4(a00, a01, a02, a03, q0[j]);
        ROW4(a10, a11, a12, a13, q1[j]);
        ROW4(a20, a21, a22, a23, q2[j]);
        ROW4(a30, a31, a32, a33, q3[j]);
    }
    STORE4(0, a00, a01, a02, a03);
    STORE4(1, a10, a11, a12, a13);
    STORE4(2, a20, a21, a22, a23);
    STORE4(3, a30, a31, a32, a33);
}

/* Rows q[0..3] to their nearest centroids, out[0..3]. */
VNNI_TARGET static void near4_vnni(const sc_index__cents *c, const uint32_t *const q[4], uint32_t out[4])
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i bv[4], bi[4];
    int32_t s[4][CP_GROUP];
    for (int r = 0; r < 4; r++) {
        bv[r] = _mm512_set1_epi32(INT32_MIN);
        bi[r] = _mm512_setzero_si512();
    }
    for (size_t g = 0; g < c->npad; g += CP_GROUP) {
        group4_vnni(c, g, q[0], q[1], q[2], q[3], s);
        /* Per lane, the first greatest so far (lists g + 16k + lane). */
        for (int r = 0; r < 4; r++)
            for (int k = 0; k < 4; k++) {
                __m512i a = _mm512_loadu_si512(s[r] + 16 * k);
                __mmask16 m = _mm512_cmpgt_epi32_mask(a, bv[r]);
                bv[r] = _mm512_mask_mov_epi32(bv[r], m, a);
                bi[r] = _mm512_mask_mov_epi32(bi[r], m, _mm512_add_epi32(lane, _mm512_set1_epi32((int)(g + 16 * k))));
            }
    }
    /* Each lane holds its first maximum; the smallest list among the lanes
     * at the overall maximum is the first one overall. */
    for (int r = 0; r < 4; r++) {
        int32_t mx = _mm512_reduce_max_epi32(bv[r]);
        __mmask16 at = _mm512_cmpeq_epi32_mask(bv[r], _mm512_set1_epi32(mx));
        out[r] = (uint32_t)_mm512_mask_reduce_min_epu32(at, bi[r]);
    }
}

void sc_index__nearest_rows(const sc_index__cents *c, const int8_t *q, size_t n, uint32_t *out)
{
    if (!c->packed) {
        for (size_t i = 0; i < n; i++) out[i] = sc_index__nearest(c->c8, c->nlist, c->dim, q + i * c->dim);
        return;
    }
    const size_t dim = c->dim, dim4 = (dim + 3) / 4;
    uint32_t buf[4][SC_INDEX_MAX_DIM / 4 + 1];
    for (size_t i = 0; i < n; i += 4) {
        const uint32_t *qu[4] = {buf[0], buf[1], buf[2], buf[3]};
        uint32_t res[4];
        for (size_t r = 0; r < 4; r++) {
            uint8_t *b = (uint8_t *)buf[r];
            if (i + r < n)
                for (size_t d = 0; d < dim; d++) b[d] = (uint8_t)q[(i + r) * dim + d] ^ 0x80;
            else
                memset(b, 0x80, dim);
            memset(b + dim, 0x80, dim4 * 4 - dim);
        }
        near4_vnni(c, qu, res);
        for (size_t r = 0; r < 4 && i + r < n; r++) out[i + r] = res[r];
    }
}
