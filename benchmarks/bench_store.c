/* bench_store: the LMDB store's speed, as CSV.
 *
 * Rows:
 *   put      sync / nosync durability, 1 and 2 writer threads (and 8 in
 *            sync mode), for a fixed time: ops/s and per-put latency.
 *            Group commit shows as the many-thread sync rate beating the
 *            1-thread one: the batch gathered during one fsync commits
 *            with the next. (Two threads mostly alternate, one put per
 *            fsync each, so 2 threads barely beat 1.)
 *   get      random gets (decode included) over the walk data set.
 *   walk     start-up cost: open + sc_store_foreach (decode every record)
 *            over N entries of 512-d vectors, warm page cache.
 *   disk     bytes per entry on disk (LMDB pages in use / N) next to the
 *            encoded record size.
 *
 *   bench_store [--quick | --full] [--dir DIR]
 *
 * Default and --quick: N = 100k, 1 s per put row (well under a minute).
 * --full: N = 1M (needs ~3 GB of disk; target walk <= 5 s), 3 s per row.
 * The data lives in a temporary dir under /tmp unless --dir is given, and
 * is removed at the end. */
#include "common/alloc.h"
#include "common/err.h"
#include "storage/store.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIMS 512

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

static void make_vec(float *v, uint64_t seed)
{
    double norm = 0;
    for (int i = 0; i < DIMS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((int)(seed >> 40) % 2001 - 1000) / 1000.0f;
        norm += (double)v[i] * v[i];
    }
    float inv = (float)(1.0 / sqrt(norm > 0 ? norm : 1));
    for (int i = 0; i < DIMS; i++) v[i] *= inv;
}

static void make_rec(sc_record *r, float *vec, char *prompt, size_t cap, uint64_t i)
{
    memset(r, 0, sizeof *r);
    snprintf(prompt, cap, "what is the answer to question number %llu?", (unsigned long long)i);
    r->ns = (char *)"default";
    r->prompt = prompt;
    r->prompt_len = strlen(prompt);
    r->response = (char *)"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":"
                          "[{\"message\":{\"role\":\"assistant\",\"content\":\"42\"}}]}";
    r->response_len = strlen(r->response);
    r->content_type = (char *)"application/json";
    r->model = (char *)"gpt-4o-mini";
    r->created = r->last_hit = 1700000000 + (int64_t)i;
    r->fp = i % 17;
    r->dim = DIMS;
    make_vec(vec, i + 1);
    r->vec = vec;
}

static void opts_for(sc_store_opts *o, const char *dir, int sync, long long map_mb)
{
    memset(o, 0, sizeof *o);
    o->dir = dir;
    o->sync = sync;
    o->sync_window_ms = 1000;
    o->map_size_mb = map_mb;
    o->embedder_id = "bench/1";
    o->dim = DIMS;
}

/* ---------------------------------------------------------------------
 * Put rate
 * ------------------------------------------------------------------- */

typedef struct putter {
    sc_store *s;
    double until;
    uint64_t base;
    size_t n, cap;
    double *lat;
    int fails;
} putter;

static void *put_main(void *arg)
{
    putter *p = arg;
    float vec[DIMS];
    char prompt[96];
    while (now_s() < p->until) {
        sc_record r;
        make_rec(&r, vec, prompt, sizeof prompt, p->base + p->n);
        double t0 = now_s();
        if (sc_store_put(p->s, &r, NULL) != 0) p->fails++;
        double dt = now_s() - t0;
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 4096;
            p->lat = sc_realloc(p->lat, p->cap * sizeof *p->lat);
        }
        p->lat[p->n++] = dt * 1e6;
    }
    return NULL;
}

static void bench_put(const char *root, int sync, int threads, double secs)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/put-%s-%d", root, sync ? "sync" : "nosync", threads);
    sc_store_opts o;
    opts_for(&o, dir, sync, 4096);
    sc_store *s;
    char err[256];
    if (sc_store_open(&s, &o, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    putter p[8];
    pthread_t th[8];
    double t0 = now_s();
    for (int t = 0; t < threads; t++) {
        p[t] = (putter){.s = s, .until = t0 + secs, .base = (uint64_t)t << 40};
        pthread_create(&th[t], NULL, put_main, &p[t]);
    }
    size_t total = 0;
    int fails = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        total += p[t].n;
        fails += p[t].fails;
    }
    double el = now_s() - t0;
    double *all = sc_malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int t = 0; t < threads; t++) {
        memcpy(all + k, p[t].lat, p[t].n * sizeof *all);
        k += p[t].n;
        free(p[t].lat);
    }
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    printf("put,%s,%d,%zu,%d,%.0f,%.1f,%.1f,,,%.2f,%d\n", sync ? "sync" : "nosync", threads,
           total, DIMS, (double)total / el, pct(all, total, 0.5), pct(all, total, 0.99),
           st.commits ? (double)total / (double)st.commits : 0.0, fails);
    fflush(stdout);
    free(all);
    sc_store_close(s);
}

/* ---------------------------------------------------------------------
 * Walk data set, gets, start-up walk, disk use
 * ------------------------------------------------------------------- */

typedef struct filler {
    sc_store *s;
    uint64_t from, to;
    int fails;
} filler;

static void *fill_main(void *arg)
{
    filler *f = arg;
    float vec[DIMS];
    char prompt[96];
    for (uint64_t i = f->from; i < f->to; i++) {
        sc_record r;
        make_rec(&r, vec, prompt, sizeof prompt, i);
        if (sc_store_put(f->s, &r, NULL) != 0) f->fails++;
    }
    return NULL;
}

typedef struct walk_ctx {
    uint64_t n;
    double checksum;
} walk_ctx;

static int walk_fn(void *ctx, const sc_record *r)
{
    walk_ctx *w = ctx;
    w->n++;
    w->checksum += r->vec ? r->vec[0] : 0;
    return 0;
}

static void bench_walk(const char *root, uint64_t n, double get_secs)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/walk", root);
    sc_store_opts o;
    /* 512-d records (~2.3 KB) exceed LMDB's in-page limit (~2 KB with 4 KB
     * pages), so each takes a 4 KB overflow page: size the map for that. */
    long long map_mb = (long long)(n * 4608 / (1 << 20)) + 256;
    opts_for(&o, dir, 0, map_mb);
    sc_store *s;
    char err[256];
    if (sc_store_open(&s, &o, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    /* Fill from several threads so group commit batches the puts. */
    enum { F = 8 };
    filler f[F];
    pthread_t th[F];
    double t0 = now_s();
    for (int t = 0; t < F; t++) {
        f[t] = (filler){.s = s, .from = n * (uint64_t)t / F, .to = n * (uint64_t)(t + 1) / F};
        pthread_create(&th[t], NULL, fill_main, &f[t]);
    }
    int fails = 0;
    for (int t = 0; t < F; t++) {
        pthread_join(th[t], NULL);
        fails += f[t].fails;
    }
    double fill = now_s() - t0;
    printf("fill,nosync,%d,%llu,%d,%.0f,,,%.2f,,,%d\n", F, (unsigned long long)n, DIMS,
           (double)n / fill, fill, fails);
    fflush(stdout);

    /* Random gets. */
    uint64_t x = 88172645463325252ull, gets = 0;
    size_t cap = 1 << 20;
    double *lat = sc_malloc(cap * sizeof *lat);
    t0 = now_s();
    double until = t0 + get_secs;
    int gfails = 0;
    while (now_s() < until) {
        for (int j = 0; j < 256; j++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            sc_record r;
            double a = now_s();
            if (sc_store_get(s, 1 + x % n, &r) != 0) gfails++;
            double dt = now_s() - a;
            sc_record_clear(&r);
            if (gets < cap) lat[gets] = dt * 1e6;
            gets++;
        }
    }
    double el = now_s() - t0;
    size_t nl = gets < cap ? gets : cap;
    printf("get,-,1,%llu,%d,%.0f,%.2f,%.2f,,,,%d\n", (unsigned long long)gets, DIMS,
           (double)gets / el, pct(lat, nl, 0.5), pct(lat, nl, 0.99), gfails);
    free(lat);
    sc_store_close(s);

    /* Start-up: open + walk with decode, warm cache. */
    t0 = now_s();
    if (sc_store_open(&s, &o, err, sizeof err) != 0) {
        fprintf(stderr, "reopen: %s\n", err);
        exit(1);
    }
    double open_s = now_s() - t0;
    walk_ctx w = {0, 0};
    double t1 = now_s();
    sc_store_foreach(s, walk_fn, &w);
    double walk_s = now_s() - t1;
    printf("walk,-,1,%llu,%d,%.0f,,,%.3f,,,%d\n", (unsigned long long)w.n, DIMS,
           (double)w.n / walk_s, open_s + walk_s, w.n != n);
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    printf("disk,-,1,%llu,%d,,,,,%.1f,,0\n", (unsigned long long)st.entries, DIMS,
           (double)st.disk_bytes / (double)(st.entries ? st.entries : 1));
    printf("record,-,1,%llu,%d,,,,,%.1f,,0\n", (unsigned long long)st.entries, DIMS,
           (double)st.bytes / (double)(st.entries ? st.entries : 1));
    fflush(stdout);
    sc_store_close(s);
}

int main(int argc, char **argv)
{
    int full = 0;
    const char *dir_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--full") == 0) {
            full = 1;
        } else if (strcmp(argv[i], "--quick") == 0) {
            full = 0;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_arg = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_store [--quick | --full] [--dir DIR]\n");
            return 0;
        } else {
            fprintf(stderr, "bench_store: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    char root[512];
    if (dir_arg) {
        snprintf(root, sizeof root, "%s", dir_arg);
    } else {
        snprintf(root, sizeof root, "/tmp/bench_store_XXXXXX");
        if (!mkdtemp(root)) {
            perror("mkdtemp");
            return 1;
        }
    }
    uint64_t n = full ? 1000000 : 100000;
    double secs = full ? 3.0 : 1.0;
    printf("bench,mode,threads,n,dim,ops_per_s,p50_us,p99_us,seconds,bytes_per_entry,puts_per_commit,errors\n");
    fflush(stdout);
    bench_put(root, 1, 1, secs);
    bench_put(root, 1, 2, secs);
    bench_put(root, 1, 8, secs); /* group commit: many waiters, one fsync */
    bench_put(root, 0, 1, secs);
    bench_put(root, 0, 2, secs);
    bench_walk(root, n, secs);
    if (!dir_arg) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    }
    return 0;
}
