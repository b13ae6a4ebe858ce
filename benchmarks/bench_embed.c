/* bench_embed: speed of the USE-lite embedder (and, for scale, the hash
 * embedder). Rows:
 *   use-lite  sentences/s and p50/p99 latency of one sc_embed() call with
 *             one sentence, for short (~10 tokens), medium (~16 and ~30)
 *             and long (~128) inputs, on 1 and 2 threads; plus batch=8
 *             rows (8 sentences per call, the micro-batching question).
 *   sgemm     OpenBLAS (1 thread) on exactly the dense shapes of a forward
 *             pass of T tokens, as GFLOP/s: the machine's matrix speed for
 *             this work. gflops_per_core of a use-lite row counts the
 *             encoder's FLOPs (dense + attention) per CPU second, and
 *             frac_of_sgemm divides it by the sgemm row of the same T,
 *             frac_of_peak by sgemm-peak (a 512-row product, where
 *             OpenBLAS runs at full speed on one core).
 * The machine is shared, so latency comes twice: wall (p50_us, p99_us,
 * includes waiting for a core) and the calling thread's CPU time
 * (p50_cpu_us, p99_cpu_us: what the work costs on an idle core).
 * sentences/s are wall-clock.
 * Options: --model DIR (default models/use-lite/dist), --seconds S per row
 * (default 1.5), --quick (0.4 s per row). Output: CSV on stdout. */
#include "embed/embed.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: the machine is shared, so wall time
 * includes waiting for a core; CPU time is what the work itself costs. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *WORDS[] = {
    "time", "people", "year", "way", "day", "man", "thing", "woman", "life", "child", "world",
    "school", "state", "family", "student", "group", "country", "problem", "hand", "part",
    "place", "case", "week", "company", "system", "program", "question", "work", "number",
    "night", "point", "home", "water", "room", "mother", "area", "money", "story", "fact",
    "month", "right", "study", "book", "job", "word", "business", "issue", "side", "kind",
    "head", "house", "service", "friend", "father", "power", "hour", "game", "line", "end",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* A sentence of `words` common words, variant v. */
static char *sentence(int words, int v)
{
    char *s = malloc((size_t)words * 12 + 2);
    size_t k = 0;
    for (int i = 0; i < words; i++)
        k += (size_t)sprintf(s + k, "%s%s", i ? " " : "", WORDS[(size_t)(i * 7 + v * 13) % NWORDS]);
    s[k++] = '.';
    s[k] = 0;
    return s;
}

/* FLOPs of one forward pass over T tokens (dense layers + attention). */
static double forward_flops(double t)
{
    double dense = 2 * t * (256.0 * 768 + 256.0 * 512 + 256.0 * 512 + 2 * 512.0 * 1536 +
                            512.0 * 1536 + 512.0 * 512 + 2 * 512.0 * 1536);
    double att = 4 * t * t * (256.0 + 512.0);
    return dense + att + 2 * 512.0 * 512;
}

/* sgemm GFLOP/s on the dense shapes of a forward pass of T tokens. */
static double sgemm_rate(int t, double seconds)
{
    static const int shapes[][2] = {{256, 768}, {256, 512}, {256, 512}, {512, 1536}, {1536, 512},
                                    {512, 1536}, {512, 512}, {512, 1536}, {1536, 512}};
    float *a = calloc((size_t)t * 1536, sizeof(float)), *b = calloc(1536 * 1536, sizeof(float)),
          *c = calloc((size_t)t * 1536, sizeof(float));
    for (int i = 0; i < 1536 * 1536; i++) b[i] = (float)(i % 17) * 0.01f;
    for (int i = 0; i < t * 1536; i++) a[i] = (float)(i % 13) * 0.01f;
    double flops = 0, t0 = now_s(), c0 = cpu_s(), el;
    do {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int k = shapes[s][0], n = shapes[s][1];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, n, k, 1.0f, a, k, b, n, 1.0f,
                        c, n);
            flops += 2.0 * t * k * n;
        }
        el = now_s() - t0;
    } while (el < seconds);
    el = cpu_s() - c0;
    free(a);
    free(b);
    free(c);
    return flops / el * 1e-9;
}

typedef struct {
    sc_embedder *e;
    char **texts;
    int ntexts, batch;
    double deadline;
    double *lat, *cpu;
    size_t nlat, cap;
    long sent;
} worker;

static void *run_worker(void *p)
{
    worker *w = p;
    size_t lens[64];
    float *out = malloc((size_t)w->batch * sc_embedder_dim(w->e) * sizeof(float));
    for (int i = 0; now_s() < w->deadline; i++) {
        const char *tx[64];
        for (int b = 0; b < w->batch; b++) {
            tx[b] = w->texts[(i * w->batch + b) % w->ntexts];
            lens[b] = strlen(tx[b]);
        }
        double t0 = now_s(), c0 = cpu_s();
        if (sc_embed(w->e, tx, lens, (size_t)w->batch, out) != 0) {
            fprintf(stderr, "bench_embed: sc_embed failed\n");
            exit(1);
        }
        double dt = now_s() - t0, dc = cpu_s() - c0;
        if (w->nlat == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
            w->cpu = realloc(w->cpu, w->cap * sizeof *w->cpu);
        }
        w->cpu[w->nlat] = dc;
        w->lat[w->nlat++] = dt;
        w->sent += w->batch;
    }
    free(out);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double peak_gflops;

static void row(const char *name, sc_embedder *e, int words, int threads, int batch, double secs,
                double sgemm)
{
    char *texts[16];
    for (int i = 0; i < 16; i++) texts[i] = sentence(words, i);
    /* Average token count of these texts, from the embedder's counters. */
    sc_embed_stats a, b;
    sc_embed_stats_get(e, &a);
    float *tmp = malloc(sc_embedder_dim(e) * sizeof(float));
    for (int i = 0; i < 16; i++) {
        size_t l = strlen(texts[i]);
        sc_embed(e, (const char *const *)&texts[i], &l, 1, tmp);
    }
    free(tmp);
    sc_embed_stats_get(e, &b);
    double tok = (double)(b.tokens - a.tokens) / 16.0;
    worker w[8];
    pthread_t th[8];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.e = e, .texts = texts, .ntexts = 16, .batch = batch, .deadline = t0 + secs};
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    size_t nl = 0;
    long sent = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        nl += w[i].nlat;
        sent += w[i].sent;
    }
    double el = now_s() - t0;
    double *all = malloc(nl * sizeof *all), *cpu = malloc(nl * sizeof *cpu), cpu_total = 0;
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, w[i].lat, w[i].nlat * sizeof *all);
        memcpy(cpu + k, w[i].cpu, w[i].nlat * sizeof *cpu);
        k += w[i].nlat;
        free(w[i].lat);
        free(w[i].cpu);
    }
    for (size_t i = 0; i < nl; i++) cpu_total += cpu[i];
    qsort(all, nl, sizeof *all, cmp_d);
    qsort(cpu, nl, sizeof *cpu, cmp_d);
    double sps = (double)sent / el;
    /* Encoder GFLOP/s per core, from CPU time. */
    double gf = sgemm > 0 ? forward_flops(tok) * (double)sent / cpu_total * 1e-9 : 0;
    size_t p99 = (size_t)((double)nl * 0.99);
    printf("%s,%.1f,%d,%d,%.0f,%.0f,%.0f,%.0f,%.0f,%.2f,%.2f,%.3f,%.3f\n", name, tok, threads,
           batch, sps, all[nl / 2] * 1e6, all[p99] * 1e6, cpu[nl / 2] * 1e6, cpu[p99] * 1e6, gf,
           sgemm, sgemm > 0 ? gf / sgemm : 0, peak_gflops > 0 ? gf / peak_gflops : 0);
    fflush(stdout);
    free(all);
    free(cpu);
    for (int i = 0; i < 16; i++) free(texts[i]);
}

int main(int argc, char **argv)
{
    const char *dir = "models/use-lite/dist", *only = NULL;
    double secs = 1.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: bench_embed [--model DIR (USE-lite dist/, or a semcache-embed dir with model.bin)] [--seconds S] [--quick] [--only NAME]\n");
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--quick")) {
            secs = 0.4;
        } else {
            fprintf(stderr, "bench_embed: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    char err[512];
    sc_embedder *e, *h;
    /* a directory with model.bin holds a semcache-embed model (same
     * architecture and forward pass as USE-lite) */
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/model.bin", dir);
    FILE *pf = fopen(probe, "rb");
    sc_embedder_opts o = {.name = pf ? "semcache-embed" : "use-lite", .model_dir = dir};
    if (pf) fclose(pf);
    if (sc_embedder_open(&e, &o, err, sizeof err) != 0) {
        fprintf(stderr, "bench_embed: %s\n", err);
        return 1;
    }
    sc_embedder_opts oh = {.name = "hash"};
    sc_embedder_open(&h, &oh, err, sizeof err);
    openblas_set_num_threads(1);
    printf("bench,tokens,threads,batch,sent_per_s,p50_us,p99_us,p50_cpu_us,p99_cpu_us,gflops_per_core,"
           "sgemm_gflops,frac_of_sgemm,frac_of_peak\n");
    static const struct { const char *name; int words; } sizes[] = {
        {"use-lite-short", 8}, {"use-lite-16tok", 14}, {"use-lite-medium", 28}, {"use-lite-long", 126}};
    /* The machine's matrix speed: a large single-threaded sgemm. */
    double peak = sgemm_rate(512, secs / 2);
    peak_gflops = peak;
    printf("sgemm-peak,512,1,1,,,,,,%.2f,%.2f,1.000,1.000\n", peak, peak);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        if (only && strcmp(only, sizes[s].name) != 0) continue;
        /* OpenBLAS on this T's shapes (T = words + 2: marker and '.'). */
        int t = sizes[s].words + 2;
        double g = sgemm_rate(t, secs / 3);
        printf("sgemm,%d,1,1,,,,,,%.2f,%.2f,1.000,%.3f\n", t, g, g, g / peak);
        row(sizes[s].name, e, sizes[s].words, 1, 1, secs, g);
        row(sizes[s].name, e, sizes[s].words, 2, 1, secs, g);
        if (s == 1 || s == 2) row(sizes[s].name, e, sizes[s].words, 1, 8, secs, g);
    }
    if (!only || !strcmp(only, "hash-medium")) row("hash-medium", h, 28, 1, 1, secs / 2, 0);
    sc_embedder_close(e);
    sc_embedder_close(h);
    return 0;
}
