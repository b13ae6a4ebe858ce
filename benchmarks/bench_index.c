/* bench_index: single-query latency and throughput of the index, with its
 * references measured in the same run on the same data.
 *
 * For each (n, dim): n random unit vectors (xorshift, fast enough for 1M)
 * go into one partition; queries are stored vectors plus small noise,
 * renormalised. Measured: p50/p99 latency of one query at a time on one
 * thread, queries per second on one and on two threads, recall@1 against
 * exact fp32 search (brute force over the same data), the memory-bandwidth
 * floor (an AVX-512 streaming read of as many bytes as the int8 rows, run
 * before each timed query; its median) and Debian FAISS IndexFlatIP's time
 * for one query on the same vectors (through the C API, one OpenMP thread),
 * interleaved with ours on the first queries; speedup_vs_faiss is the ratio
 * of the two medians over those same queries.
 * Ratios, not absolutes, are the figures: the machine is shared. The last
 * two columns are thread CPU times (p50 of the search, median of the
 * floor pass): they leave out time spent descheduled by other load.
 *
 * Usage: bench_index [--quick] [--full] [--kernels] [--faiss-hnsw]
 *                    [--n N --dim D] [--queries Q]
 *   default   n = 10k, 100k at dim 512 and 384
 *   --quick   n = 10k only;  --full adds n = 1M
 *   each n: rows for the flat backend with the int8 scan ("flat", the
 *   default) and the opt-in 4-bit scan ("flat-4bit", scan_bits = 4)
 *   --kernels also rows for the avx2 and scalar kernels (same data)
 *   --faiss-hnsw also a row for the faiss backend with "HNSW32" */
#include "common/alloc.h"
#include "index/index.h"

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

void sc_index__faiss_single_thread(void);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: excludes time spent descheduled (the machine
 * is shared), includes memory stalls. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static inline uint64_t xs(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void normalise(float *v, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++) s += v[i] * v[i];
    float inv = 1.0f / sqrtf(s);
    for (size_t i = 0; i < d; i++) v[i] *= inv;
}

/* Uniform components in [-1, 1) then normalised: cheap, and random
 * directions are all a flat scan cares about. */
static float *gen(size_t n, size_t d)
{
    float *v = sc_malloc(n * d * sizeof(float));
    const float k = 1.0f / 2147483648.0f;
    for (size_t i = 0; i < n; i++) {
        float *r = v + i * d;
        for (size_t j = 0; j + 1 < d; j += 2) {
            uint64_t x = xs();
            r[j] = (float)(int32_t)(uint32_t)x * k;
            r[j + 1] = (float)(int32_t)(uint32_t)(x >> 32) * k;
        }
        if (d & 1) r[d - 1] = (float)(int32_t)(uint32_t)xs() * k;
        normalise(r, d);
    }
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------- */

__attribute__((target("avx512f"))) static int64_t stream_sum(const int8_t *p, size_t n)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
        a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
        a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
    }
    int64_t s = _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1),
                                                          _mm512_add_epi64(a2, a3)));
    for (; i < n; i++) s += p[i];
    return s;
}

static int64_t stream_sum_plain(const int8_t *p, size_t n)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

/* The floor's buffer: as many bytes as the int8 rows, in huge pages like
 * the index's large chunks. */
static int8_t *floor_buf(size_t n)
{
    size_t hp = (size_t)2 << 20, sz = (n + hp - 1) / hp * hp;
    int8_t *b = aligned_alloc(hp, sz);
    if (!b) abort();
    (void)madvise(b, sz, MADV_HUGEPAGE);
    for (size_t i = 0; i < n; i++) b[i] = (int8_t)i;
    return b;
}

/* One streaming read of the n bytes, in seconds (wall; CPU in *cpu). */
static double floor_pass(const int8_t *b, size_t n, int64_t *sink, double *cpu)
{
    static int avx512 = -1;
    if (avx512 < 0) avx512 = __builtin_cpu_supports("avx512f");
    double t0 = now_s(), c0 = cpu_s();
    *sink += avx512 ? stream_sum(b, n) : stream_sum_plain(b, n);
    *cpu = cpu_s() - c0;
    return now_s() - t0;
}

/* Debian FAISS IndexFlatIP over the same vectors (one OpenMP thread). */
static FaissIndex *faiss_flat(const float *db, size_t n, size_t d)
{
    FaissIndex *fx = NULL;
    sc_index__faiss_single_thread();
    if (faiss_index_factory(&fx, (int)d, "Flat", METRIC_INNER_PRODUCT) != 0) return NULL;
    if (faiss_Index_add(fx, (idx_t)n, db) != 0) {
        faiss_Index_free(fx);
        return NULL;
    }
    return fx;
}

static double faiss_query(FaissIndex *fx, const float *q)
{
    float dist[10];
    idx_t lab[10];
    double t0 = now_s();
    faiss_Index_search(fx, 1, q, 10, dist, lab);
    return now_s() - t0;
}

/* ---------------------------------------------------------------------
 * Index runs
 * ------------------------------------------------------------------- */

typedef struct {
    sc_index *ix;
    const float *qs;
    size_t nq, d, rounds;
} qjob;

static void *qthread(void *arg)
{
    qjob *j = arg;
    sc_index_hit h[10];
    size_t n;
    for (size_t r = 0; r < j->rounds; r++)
        for (size_t i = 0; i < j->nq; i++) sc_index_search(j->ix, "bench", 1, j->qs + i * j->d, 10, h, &n);
    return NULL;
}

/* Runs the queries one at a time on one thread, each right after a floor
 * pass over the same number of bytes and the first nf also right before
 * the same query on FAISS flat, so all three see the same machine load;
 * then on two threads. */
static void run_index(const char *backend, const char *desc, uint32_t bits, const char *kernel,
                      const float *db,
                      size_t n, size_t d, const float *qs, size_t nq, const size_t *truth,
                      const int8_t *fbuf, FaissIndex *fx, size_t nf)
{
    if (sc_index_kernel_force(kernel) != 0) return;
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = (uint32_t)d, .backend = backend, .faiss_desc = desc, .scan_bits = bits};
    if (sc_index_create(&ix, &o) != 0) return;
    for (size_t i = 0; i < n; i++) sc_index_add(ix, "bench", 1, i, db + i * d);
    sc_index_hit h[10];
    size_t got, good = 0;
    for (size_t i = 0; i < nq && i < 5; i++) sc_index_search(ix, "bench", 1, qs + i * d, 10, h, &got);
    double *t = sc_malloc(nq * sizeof(double)), *tf = sc_malloc(nq * sizeof(double));
    double *tx = sc_malloc(nq * sizeof(double)), *tfx = sc_malloc(nq * sizeof(double));
    double *c = sc_malloc(nq * sizeof(double)), *cf = sc_malloc(nq * sizeof(double));
    double t_all = 0;
    int64_t sink = 0;
    if (!fx) nf = 0;
    for (size_t i = 0; i < nq; i++) {
        tf[i] = floor_pass(fbuf, n * d, &sink, &cf[i]);
        double t0 = now_s(), c0 = cpu_s();
        sc_index_search(ix, "bench", 1, qs + i * d, 10, h, &got);
        t[i] = now_s() - t0;
        c[i] = cpu_s() - c0;
        t_all += t[i];
        if (i < nf) {
            tx[i] = t[i];
            tfx[i] = faiss_query(fx, qs + i * d);
        }
        if (got && h[0].id == truth[i]) good++;
    }
    qsort(t, nq, sizeof(double), cmp_double);
    qsort(tf, nq, sizeof(double), cmp_double);
    qsort(c, nq, sizeof(double), cmp_double);
    qsort(cf, nq, sizeof(double), cmp_double);
    double floor = tf[nq / 2] * 1e3, faiss_ms = 0, speedup = 0;
    double p50_cpu = c[nq / 2] * 1e6, floor_cpu = cf[nq / 2] * 1e3;
    free(c);
    free(cf);
    if (nf) {
        qsort(tx, nf, sizeof(double), cmp_double);
        qsort(tfx, nf, sizeof(double), cmp_double);
        faiss_ms = tfx[nf / 2] * 1e3;
        speedup = tfx[nf / 2] / tx[nf / 2]; /* medians over the same queries */
    }
    free(tf);
    free(tx);
    free(tfx);
    if (sink == 42) fprintf(stderr, "#\n");
    double p50 = t[nq / 2] * 1e6, p99 = t[(nq * 99) / 100 < nq ? (nq * 99) / 100 : nq - 1] * 1e6;
    free(t);
    double qps1 = (double)nq / t_all;
    qjob jobs[2] = {{ix, qs, nq, d, 1}, {ix, qs, nq, d, 1}};
    pthread_t th[2];
    double t2 = now_s();
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, qthread, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    double qps2 = 2.0 * (double)nq / (now_s() - t2);
    printf("index,%s%s%s%s,%s,%zu,%zu,10,%.1f,%.1f,%.0f,%.0f,%.4f,%.3f,%.2f,%.2f,%.1f,%.1f,%.3f\n", backend,
           desc ? ":" : "", desc ? desc : "", bits == 4 ? "-4bit" : "", sc_index_kernel_name(), n, d, p50, p99, qps1, qps2,
           (double)good / (double)nq, floor, p50 / 1e3 / floor, faiss_ms, speedup, p50_cpu, floor_cpu);
    fflush(stdout);
    sc_index_destroy(ix);
    sc_index_kernel_force("auto");
}

static void run_config(size_t n, size_t d, size_t nq, int kernels, int hnsw)
{
    float *db = gen(n, d);
    float *qs = sc_malloc(nq * d * sizeof(float));
    const float sigma = 0.5f / sqrtf((float)d) / 0.577f; /* uniform [-1,1): sd 0.577 */
    for (size_t i = 0; i < nq; i++) {
        const float *b = db + (xs() % n) * d;
        float *q = qs + i * d;
        for (size_t j = 0; j < d; j++) q[j] = b[j] + sigma * (float)(int32_t)(uint32_t)xs() / 2147483648.0f;
        normalise(q, d);
    }
    /* Exact fp32 truth. */
    size_t *truth = sc_malloc(nq * sizeof(size_t));
    for (size_t i = 0; i < nq; i++) {
        float best = -2;
        for (size_t r = 0; r < n; r++) {
            float s = sc_index_dot_f32(qs + i * d, db + r * d, d);
            if (s > best) {
                best = s;
                truth[i] = r;
            }
        }
    }
    int8_t *fbuf = floor_buf(n * d);
    size_t fq = n >= 1000000 ? 7 : n >= 100000 ? 21 : 51;
    if (fq > nq) fq = nq;
    FaissIndex *fx = faiss_flat(db, n, d);
    run_index("flat", NULL, 8, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
    run_index("flat", NULL, 4, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
    if (kernels) {
        run_index("flat", NULL, 8, "avx2", db, n, d, qs, nq, truth, fbuf, fx, fq);
        if (n <= 100000) run_index("flat", NULL, 8, "scalar", db, n, d, qs, nq / 4 ? nq / 4 : 1, truth, fbuf, fx, 0);
    }
    if (hnsw && n <= 100000) run_index("faiss", "HNSW32", 0, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
    if (fx) faiss_Index_free(fx);
    free(fbuf);
    free(truth);
    free(qs);
    free(db);
}

int main(int argc, char **argv)
{
    int quick = 0, full = 0, kernels = 0, hnsw = 0;
    size_t only_n = 0, only_d = 0, nq = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--full") == 0) full = 1;
        else if (strcmp(argv[i], "--kernels") == 0) kernels = 1;
        else if (strcmp(argv[i], "--faiss-hnsw") == 0) hnsw = 1;
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) only_n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) only_d = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc) nq = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_index [--quick] [--full] [--kernels] [--faiss-hnsw] [--n N --dim D] [--queries Q]\n");
            return 0;
        } else {
            fprintf(stderr, "bench_index: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nq == 0) nq = 1;
    printf("bench,backend,kernel,n,dim,k,p50_us,p99_us,qps_1t,qps_2t,recall_at_1,floor_ms,"
           "ratio_vs_floor,faiss_flat_ms,speedup_vs_faiss,p50_cpu_us,floor_cpu_ms\n");
    fflush(stdout);
    if (only_n || only_d) {
        run_config(only_n ? only_n : 100000, only_d ? only_d : 512, nq, kernels, hnsw);
        return 0;
    }
    static const size_t dims[] = {512, 384};
    static const size_t ns[] = {10000, 100000, 1000000};
    size_t nn = quick ? 1 : full ? 3 : 2;
    for (size_t i = 0; i < nn; i++)
        for (size_t j = 0; j < 2; j++) run_config(ns[i], dims[j], ns[i] >= 1000000 ? 100 : nq, kernels, hnsw);
    return 0;
}
