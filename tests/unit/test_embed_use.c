/* Unit tests for the USE-lite embedder (embed/use_*.c) against the original
 * model: tests/fixtures/use_reference.json holds, for 200+ sentences, the
 * token ids of the TF.js tokenizer and the 512-d output of the TF.js graph
 * (made by tools/reference/gen.js). Token ids must be identical and the
 * cosine to the reference >= 0.9999 for every sentence. Also: batching,
 * the 128-token clip counter, threads, and the errors for a missing or
 * damaged model. The model must be installed (make deps); without it these
 * tests fail, they do not skip. */
#include "tap.h"
#include "embed/embed_internal.h"
#include "embed/use.h"
#include "common/err.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MODEL_DIR "models/use-lite/dist"
#define FIXTURE "tests/fixtures/use_reference.json"

static sc_embedder *use_e;
static char use_err[512];

static sc_embedder *use_open_shared(void)
{
    if (use_e) return use_e;
    sc_embedder_opts o = {.name = "use-lite", .model_dir = MODEL_DIR};
    if (sc_embedder_open(&use_e, &o, use_err, sizeof use_err) != 0) {
        sc_test_fail(__FILE__, __LINE__, "cannot open the USE-lite model in %s: %s -- run make deps",
                     MODEL_DIR, use_err);
        use_e = NULL;
    }
    return use_e;
}

static json_t *fixture(void)
{
    static json_t *doc;
    if (doc) return doc;
    json_error_t jerr;
    doc = json_load_file(FIXTURE, JSON_ALLOW_NUL, &jerr);
    if (!doc) sc_test_fail(__FILE__, __LINE__, "cannot read %s: %s", FIXTURE, jerr.text);
    return doc;
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-30);
}

/* A text far beyond the clip: the prefix encoding must give the same first
 * 128 ids as the full one, for several kinds of text. */
SC_TEST(embed_use_long_prefix_encode)
{
    sc_embedder *e = use_open_shared();
    REQUIRE(e != NULL);
    const sc_use_model *m = e->impl;
    const char *units[] = {"hello world, this is 中文 text ", "😀😀 ", "abcdefghijklmnopqrstuvwxyz",
                           "x ", "  \t ", "e\xcc\x81 \xc2\xa0x\xcc\x81\xef\xac\x81 \xff"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ul = strlen(units[u]), n = 200000 / ul * ul;
        char *t = malloc(n);
        REQUIRE(t != NULL);
        for (size_t i = 0; i < n; i++) t[i] = units[u][i % ul];
        int32_t *a, *b;
        size_t ka, kb;
        CHECK_OK(sc_use_encode(m->vocab, t, n, 0, &a, &ka));
        CHECK_OK(sc_use_encode(m->vocab, t, n, 128, &b, &kb));
        CHECK((ka > 128) == (kb > 128));
        for (size_t j = 0; j < 128 && j < ka && j < kb; j++) CHECK_EQ_INT(a[j], b[j]);
        free(a);
        free(b);
        free(t);
    }
}

SC_TEST(embed_use_open)
{
    sc_embedder *e = use_open_shared();
    REQUIRE(e != NULL);
    CHECK_EQ_INT(sc_embedder_dim(e), 512);
    CHECK(strcmp(sc_embedder_id(e), "use-lite/1") == 0);
    const sc_use_model *m = e->impl;
    CHECK_EQ_INT(m->max_len, SC_EMBED_USE_MAX_TOKENS);
    CHECK_EQ_INT(m->layer[0].heads, 4);
    CHECK_EQ_INT(m->layer[1].heads, 4);
    CHECK(sc_use_vocab_cut_safe(m->vocab));
}

SC_TEST(embed_use_tokenizer_matches_tfjs)
{
    sc_embedder *e = use_open_shared();
    json_t *doc = fixture();
    REQUIRE(e != NULL && doc != NULL);
    const sc_use_model *m = e->impl;
    json_t *sents = json_object_get(doc, "sentences");
    size_t n = json_array_size(sents), bad = 0;
    CHECK(n >= 200);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(sents, i), *ids = json_object_get(s, "ids");
        json_t *t = json_object_get(s, "text");
        int32_t *got;
        size_t k;
        CHECK_OK(sc_use_encode(m->vocab, json_string_value(t), json_string_length(t), 0, &got, &k));
        int same = k == json_array_size(ids);
        for (size_t j = 0; same && j < k; j++)
            same = got[j] == json_integer_value(json_array_get(ids, j));
        /* The early-stopping encode (as the embedder calls it) agrees on
         * the first 128 ids and on whether there are more. */
        int32_t *pre;
        size_t kp;
        CHECK_OK(sc_use_encode(m->vocab, json_string_value(t), json_string_length(t), 128, &pre, &kp));
        same = same && (kp > 128) == (k > 128) && (k > 128 || kp == k);
        for (size_t j = 0; same && j < kp && j < 128; j++) same = pre[j] == got[j];
        free(pre);
        if (!same && bad++ < 5) {
            printf("# token mismatch on sentence %zu (%zu ids, want %zu): %.60s\n", i, k,
                   json_array_size(ids), json_string_value(t));
            printf("#   got:");
            for (size_t j = 0; j < k && j < 20; j++) printf(" %d", got[j]);
            printf("\n#  want:");
            for (size_t j = 0; j < json_array_size(ids) && j < 20; j++)
                printf(" %lld", (long long)json_integer_value(json_array_get(ids, j)));
            printf("\n");
        }
        free(got);
    }
    printf("# token ids: %zu of %zu sentences identical to TF.js\n", n - bad, n);
    CHECK_EQ_INT(bad, 0);
}

/* Embeds every fixture sentence, one call per sentence and again in
 * batches of 7, and compares with the TF.js outputs. */
/* int8: 0 = the fp32 kernels only (equal to TF.js within 1e-4, batches
 * within 1e-5), 1 = the default (int8 where the model marks it, VNNI CPUs:
 * within 1e-3 of TF.js's fp32, the bound). */
static void matches_tfjs(int int8)
{
    int saved = sc_use_gemm_int8;
    sc_use_gemm_int8 = int8;
    sc_embedder *e = use_open_shared();
    json_t *doc = fixture();
    REQUIRE(e != NULL && doc != NULL);
    json_t *sents = json_object_get(doc, "sentences");
    size_t n = json_array_size(sents);
    REQUIRE(n >= 200);
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    float *one = malloc(n * 512 * sizeof(float)), *bat = malloc(n * 512 * sizeof(float));
    REQUIRE(texts && lens && one && bat);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_object_get(json_array_get(sents, i), "text");
        texts[i] = json_string_value(t);
        lens[i] = json_string_length(t);
        CHECK_OK(sc_embed(e, &texts[i], &lens[i], 1, one + i * 512));
    }
    for (size_t i = 0; i < n; i += 7) {
        size_t k = n - i < 7 ? n - i : 7;
        CHECK_OK(sc_embed(e, texts + i, lens + i, k, bat + i * 512));
    }
    double worst = 1, worst_b = 1;
    size_t worst_i = 0, below = 0;
    float ref[512];
    for (size_t i = 0; i < n; i++) {
        json_t *emb = json_object_get(json_array_get(sents, i), "embedding");
        REQUIRE(json_array_size(emb) == 512);
        for (size_t j = 0; j < 512; j++) ref[j] = (float)json_number_value(json_array_get(emb, j));
        double c = cosine(one + i * 512, ref, 512), cb = cosine(one + i * 512, bat + i * 512, 512);
        if (c < worst) {
            worst = c;
            worst_i = i;
        }
        if (cb < worst_b) worst_b = cb;
        if (c < (int8 ? 0.999 : 0.9999)) below++;
    }
    printf("# %s: min cosine to TF.js over %zu sentences: %.9f (1 - cos = %.2e, sentence %zu); "
           "batch vs single min %.9f\n", int8 ? "int8 (default)" : "fp32", n, worst, 1 - worst,
           worst_i, worst_b);
    CHECK(below == 0);
    CHECK(worst_b > (int8 ? 0.9999 : 0.99999));
    free(texts);
    free(lens);
    free(one);
    free(bat);
    sc_use_gemm_int8 = saved;
}

SC_TEST(embed_use_matches_tfjs) { matches_tfjs(0); }
SC_TEST(embed_use_int8_close_to_tfjs) { matches_tfjs(1); }

SC_TEST(embed_use_clip_counter)
{
    sc_embedder *e = use_open_shared();
    REQUIRE(e != NULL);
    sc_embed_stats a, b;
    sc_embed_stats_get(e, &a);
    char text[4000];
    size_t k = 0;
    for (int i = 0; i < 300; i++) k += (size_t)snprintf(text + k, sizeof text - k, "w%d ", i % 10);
    const char *t = text;
    float v[512];
    CHECK_OK(sc_embed(e, &t, &k, 1, v));
    sc_embed_stats_get(e, &b);
    CHECK_EQ_INT(b.texts - a.texts, 1);
    CHECK_EQ_INT(b.truncated - a.truncated, 1);
    CHECK_EQ_INT(b.tokens - a.tokens, SC_EMBED_USE_MAX_TOKENS);
    /* Garbage and the byte bound: no crash, unit vectors. */
    char junk[5000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7919 % 251 + 1);
    const char *jp = junk;
    size_t jl = sizeof junk;
    CHECK_OK(sc_embed(e, &jp, &jl, 1, v));
    double ss = 0;
    for (int i = 0; i < 512; i++) ss += v[i] * (double)v[i];
    CHECK(fabs(ss - 1) < 1e-4);
}

typedef struct {
    sc_embedder *e;
    const char *text;
    float out[512];
    int rc;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *a = p;
    size_t len = strlen(a->text);
    for (int i = 0; i < 20 && a->rc == 0; i++) a->rc = sc_embed(a->e, &a->text, &len, 1, a->out);
    return NULL;
}

SC_TEST(embed_use_threads)
{
    sc_embedder *e = use_open_shared();
    REQUIRE(e != NULL);
    const char *texts[4] = {"How do I reset my password?", "The weather is nice today.",
                            "日本語のテキストです。", "emoji 😀 and more text to make it longer"};
    thr_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){.e = e, .text = texts[i]};
        REQUIRE(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        float v[512];
        size_t len = strlen(texts[i]);
        CHECK_EQ_INT(args[i].rc, 0);
        CHECK_OK(sc_embed(e, &texts[i], &len, 1, v));
        CHECK(memcmp(v, args[i].out, sizeof v) == 0);
    }
}

/* common/pair.h: a lone forward splits its products with the helper; the
 * vectors are the same bits as without it, in int8 and fp32. */
static void pair_same_bits(int int8)
{
    int saved = sc_use_gemm_int8;
    sc_use_gemm_int8 = int8;
    sc_embedder *e = use_open_shared();
    json_t *doc = fixture();
    REQUIRE(e != NULL && doc != NULL);
    sc_use_model *m = e->impl;
    sc_pair *pair = m->pair;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!pair) printf("# no helper (%ld CPU): both runs single-threaded\n", cpus);
    json_t *sents = json_object_get(doc, "sentences");
    size_t n = json_array_size(sents);
    float *with = malloc(n * 512 * sizeof(float)), *without = malloc(n * 512 * sizeof(float));
    REQUIRE(with && without);
    unsigned long h0 = sc_pair_helped(pair);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_object_get(json_array_get(sents, i), "text");
        const char *text = json_string_value(t);
        size_t len = json_string_length(t);
        CHECK_OK(sc_embed(e, &text, &len, 1, with + i * 512));
        m->pair = NULL;
        CHECK_OK(sc_embed(e, &text, &len, 1, without + i * 512));
        m->pair = pair;
    }
    unsigned long helped = sc_pair_helped(pair) - h0;
    printf("# %s: the helper ran %lu halves for %zu sentences\n", int8 ? "int8" : "fp32", helped, n);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(with + i * 512, without + i * 512, 512 * sizeof(float)) != 0;
    CHECK_EQ_INT(differ, 0);
    if (pair) CHECK(helped > 0);
    free(with);
    free(without);
    sc_use_gemm_int8 = saved;
}

SC_TEST(embed_use_pair_same_bits_int8) { pair_same_bits(1); }
SC_TEST(embed_use_pair_same_bits_fp32) { pair_same_bits(0); }

/* The hand-off itself: every posted task has each half run exactly once,
 * by whichever thread, while other "forwards" come and go (so the helper
 * sleeps, wakes and races the owner for the half). */
typedef struct pair_task {
    _Atomic int runs[2];
} pair_task;

/* Half 0 waits up to ~20 us for half 1 to run, so that the helper, not
 * only the owner, gets to take halves (a task this short is otherwise
 * over before the helper looks). */
static void pair_fn(void *arg, int half)
{
    pair_task *t = arg;
    if (half == 0) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        do clock_gettime(CLOCK_MONOTONIC, &b);
        while (!atomic_load(&t->runs[1]) && (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 20000);
    }
    atomic_fetch_add(&t->runs[half], 1);
}

typedef struct {
    sc_pair *p;
    _Atomic int *stop;
    size_t bad;
} churn_arg;

static void *churn_main(void *arg)
{
    churn_arg *a = arg;
    while (!atomic_load(a->stop)) {
        int own = sc_pair_begin(a->p);
        if (own) {
            pair_task t = {0};
            sc_pair_run(a->p, pair_fn, &t);
            a->bad += atomic_load(&t.runs[0]) != 1 || atomic_load(&t.runs[1]) != 1;
        }
        sc_pair_end(a->p, own);
    }
    return NULL;
}

SC_TEST(embed_use_pair_runs_each_half_once)
{
    sc_pair *p = sc_pair_create();
    if (!p) {
        printf("# no helper on this machine (one CPU or SC_EMBED_PAIR=0)\n");
        CHECK(sc_pair_begin(NULL) == 0);
        return;
    }
    enum { N = 20000 };
    pair_task *t = calloc(N, sizeof *t);
    REQUIRE(t);
    _Atomic int stop = 0;
    churn_arg ca = {p, &stop, 0};
    pthread_t th;
    size_t owned = 0;
    for (int i = 0; i < N; i++) {
        if (i == N / 2) REQUIRE(pthread_create(&th, NULL, churn_main, &ca) == 0);
        int own = sc_pair_begin(p);
        if (own) {
            owned++;
            sc_pair_run(p, pair_fn, &t[i]);
        } else {
            pair_fn(&t[i], 0);
            pair_fn(&t[i], 1);
        }
        sc_pair_end(p, own);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    size_t bad = 0;
    for (int i = 0; i < N; i++) bad += atomic_load(&t[i].runs[0]) != 1 || atomic_load(&t[i].runs[1]) != 1;
    printf("# %zu of %d owned the pair; the helper ran %lu halves\n", owned, N, sc_pair_helped(p));
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ca.bad, 0);
    CHECK(owned > 0);
    CHECK(sc_pair_helped(p) > 0);
    sc_pair_destroy(p);
    free(t);
}

/* Background work (sc_pair_background) never owns the pair, yet counts as
 * in flight: an operation beside it does not split either. */
SC_TEST(embed_use_pair_background_never_splits)
{
    sc_pair *p = sc_pair_create();
    if (!p) {
        printf("# no helper on this machine (one CPU or SC_EMBED_PAIR=0)\n");
        return;
    }
    sc_pair_background(1);
    int bg = sc_pair_begin(p);
    CHECK_EQ_INT(bg, 0);                 /* alone, and still not split */
    sc_pair_background(0);
    int fg = sc_pair_begin(p);
    CHECK_EQ_INT(fg, 0);                 /* beside background work */
    sc_pair_end(p, fg);
    sc_pair_end(p, bg);
    fg = sc_pair_begin(p);
    CHECK_EQ_INT(fg, 1);                 /* alone again */
    CHECK(sc_pair_alone(p));
    sc_pair_background(1);
    bg = sc_pair_begin(p);
    CHECK_EQ_INT(bg, 0);
    CHECK(!sc_pair_alone(p));            /* the owner stops splitting */
    sc_pair_end(p, bg);
    sc_pair_background(0);
    sc_pair_end(p, fg);
    sc_pair_destroy(p);
}

static int copy_file(const char *from, const char *to, long truncate_to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        if (a) fclose(a);
        if (b) fclose(b);
        return -1;
    }
    char buf[65536];
    size_t n;
    long total = 0;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (truncate_to >= 0 && total + (long)n > truncate_to) n = (size_t)(truncate_to - total);
        fwrite(buf, 1, n, b);
        total += (long)n;
        if (truncate_to >= 0 && total >= truncate_to) break;
    }
    fclose(a);
    fclose(b);
    return 0;
}

SC_TEST(embed_use_missing_or_damaged_model)
{
    char err[512];
    sc_embedder *e = NULL;
    sc_embedder_opts o = {.name = "use-lite", .model_dir = "/nonexistent/use-lite"};
    CHECK_EQ_INT(sc_embedder_open(&e, &o, err, sizeof err), SC_ENOTFOUND);
    CHECK(e == NULL);
    CHECK(strstr(err, "/nonexistent/use-lite/model.json") != NULL);
    CHECK(strstr(err, "make deps") != NULL);

    /* A copy of the model with its last shard cut short. */
    const char *dir = sc_test_tmpdir();
    const char *files[] = {"model.json", "vocab.json", "group1-shard1of7", "group1-shard2of7",
                           "group1-shard3of7", "group1-shard4of7", "group1-shard5of7",
                           "group1-shard6of7", "group1-shard7of7"};
    char from[512], to[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(from, sizeof from, MODEL_DIR "/%s", files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        REQUIRE(copy_file(from, to, i == 8 ? 1000 : -1) == 0);
    }
    o.model_dir = dir;
    CHECK_EQ_INT(sc_embedder_open(&e, &o, err, sizeof err), SC_ECORRUPT);
    CHECK(strstr(err, "make deps") != NULL);
    printf("# %s\n", err);
    /* Missing vocabulary. */
    snprintf(to, sizeof to, "%s/group1-shard7of7", dir);
    REQUIRE(copy_file(MODEL_DIR "/group1-shard7of7", to, -1) == 0);
    snprintf(to, sizeof to, "%s/vocab.json", dir);
    unlink(to);
    CHECK_EQ_INT(sc_embedder_open(&e, &o, err, sizeof err), SC_ENOTFOUND);
    CHECK(strstr(err, "vocab.json") != NULL && strstr(err, "make deps") != NULL);
    /* A damaged model.json. */
    REQUIRE(copy_file(MODEL_DIR "/vocab.json", to, -1) == 0);
    snprintf(to, sizeof to, "%s/model.json", dir);
    REQUIRE(copy_file(MODEL_DIR "/model.json", to, 5000) == 0);
    CHECK_EQ_INT(sc_embedder_open(&e, &o, err, sizeof err), SC_ECORRUPT);
    CHECK(strstr(err, "model.json") != NULL && strstr(err, "make deps") != NULL);
    /* Intact copy opens. */
    REQUIRE(copy_file(MODEL_DIR "/model.json", to, -1) == 0);
    CHECK_OK(sc_embedder_open(&e, &o, err, sizeof err));
    sc_embedder_close(e);
}

/* Frees the shared embedder at exit so ASan's leak check stays quiet. */
__attribute__((destructor)) static void close_shared(void)
{
    sc_embedder_close(use_e);
    use_e = NULL;
}

/* The packed AVX-512 kernel against cblas_sgemm on the model's shapes and
 * every row count from 1 to 40 (block paddings), plus a few large ones. */
/* A packed fp32 kernel (force 1 or 3) against cblas_sgemm, for row counts
 * 1..40 and 85, 130 (blocks, padding, and past the small-product bound). */
static void check_fp32(const sc_use_mat *mp, const float *x, float *c1, float *c2, int force, const char *what)
{
    uint32_t n = mp->n;
    double worst = 0;
    for (size_t rows = 1; rows <= 130; rows = rows < 40 ? rows + 1 : rows + 45) {
        for (size_t i = 0; i < rows * n; i++) c1[i] = c2[i] = (float)(i % 11) * 0.25f;
        sc_use_matmul(mp, x, rows, c1, force);
        sc_use_matmul(mp, x, rows, c2, -1);
        for (size_t i = 0; i < rows * n; i++) {
            double d = fabs((double)c1[i] - c2[i]) / (1 + fabs(c2[i]));
            worst = d > worst ? d : worst;
        }
    }
    printf("# %s vs sgemm k=%u n=%u: max rel diff %.2e\n", what, mp->k, n, worst);
    CHECK(worst < 1e-4);
}

/* An int8 kernel (force 2 or 4) against the same quantisation done here
 * in double: equal but for float rounding, whatever the row count (blocks
 * of 16 or 12, 8 and 4, and padding). */
static void check_int8(const sc_use_mat *mp, const float *w, const float *x, float *c1, float *c2, int force)
{
    uint32_t k = mp->k, n = mp->n;
    double *sw = malloc(n * sizeof(double));
    for (uint32_t j = 0; j < n; j++) {
        double mx = 0;
        for (uint32_t kk = 0; kk < k; kk++) mx = fmax(mx, fabs(w[(size_t)kk * n + j]));
        sw[j] = (float)mx / 127.0f;
    }
    double worst8 = 0;
    for (size_t rows = 1; rows <= 130; rows = rows < 40 ? rows + 1 : rows + 45) {
        for (size_t i = 0; i < rows * n; i++) c1[i] = c2[i] = (float)(i % 11) * 0.25f;
        sc_use_matmul(mp, x, rows, c1, force);
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * k;
            float mx = 0;
            for (uint32_t kk = 0; kk < k; kk++) mx = fmaxf(mx, fabsf(xr[kk]));
            float sx = mx / 127.0f, inv = 1.0f / sx;
            for (uint32_t j = 0; j < n; j++) {
                float invw = 1.0f / (float)sw[j];
                long acc = 0;
                for (uint32_t kk = 0; kk < k; kk++)
                    acc += lrintf(xr[kk] * inv) * lrintf(w[(size_t)kk * n + j] * invw);
                double want = c2[r * n + j] + (double)acc * sx * (float)sw[j];
                double d = fabs(c1[r * n + j] - want) / (1 + fabs(want));
                worst8 = d > worst8 ? d : worst8;
            }
        }
    }
    printf("# int8 kernel (force %d: %s) vs its quantisation in double k=%u n=%u: max rel diff %.2e\n", force,
           force == 4 || !mp->q8 ? "AVX2" : "VNNI", k, n, worst8);
    CHECK(worst8 < 1e-5);
    free(sw);
}

SC_TEST(embed_use_gemm_kernel_vs_sgemm)
{
    static const uint32_t shapes[][2] = {{256, 768}, {512, 1536}, {1536, 512}, {32, 16}, {36, 32}}; /* k % 16 != 0: the int8 scalar tail */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t k = shapes[s][0], n = shapes[s][1];
        float *w = malloc((size_t)k * n * sizeof(float)), *x = malloc(130 * (size_t)k * sizeof(float));
        float *c1 = malloc(130 * (size_t)n * sizeof(float)), *c2 = malloc(130 * (size_t)n * sizeof(float));
        REQUIRE(w && x && c1 && c2);
        uint32_t seed = 1;
        for (size_t i = 0; i < (size_t)k * n; i++) w[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < 130 * (size_t)k; i++) x[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        sc_use_mat m;
        sc_use_mat_pack(&m, w, k, n, 1);
        check_fp32(&m, x, c1, c2, 1, "kernel");
        /* The AVX2 kernel, also where AVX-512 would be picked. */
        if (sc_use_mat_pack8(&m) == 0) check_fp32(&m, x, c1, c2, 3, "AVX2 kernel");
        else printf("# no AVX2 + FMA here (or n %% 8 != 0): AVX2 kernel not tested\n");
        /* The int8 kernels (VNNI, or AVX2's vpmaddwd where there is no
         * VNNI; and AVX2's also where there is) against the same
         * quantisation done here in double. */
        if (m.q8 || m.q16) check_int8(&m, w, x, c1, c2, 2);
        else printf("# no int8 kernel here (neither AVX-512 VNNI nor AVX2)\n");
        if (sc_use_mat_pack_q16(&m) == 0) check_int8(&m, w, x, c1, c2, 4);
        sc_use_mat_free(&m);
        free(w);
        free(x);
        free(c1);
        free(c2);
    }
}
