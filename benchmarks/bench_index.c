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
 *        bench_index --real FILE [--n N] [--queries Q] [--k K]
 *                    [--data DIR] [--model-dir DIR]
 *   default   n = 10k, 100k at dim 512 and 384
 *   --quick   n = 10k only;  --full adds n = 1M
 *   each n: rows for the flat backend with the int8 scan ("flat", the
 *   default) and the opt-in 4-bit scan ("flat-4bit", scan_bits = 4)
 *   --kernels also rows for the avx2 and scalar kernels (same data)
 *   --faiss-hnsw also a row for the faiss backend with "HNSW32"
 *   --real    recall and latency on real USE-lite embeddings of qqp_dev
 *             questions instead (see "Real embeddings" below): n = 100k,
 *             2000 queries, k = 4 unless given; FILE caches the vectors;
 *             data --data DIR or $SC_DATA_DIR, model models/use-lite/dist */
#include "benchmarks/quality_data.h"
#include "common/alloc.h"
#include "embed/embed.h"
#include "index/index.h"

#include <cblas.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
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

/* --ann-min / --nprobe: the ANN rows' settings (0 = the index's defaults);
 * --ann-only: only the ANN rows. */
static uint32_t g_ann_min, g_nprobe;
static int g_ann_only;

/* Runs the queries one at a time on one thread, each right after a floor
 * pass over the same number of bytes and the first nf also right before
 * the same query on FAISS flat, so all three see the same machine load;
 * then on two threads. */
static void run_index(const char *backend, const char *desc, uint32_t bits, int ann, const char *kernel,
                      const float *db,
                      size_t n, size_t d, const float *qs, size_t nq, const size_t *truth,
                      const int8_t *fbuf, FaissIndex *fx, size_t nf)
{
    if (sc_index_kernel_force(kernel) != 0) return;
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = (uint32_t)d, .backend = backend, .faiss_desc = desc, .scan_bits = bits,
                       .ann_min_rows = ann ? 0 : UINT32_MAX};
    if (sc_index_create(&ix, &o) != 0) return;
    double tl = now_s();
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < n; i++) sc_index_add(ix, "bench", 1, i, db + i * d);
    double tb = now_s();
    sc_index_bulk_load(ix, 0);
    fprintf(stderr, "# %s%s%s n=%zu: load %.2f s, then ANN build %.2f s\n", backend, bits == 4 ? "-4bit" : "",
            ann ? "-ann" : "", n, tb - tl, now_s() - tb);
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
    printf("index,%s%s%s%s%s,%s,%zu,%zu,10,%.1f,%.1f,%.0f,%.0f,%.4f,%.3f,%.2f,%.2f,%.1f,%.1f,%.3f\n", backend,
           desc ? ":" : "", desc ? desc : "", bits == 4 ? "-4bit" : "", ann ? "-ann" : "", sc_index_kernel_name(), n, d, p50, p99, qps1, qps2,
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
    if (!g_ann_only) {
        run_index("flat", NULL, 8, 0, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
        run_index("flat", NULL, 4, 0, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
    }
    if (n >= SC_INDEX_ANN_MIN_DEFAULT) run_index("flat", NULL, 4, 1, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
    if (kernels) {
        run_index("flat", NULL, 8, 0, "avx2", db, n, d, qs, nq, truth, fbuf, fx, fq);
        if (n <= 100000) run_index("flat", NULL, 8, 0, "scalar", db, n, d, qs, nq / 4 ? nq / 4 : 1, truth, fbuf, fx, 0);
    }
    if (hnsw && n <= 100000) run_index("faiss", "HNSW32", 0, 0, "auto", db, n, d, qs, nq, truth, fbuf, fx, fq);
    if (fx) faiss_Index_free(fx);
    free(fbuf);
    free(truth);
    free(qs);
    free(db);
}

/* ---------------------------------------------------------------------
 * Real embeddings (--real FILE)
 *
 * The synthetic rows above measure speed; their near-duplicate queries
 * (cosine ~0.9 to one row, ~0 to the rest) make recall trivially 1. A
 * semantic cache's queries are paraphrases whose neighbours sit at cosine
 * 0.6-0.95 among many rows almost as close, which is where a coarse scan
 * could hand the re-score the wrong candidates. So: USE-lite vectors of
 * distinct qqp_dev questions (lower-cased, white space collapsed; qqp_test
 * is never read). Queries, fixed by seed QD_SEED: 3/4 are the text_b of
 * qqp_dev pairs whose text_a is in the corpus (duplicates or not), 1/4
 * other questions; every query text is held out of the corpus. The corpus
 * is the pairs' text_a plus other questions up to n, in shuffled order.
 * The vectors are cached in FILE (embedded on the first run, ~1-3 min on
 * two cores).
 *
 * Rows "real": per scan, one query at a time with k = --k (the cache's
 * top-k, 4): p50/p99 latency (each search right after a bandwidth-floor
 * pass, as above), recall@1 (the first hit is the exact fp32 top-1) and
 * recall@k (share of the exact top-k among the k hits), for all queries
 * and for the qqp duplicates alone. A hit whose exact score ties the k-th
 * exact score (within 1e-6) counts as right. Exact: OpenBLAS sgemm picks
 * 64 candidates per query, re-scored in double.
 * Rows "real_cands": with the scan's own codes and kernel (the index's
 * quantisers), where the exact top-1 and top-k rank among all rows: the
 * share of queries whose exact top-1 (top1_within) and whose whole exact
 * top-k (topk_all_within) are among the first C rows of the scan's order,
 * for several C (the index keeps C = max(4k, 32) for int8, max(8k, 64)
 * for 4-bit), and the largest rank seen (the C that would have been
 * enough for every query).
 * ------------------------------------------------------------------- */

#define REAL_MAGIC 0x31564552u /* "REV1" */
#define REAL_EXACT 64          /* sgemm candidates per query, re-scored in double */

typedef struct real_set {
    uint32_t dim;
    size_t n, nq;
    float *db, *qs;
    uint8_t *dup;               /* per query: 1 = qqp duplicate of a corpus question */
} real_set;

static char *real_key(const char *s)
{
    size_t len = strlen(s), o = 0;
    char *k = sc_malloc(len + 1);
    int sp = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            sp = o > 0;
            continue;
        }
        if (sp) k[o++] = ' ';
        sp = 0;
        k[o++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    k[o] = 0;
    return k;
}

static uint64_t real_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Distinct strings: open addressing over indices into keys. */
typedef struct real_dict {
    char **keys;
    size_t n, cap;
    size_t *slot;               /* SIZE_MAX = empty */
    size_t nslot;
} real_dict;

static size_t real_intern(real_dict *d, char *key)
{
    if (d->n * 2 >= d->nslot) {
        size_t ns = d->nslot ? d->nslot * 2 : 1 << 16;
        size_t *sl = sc_malloc(ns * sizeof *sl);
        for (size_t i = 0; i < ns; i++) sl[i] = SIZE_MAX;
        for (size_t i = 0; i < d->n; i++) {
            size_t h = (size_t)real_hash(d->keys[i]) & (ns - 1);
            while (sl[h] != SIZE_MAX) h = (h + 1) & (ns - 1);
            sl[h] = i;
        }
        free(d->slot);
        d->slot = sl;
        d->nslot = ns;
    }
    size_t h = (size_t)real_hash(key) & (d->nslot - 1);
    while (d->slot[h] != SIZE_MAX) {
        if (strcmp(d->keys[d->slot[h]], key) == 0) {
            free(key);
            return d->slot[h];
        }
        h = (h + 1) & (d->nslot - 1);
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1 << 16;
        d->keys = sc_realloc(d->keys, d->cap * sizeof *d->keys);
    }
    d->slot[h] = d->n;
    d->keys[d->n] = key;
    return d->n++;
}

typedef struct embed_job {
    sc_embedder *e;
    char **texts;
    size_t n;
    float *out;
    int rc;
    int show;
} embed_job;

static void *embed_thread(void *arg)
{
    embed_job *j = arg;
    uint32_t d = sc_embedder_dim(j->e);
    for (size_t i = 0; i < j->n && !j->rc; i += 1024) {
        size_t m = j->n - i < 1024 ? j->n - i : 1024;
        j->rc = qd_embed_all(j->e, j->texts + i, m, j->out + i * d);
        if (j->show) fprintf(stderr, "\rbench_index: embedding %zu/%zu (this thread)", i + m, j->n);
    }
    if (j->show) fprintf(stderr, "\n");
    return NULL;
}

/* Builds the set from qqp_dev and writes it to file. */
static int real_build(const char *file, const char *data, const char *model_dir, size_t n, size_t nq)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/qqp_dev.jsonl.gz", data);
    qd_pairs pp = {0};
    if (qd_load_qqp(path, &pp) != 0) {
        fprintf(stderr, "bench_index: cannot read %s\n", path);
        return -1;
    }
    real_dict d = {0};
    size_t *ia = sc_malloc(pp.n * sizeof *ia), *ib = sc_malloc(pp.n * sizeof *ib);
    for (size_t i = 0; i < pp.n; i++) {
        ia[i] = real_intern(&d, real_key(pp.v[i].a));
        ib[i] = real_intern(&d, real_key(pp.v[i].b));
    }
    /* 0 free, 1 query (held out), 2 anchor (must be in the corpus) */
    uint8_t *st = calloc(d.n, 1);
    size_t npair = nq * 3 / 4, nother = nq - npair, got = 0;
    size_t *qid = sc_malloc(nq * sizeof *qid);
    uint8_t *dup = sc_malloc(nq);
    size_t *perm = qd_shuffle(pp.n, QD_SEED);
    size_t nanchor = 0;
    for (size_t r = 0; r < pp.n && got < npair; r++) {
        size_t i = perm[r];
        if (ia[i] == ib[i] || st[ia[i]] == 1 || st[ib[i]] != 0) continue;
        if (st[ia[i]] == 0) nanchor++;
        st[ia[i]] = 2;
        st[ib[i]] = 1;
        dup[got] = pp.v[i].label == 1;
        qid[got++] = ib[i];
    }
    free(perm);
    perm = qd_shuffle(d.n, QD_SEED + 1);
    for (size_t r = 0; r < d.n && got < npair + nother; r++)
        if (st[perm[r]] == 0) {
            st[perm[r]] = 1;
            dup[got] = 0;
            qid[got++] = perm[r];
        }
    if (got < nq || d.n - got < n) {
        fprintf(stderr, "bench_index: qqp_dev has %zu distinct questions, too few for n=%zu + %zu queries\n",
                d.n, n, nq);
        return -1;
    }
    /* Corpus: the anchors plus the first free questions in shuffled
     * order, up to n; kept in shuffled order. */
    size_t *cid = sc_malloc(n * sizeof *cid), nc = 0, room = n - nanchor;
    for (size_t r = 0; r < d.n && nc < n; r++) {
        size_t i = perm[r];
        if (st[i] == 2 || (st[i] == 0 && room)) {
            if (st[i] == 0) room--;
            cid[nc++] = i;
        }
    }
    free(perm);
    char **texts = sc_malloc((n + nq) * sizeof *texts);
    for (size_t i = 0; i < n; i++) texts[i] = d.keys[cid[i]];
    for (size_t i = 0; i < nq; i++) texts[n + i] = d.keys[qid[i]];
    /* Embedded in the form the cache's exact layer would also see: lower
     * case, collapsed white space. */
    sc_embedder *e = NULL;
    char err[512] = "";
    sc_embedder_opts eo = {.name = "use-lite", .model_dir = model_dir};
    if (sc_embedder_open(&e, &eo, err, sizeof err) != 0) {
        fprintf(stderr, "bench_index: embedder: %s\n", err);
        return -1;
    }
    uint32_t dim = sc_embedder_dim(e);
    float *vec = sc_malloc((n + nq) * dim * sizeof(float));
    size_t tot = n + nq, half = tot / 2;
    embed_job jb[2] = {{e, texts, half, vec, 0, 1}, {e, texts + half, tot - half, vec + half * dim, 0, 0}};
    pthread_t th[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, embed_thread, &jb[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    fprintf(stderr, "bench_index: embedded %zu texts in %.0f s\n", tot, now_s() - t0);
    sc_embedder_close(e);
    int rc = jb[0].rc || jb[1].rc ? -1 : 0;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    FILE *f = rc ? NULL : fopen(tmp, "wb");
    if (f) {
        uint32_t hd[2] = {REAL_MAGIC, dim};
        uint64_t sz[2] = {n, nq};
        int ok = fwrite(hd, sizeof hd, 1, f) == 1 && fwrite(sz, sizeof sz, 1, f) == 1 &&
                 fwrite(vec, sizeof(float) * dim, tot, f) == tot && fwrite(dup, 1, nq, f) == nq;
        ok = fclose(f) == 0 && ok;
        rc = ok && rename(tmp, file) == 0 ? 0 : -1;
    } else rc = -1;
    if (rc) fprintf(stderr, "bench_index: cannot write %s\n", file);
    free(vec);
    free(texts);
    free(cid);
    free(qid);
    free(dup);
    free(st);
    free(ia);
    free(ib);
    for (size_t i = 0; i < d.n; i++) free(d.keys[i]);
    free(d.keys);
    free(d.slot);
    qd_free(&pp);
    return rc;
}

/* Loads file if it holds n rows and nq queries; 1 when absent or
 * different, -1 on a read error. */
static int real_load(const char *file, size_t n, size_t nq, real_set *rs_)
{
    FILE *f = fopen(file, "rb");
    if (!f) return 1;
    uint32_t hd[2];
    uint64_t sz[2];
    if (fread(hd, sizeof hd, 1, f) != 1 || fread(sz, sizeof sz, 1, f) != 1 || hd[0] != REAL_MAGIC ||
        sz[0] != n || sz[1] != nq || hd[1] == 0 || hd[1] > SC_INDEX_MAX_DIM) {
        fclose(f);
        return 1;
    }
    rs_->dim = hd[1];
    rs_->n = n;
    rs_->nq = nq;
    rs_->db = sc_malloc(n * hd[1] * sizeof(float));
    rs_->qs = sc_malloc(nq * hd[1] * sizeof(float));
    rs_->dup = sc_malloc(nq);
    int ok = fread(rs_->db, sizeof(float) * hd[1], n, f) == n && fread(rs_->qs, sizeof(float) * hd[1], nq, f) == nq &&
             fread(rs_->dup, 1, nq, f) == nq;
    fclose(f);
    return ok ? 0 : -1;
}

/* Exact top-kk (kk <= REAL_EXACT) of every query: ids best first, and
 * their double-precision scores. */
static void real_truth(const real_set *s, size_t kk, uint32_t *tid, double *tsc)
{
    const size_t d = s->dim, B = 128;
    float *c = sc_malloc(B * s->n * sizeof(float));
    for (size_t q0 = 0; q0 < s->nq; q0 += B) {
        size_t m = s->nq - q0 < B ? s->nq - q0 : B;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)s->n, (int)d, 1.0f, s->qs + q0 * d,
                    (int)d, s->db, (int)d, 0.0f, c, (int)s->n);
        for (size_t qi = 0; qi < m; qi++) {
            const float *row = c + qi * s->n;
            uint32_t top[REAL_EXACT];
            float ts[REAL_EXACT];
            size_t nt = 0;
            for (size_t r = 0; r < s->n; r++) {
                if (nt == REAL_EXACT && row[r] <= ts[nt - 1]) continue;
                size_t p = nt < REAL_EXACT ? nt++ : nt - 1;
                while (p > 0 && ts[p - 1] < row[r]) {
                    ts[p] = ts[p - 1];
                    top[p] = top[p - 1];
                    p--;
                }
                ts[p] = row[r];
                top[p] = (uint32_t)r;
            }
            const float *qv = s->qs + (q0 + qi) * d;
            double ex[REAL_EXACT];
            for (size_t t = 0; t < nt; t++) {
                const float *rv = s->db + (size_t)top[t] * d;
                double a = 0;
                for (size_t j = 0; j < d; j++) a += (double)qv[j] * rv[j];
                ex[t] = a;
            }
            /* sort the nt by exact score, desc, ties by id */
            for (size_t a = 1; a < nt; a++)
                for (size_t b = a; b > 0 && (ex[b] > ex[b - 1] || (ex[b] == ex[b - 1] && top[b] < top[b - 1])); b--) {
                    double x = ex[b];
                    ex[b] = ex[b - 1];
                    ex[b - 1] = x;
                    uint32_t y = top[b];
                    top[b] = top[b - 1];
                    top[b - 1] = y;
                }
            for (size_t t = 0; t < kk; t++) {
                tid[(q0 + qi) * kk + t] = top[t];
                tsc[(q0 + qi) * kk + t] = ex[t];
            }
        }
    }
    free(c);
}

static double real_dot(const float *a, const float *b, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++) s += (double)a[j] * b[j];
    return s;
}

#define REAL_TIE 1e-6

/* Hits right at rank 1 and among the top k (ties with the k-th exact
 * score count as right). */
static void real_score(const real_set *s, size_t qi, const sc_index_hit *h, size_t got, size_t k,
                       const uint32_t *tid, const double *tsc, int *r1, size_t *rk)
{
    const float *qv = s->qs + qi * s->dim;
    const uint32_t *t = tid + qi * k;
    const double *ts = tsc + qi * k;
    *r1 = 0;
    *rk = 0;
    for (size_t i = 0; i < got && i < k; i++) {
        double sc = real_dot(qv, s->db + h[i].id * s->dim, s->dim);
        int in = 0;
        for (size_t j = 0; j < k; j++) in |= t[j] == h[i].id;
        if (!in && sc >= ts[k - 1] - REAL_TIE) in = 1;
        *rk += (size_t)in;
        if (i == 0) *r1 = h[0].id == t[0] || sc >= ts[0] - REAL_TIE;
    }
}


/* ann: 0 = exact scan (the ANN path off), 1 = the index's ANN path with
 * --ann-min / --nprobe, built after the load as at start-up. */
static void run_real(const real_set *s, uint32_t bits, int ann, size_t k, const uint32_t *tid, const double *tsc)
{
    const size_t d = s->dim, nq = s->nq;
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = (uint32_t)d, .backend = "flat", .scan_bits = bits,
                       .ann_min_rows = ann ? g_ann_min : UINT32_MAX, .ann_nprobe = g_nprobe};
    if (sc_index_create(&ix, &o) != 0) return;
    sc_index_bulk_load(ix, 1);
    for (size_t i = 0; i < s->n; i++) sc_index_add(ix, "bench", 1, i, s->db + i * d);
    double tb = now_s();
    sc_index_bulk_load(ix, 0);
    tb = now_s() - tb;
    sc_index_stats ist;
    sc_index_stats_get(ix, &ist);
    if (ann) fprintf(stderr, "# ANN build %.2f s, %llu partition(s) with an IVF\n", tb,
                     (unsigned long long)ist.ann_partitions);
    int8_t *fbuf = floor_buf(s->n * d);
    sc_index_hit h[SC_INDEX_MAX_K];
    size_t got;
    for (size_t i = 0; i < nq && i < 5; i++) sc_index_search(ix, "bench", 1, s->qs + i * d, k, h, &got);
    double *t = sc_malloc(nq * sizeof(double)), *tf = sc_malloc(nq * sizeof(double));
    size_t r1[2] = {0, 0}, rk[2] = {0, 0}, cnt[2] = {0, 0};
    int64_t sink = 0;
    for (size_t i = 0; i < nq; i++) {
        double cpu;
        tf[i] = floor_pass(fbuf, s->n * d, &sink, &cpu);
        double t0 = now_s();
        sc_index_search(ix, "bench", 1, s->qs + i * d, k, h, &got);
        t[i] = now_s() - t0;
        int a;
        size_t b;
        real_score(s, i, h, got, k, tid, tsc, &a, &b);
        for (int g = 0; g < 2; g++) {
            if (g == 1 && !s->dup[i]) continue;
            r1[g] += (size_t)a;
            rk[g] += b;
            cnt[g]++;
        }
    }
    qsort(t, nq, sizeof(double), cmp_double);
    qsort(tf, nq, sizeof(double), cmp_double);
    if (sink == 42) fprintf(stderr, "#\n");
    double p50 = t[nq / 2] * 1e6, p99 = t[(nq * 99) / 100 < nq ? (nq * 99) / 100 : nq - 1] * 1e6;
    double fl = tf[nq / 2] * 1e3;
    static const char *grp[2] = {"all", "qqp-duplicates"};
    for (int g = 0; g < 2; g++)
        printf("real,flat%s%s,%s,%s,%zu,%zu,%zu,%zu,%.1f,%.1f,%.5f,%.5f,%zu,%zu,%.3f,%.2f\n", bits == 4 ? "-4bit" : "",
               ann ? "-ann" : "",
               sc_index_kernel_name(), grp[g], s->n, d, k, cnt[g], p50, p99, (double)r1[g] / (double)cnt[g],
               (double)rk[g] / (double)(cnt[g] * k), cnt[g] - r1[g], cnt[g] * k - rk[g], fl, p50 / 1e3 / fl);
    fflush(stdout);
    free(t);
    free(tf);
    free(fbuf);
    sc_index_destroy(ix);
}

/* Ranks of the exact top-k under the scan's own scores (ties counted
 * against: rank = rows scoring >= it). */
static void run_real_cands(const real_set *s, uint32_t bits, size_t k, const uint32_t *tid)
{
    const size_t d = s->dim, n = s->n, nq = s->nq, rb = SC_INDEX_I4_BYTES(d);
    int8_t *c8 = NULL;
    uint8_t *c4 = NULL;
    float *sc4 = NULL;
    if (bits == 8) {
        c8 = sc_malloc(n * d);
        for (size_t i = 0; i < n; i++) sc_index_quantize(s->db + i * d, c8 + i * d, d);
    } else {
        c4 = sc_malloc(n * rb);
        sc4 = sc_malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) sc_index_quantize_i4(s->db + i * d, c4 + i * rb, d, &sc4[i]);
    }
    int32_t *dot = sc_malloc(n * sizeof(int32_t));
    float *sc = sc_malloc(n * sizeof(float));
    size_t *rank1 = sc_malloc(nq * sizeof(size_t)), *rankk = sc_malloc(nq * sizeof(size_t));
    int8_t q8[SC_INDEX_MAX_DIM + 128];
    for (size_t qi = 0; qi < nq; qi++) {
        memset(q8, 0, sizeof q8);
        sc_index_quantize(s->qs + qi * d, q8, d);
        if (bits == 8) {
            sc_index_dot_i8(q8, c8, n, d, dot);
            for (size_t r = 0; r < n; r++) sc[r] = (float)dot[r];
        } else {
            sc_index_dot_i4(q8, c4, n, d, dot);
            for (size_t r = 0; r < n; r++) sc[r] = (float)dot[r] * sc4[r];
        }
        rank1[qi] = rankk[qi] = 0;
        for (size_t j = 0; j < k; j++) {
            float v = sc[tid[qi * k + j]];
            size_t rk = 0;
            for (size_t r = 0; r < n; r++) rk += sc[r] >= v;
            if (j == 0) rank1[qi] = rk;
            if (rk > rankk[qi]) rankk[qi] = rk;
        }
    }
    size_t m1 = 0, mk = 0;
    for (size_t qi = 0; qi < nq; qi++) {
        if (rank1[qi] > m1) m1 = rank1[qi];
        if (rankk[qi] > mk) mk = rankk[qi];
    }
    static const size_t cs[] = {8, 16, 32, 64, 128, 256};
    for (size_t ci = 0; ci < SC_COUNTOF(cs); ci++) {
        size_t a = 0, b = 0;
        for (size_t qi = 0; qi < nq; qi++) {
            a += rank1[qi] <= cs[ci];
            b += rankk[qi] <= cs[ci];
        }
        printf("real_cands,flat%s,%zu,%zu,%zu,%zu,%.5f,%.5f,%zu,%zu\n", bits == 4 ? "-4bit" : "", n, d, k, cs[ci],
               (double)a / (double)nq, (double)b / (double)nq, m1, mk);
    }
    fflush(stdout);
    free(dot);
    free(sc);
    free(rank1);
    free(rankk);
    free(c8);
    free(c4);
    free(sc4);
}

static int real_main(const char *file, const char *data, const char *model_dir, size_t n, size_t nq, size_t k)
{
    if (k == 0 || k > REAL_EXACT) {
        fprintf(stderr, "bench_index: --k must be 1..%d\n", REAL_EXACT);
        return 2;
    }
    real_set s = {0};
    int rc = real_load(file, n, nq, &s);
    if (rc == 1) {
        fprintf(stderr, "bench_index: %s absent or for other sizes: embedding qqp_dev questions\n", file);
        if (real_build(file, data, model_dir, n, nq) != 0) return 1;
        rc = real_load(file, n, nq, &s);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_index: cannot read %s\n", file);
        return 1;
    }
    uint32_t *tid = sc_malloc(nq * k * sizeof *tid);
    double *tsc = sc_malloc(nq * k * sizeof *tsc);
    real_truth(&s, k, tid, tsc);
    /* How close the neighbours are: quantiles of the exact top-1 cosine
     * and of the gap to the runner-up (at k >= 2). */
    double *c1 = sc_malloc(nq * sizeof(double)), *gap = sc_malloc(nq * sizeof(double));
    for (size_t i = 0; i < nq; i++) {
        c1[i] = tsc[i * k];
        gap[i] = k > 1 ? tsc[i * k] - tsc[i * k + 1] : 0;
    }
    qsort(c1, nq, sizeof(double), cmp_double);
    qsort(gap, nq, sizeof(double), cmp_double);
    printf("bench,set,n,dim,queries,duplicates,top1_cos_p10,top1_cos_p50,top1_cos_p90,gap12_p10,gap12_p50\n");
    size_t nd = 0;
    for (size_t i = 0; i < nq; i++) nd += s.dup[i];
    printf("real_set,qqp_dev,%zu,%u,%zu,%zu,%.3f,%.3f,%.3f,%.4f,%.4f\n", s.n, s.dim, nq, nd, c1[nq / 10],
           c1[nq / 2], c1[nq * 9 / 10], gap[nq / 10], gap[nq / 2]);
    free(c1);
    free(gap);
    printf("bench,backend,kernel,queries,n,dim,k,count,p50_us,p99_us,recall_at_1,recall_at_k,misses_at_1,"
           "misses_at_k,floor_ms,ratio_vs_floor\n");
    fflush(stdout);
    if (!g_ann_only) {
        run_real(&s, 8, 0, k, tid, tsc);
        run_real(&s, 4, 0, k, tid, tsc);
    }
    run_real(&s, 4, 1, k, tid, tsc);
    if (!g_ann_only) {
        printf("bench,backend,n,dim,k,candidates,top1_within,topk_all_within,max_rank_top1,max_rank_topk\n");
        run_real_cands(&s, 8, k, tid);
        run_real_cands(&s, 4, k, tid);
    }
    free(tid);
    free(tsc);
    free(s.db);
    free(s.qs);
    free(s.dup);
    return 0;
}

int main(int argc, char **argv)
{
    int quick = 0, full = 0, kernels = 0, hnsw = 0;
    size_t only_n = 0, only_d = 0, nq = 200, k = 4;
    const char *real = NULL, *data = getenv("SC_DATA_DIR"), *model_dir = "models/use-lite/dist";
    int nq_given = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--full") == 0) full = 1;
        else if (strcmp(argv[i], "--kernels") == 0) kernels = 1;
        else if (strcmp(argv[i], "--faiss-hnsw") == 0) hnsw = 1;
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) only_n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) only_d = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc) {
            nq = strtoull(argv[++i], NULL, 10);
            nq_given = 1;
        } else if (strcmp(argv[i], "--real") == 0 && i + 1 < argc) real = argv[++i];
        else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc) k = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--ann-min") == 0 && i + 1 < argc) g_ann_min = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--nprobe") == 0 && i + 1 < argc) g_nprobe = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--ann-only") == 0) g_ann_only = 1;
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) data = argv[++i];
        else if (strcmp(argv[i], "--model-dir") == 0 && i + 1 < argc) model_dir = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_index [--quick] [--full] [--kernels] [--faiss-hnsw] [--n N --dim D] [--queries Q]\n"
                   "       bench_index --real FILE [--n N] [--queries Q] [--k K] [--data DIR] [--model-dir DIR]\n");
            return 0;
        } else {
            fprintf(stderr, "bench_index: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nq == 0) nq = 1;
    if (real && (!data || !*data)) {
        fprintf(stderr, "bench_index: --real needs the data directory (--data DIR or SC_DATA_DIR)\n");
        return 2;
    }
    if (real) return real_main(real, data, model_dir, only_n ? only_n : 100000, nq_given ? nq : 2000, k);
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
