/* The coarse quantiser of the flat backend's ANN path (index.c decides
 * when a partition uses it and keeps its lists): spherical k-means over a
 * sample of a partition's rows, and the nearest-centroid search used to
 * put rows into lists.
 *
 * Training is Lloyd's algorithm on the unit sphere: each sample row goes
 * to the centroid with the largest dot product (a block of rows against
 * every centroid at once with cblas_sgemm), each centroid becomes the
 * normalised sum of its rows, a centroid left without rows is moved onto
 * the sample row its current centroid fits worst. The starting centroids
 * are sample rows picked by a seeded xorshift, so a build is deterministic
 * for the same rows. Assignment compares int8 copies of the row and of
 * the centroids (sc_index_dot_i8: about half the time of the fp32 product,
 * and a row that lands in a near-tied neighbour's list is still found when
 * that list is probed). With threads > 1 and from 8 blocks of sample rows,
 * each iteration's assignment step runs on two threads (the calling one
 * and one it starts), each on whole blocks: the centroids are the same as
 * from one thread. */
#include "index/index.h"
#include "index/index_int.h"
#include "common/alloc.h"
#include "common/err.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512
#define ITERS 8
#define PAR_BLOCKS 8   /* blocks of sample rows from which two threads assign */

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
 * (from a multiple of BLOCK) to their nearest centroid, BLOCK rows per
 * cblas_sgemm call into its own scores buffer sc (BLOCK x k). */
typedef struct kjob {
    const float *x, *cent;
    size_t dim, k, from, to;
    float *sc;
    uint32_t *best;
    float *bestsc;
} kjob;

static void *kmeans_assign(void *arg)
{
    const kjob *j = arg;
    const size_t k = j->k, dim = j->dim;
    for (size_t b = j->from; b < j->to; b += BLOCK) {
        size_t m = j->to - b < BLOCK ? j->to - b : BLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)dim, 1.0f, j->x + b * dim,
                    (int)dim, j->cent, (int)dim, 0.0f, j->sc, (int)k);
        for (size_t i = 0; i < m; i++) {
            const float *row = j->sc + i * k;
            size_t bi = 0;
            for (size_t c = 1; c < k; c++)
                if (row[c] > row[bi]) bi = c;
            j->best[b + i] = (uint32_t)bi;
            j->bestsc[b + i] = row[bi];
        }
    }
    return NULL;
}

int sc_index__kmeans(const float *x, size_t n, size_t dim, size_t k, uint64_t seed, atomic_int *stop,
                     int threads, float *cent)
{
    if (!x || !cent || k == 0 || n < k) return SC_EINVAL;
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

    float *sc = sc_malloc((size_t)2 * BLOCK * k * sizeof(float));
    double *sum = sc_malloc(k * dim * sizeof(double));
    uint32_t *cnt = sc_malloc(k * sizeof(uint32_t));
    uint32_t *best = sc_malloc(n * sizeof(uint32_t));
    float *bestsc = sc_malloc(n * sizeof(float));
    for (int it = 0; it < ITERS; it++) {
        if (stop && atomic_load(stop)) {
            rc = SC_ECLOSED;
            break;
        }
        /* Two threads from PAR_BLOCKS blocks: the same calls on the same
         * blocks, so the same result as one thread. */
        size_t nb = (n + BLOCK - 1) / BLOCK, mid = threads > 1 && nb >= PAR_BLOCKS ? nb / 2 * BLOCK : n;
        kjob jobs[2] = {{x, cent, dim, k, 0, mid, sc, best, bestsc},
                        {x, cent, dim, k, mid, n, sc + (size_t)BLOCK * k, best, bestsc}};
        pthread_t th;
        int two = mid < n && pthread_create(&th, NULL, kmeans_assign, &jobs[1]) == 0;
        kmeans_assign(&jobs[0]);
        if (two) pthread_join(th, NULL);
        else kmeans_assign(&jobs[1]);
        memset(sum, 0, k * dim * sizeof(double));
        memset(cnt, 0, k * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) {
            double *d = sum + (size_t)best[i] * dim;
            const float *v = x + i * dim;
            for (size_t j = 0; j < dim; j++) d[j] += v[j];
            cnt[best[i]]++;
        }
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
                if (bestsc[i] < bestsc[w]) w = i;
            memcpy(cv, x + w * dim, dim * sizeof(float));
            bestsc[w] = INFINITY;
        }
    }
    free(sc);
    free(sum);
    free(cnt);
    free(best);
    free(bestsc);
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
