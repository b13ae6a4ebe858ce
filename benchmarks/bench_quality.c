/* bench_quality: how often the semantic cache serves the right answer, for
 * each scorer side by side, as a function of the threshold. CSV on stdout,
 * one row per (kind, data set, scorer, threshold), and a summary table (one
 * row per scorer) on stderr; benchmarks/quality.gp turns the CSV into
 * benchmarks/quality.png.
 *
 * Scorers (--scorers, default all five): EMBEDDER[+verify|+vote|+vote+check], EMBEDDER
 * one of use-lite (--model-dir), semcache-embed (--embed-model-dir), hash:
 *   use-lite             raw cosine: serves the nearest candidate
 *   use-lite+verify      the hit verifier (embed/verify.h) over the top-k
 *                        candidates: serves the one it scores highest
 *   semcache-embed       raw cosine
 *   semcache-embed+vote  the answer vote (server/vote.h, the tuned default
 *                        parameters) over the top-k candidates
 *   semcache-embed+vote+check  the vote, then the embedder's verifier as a
 *                        cross-check that may refuse the winner (below
 *                        SC_VERIFY_VETO), as the server does by default
 *                        when weights for the embedder exist
 * Each scorer is judged at the server's default threshold (server/cache.h):
 * 0.60 with the verifier, 0.95 for semcache-embed (with or without the
 * vote; its scores are on the server's scale, sc_cache_embed_score: 0.95
 * is the cosine 0.82), 0.90 for any other raw cosine; --threshold X
 * replaces them all.
 * A pair of a pair set is a lookup with one candidate, where the vote is
 * cos + alone * (1 - cos) (vote.h: the winner is unambiguous).
 *
 * Data sets (--data DIR or $SC_DATA_DIR; BENCHMARKS.md (Quality) lists the
 * files, their public sources and the splits):
 *   qqp_dev        pairs of the benchmark split of qqp_dev (disjoint from
 *                  the verifier's training and calibration rows).
 *   gptcache       999 (origin, similar) paraphrases = positives; negatives
 *                  pair each origin with the most cosine-similar `similar`
 *                  question of another item under the scorer's own embedder
 *                  (hard negatives, so they differ between embedders).
 *   banking77_faq, clinc150_faq  FAQ scenario on the test split (banking77
 *                  test, CLINC150 "test"): per intent 3 queries, chosen by a
 *                  shuffle with seed QD_SEED, are cached with the intent's
 *                  canned answer ("answer for <intent>", so the entries of
 *                  one intent share an answer); every other query is sent;
 *                  the top-k (--top-k) entries by cosine are candidates; a
 *                  hit is correct when the served entry's intent is the
 *                  query's. banking77_faq_heldout: only the queries of
 *                  the odd intents (verifiers before 2026-12-07 were
 *                  trained on banking77 test's even intents; today's
 *                  reads banking77 train only). With --dev,
 *                  banking77_tune_faq: the same scenario on banking77
 *                  train's tuning rows instead of banking77 test.
 *                  banking77_faq_typed: the same with every query typed
 *                  the way people type into a chat box: lower case, no
 *                  end punctuation (the cached entries keep their case and
 *                  punctuation; banking77's text is cased, CLINC150's is
 *                  not). The exact layer would fold case alone, so this
 *                  is what case and punctuation cost the semantic layer.
 *   lookalike*     tests/fixtures/lookalike.tsv (held out, never trained or
 *                  tuned on) and the dev sets tests/fixtures/lookalike_dev*.tsv
 *                  (or the --lookalike files); each named after its file.
 *   stsb_dev/test  Spearman of the score against the 0-5 gold similarity.
 *   qqp_test       only with --test: the held-out split, reported once.
 *
 * Row kinds: curve (metrics at a threshold), default (the same at the
 * scorer's default threshold), p95 (lowest threshold whose precision on
 * qqp_dev is >= 0.95), pr (precision at equal recall), kind (look-alike
 * pairs of each kind served at the default threshold), spearman, latency
 * (microseconds; the dataset column names what was timed: embedding one
 * prompt, verifying one candidate, one vote over top-k candidates).
 * Options: --data DIR, --scorers LIST, --embedder NAME (shorthand for NAME
 * and NAME+verify, or NAME+vote where no verifier was trained), --model-dir
 * DIR, --embed-model-dir DIR, --top-k N, --qqp-n N, --quick, --lookalike
 * FILE (repeatable), --threshold X, --veto X and --veto-decisive X (the
 * cross-check's levels, server/cache.h; for tuning them), --test,
 * --dev (tuning: reads no
 * report-only split; CLINC150's FAQ on "val", banking77's on train's
 * tuning rows, no STS-B test or lookalike.tsv), --help. Exit 1 on a missing
 * data file or model, 2 on bad usage. */
#include "benchmarks/quality_data.h"
#include "common/alloc.h"
#include "embed/embed.h"
#include "embed/verify.h"
#include "server/cache.h"
#include "server/vote.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCORERS 8
#define MAX_LOOKALIKE 8
#define FAQ_SEEDS 3             /* cached queries per intent */

enum { FAQ_BANKING, FAQ_CLINC, FAQ_TYPED, FAQ_SETS };
enum mode { MODE_COSINE, MODE_VERIFY, MODE_VOTE, MODE_CHECK };

/* An embedder, opened when some scorer uses it, and its verifier (created
 * when some scorer uses that). */
typedef struct model {
    const char *family;
    const char *dir;
    sc_embedder *emb;
    uint32_t dim;
    sc_verify *ver;
    double gamma;        /* scores reported as sc_score_of_cos(cos, gamma), as the server (0: the cosine) */
} model;

static model models[] = {{.family = "use-lite", .dir = "models/use-lite/dist"},
                         {.family = "semcache-embed", .dir = SC_EMBED_DEFAULT_MODEL_DIR, .gamma = SC_EMBED_SCORE_GAMMA},
                         {.family = "hash", .dir = ""}};

/* A scorer and what the summary table shows of it (at thr; NAN = not run). */
typedef struct scorer {
    char name[48];
    model *m;
    enum mode mode;
    double thr;
    double faq_p[FAQ_SETS], faq_hit[FAQ_SETS];
    double stsb, qqp_p50;
    double la_para[MAX_LOOKALIKE], la_false[MAX_LOOKALIKE];
} scorer;

static scorer scorers[MAX_SCORERS];
static size_t nscorers;
static size_t top_k = 4;
static double veto = SC_VERIFY_VETO, veto_decisive = SC_VERIFY_VETO_DECISIVE; /* --veto, --veto-decisive: tuning */
static char *la_names[MAX_LOOKALIKE];
static size_t nla;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------
 * Scorers
 * ------------------------------------------------------------------- */

/* A candidate of a lookup: a cached prompt, its vector, its cosine to the
 * query, the key of its answer and (FAQ) its row in the data set. */
typedef struct cand {
    const char *text;
    const float *vec;
    float cos;
    uint64_t answer;
    size_t row;
} cand;

/* What scorer s serves among the n candidates c (sorted by cosine, best
 * first) of the query q: returns the index, and its score in *score (the
 * caller serves it when *score >= s->thr), as the server's lookup does. */
static int pick(const scorer *s, const char *q, const float *qv, const cand *c, size_t n, double *score)
{
    if (s->mode == MODE_VERIFY) {
        sc_verify_cand vc[SC_VOTE_MAX];
        for (size_t i = 0; i < n; i++) vc[i] = (sc_verify_cand){c[i].text, strlen(c[i].text), c[i].vec, c[i].cos};
        return sc_verify_best(s->m->ver, q, strlen(q), qv, vc, n, score);
    }
    if (s->mode == MODE_VOTE || s->mode == MODE_CHECK) {
        sc_vote_cand vc[SC_VOTE_MAX];
        const float *vecs[SC_VOTE_MAX];
        for (size_t i = 0; i < n; i++) {
            vc[i] = (sc_vote_cand){c[i].cos, c[i].answer};
            vecs[i] = c[i].vec;
        }
        sc_vote_merge_same(vc, vecs, s->m->dim, n, SC_VOTE_SAME_QUESTION); /* as cache.c */
        int w = sc_vote(vc, n, &sc_vote_default_params, score);
        *score = sc_score_of_cos(*score, s->m->gamma);
        /* +check: the server's cross-check (cache.c): the verifier may
         * refuse the winner, never pick another */
        if (s->mode == MODE_CHECK && w >= 0 && *score >= s->thr) {
            int decisive = 0;
            double p = sc_verify_score_ex(s->m->ver, q, strlen(q), qv, c[w].text, strlen(c[w].text), c[w].vec,
                                          c[w].cos, &decisive);
            if (sc_cache_vetoes(p, decisive, veto, veto_decisive)) *score = -1;
        }
        return w;
    }
    *score = sc_score_of_cos(c[0].cos, s->m->gamma);
    return 0;
}

/* Score of the pair (query a, cached b) under scorer s: one candidate. */
static double pair_score(const scorer *s, const char *a, const float *va, const char *b, const float *vb)
{
    cand c = {b, vb, qd_dot(va, vb, s->m->dim), 0, 0};
    double v;
    pick(s, a, va, &c, 1, &v);
    return v;
}

static double default_threshold(const char *family, enum mode mode)
{
    if (mode == MODE_VERIFY) return SC_DEFAULT_THRESHOLD_VERIFIED;
    if (strcmp(family, "semcache-embed") == 0) return SC_DEFAULT_THRESHOLD_EMBED;
    return SC_DEFAULT_THRESHOLD_COSINE;
}

/* Parses "use-lite,use-lite+verify,..." into scorers[]; -1 on a bad name. */
static int parse_scorers(const char *list, double thr)
{
    char *dup = sc_strdup(list), *save = NULL;
    int rc = 0;
    nscorers = 0;
    for (char *t = strtok_r(dup, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        char *plus = strchr(t, '+');
        enum mode mode = MODE_COSINE;
        if (plus) {
            if (strcmp(plus, "+verify") == 0) mode = MODE_VERIFY;
            else if (strcmp(plus, "+vote") == 0) mode = MODE_VOTE;
            else if (strcmp(plus, "+vote+check") == 0) mode = MODE_CHECK;
            else rc = -1;
            *plus = '\0';
        }
        model *m = NULL;
        for (size_t i = 0; i < SC_COUNTOF(models); i++)
            if (strcmp(models[i].family, t) == 0) m = &models[i];
        for (size_t k = 0; k < nscorers && rc == 0; k++)
            if (scorers[k].m == m && scorers[k].mode == mode) rc = -1;   /* twice */
        if (!m || rc || nscorers == MAX_SCORERS) {
            if (plus) *plus = '+';
            fprintf(stderr, "bench_quality: bad scorer \"%s\" (EMBEDDER[+verify|+vote|+vote+check], EMBEDDER "
                            "use-lite, semcache-embed or hash; each once, at most %d)\n", t, MAX_SCORERS);
            rc = -1;
            break;
        }
        scorer *s = &scorers[nscorers++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s%s", m->family,
                 mode == MODE_VERIFY ? "+verify" : mode == MODE_VOTE ? "+vote" : mode == MODE_CHECK ? "+vote+check" : "");
        s->m = m;
        s->mode = mode;
        s->thr = isnan(thr) ? default_threshold(m->family, mode) : thr;
        s->stsb = s->qqp_p50 = NAN;
        for (int d = 0; d < FAQ_SETS; d++) s->faq_p[d] = s->faq_hit[d] = NAN;
        for (int l = 0; l < MAX_LOOKALIKE; l++) s->la_para[l] = s->la_false[l] = NAN;
    }
    free(dup);
    return rc == 0 && nscorers ? 0 : -1;
}

/* Opens the embedders (and verifiers) the scorers use; exits 1 on failure. */
static void open_models(void)
{
    for (size_t k = 0; k < nscorers; k++) {
        model *m = scorers[k].m;
        char err[512];
        if (!m->emb) {
            sc_embedder_opts eo = {.name = m->family, .model_dir = m->dir};
            if (sc_embedder_open(&m->emb, &eo, err, sizeof err) != 0) {
                fprintf(stderr, "bench_quality: %s\n", err);
                exit(1);
            }
            m->dim = sc_embedder_dim(m->emb);
            fprintf(stderr, "bench_quality: embedder %s (%s)\n", sc_embedder_id(m->emb),
                    m->dir[0] ? m->dir : "no model files");
        }
        if ((scorers[k].mode == MODE_VERIFY || scorers[k].mode == MODE_CHECK) && !m->ver) {
            if (sc_verify_create(&m->ver, m->emb, NULL) != 0) {
                fprintf(stderr, "bench_quality: no verifier weights for embedder %s\n", sc_embedder_id(m->emb));
                exit(1);
            }
            fprintf(stderr, "bench_quality: verifier for %s: %s\n", m->family, sc_verify_model_get(m->ver)->trained_on);
        }
    }
    for (size_t k = 0; k < nscorers; k++)
        fprintf(stderr, "bench_quality: scorer %s, default threshold %.2f\n", scorers[k].name, scorers[k].thr);
}

static void close_models(void)
{
    for (size_t i = 0; i < SC_COUNTOF(models); i++) {
        sc_verify_destroy(models[i].ver);
        sc_embedder_close(models[i].emb);
    }
}

/* ---------------------------------------------------------------------
 * Metrics and rows
 * ------------------------------------------------------------------- */

/* Scores of one data set under one scorer. For pair sets "correct" is the
 * label; for the FAQ scenario it is whether the served entry fits. */
typedef struct scored {
    size_t n;
    double *score;
    int *ok;
} scored;

static void scored_init(scored *s, size_t n)
{
    s->n = n;
    s->score = sc_calloc(n + 1, sizeof(double));
    s->ok = sc_calloc(n + 1, sizeof(int));
}

static void scored_free(scored *s)
{
    free(s->score);
    free(s->ok);
}

static void scored_free_all(scored *res)
{
    for (size_t k = 0; k < nscorers; k++) scored_free(&res[k]);
}

/* The entries of s where keep[i] is set. */
static scored scored_subset(const scored *s, const unsigned char *keep)
{
    scored out;
    scored_init(&out, s->n);
    out.n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (keep[i]) {
            out.score[out.n] = s->score[i];
            out.ok[out.n++] = s->ok[i];
        }
    return out;
}

typedef struct metrics {
    size_t n, pos, hits, tp;
    double hit_rate, precision, false_hit_rate, recall;
} metrics;

/* Serving every entry scored >= t. faq: false_hit_rate = wrong hits /
 * queries, recall = right hits / queries; pairs: FP / negatives, TP /
 * positives. */
static metrics measure(const scored *s, double t, int faq)
{
    metrics m = {.n = s->n};
    for (size_t i = 0; i < s->n; i++) {
        m.pos += s->ok[i] != 0;
        if (s->score[i] >= t) {
            m.hits++;
            m.tp += s->ok[i] != 0;
        }
    }
    size_t fp = m.hits - m.tp, neg = m.n - m.pos, n = m.n;
    m.hit_rate = n ? (double)m.hits / n : NAN;
    m.precision = m.hits ? (double)m.tp / m.hits : NAN;
    m.false_hit_rate = faq ? (n ? (double)fp / n : NAN) : (neg ? (double)fp / neg : NAN);
    m.recall = faq ? (n ? (double)m.tp / n : NAN) : (m.pos ? (double)m.tp / m.pos : NAN);
    return m;
}

static void header(void)
{
    printf("row,dataset,scorer,threshold,n,positives,hit_rate,precision,false_hit_rate,recall,"
           "auc,value\n");
}

static void curve_row(const char *row, const char *ds, const char *sc, double t, const scored *s, int faq,
                      double auc)
{
    metrics m = measure(s, t, faq);
    printf("%s,%s,%s,%.3f,%zu,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,\n", row, ds, sc, t, m.n, m.pos, m.hit_rate,
           m.precision, m.false_hit_rate, m.recall, auc);
}

/* Curve rows of every scorer (thresholds 0.50 .. 0.99, or a few when not
 * full) and its default row. */
static void report(const char *ds, const scored *res, int faq, int full)
{
    static const double fixed[] = {0.60, 0.70, 0.90, 0.93, 0.95, 0.97};
    for (size_t k = 0; k < nscorers; k++) {
        const scored *s = &res[k];
        double auc = qd_auc(s->score, s->ok, s->n);
        if (full)
            for (int t = 50; t <= 99; t++) curve_row("curve", ds, scorers[k].name, t / 100.0, s, faq, auc);
        else
            for (size_t i = 0; i < SC_COUNTOF(fixed); i++)
                curve_row("curve", ds, scorers[k].name, fixed[i], s, faq, auc);
        curve_row("default", ds, scorers[k].name, scorers[k].thr, s, faq, auc);
    }
    fflush(stdout);
}

/* Lowest threshold (0.001 grid) reaching precision >= 0.95. */
static void p95_rows(const char *ds, const scored *res)
{
    for (size_t k = 0; k < nscorers; k++) {
        const scored *s = &res[k];
        double found = NAN;
        for (int t = 0; t <= 1000 && isnan(found); t++) {
            metrics m = measure(s, t / 1000.0, 0);
            if (m.hits >= 20 && m.precision >= 0.95) found = t / 1000.0;
        }
        if (isnan(found)) printf("p95,%s,%s,,%zu,,,,,,,none\n", ds, scorers[k].name, s->n);
        else curve_row("p95", ds, scorers[k].name, found, s, 0, qd_auc(s->score, s->ok, s->n));
    }
}

typedef struct sk { double s; int ok; } sk;
static int cmp_desc(const void *a, const void *b)
{
    double x = ((const sk *)a)->s, y = ((const sk *)b)->s;
    return x > y ? -1 : x < y;
}

/* Precision where recall first reaches r, serving the best-scored entries
 * first (NAN if never); *at receives the score there. */
static double precision_at_recall(const scored *s, double r, double *at)
{
    sk *v = sc_malloc((s->n + 1) * sizeof *v);
    size_t pos = 0, tp = 0;
    for (size_t i = 0; i < s->n; i++) {
        v[i] = (sk){s->score[i], s->ok[i]};
        pos += v[i].ok != 0;
    }
    qsort(v, s->n, sizeof *v, cmp_desc);
    double p = NAN;
    for (size_t i = 0; i < s->n && pos && isnan(p); i++) {
        tp += v[i].ok != 0;
        if ((double)tp / pos >= r) {
            p = (double)tp / (i + 1);
            *at = v[i].s;
        }
    }
    free(v);
    return p;
}

/* Precision of each scorer at recall 0.1 .. 0.9 (pair sets). */
static void pr_rows(const char *ds, const scored *res)
{
    for (size_t k = 0; k < nscorers; k++) {
        size_t pos = 0;
        for (size_t i = 0; i < res[k].n; i++) pos += res[k].ok[i] != 0;
        for (int level = 1; level <= 9; level++) {
            double at = NAN, p = precision_at_recall(&res[k], level / 10.0, &at);
            if (!isnan(p))
                printf("pr,%s,%s,%.4f,%zu,%zu,,%.4f,,%.2f,,\n", ds, scorers[k].name, at, res[k].n, pos, p,
                       level / 10.0);
        }
    }
}

/* ---------------------------------------------------------------------
 * Data sets
 * ------------------------------------------------------------------- */

static int model_used(const model *m)
{
    return m->emb != NULL;
}

static float *embed_texts(const model *m, char *const *t, size_t n)
{
    float *v = sc_malloc((n + 1) * m->dim * sizeof *v);
    if (qd_embed_all(m->emb, t, n, v) != 0) {
        fprintf(stderr, "bench_quality: embedding failed (%s)\n", m->family);
        exit(1);
    }
    return v;
}

/* Scores every pair (query a, cached b) under every scorer into res[]. */
static void score_pairs(const qd_pairs *p, scored *res)
{
    char **ta = sc_malloc((p->n + 1) * sizeof *ta), **tb = sc_malloc((p->n + 1) * sizeof *tb);
    for (size_t i = 0; i < p->n; i++) {
        ta[i] = p->v[i].a;
        tb[i] = p->v[i].b;
    }
    for (size_t k = 0; k < nscorers; k++) scored_init(&res[k], p->n);
    for (size_t mi = 0; mi < SC_COUNTOF(models); mi++) {
        const model *m = &models[mi];
        if (!model_used(m)) continue;
        float *va = embed_texts(m, ta, p->n), *vb = embed_texts(m, tb, p->n);
        for (size_t k = 0; k < nscorers; k++) {
            if (scorers[k].m != m) continue;
            for (size_t i = 0; i < p->n; i++) {
                res[k].score[i] = pair_score(&scorers[k], ta[i], va + i * m->dim, tb[i], vb + i * m->dim);
                res[k].ok[i] = p->v[i].label;
            }
        }
        free(va);
        free(vb);
    }
    free(ta);
    free(tb);
}

/* n pairs from shuffled position at on. test: the held-out split, reported
 * at a few thresholds and in the summary. */
static int bench_qqp(const char *path, const char *ds, size_t at, size_t n, int test)
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
    scored res[MAX_SCORERS];
    score_pairs(&sub, res);
    report(ds, res, 0, !test);
    p95_rows(ds, res);
    pr_rows(ds, res);
    if (test)
        for (size_t k = 0; k < nscorers; k++) {
            double t;
            scorers[k].qqp_p50 = precision_at_recall(&res[k], 0.5, &t);
        }
    scored_free_all(res);
    free(perm);
    qd_free(&all);
    qd_free(&sub);
    return 0;
}

/* Index of the `similar` (vs[j], j != i) nearest to origin i. */
static size_t hard_negative(const float *vo, const float *vs, size_t n, uint32_t dim, size_t i)
{
    size_t best = i;
    float bc = -2;
    for (size_t j = 0; j < n; j++) {
        if (j == i) continue;
        float c = qd_dot(vo + i * dim, vs + j * dim, dim);
        if (c > bc) { bc = c; best = j; }
    }
    return best;
}

static int bench_gptcache(const char *path)
{
    qd_pairs pos = {0};
    if (qd_load_gptcache(path, &pos) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    size_t n = pos.n;
    char **to = sc_malloc((n + 1) * sizeof *to), **ts = sc_malloc((n + 1) * sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        to[i] = pos.v[i].a;
        ts[i] = pos.v[i].b;
    }
    scored res[MAX_SCORERS];
    for (size_t k = 0; k < nscorers; k++) scored_init(&res[k], 2 * n);
    for (size_t mi = 0; mi < SC_COUNTOF(models); mi++) {
        const model *m = &models[mi];
        if (!model_used(m)) continue;
        float *vo = embed_texts(m, to, n), *vs = embed_texts(m, ts, n);
        size_t *neg = sc_malloc((n + 1) * sizeof *neg);
        for (size_t i = 0; i < n; i++) neg[i] = hard_negative(vo, vs, n, m->dim, i);
        for (size_t k = 0; k < nscorers; k++) {
            if (scorers[k].m != m) continue;
            for (size_t i = 0; i < n; i++) {
                const float *o = vo + i * m->dim;
                res[k].score[i] = pair_score(&scorers[k], to[i], o, ts[i], vs + i * m->dim);
                res[k].ok[i] = 1;
                res[k].score[n + i] = pair_score(&scorers[k], to[i], o, ts[neg[i]], vs + neg[i] * m->dim);
                res[k].ok[n + i] = 0;
            }
        }
        free(neg);
        free(vo);
        free(vs);
    }
    report("gptcache", res, 0, 1);
    pr_rows("gptcache", res);
    scored_free_all(res);
    free(to);
    free(ts);
    qd_free(&pos);
    return 0;
}

/* The cached entries of the FAQ scenario: FAQ_SEEDS queries per intent,
 * the first ones of each intent in a shuffle with seed QD_SEED. */
static unsigned char *faq_seeds(const qd_bank *bk)
{
    unsigned char *seed = sc_calloc(bk->n + 1, 1);
    size_t *perm = qd_shuffle(bk->n, QD_SEED);
    int count[QD_MAX_INTENTS] = {0};
    for (size_t i = 0; i < bk->n; i++) {
        size_t q = perm[i];
        if (count[bk->intent[q]] < FAQ_SEEDS) {
            count[bk->intent[q]]++;
            seed[q] = 1;
        }
    }
    free(perm);
    return seed;
}

/* The (at most top_k) entries nearest to query q by cosine, best first
 * (ties: the earlier entry); returns how many. */
static size_t nearest(const qd_bank *bk, const float *v, uint32_t dim, size_t q, const size_t *entries,
                      size_t nentries, const uint64_t *answer, cand *c)
{
    size_t n = 0;
    for (size_t e = 0; e < nentries; e++) {
        size_t s = entries[e];
        float cos = qd_dot(v + q * dim, v + s * dim, dim);
        if (n == top_k && cos <= c[n - 1].cos) continue;
        size_t i = n < top_k ? n++ : n - 1;
        while (i > 0 && c[i - 1].cos < cos) {
            c[i] = c[i - 1];
            i--;
        }
        c[i] = (cand){bk->text[s], v + s * dim, cos, answer[bk->intent[s]], s};
    }
    return n;
}

/* The FAQ scenario on bk (see the top of the file) under every scorer; the
 * summary gets precision and hit rate at the default threshold in slot
 * faq. held_ds: also report the queries of the verifier's held-out
 * banking77 intents under that name. */
/* A query as typed into a chat box: ASCII lower case, trailing white
 * space and ?.! removed. */
static char *typed(const char *t)
{
    char *s = sc_strdup(t);
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z') s[i] = (char)(s[i] - 'A' + 'a');
    while (n && (s[n - 1] == '?' || s[n - 1] == '.' || s[n - 1] == '!' || s[n - 1] == ' ')) s[--n] = '\0';
    return s;
}

static void bench_faq(const qd_bank *bk, const char *ds, const char *held_ds, int faq)
{
    unsigned char *seed = faq_seeds(bk);
    /* The texts embedded: the data set's, or with the queries typed. */
    char **text = sc_malloc((bk->n + 1) * sizeof *text);
    for (size_t i = 0; i < bk->n; i++)
        text[i] = faq == FAQ_TYPED && !seed[i] ? typed(bk->text[i]) : sc_strdup(bk->text[i]);
    size_t *entries = sc_malloc((bk->n + 1) * sizeof *entries), *queries = sc_malloc((bk->n + 1) * sizeof *queries);
    unsigned char *held = sc_calloc(bk->n + 1, 1);
    size_t ne = 0, nq = 0;
    for (size_t i = 0; i < bk->n; i++) {
        if (seed[i]) {
            entries[ne++] = i;
        } else {
            held[nq] = !qd_bank_train_intent(bk->intent[i]);
            queries[nq++] = i;
        }
    }
    uint64_t answer[QD_MAX_INTENTS];
    for (int k = 0; k < bk->nintents; k++) {
        char ans[200];
        int len = snprintf(ans, sizeof ans, "answer for %s", bk->names[k]);
        answer[k] = sc_vote_answer_key(ans, (size_t)len);
    }
    scored res[MAX_SCORERS];
    for (size_t k = 0; k < nscorers; k++) scored_init(&res[k], nq);
    for (size_t mi = 0; mi < SC_COUNTOF(models); mi++) {
        const model *m = &models[mi];
        if (!model_used(m)) continue;
        float *v = embed_texts(m, text, bk->n);
        for (size_t i = 0; i < nq; i++) {
            size_t q = queries[i];
            cand c[SC_VOTE_MAX];
            size_t nc = nearest(bk, v, m->dim, q, entries, ne, answer, c);
            for (size_t k = 0; k < nscorers; k++) {
                if (scorers[k].m != m) continue;
                int w = pick(&scorers[k], text[q], v + q * m->dim, c, nc, &res[k].score[i]);
                res[k].ok[i] = w >= 0 && bk->intent[c[w].row] == bk->intent[q];
            }
        }
        free(v);
    }
    report(ds, res, 1, 1);
    for (size_t k = 0; k < nscorers; k++) {
        metrics mt = measure(&res[k], scorers[k].thr, 1);
        scorers[k].faq_p[faq] = mt.precision;
        scorers[k].faq_hit[faq] = mt.hit_rate;
    }
    if (held_ds) {
        scored sub[MAX_SCORERS];
        for (size_t k = 0; k < nscorers; k++) sub[k] = scored_subset(&res[k], held);
        report(held_ds, sub, 1, 1);
        scored_free_all(sub);
    }
    scored_free_all(res);
    for (size_t i = 0; i < bk->n; i++) free(text[i]);
    free(text);
    free(held);
    free(entries);
    free(queries);
    free(seed);
}

/* --dev: the FAQ scenario on banking77 train's tuning rows
 * (qd_bank_tune_row, tools/train/data.py's "b77_tune"), which neither the
 * embedder nor the verifier is trained on. */
static int bench_banking_tune(const char *path)
{
    qd_bank bk;
    if (qd_load_banking(path, &bk) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    qd_bank_keep_tune(&bk, 1);
    bench_faq(&bk, "banking77_tune_faq", NULL, FAQ_BANKING);
    qd_bank_free(&bk);
    return 0;
}

static int bench_banking(const char *path)
{
    qd_bank bk;
    if (qd_load_banking(path, &bk) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    bench_faq(&bk, "banking77_faq", "banking77_faq_heldout", FAQ_BANKING);
    bench_faq(&bk, "banking77_faq_typed", NULL, FAQ_TYPED);
    qd_bank_free(&bk);
    return 0;
}

/* --dev: no report-only split is read; CLINC150's FAQ runs on "val". */
static int dev_only;

static int bench_clinc(const char *path)
{
    qd_bank bk;
    const char *split = dev_only ? "val" : "test";
    if (qd_load_clinc(path, split, &bk) != 0) {
        fprintf(stderr, "bench_quality: cannot read the \"%s\" list of %s\n", split, path);
        return -1;
    }
    bench_faq(&bk, dev_only ? "clinc150_val_faq" : "clinc150_faq", NULL, FAQ_CLINC);
    qd_bank_free(&bk);
    return 0;
}

/* Look-alike set number li (la_names[li]): curves, and per kind the share
 * of pairs each scorer serves at its default threshold (look-alikes: false
 * hits; paraphrases: hits). */
static int bench_lookalike(const char *path, size_t li)
{
    const char *ds = la_names[li];
    qd_pairs p = {0};
    if (qd_load_lookalike(path, &p) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    scored res[MAX_SCORERS];
    score_pairs(&p, res);
    report(ds, res, 0, 1);
    static const char *kinds[] = {"number", "negation", "opposite", "swap", "named", "unit", "paraphrase"};
    for (size_t k = 0; k < nscorers; k++) {
        metrics mt = measure(&res[k], scorers[k].thr, 0);
        scorers[k].la_para[li] = mt.recall;
        scorers[k].la_false[li] = mt.false_hit_rate;
        for (size_t j = 0; j < SC_COUNTOF(kinds); j++) {
            size_t n = 0, hit = 0;
            for (size_t i = 0; i < p.n; i++) {
                if (strcmp(p.v[i].kind, kinds[j]) != 0) continue;
                n++;
                hit += res[k].score[i] >= scorers[k].thr;
            }
            if (n)
                printf("kind,%s_%s,%s,%.3f,%zu,%zu,%.4f,,,,,\n", ds, kinds[j], scorers[k].name, scorers[k].thr, n,
                       strcmp(kinds[j], "paraphrase") == 0 ? n : 0, (double)hit / n);
        }
    }
    scored_free_all(res);
    qd_free(&p);
    return 0;
}

static int bench_stsb(const char *path, const char *ds, int summary)
{
    qd_pairs p = {0};
    if (qd_load_stsb(path, &p) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s\n", path);
        return -1;
    }
    scored res[MAX_SCORERS];
    score_pairs(&p, res);
    double *gold = sc_malloc((p.n + 1) * sizeof *gold);
    for (size_t i = 0; i < p.n; i++) gold[i] = p.v[i].score;
    for (size_t k = 0; k < nscorers; k++) {
        double rho = qd_spearman(res[k].score, gold, p.n);
        printf("spearman,%s,%s,,%zu,,,,,,,%.4f\n", ds, scorers[k].name, p.n, rho);
        if (summary) scorers[k].stsb = rho;
    }
    free(gold);
    scored_free_all(res);
    qd_free(&p);
    return 0;
}

/* Mean microseconds per call of f(arg, i), over reps passes of i < n. */
static double time_us(double (*f)(void *, size_t), void *arg, size_t n, int reps, double *sink)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < n; i++) *sink += f(arg, i);
    return (now_s() - t0) / (reps * (double)n) * 1e6;
}

typedef struct lat_ctx {
    const qd_pairs *p;
    const model *m;
    float *va;
    const float *vb;
    sc_verify *ver;
} lat_ctx;

static double lat_embed(void *arg, size_t i)
{
    lat_ctx *x = arg;
    const char *t = x->p->v[i].a;
    size_t l = strlen(t);
    float *out = x->va + i * x->m->dim;
    sc_embed(x->m->emb, &t, &l, 1, out);
    return out[0];
}

static double lat_verify(void *arg, size_t i)
{
    lat_ctx *x = arg;
    const qd_pair *q = &x->p->v[i];
    uint32_t d = x->m->dim;
    return sc_verify_score(x->ver, q->a, strlen(q->a), x->va + i * d, q->b, strlen(q->b), x->vb + i * d,
                           qd_dot(x->va + i * d, x->vb + i * d, d));
}

static double lat_features(void *arg, size_t i)
{
    lat_ctx *x = arg;
    const qd_pair *q = &x->p->v[i];
    return sc_verify_score(x->ver, q->a, strlen(q->a), NULL, q->b, strlen(q->b), NULL, 0.5f);
}

/* One vote over top_k candidates: pair i's b and the next ones, answers
 * alternating between two keys. */
static double lat_vote(void *arg, size_t i)
{
    lat_ctx *x = arg;
    uint32_t d = x->m->dim;
    sc_vote_cand c[SC_VOTE_MAX];
    for (size_t j = 0; j < top_k; j++) {
        size_t b = (i + j) % x->p->n;
        c[j] = (sc_vote_cand){qd_dot(x->va + i * d, x->vb + b * d, d), j % 2};
    }
    double conf;
    sc_vote(c, top_k, &sc_vote_default_params, &conf);
    return conf;
}

/* Per embedder: embedding one prompt; per verifier: verifying one
 * candidate (with and without the embeddings); per vote: one vote. */
static int bench_latency(const char *path)
{
    qd_pairs p = {0};
    if (qd_load_lookalike(path, &p) != 0) return -1;
    size_t n = p.n;
    char **tb = sc_malloc((n + 1) * sizeof *tb);
    for (size_t i = 0; i < n; i++) tb[i] = p.v[i].b;
    double sink = 0;
    for (size_t mi = 0; mi < SC_COUNTOF(models); mi++) {
        const model *m = &models[mi];
        if (!model_used(m)) continue;
        float *va = sc_malloc((n + 1) * m->dim * sizeof *va), *vb = embed_texts(m, tb, n);
        lat_ctx x = {&p, m, va, vb, m->ver};
        printf("latency,embed_one_prompt,%s,,%zu,,,,,,,%.1f\n", m->family, n, time_us(lat_embed, &x, n, 1, &sink));
        for (size_t k = 0; k < nscorers; k++) {
            const scorer *s = &scorers[k];
            if (s->m != m || s->mode == MODE_COSINE) continue;
            if (s->mode == MODE_VOTE) {
                printf("latency,vote_top_%zu,%s,,%zu,,,,,,,%.2f\n", top_k, s->name, n,
                       time_us(lat_vote, &x, n, 50, &sink));
                continue;
            }
            printf("latency,verify_per_candidate,%s,,%zu,,,,,,,%.1f\n", s->name, n,
                   time_us(lat_verify, &x, n, 5, &sink));
            sc_verify_opts o = {.diff_embed = 0};
            if (sc_verify_create(&x.ver, m->emb, &o) == 0) {
                printf("latency,verify_features_only,%s,,%zu,,,,,,,%.1f\n", s->name, n,
                       time_us(lat_features, &x, n, 5, &sink));
                sc_verify_destroy(x.ver);
                x.ver = m->ver;
            }
        }
        free(va);
        free(vb);
    }
    if (sink < -1e300) printf("#\n");
    free(tb);
    qd_free(&p);
    return 0;
}

/* ---------------------------------------------------------------------
 * Summary, options
 * ------------------------------------------------------------------- */

static void cell_pair(double a, double b, int width)
{
    char c[32];
    if (isnan(a) && isnan(b)) snprintf(c, sizeof c, "-");
    else snprintf(c, sizeof c, "%.3f/%.3f", a, b);
    fprintf(stderr, "  %*s", width, c);
}

static void cell(double a, int width)
{
    if (isnan(a)) fprintf(stderr, "  %*s", width, "-");
    else fprintf(stderr, "  %*.3f", width, a);
}

/* One row per scorer on stderr, every number at the scorer's threshold. */
static void summary(int test)
{
    char label[MAX_LOOKALIKE][64];
    int w[MAX_LOOKALIKE];
    fprintf(stderr, "\n%-20s  %5s  %11s  %11s  %11s  %6s", "scorer", "thr", "b77 P/hit", "clinc P/hit",
            "typed P/hit", "stsb");
    for (size_t l = 0; l < nla; l++) {
        snprintf(label[l], sizeof label[l], "%s para/fh", la_names[l]);
        w[l] = (int)strlen(label[l]) < 11 ? 11 : (int)strlen(label[l]);
        fprintf(stderr, "  %*s", w[l], label[l]);
    }
    if (test) fprintf(stderr, "  %8s", "qqp P@.5");
    fprintf(stderr, "\n");
    for (size_t k = 0; k < nscorers; k++) {
        const scorer *s = &scorers[k];
        fprintf(stderr, "%-20s  %5.2f", s->name, s->thr);
        cell_pair(s->faq_p[FAQ_BANKING], s->faq_hit[FAQ_BANKING], 11);
        cell_pair(s->faq_p[FAQ_CLINC], s->faq_hit[FAQ_CLINC], 11);
        cell_pair(s->faq_p[FAQ_TYPED], s->faq_hit[FAQ_TYPED], 11);
        cell(s->stsb, 6);
        for (size_t l = 0; l < nla; l++) cell_pair(s->la_para[l], s->la_false[l], w[l]);
        if (test) cell(s->qqp_p50, 8);
        fprintf(stderr, "\n");
    }
    fprintf(stderr, "P/hit: precision / hit rate of the FAQ scenario (top-%zu); typed: banking77's with the\n"
                    "queries lower-cased, end punctuation removed; stsb: Spearman on STS-B test;\n"
                    "para/fh: paraphrases / look-alikes served%s\n\n",
            top_k, test ? "; qqp P@.5: qqp_test precision at recall 0.5" : "");
}

/* Exits 1 naming path when it cannot be read. */
static void need(const char *path)
{
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "bench_quality: cannot read %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* Adds a look-alike file, named after it ("lookalike_dev"). */
static int add_lookalike(char **paths, const char *path)
{
    if (nla == MAX_LOOKALIKE) {
        fprintf(stderr, "bench_quality: at most %d look-alike files\n", MAX_LOOKALIKE);
        return -1;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".tsv") == 0) len -= 4;
    paths[nla] = sc_strdup(path);
    la_names[nla] = sc_malloc(len + 1);
    memcpy(la_names[nla], base, len);
    la_names[nla++][len] = '\0';
    return 0;
}

/* The default look-alike sets: the held-out one, then the dev sets. */
static int default_lookalikes(char **paths)
{
    if (!dev_only && add_lookalike(paths, "tests/fixtures/lookalike.tsv")) return -1;
    glob_t g;
    int rc = 0;
    if (glob("tests/fixtures/lookalike_dev*.tsv", 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) rc = add_lookalike(paths, g.gl_pathv[i]);
    globfree(&g);
    return rc;
}

static void usage(FILE *o)
{
    fprintf(o, "usage: bench_quality [--data DIR] [--scorers LIST] [--embedder NAME] [--model-dir DIR]\n"
               "                     [--embed-model-dir DIR] [--top-k N] [--qqp-n N] [--quick]\n"
               "                     [--lookalike FILE]... [--threshold X] [--test | --dev]\n"
               "CSV of hit rate, precision and false-hit rate vs threshold for each scorer, and a\n"
               "summary table on stderr. LIST: comma-separated EMBEDDER[+verify|+vote] (default\n"
               "use-lite,use-lite+verify,semcache-embed,semcache-embed+vote,semcache-embed+vote+check;\n"
               "the last is the server's default decision); --embedder NAME means\n"
               "NAME and NAME+verify (NAME+vote without a verifier). --model-dir is use-lite's,\n"
               "--embed-model-dir semcache-embed's (default %s). --threshold\n"
               "replaces every scorer's default threshold. --test also reports the held-out\n"
               "qqp_test split (once, final). --dev reads no report-only split (for tuning):\n"
               "CLINC150's FAQ on \"val\", banking77's on train's tuning rows; no STS-B test\n"
               "or lookalike.tsv.\n",
            SC_EMBED_DEFAULT_MODEL_DIR);
}

int main(int argc, char **argv)
{
    const char *data = getenv("SC_DATA_DIR");
    const char *list = "use-lite,use-lite+verify,semcache-embed,semcache-embed+vote,semcache-embed+vote+check";
    char legacy[96];
    char *la_paths[MAX_LOOKALIKE];
    size_t qqp_n = 6000;
    double thr = NAN;
    int test = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--test")) test = 1;
        else if (!strcmp(a, "--dev")) dev_only = 1;
        else if (!strcmp(a, "--quick")) qqp_n = 2000;
        else if (!v) { usage(stderr); return 2; }
        else if (!strcmp(a, "--data")) { data = v; i++; }
        else if (!strcmp(a, "--scorers")) { list = v; i++; }
        else if (!strcmp(a, "--embedder")) {
            snprintf(legacy, sizeof legacy, "%s,%s+%s", v, v, sc_verify_builtin(v) ? "verify" : "vote");
            list = legacy;
            i++;
        }
        else if (!strcmp(a, "--model-dir")) { models[0].dir = v; i++; }
        else if (!strcmp(a, "--embed-model-dir")) { models[1].dir = v; i++; }
        else if (!strcmp(a, "--top-k")) { top_k = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--qqp-n")) { qqp_n = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--lookalike")) {
            if (add_lookalike(la_paths, v)) return 2;
            i++;
        }
        else if (!strcmp(a, "--threshold")) { thr = atof(v); i++; }
        else if (!strcmp(a, "--veto")) { veto = atof(v); i++; }
        else if (!strcmp(a, "--veto-decisive")) { veto_decisive = atof(v); i++; }
        else { fprintf(stderr, "bench_quality: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (qqp_n == 0 || qqp_n > QD_QQP_EXTRA_AT - QD_QQP_EVAL_AT) {
        /* Past that the benchmark's rows would be train_verify's --qqp-extra rows. */
        fprintf(stderr, "bench_quality: --qqp-n must be 1..%d\n", QD_QQP_EXTRA_AT - QD_QQP_EVAL_AT);
        return 2;
    }
    if (top_k == 0 || top_k > SC_VOTE_MAX) {
        fprintf(stderr, "bench_quality: --top-k must be 1..%d\n", SC_VOTE_MAX);
        return 2;
    }
    if (parse_scorers(list, thr) != 0) return 2;
    if (nla == 0 && default_lookalikes(la_paths) != 0) return 2;

    /* Every input first, so that a missing one fails before minutes of work. */
    char qqp_dev[1024], gptcache[1024], banking[1024], clinc[1024], stsb_dev[1024], stsb_test[1024],
        qqp_test[1024];
    if (!data || !*data) {
        fprintf(stderr, "bench_quality: name the data directory with --data DIR or SC_DATA_DIR "
                        "(qqp_dev.jsonl.gz, banking77_test.csv, clinc150_data_full.json.gz, ...; "
                        "see BENCHMARKS.md, Quality)\n");
        return 2;
    }
    snprintf(qqp_dev, sizeof qqp_dev, "%s/qqp_dev.jsonl.gz", data);
    snprintf(gptcache, sizeof gptcache, "%s/gptcache_mock_data.json", data);
    snprintf(banking, sizeof banking, "%s/%s", data, dev_only ? "banking77_train.csv" : "banking77_test.csv");
    snprintf(clinc, sizeof clinc, "%s/clinc150_data_full.json.gz", data);
    snprintf(stsb_dev, sizeof stsb_dev, "%s/stsb_sts-dev.csv", data);
    snprintf(stsb_test, sizeof stsb_test, "%s/stsb_sts-test.csv", data);
    snprintf(qqp_test, sizeof qqp_test, "%s/qqp_test.jsonl.gz", data);
    if (dev_only && test) {
        fprintf(stderr, "bench_quality: --dev and --test exclude each other\n");
        return 2;
    }
    const char *inputs[] = {qqp_dev, gptcache, banking, clinc, stsb_dev,
                            dev_only ? NULL : stsb_test, test ? qqp_test : NULL};
    for (size_t i = 0; i < SC_COUNTOF(inputs); i++)
        if (inputs[i]) need(inputs[i]);
    for (size_t l = 0; l < nla; l++) need(la_paths[l]);
    open_models();

    header();
    int rc = 0;
    rc |= bench_qqp(qqp_dev, "qqp_dev", QD_QQP_EVAL_AT, qqp_n, 0);
    rc |= bench_gptcache(gptcache);
    rc |= dev_only ? bench_banking_tune(banking) : bench_banking(banking);
    rc |= bench_clinc(clinc);
    for (size_t l = 0; l < nla; l++) rc |= bench_lookalike(la_paths[l], l);
    rc |= bench_stsb(stsb_dev, "stsb_dev", 0);
    if (!dev_only) rc |= bench_stsb(stsb_test, "stsb_test", 1);
    if (nla) rc |= bench_latency(la_paths[0]);
    if (test) rc |= bench_qqp(qqp_test, "qqp_test", 0, (size_t)-1, 1);
    summary(test);
    close_models();
    for (size_t l = 0; l < nla; l++) {
        free(la_paths[l]);
        free(la_names[l]);
    }
    return rc ? 1 : 0;
}
