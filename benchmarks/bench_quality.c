/* bench_quality: how often the semantic cache serves the right answer, with
 * the raw cosine and with the hit verifier (embed/verify.h), as a function
 * of the threshold. CSV on stdout, one row per (kind, data set, scorer,
 * threshold); benchmarks/quality.gp turns it into benchmarks/quality.png.
 *
 * Data sets (../shared/data, see BENCHMARKS.md (Quality) for the splits):
 *   qqp_dev        pairs of the benchmark split of qqp_dev (disjoint from
 *                  the verifier's training and calibration rows).
 *   gptcache       999 (origin, similar) paraphrases = positives; negatives
 *                  pair each origin with the most cosine-similar `similar`
 *                  question of another item (hard negatives).
 *   banking77_faq  FAQ scenario: 5 seeded queries per intent (all 77
 *                  intents) are the cache; every other query is sent; the
 *                  top 5 seeded entries by cosine are candidates; the
 *                  cosine scorer serves the nearest, the verifier the one it
 *                  scores highest; a hit is correct when the intents agree.
 *                  banking77_faq_heldout: only queries of intents the
 *                  verifier never saw in training.
 *   lookalike      tests/fixtures/lookalike.tsv (ours; never trained on).
 *   stsb_dev/test  Spearman of the score against the 0-5 gold similarity.
 *   qqp_test       only with --test: the held-out split, reported once.
 *
 * Row kinds: curve (metrics at a threshold), p95 (lowest threshold whose
 * precision on qqp_dev is >= 0.95), pr (precision at equal recall), kind
 * (look-alike false-hit rate per kind at --threshold), spearman, latency
 * (microseconds per verified candidate, and per prompt embedding).
 * Options: --data DIR, --embedder NAME, --model-dir DIR, --qqp-n N,
 * --lookalike FILE, --threshold X, --test, --help. Exit 1 on missing data
 * or embedder, 2 on bad usage. */
#include "benchmarks/quality_data.h"
#include "common/alloc.h"
#include "embed/embed.h"
#include "embed/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sc_embedder *emb;
static sc_verify *ver;
static uint32_t dim;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Scores of one data set under both scorers. For pair sets "correct" is
 * the label; for the FAQ scenario it is whether the served entry fits. */
typedef struct scored {
    size_t n;
    double *cos, *ver;
    int *cos_ok, *ver_ok;
} scored;

static void scored_init(scored *s, size_t n)
{
    s->n = n;
    s->cos = sc_calloc(n + 1, sizeof(double));
    s->ver = sc_calloc(n + 1, sizeof(double));
    s->cos_ok = sc_calloc(n + 1, sizeof(int));
    s->ver_ok = sc_calloc(n + 1, sizeof(int));
}

static void scored_free(scored *s)
{
    free(s->cos);
    free(s->ver);
    free(s->cos_ok);
    free(s->ver_ok);
}

static void header(void)
{
    printf("row,dataset,scorer,threshold,n,positives,hit_rate,precision,false_hit_rate,recall,"
           "auc,value\n");
}

/* faq: false_hit_rate = wrong hits / queries; pairs: FP / negatives. */
static void curve_row(const char *row, const char *ds, const char *sc, double t, const double *s,
                      const int *ok, size_t n, int faq, double auc)
{
    size_t pos = 0, hits = 0, tp = 0;
    for (size_t i = 0; i < n; i++) {
        pos += ok[i] != 0;
        if (s[i] >= t) {
            hits++;
            tp += ok[i] != 0;
        }
    }
    size_t fp = hits - tp, neg = n - pos;
    double fhr = faq ? (n ? (double)fp / n : NAN) : (neg ? (double)fp / neg : NAN);
    double recall = faq ? (n ? (double)tp / n : NAN) : (pos ? (double)tp / pos : NAN);
    printf("%s,%s,%s,%.3f,%zu,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,\n", row, ds, sc, t, n, pos,
           n ? (double)hits / n : NAN, hits ? (double)tp / hits : NAN, fhr, recall, auc);
}

static void report(const char *ds, scored *s, int faq, int full)
{
    static const double fixed[] = {0.60, 0.70, 0.90, 0.95, 0.97};
    for (int k = 0; k < 2; k++) {
        const double *sc = k ? s->ver : s->cos;
        const int *ok = k ? s->ver_ok : s->cos_ok;
        const char *name = k ? "verify" : "cosine";
        double auc = qd_auc(sc, ok, s->n);
        if (full)
            for (int t = 50; t <= 99; t++) curve_row("curve", ds, name, t / 100.0, sc, ok, s->n, faq, auc);
        else
            for (size_t i = 0; i < SC_COUNTOF(fixed); i++)
                curve_row("curve", ds, name, fixed[i], sc, ok, s->n, faq, auc);
    }
    fflush(stdout);
}

/* Lowest threshold (0.001 grid) reaching precision >= 0.95. */
static void p95_rows(const char *ds, scored *s)
{
    for (int k = 0; k < 2; k++) {
        const double *sc = k ? s->ver : s->cos;
        const int *ok = k ? s->ver_ok : s->cos_ok;
        double found = NAN;
        for (int t = 0; t <= 1000; t++) {
            size_t hits = 0, tp = 0;
            for (size_t i = 0; i < s->n; i++)
                if (sc[i] >= t / 1000.0) { hits++; tp += ok[i] != 0; }
            if (hits >= 20 && (double)tp / hits >= 0.95) { found = t / 1000.0; break; }
        }
        if (isnan(found)) printf("p95,%s,%s,,%zu,,,,,,,none\n", ds, k ? "verify" : "cosine", s->n);
        else curve_row("p95", ds, k ? "verify" : "cosine", found, sc, ok, s->n, 0, qd_auc(sc, ok, s->n));
    }
}

typedef struct { double s; int ok; } sk;
static int cmp_desc(const void *a, const void *b)
{
    double x = ((const sk *)a)->s, y = ((const sk *)b)->s;
    return x > y ? -1 : x < y;
}

/* Precision of each scorer at recall 0.1 .. 0.9 (pair sets). */
static void pr_rows(const char *ds, scored *s)
{
    sk *v = sc_malloc((s->n + 1) * sizeof *v);
    for (int k = 0; k < 2; k++) {
        size_t pos = 0;
        for (size_t i = 0; i < s->n; i++) {
            v[i] = (sk){k ? s->ver[i] : s->cos[i], k ? s->ver_ok[i] : s->cos_ok[i]};
            pos += v[i].ok != 0;
        }
        qsort(v, s->n, sizeof *v, cmp_desc);
        int level = 1;
        size_t tp = 0;
        for (size_t i = 0; i < s->n && level <= 9; i++) {
            tp += v[i].ok != 0;
            if ((double)tp / pos >= level / 10.0) {
                printf("pr,%s,%s,%.4f,%zu,%zu,,%.4f,,%.2f,,\n", ds, k ? "verify" : "cosine",
                       v[i].s, s->n, pos, (double)tp / (i + 1), level / 10.0);
                level++;
            }
        }
    }
    free(v);
}

/* ---------------------------------------------------------------------
 * Data sets
 * ------------------------------------------------------------------- */

static float *embed_texts(char **t, size_t n)
{
    float *v = sc_malloc((n + 1) * dim * sizeof *v);
    if (qd_embed_all(emb, t, n, v) != 0) {
        fprintf(stderr, "bench_quality: embedding failed\n");
        exit(1);
    }
    return v;
}

/* Scores pairs whose vectors are va[i] / vb[i] (pointers into arrays). */
static void score_vec(const qd_pairs *p, const float *const *va, const float *const *vb, scored *s)
{
    scored_init(s, p->n);
    for (size_t i = 0; i < p->n; i++) {
        const char *a = p->v[i].a, *b = p->v[i].b;
        float c = qd_dot(va[i], vb[i], dim);
        s->cos[i] = c;
        s->ver[i] = sc_verify_score(ver, a, strlen(a), va[i], b, strlen(b), vb[i], c);
        s->cos_ok[i] = s->ver_ok[i] = p->v[i].label;
    }
}

static void score_pairs(const qd_pairs *p, scored *s)
{
    char **ta = sc_malloc((p->n + 1) * sizeof *ta), **tb = sc_malloc((p->n + 1) * sizeof *tb);
    for (size_t i = 0; i < p->n; i++) {
        ta[i] = p->v[i].a;
        tb[i] = p->v[i].b;
    }
    float *va = embed_texts(ta, p->n), *vb = embed_texts(tb, p->n);
    const float **pa = sc_malloc((p->n + 1) * sizeof *pa), **pb = sc_malloc((p->n + 1) * sizeof *pb);
    for (size_t i = 0; i < p->n; i++) {
        pa[i] = va + i * dim;
        pb[i] = vb + i * dim;
    }
    score_vec(p, pa, pb, s);
    free(pa);
    free(pb);
    free(va);
    free(vb);
    free(ta);
    free(tb);
}

static int bench_qqp(const char *path, const char *ds, size_t at, size_t n, int full)
{
    qd_pairs all = {0}, sub = {0};
    if (qd_load_qqp(path, &all) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    size_t *perm = qd_shuffle(all.n, QD_SEED);
    for (size_t i = at; i < all.n && sub.n < n; i++) {
        qd_pair *p = &all.v[perm[i]];
        qd_push(&sub, p->a, p->b, p->label, 0, NULL);
    }
    scored s;
    score_pairs(&sub, &s);
    report(ds, &s, 0, full);
    p95_rows(ds, &s);
    pr_rows(ds, &s);
    scored_free(&s);
    free(perm);
    qd_free(&all);
    qd_free(&sub);
    return 0;
}

static int bench_gptcache(const char *path)
{
    qd_pairs pos = {0}, all = {0};
    if (qd_load_gptcache(path, &pos) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    size_t n = pos.n;
    char **to = sc_malloc(n * sizeof *to), **ts = sc_malloc(n * sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        to[i] = pos.v[i].a;
        ts[i] = pos.v[i].b;
    }
    float *vo = embed_texts(to, n), *vs = embed_texts(ts, n);
    const float **pa = sc_malloc(2 * n * sizeof *pa), **pb = sc_malloc(2 * n * sizeof *pb);
    for (size_t i = 0; i < n; i++) {
        qd_push(&all, to[i], ts[i], 1, 0, NULL);
        pa[i] = vo + i * dim;
        pb[i] = vs + i * dim;
    }
    for (size_t i = 0; i < n; i++) {
        size_t best = i;
        float bc = -2;
        for (size_t j = 0; j < n; j++) {
            if (j == i) continue;
            float c = qd_dot(vo + i * dim, vs + j * dim, dim);
            if (c > bc) { bc = c; best = j; }
        }
        qd_push(&all, to[i], ts[best], 0, 0, NULL);
        pa[n + i] = vo + i * dim;
        pb[n + i] = vs + best * dim;
    }
    scored s;
    score_vec(&all, pa, pb, &s);
    free(pa);
    free(pb);
    free(vo);
    free(vs);
    free(to);
    free(ts);
    report("gptcache", &s, 0, 1);
    pr_rows("gptcache", &s);
    scored_free(&s);
    qd_free(&pos);
    qd_free(&all);
    return 0;
}

static int bench_banking(const char *path)
{
    qd_bank bk;
    if (qd_load_banking(path, &bk) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    float *v = embed_texts(bk.text, bk.n);
    scored all, held;
    scored_init(&all, bk.n);
    scored_init(&held, bk.n);
    all.n = held.n = 0;
    for (size_t q = 0; q < bk.n; q++) {
        if (qd_bank_is_seed(&bk, q)) continue;
        enum { K = 5 };
        size_t best[K] = {0};
        float bc[K] = {-2, -2, -2, -2, -2};
        for (size_t s = 0; s < bk.n; s++) {
            if (!qd_bank_is_seed(&bk, s)) continue;
            float c = qd_dot(v + q * dim, v + s * dim, dim);
            for (int k = 0; k < K; k++)
                if (c > bc[k]) {
                    for (int m = K - 1; m > k; m--) { bc[m] = bc[m - 1]; best[m] = best[m - 1]; }
                    bc[k] = c;
                    best[k] = s;
                    break;
                }
        }
        /* As the pipeline does: verify the top K, serve the best-scored. */
        sc_verify_cand cand[K];
        for (int k = 0; k < K; k++)
            cand[k] = (sc_verify_cand){bk.text[best[k]], strlen(bk.text[best[k]]), v + best[k] * dim, bc[k]};
        double vbest;
        int bi = sc_verify_best(ver, bk.text[q], strlen(bk.text[q]), v + q * dim, cand, K, &vbest);
        size_t vi = best[bi < 0 ? 0 : bi];
        scored *dst[2] = {&all, qd_bank_train_intent(bk.intent[q]) ? NULL : &held};
        for (int d = 0; d < 2; d++) {
            if (!dst[d]) continue;
            size_t i = dst[d]->n++;
            dst[d]->cos[i] = bc[0];
            dst[d]->cos_ok[i] = bk.intent[best[0]] == bk.intent[q];
            dst[d]->ver[i] = vbest;
            dst[d]->ver_ok[i] = bk.intent[vi] == bk.intent[q];
        }
    }
    report("banking77_faq", &all, 1, 1);
    report("banking77_faq_heldout", &held, 1, 1);
    scored_free(&all);
    scored_free(&held);
    free(v);
    qd_bank_free(&bk);
    return 0;
}

static int bench_lookalike(const char *path, double thr)
{
    qd_pairs p = {0};
    if (qd_load_lookalike(path, &p) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    scored s;
    score_pairs(&p, &s);
    report("lookalike", &s, 0, 1);
    /* Per kind at the given threshold: look-alikes served (false hits) and
     * paraphrases served (hits). */
    const char *kinds[] = {"number", "negation", "opposite", "swap", "named", "unit", "paraphrase"};
    for (size_t k = 0; k < SC_COUNTOF(kinds); k++)
        for (int m = 0; m < 2; m++) {
            size_t n = 0, hit = 0;
            for (size_t i = 0; i < p.n; i++) {
                if (strcmp(p.v[i].kind, kinds[k]) != 0) continue;
                n++;
                hit += (m ? s.ver[i] : s.cos[i]) >= thr;
            }
            if (n)
                printf("kind,lookalike_%s,%s,%.3f,%zu,%zu,%.4f,,,,,\n", kinds[k], m ? "verify" : "cosine",
                       thr, n, strcmp(kinds[k], "paraphrase") == 0 ? n : 0, (double)hit / n);
        }
    scored_free(&s);
    qd_free(&p);
    return 0;
}

static int bench_stsb(const char *path, const char *ds)
{
    qd_pairs p = {0};
    if (qd_load_stsb(path, &p) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    scored s;
    score_pairs(&p, &s);
    double *gold = sc_malloc(p.n * sizeof *gold);
    for (size_t i = 0; i < p.n; i++) gold[i] = p.v[i].score;
    printf("spearman,%s,cosine,,%zu,,,,,,,%.4f\n", ds, p.n, qd_spearman(s.cos, gold, p.n));
    printf("spearman,%s,verify,,%zu,,,,,,,%.4f\n", ds, p.n, qd_spearman(s.ver, gold, p.n));
    free(gold);
    scored_free(&s);
    qd_free(&p);
    return 0;
}

/* Cost of verifying one candidate vs embedding one prompt. */
static int bench_latency(const char *path)
{
    qd_pairs p = {0};
    if (qd_load_lookalike(path, &p) != 0) return -1;
    size_t n = p.n;
    float *va = sc_malloc(n * dim * sizeof *va), *vb = sc_malloc(n * dim * sizeof *vb);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(p.v[i].a);
        const char *t = p.v[i].a;
        sc_embed(emb, &t, &l, 1, va + i * dim);
    }
    double t_embed = (now_s() - t0) / n;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(p.v[i].b);
        const char *t = p.v[i].b;
        sc_embed(emb, &t, &l, 1, vb + i * dim);
    }
    int reps = 5;
    double sink = 0;
    t0 = now_s();
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < n; i++)
            sink += sc_verify_score(ver, p.v[i].a, strlen(p.v[i].a), va + i * dim, p.v[i].b,
                                    strlen(p.v[i].b), vb + i * dim, qd_dot(va + i * dim, vb + i * dim, dim));
    double t_ver = (now_s() - t0) / (reps * n);
    sc_verify_opts o = {.diff_embed = 0};
    sc_verify *v0;
    double t_ver0 = NAN;
    if (sc_verify_create(&v0, emb, &o) == 0) {
        t0 = now_s();
        for (int r = 0; r < reps; r++)
            for (size_t i = 0; i < n; i++)
                sink += sc_verify_score(v0, p.v[i].a, strlen(p.v[i].a), NULL, p.v[i].b,
                                        strlen(p.v[i].b), NULL, 0.5f);
        t_ver0 = (now_s() - t0) / (reps * n);
        sc_verify_destroy(v0);
    }
    printf("latency,lookalike,embed_one_prompt,,%zu,,,,,,,%.1f\n", n, t_embed * 1e6);
    printf("latency,lookalike,verify_per_candidate,,%zu,,,,,,,%.1f\n", n, t_ver * 1e6);
    printf("latency,lookalike,verify_features_only,,%zu,,,,,,,%.1f\n", n, t_ver0 * 1e6);
    if (sink < -1) printf("#\n");
    free(va);
    free(vb);
    qd_free(&p);
    return 0;
}

static void usage(FILE *o)
{
    fprintf(o, "usage: bench_quality [--data DIR] [--embedder use-lite|hash] [--model-dir DIR]\n"
               "                     [--qqp-n N] [--lookalike FILE] [--threshold X] [--test]\n"
               "CSV of hit rate, precision and false-hit rate vs threshold, raw cosine vs the\n"
               "verifier. --test reports the held-out qqp_test split only (once, final).\n");
}

int main(int argc, char **argv)
{
    const char *data = "../shared/data", *embedder = "use-lite", *model_dir = "models/use-lite/dist";
    const char *lookalike = "tests/fixtures/lookalike.tsv";
    size_t qqp_n = 6000;
    double thr = 0.95;
    int test = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--test")) test = 1;
        else if (!strcmp(a, "--quick")) qqp_n = 2000;
        else if (!v) { usage(stderr); return 2; }
        else if (!strcmp(a, "--data")) { data = v; i++; }
        else if (!strcmp(a, "--embedder")) { embedder = v; i++; }
        else if (!strcmp(a, "--model-dir")) { model_dir = v; i++; }
        else if (!strcmp(a, "--qqp-n")) { qqp_n = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--lookalike")) { lookalike = v; i++; }
        else if (!strcmp(a, "--threshold")) { thr = atof(v); i++; }
        else { fprintf(stderr, "bench_quality: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (qqp_n == 0 || qqp_n > QD_QQP_EXTRA_AT - QD_QQP_EVAL_AT) {
        /* Past that the benchmark's rows would be train_verify's --qqp-extra rows. */
        fprintf(stderr, "bench_quality: --qqp-n must be 1..%d\n", QD_QQP_EXTRA_AT - QD_QQP_EVAL_AT);
        return 2;
    }
    char err[512];
    sc_embedder_opts eo = {.name = embedder, .model_dir = model_dir};
    if (sc_embedder_open(&emb, &eo, err, sizeof err) != 0) {
        fprintf(stderr, "bench_quality: %s\n", err);
        return 1;
    }
    dim = sc_embedder_dim(emb);
    if (sc_verify_create(&ver, emb, NULL) != 0) {
        fprintf(stderr, "bench_quality: no verifier weights for embedder %s\n", sc_embedder_id(emb));
        return 1;
    }
    fprintf(stderr, "bench_quality: embedder %s, verifier %s\n", sc_embedder_id(emb),
            sc_verify_model_get(ver)->trained_on);
    char path[1200];
    header();
    int rc = 0;
    if (test) {
        snprintf(path, sizeof path, "%s/qqp_test.jsonl.gz", data);
        rc = bench_qqp(path, "qqp_test", 0, (size_t)-1, 0);
    } else {
        snprintf(path, sizeof path, "%s/qqp_dev.jsonl.gz", data);
        rc |= bench_qqp(path, "qqp_dev", QD_QQP_EVAL_AT, qqp_n, 1);
        snprintf(path, sizeof path, "%s/gptcache_mock_data.json", data);
        rc |= bench_gptcache(path);
        snprintf(path, sizeof path, "%s/banking77_test.csv", data);
        rc |= bench_banking(path);
        rc |= bench_lookalike(lookalike, thr);
        snprintf(path, sizeof path, "%s/stsb_sts-dev.csv", data);
        rc |= bench_stsb(path, "stsb_dev");
        snprintf(path, sizeof path, "%s/stsb_sts-test.csv", data);
        rc |= bench_stsb(path, "stsb_test");
        rc |= bench_latency(lookalike);
    }
    sc_verify_destroy(ver);
    sc_embedder_close(emb);
    return rc ? 1 : 0;
}
