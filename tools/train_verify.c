/* train_verify: trains the hit verifier's logistic model for one embedder
 * and writes its block of embed/verify_weights.h.
 *
 * Data (fixed splits, see benchmarks/quality_data.h and BENCHMARKS.md (Quality)):
 * a seeded subsample of qqp_dev (never qqp_test) and FAQ-style pairs from
 * banking77 train, less its tuning rows (with --clinc 1, CLINC150 train
 * too): 3 seeded entries per intent, each other query paired with its 3
 * nearest seeds by cosine, positive when the intents agree. banking77
 * test, CLINC150 val/test and STS-B test are never read. Each
 * source is split into a fit part and a held-in calibration part. The model
 * is L2-regularised logistic regression on standardised features, fitted
 * by Newton's method (IRLS); Platt scaling on the calibration part then
 * makes the output a probability that the cached answer is right. The
 * standardisation and the calibration are folded into one weight vector.
 * It also prints (CSV, stdout) an ablation: calibration-split AUC with
 * each feature group removed, and the calibration curve.
 *
 * Build and run (from the repository root):
 *   make build/train_verify
 *   build/train_verify --embedder use-lite --write embed/verify_weights.h
 *   build/train_verify --embedder hash --write embed/verify_weights.h
 * Experiments (BENCHMARKS.md, "Attempt to close the paraphrase gap"):
 * --augment-rewrites N adds N synthetic paraphrase-preserving rewrites per
 * kind (polite prefix/suffix, "how do I" variants, contractions, a synonym,
 * clause order, dropped fillers; --rewrite-kinds MASK picks the kinds, bit
 * 0 = polite); --bank-weight N counts banking77 fit pairs N times;
 * --dev PAIRS.tsv prints the model's look-alikes/paraphrases served on a
 * development set (never tests/fixtures/lookalike.tsv, the held-out
 * evaluation set); --no-ablation skips the ablation fits.
 * Exit codes: 0 ok, 1 data/embedder failure, 2 bad usage. */
#include "benchmarks/quality_data.h"
#include "common/alloc.h"
#include "common/err.h"
#include "embed/embed.h"
#include "embed/verify.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NP (SC_VF_COUNT + 1)

static size_t g_augment = 300;   /* synthetic pairs per edit kind (0 = none) */
static size_t g_augment_extra = 0; /* per kind of the rewrites 8..13 (0 = none; opt-in, see BENCHMARKS.md) */
static int g_bank_weight = 1;      /* banking77 fit pairs count this many times */
static size_t g_qqp_extra = 0;     /* more fit pairs from shuffled qqp_dev rows [QD_QQP_EXTRA_AT, +N) */
static int g_clinc = 0;             /* CLINC150 train FAQ pairs as fit data */
static int g_stsb = 0;             /* STS-B dev pairs as fit data (score >= 4: 1, < 3: 0) */
static unsigned g_rewrite_kinds = 0x2f; /* bit k-8: rewrite kind k in use (clause order off) */   /* parameters: features + bias (last) */

typedef struct set {
    float (*x)[SC_VF_COUNT];
    int *y;
    int *src;                  /* 0 = qqp, 1 = banking77, 2 = synthetic, 3 = CLINC150 */
    size_t n, cap;
} set;

static void set_push(set *s, const float *x, int y, int src)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->x = sc_realloc(s->x, s->cap * sizeof *s->x);
        s->y = sc_realloc(s->y, s->cap * sizeof *s->y);
        s->src = sc_realloc(s->src, s->cap * sizeof *s->src);
    }
    memcpy(s->x[s->n], x, sizeof s->x[0]);
    s->y[s->n] = y;
    s->src[s->n] = src;
    s->n++;
}

/* ---------------------------------------------------------------------
 * Logistic regression (IRLS) and Platt scaling
 * ------------------------------------------------------------------- */

#define MAXTREES 400
typedef struct lr {
    double mean[SC_VF_COUNT], sd[SC_VF_COUNT];
    double w[NP];              /* on standardised features; w[SC_VF_COUNT] = bias */
    int mask[SC_VF_COUNT];     /* 1 = feature used */
    int ntrees;                /* boosted trees on raw features, on top */
    sc_verify_tree trees[MAXTREES];
} lr;

static double sigm(double z)
{
    return z > 40 ? 1 : z < -40 ? 0 : 1 / (1 + exp(-z));
}

static void feat_std(const lr *m, const float *x, double *z)
{
    for (int j = 0; j < SC_VF_COUNT; j++)
        z[j] = m->mask[j] ? (x[j] - m->mean[j]) / m->sd[j] : 0;
    z[SC_VF_COUNT] = 1;
}

static double tree_eval(const sc_verify_tree *t, const float *x)
{
    int k = 0;
    for (int d = 0; d < 3; d++) k = 2 * k + 1 + (x[t->feat[k]] > t->thr[k]);
    return t->leaf[k - 7];
}

static double lr_logit(const lr *m, const float *x)
{
    double z[NP], s = 0;
    feat_std(m, x, z);
    for (int j = 0; j < NP; j++) s += m->w[j] * z[j];
    for (int t = 0; t < m->ntrees; t++) s += tree_eval(&m->trees[t], x);
    return s;
}

/* Solves A x = b (n x n, symmetric positive definite) in place; A is
 * destroyed. Gaussian elimination with partial pivoting. */
static int solve(double *A, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[p * n + c])) p = r;
        if (fabs(A[p * n + c]) < 1e-12) return -1;
        if (p != c) {
            for (int k = 0; k < n; k++) {
                double t = A[c * n + k];
                A[c * n + k] = A[p * n + k];
                A[p * n + k] = t;
            }
            double t = b[c];
            b[c] = b[p];
            b[p] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            for (int k = c; k < n; k++) A[r * n + k] -= f * A[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        double s = b[c];
        for (int k = c + 1; k < n; k++) s -= A[c * n + k] * b[k];
        b[c] = s / A[c * n + c];
    }
    return 0;
}

static void lr_fit(lr *m, const set *s, double lambda)
{
    for (int j = 0; j < SC_VF_COUNT; j++) {
        double mu = 0, v = 0;
        for (size_t i = 0; i < s->n; i++) mu += s->x[i][j];
        mu /= s->n;
        for (size_t i = 0; i < s->n; i++) v += (s->x[i][j] - mu) * (s->x[i][j] - mu);
        v = sqrt(v / s->n);
        m->mean[j] = mu;
        m->sd[j] = v > 1e-9 ? v : 1;
        if (v <= 1e-9) m->mask[j] = 0;   /* constant on the data: unusable */
    }
    memset(m->w, 0, sizeof m->w);
    static double H[NP * NP];
    double g[NP], z[NP];
    for (int it = 0; it < 50; it++) {
        memset(H, 0, sizeof H);
        memset(g, 0, sizeof g);
        for (size_t i = 0; i < s->n; i++) {
            feat_std(m, s->x[i], z);
            double t = 0;
            for (int j = 0; j < NP; j++) t += m->w[j] * z[j];
            double p = sigm(t), wgt = p * (1 - p) + 1e-9, r = s->y[i] - p;
            for (int j = 0; j < NP; j++) {
                if (z[j] == 0 && j < SC_VF_COUNT && !m->mask[j]) continue;
                g[j] += r * z[j];
                for (int k = 0; k <= j; k++) H[j * NP + k] += wgt * z[j] * z[k];
            }
        }
        for (int j = 0; j < NP; j++)
            for (int k = j + 1; k < NP; k++) H[j * NP + k] = H[k * NP + j];
        for (int j = 0; j < SC_VF_COUNT; j++) {
            H[j * NP + j] += lambda;
            g[j] -= lambda * m->w[j];
            if (!m->mask[j]) {           /* pin unused weights at 0 */
                for (int k = 0; k < NP; k++) H[j * NP + k] = H[k * NP + j] = 0;
                H[j * NP + j] = 1;
                g[j] = 0;
            }
        }
        if (solve(H, g, NP) != 0) break;
        double step = 0;
        for (int j = 0; j < NP; j++) {
            m->w[j] += g[j];
            step += fabs(g[j]);
        }
        if (step < 1e-8) break;
    }
}

/* ---------------------------------------------------------------------
 * Gradient-boosted trees (depth 3, Newton leaves) on the residuals of the
 * logistic regression. Features are cut at up to 31 quantiles.
 * ------------------------------------------------------------------- */

#define NBIN 32
static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void gbdt_fit(lr *m, const set *s, int ntrees, double eta, double lambda)
{
    size_t n = s->n;
    float cuts[SC_VF_COUNT][NBIN];
    int ncut[SC_VF_COUNT];
    float *tmp = sc_malloc(n * sizeof *tmp);
    unsigned char *bin = sc_malloc(n * SC_VF_COUNT);
    for (int j = 0; j < SC_VF_COUNT; j++) {
        for (size_t i = 0; i < n; i++) tmp[i] = s->x[i][j];
        qsort(tmp, n, sizeof *tmp, cmp_float);
        ncut[j] = 0;
        for (int k = 1; k < NBIN; k++) {
            float c = tmp[(size_t)((double)k / NBIN * (n - 1))];
            if (c >= tmp[n - 1]) break;   /* a cut must leave something right */
            if (ncut[j] == 0 || c > cuts[j][ncut[j] - 1]) cuts[j][ncut[j]++] = c;
        }
        for (size_t i = 0; i < n; i++) {
            int b = 0;
            while (b < ncut[j] && s->x[i][j] > cuts[j][b]) b++;
            bin[i * SC_VF_COUNT + j] = (unsigned char)b;
        }
    }
    double *F = sc_malloc(n * sizeof *F), *g = sc_malloc(n * sizeof *g), *h = sc_malloc(n * sizeof *h);
    int *node = sc_malloc(n * sizeof *node);
    m->ntrees = 0;
    for (size_t i = 0; i < n; i++) F[i] = lr_logit(m, s->x[i]);
    for (int t = 0; t < ntrees && t < MAXTREES; t++) {
        for (size_t i = 0; i < n; i++) {
            double p = sigm(F[i]);
            g[i] = p - s->y[i];
            h[i] = p * (1 - p) + 1e-6;
            node[i] = 0;
        }
        sc_verify_tree tr;
        memset(&tr, 0, sizeof tr);
        for (int d = 0; d < 3; d++) {
            int first = (1 << d) - 1, cnt = 1 << d;
            static double hg[8][SC_VF_COUNT][NBIN], hh[8][SC_VF_COUNT][NBIN];
            double G[8] = {0}, H[8] = {0};
            memset(hg, 0, sizeof hg);
            memset(hh, 0, sizeof hh);
            for (size_t i = 0; i < n; i++) {
                int k = node[i] - first;
                G[k] += g[i];
                H[k] += h[i];
                for (int j = 0; j < SC_VF_COUNT; j++) {
                    if (!m->mask[j]) continue;
                    int b = bin[i * SC_VF_COUNT + j];
                    hg[k][j][b] += g[i];
                    hh[k][j][b] += h[i];
                }
            }
            for (int k = 0; k < cnt; k++) {
                double best = 1e-9, parent = G[k] * G[k] / (H[k] + lambda);
                int bf = 0;
                float bt = 3.0e38f;
                for (int j = 0; j < SC_VF_COUNT; j++) {
                    if (!m->mask[j]) continue;
                    double gl = 0, hl = 0;
                    for (int b = 0; b < ncut[j]; b++) {
                        gl += hg[k][j][b];
                        hl += hh[k][j][b];
                        double gr = G[k] - gl, hr = H[k] - hl;
                        if (hl < 2 || hr < 2) continue;
                        double gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                        if (gain > best) { best = gain; bf = j; bt = cuts[j][b]; }
                    }
                }
                tr.feat[first + k] = (signed char)bf;
                tr.thr[first + k] = bt;
            }
            for (size_t i = 0; i < n; i++) {
                int k = node[i];
                node[i] = 2 * k + 1 + (s->x[i][tr.feat[k]] > tr.thr[k]);
            }
        }
        double LG[8] = {0}, LH[8] = {0};
        for (size_t i = 0; i < n; i++) {
            LG[node[i] - 7] += g[i];
            LH[node[i] - 7] += h[i];
        }
        for (int k = 0; k < 8; k++) tr.leaf[k] = (float)(-eta * LG[k] / (LH[k] + lambda));
        for (size_t i = 0; i < n; i++) F[i] += tr.leaf[node[i] - 7];
        m->trees[m->ntrees++] = tr;
    }
    free(tmp);
    free(bin);
    free(F);
    free(g);
    free(h);
    free(node);
}

/* Fits p = sigmoid(A z + B) to labels on logits z (Newton, 2 parameters),
 * with Platt's target smoothing. */
static void platt(const double *z, const int *y, size_t n, double *A, double *B)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) pos += y[i] != 0;
    double tp = (pos + 1.0) / (pos + 2.0), tn = 1.0 / (n - pos + 2.0);
    double a = 1, b = 0;
    for (int it = 0; it < 100; it++) {
        double haa = 1e-9, hab = 0, hbb = 1e-9, ga = 0, gb = 0;
        for (size_t i = 0; i < n; i++) {
            double p = sigm(a * z[i] + b), t = y[i] ? tp : tn, w = p * (1 - p);
            ga += (t - p) * z[i];
            gb += (t - p);
            haa += w * z[i] * z[i];
            hab += w * z[i];
            hbb += w;
        }
        double det = haa * hbb - hab * hab;
        if (fabs(det) < 1e-15) break;
        double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
        a += da;
        b += db;
        if (fabs(da) + fabs(db) < 1e-10) break;
    }
    *A = a;
    *B = b;
}

static double set_auc(const lr *m, const set *s, int src)
{
    double *sc = sc_malloc((s->n + 1) * sizeof *sc);
    int *y = sc_malloc((s->n + 1) * sizeof *y);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (src >= 0 && s->src[i] != src) continue;
        sc[k] = lr_logit(m, s->x[i]);
        y[k++] = s->y[i];
    }
    double a = qd_auc(sc, y, k);
    free(sc);
    free(y);
    return a;
}

/* ---------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------- */

static int add_pairs(sc_embedder *e, int diff_embed, char **ta, char **tb, const int *y,
                     size_t n, const int *to_calib, int src, set *fit, set *cal)
{
    uint32_t dim = sc_embedder_dim(e);
    float *va = sc_malloc((n + 1) * dim * sizeof(float)), *vb = sc_malloc((n + 1) * dim * sizeof(float));
    int rc = qd_embed_all(e, ta, n, va);
    if (!rc) rc = qd_embed_all(e, tb, n, vb);
    for (size_t i = 0; i < n && !rc; i++) {
        float x[SC_VF_COUNT];
        float c = qd_dot(va + i * dim, vb + i * dim, dim);
        rc = sc_verify_features(ta[i], strlen(ta[i]), tb[i], strlen(tb[i]), c,
                                diff_embed ? e : NULL, x);
        set_push(to_calib[i] ? cal : fit, x, y[i], src);
        for (int r = 1; src == 1 && !to_calib[i] && r < g_bank_weight; r++) set_push(fit, x, y[i], src);
    }
    free(va);
    free(vb);
    return rc;
}

static int augment(sc_embedder *e, int de, char **texts, size_t n, size_t per_kind, set *fit);

static int load_qqp(const char *dir, size_t ntrain, size_t ncal, sc_embedder *e, int de,
                    set *fit, set *cal)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/qqp_dev.jsonl.gz", dir);
    qd_pairs all = {0};
    if (qd_load_qqp(path, &all) != 0) {
        fprintf(stderr, "train_verify: cannot read %s\n", path);
        return -1;
    }
    size_t *perm = qd_shuffle(all.n, QD_SEED);
    size_t n = ntrain + ncal;
    if (n > all.n) n = all.n;
    char **ta = sc_malloc(n * sizeof *ta), **tb = sc_malloc(n * sizeof *tb);
    int *y = sc_malloc(n * sizeof *y), *tc = sc_malloc(n * sizeof *tc);
    for (size_t i = 0; i < n; i++) {
        qd_pair *p = &all.v[perm[i]];
        ta[i] = p->a;
        tb[i] = p->b;
        y[i] = p->label;
        tc[i] = i >= ntrain;
    }
    int rc = add_pairs(e, de, ta, tb, y, n, tc, 0, fit, cal);
    if (!rc && g_augment) rc = augment(e, de, ta, ntrain < n ? ntrain : n, g_augment, fit);
    if (!rc && g_qqp_extra && all.n > QD_QQP_EXTRA_AT) {
        /* Rows past the benchmark's split: more fit pairs, never calibration. */
        size_t m = all.n - QD_QQP_EXTRA_AT;
        if (m > g_qqp_extra) m = g_qqp_extra;
        char **xa = sc_malloc(m * sizeof *xa), **xb = sc_malloc(m * sizeof *xb);
        int *xy = sc_malloc(m * sizeof *xy), *xc = sc_calloc(m, sizeof *xc);
        for (size_t i = 0; i < m; i++) {
            qd_pair *p = &all.v[perm[QD_QQP_EXTRA_AT + i]];
            xa[i] = p->a;
            xb[i] = p->b;
            xy[i] = p->label;
        }
        rc = add_pairs(e, de, xa, xb, xy, m, xc, 0, fit, cal);
        fprintf(stderr, "train_verify: %zu extra qqp_dev fit pairs\n", m);
        free(xa);
        free(xb);
        free(xy);
        free(xc);
    }
    free(ta);
    free(tb);
    free(y);
    free(tc);
    free(perm);
    qd_free(&all);
    return rc;
}

/* ---------------------------------------------------------------------
 * Synthetic look-alikes. QQP rarely holds pairs that differ only by a
 * number, a negation, an opposite word, swapped order or another named
 * thing, so the model would learn little about those signals. From the
 * fit split's own questions we make such pairs (label 0) by one edit each,
 * and harmless edits (label 1): "how do i" -> "how can i", lower case
 * without the question mark, digits -> number words. They go to the fit
 * part only; calibration uses real pairs alone.
 * ------------------------------------------------------------------- */

#define AW_MAX 64
typedef struct words {
    char *w[AW_MAX];   /* each word as written, punctuation attached */
    int n;
} words;

static void split_words(const char *t, words *ws)
{
    ws->n = 0;
    while (*t && ws->n < AW_MAX) {
        while (*t == ' ') t++;
        if (!*t) break;
        const char *e = t;
        while (*e && *e != ' ') e++;
        ws->w[ws->n++] = sc_strndup(t, (size_t)(e - t));
        t = e;
    }
}

static void free_words(words *ws)
{
    for (int i = 0; i < ws->n; i++) free(ws->w[i]);
    ws->n = 0;
}

/* The lower-case alphanumeric core of a word, and where it sits. */
static void core(const char *w, char *out, size_t cap, size_t *start, size_t *len)
{
    size_t a = 0, n = strlen(w);
    while (a < n && !isalnum((unsigned char)w[a])) a++;
    size_t b = n;
    while (b > a && !isalnum((unsigned char)w[b - 1]) && w[b - 1] != '+') b--;
    size_t k = 0;
    for (size_t i = a; i < b && k + 1 < cap; i++) out[k++] = (char)tolower((unsigned char)w[i]);
    out[k] = '\0';
    *start = a;
    *len = b - a;
}

static void replace_core(words *ws, int i, const char *rep)
{
    char c[64];
    size_t st, ln;
    core(ws->w[i], c, sizeof c, &st, &ln);
    size_t n = strlen(ws->w[i]), rl = strlen(rep);
    char *out = sc_malloc(n - ln + rl + 1);
    memcpy(out, ws->w[i], st);
    memcpy(out + st, rep, rl);
    if (ln && isupper((unsigned char)ws->w[i][st])) out[st] = (char)toupper((unsigned char)out[st]);
    memcpy(out + st + rl, ws->w[i] + st + ln, n - st - ln + 1);
    free(ws->w[i]);
    ws->w[i] = out;
}

static char *join(const words *ws)
{
    size_t n = 1;
    for (int i = 0; i < ws->n; i++) n += strlen(ws->w[i]) + 1;
    char *s = sc_malloc(n), *p = s;
    for (int i = 0; i < ws->n; i++) {
        if (i) *p++ = ' ';
        size_t l = strlen(ws->w[i]);
        memcpy(p, ws->w[i], l);
        p += l;
    }
    *p = '\0';
    return s;
}

static int is_plain_word(const char *c)
{
    size_t n = strlen(c);
    if (n < 3) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalpha((unsigned char)c[i])) return 0;
    static const char *const stop[] = {"the", "and", "how", "what", "why", "can", "you", "your",
                                       "get", "are", "was", "for", "with", "from", "that", "this"};
    for (size_t i = 0; i < SC_COUNTOF(stop); i++)
        if (!strcmp(stop[i], c)) return 0;
    return 1;
}

/* Removes word i. */
static void drop_word(words *ws, int i)
{
    free(ws->w[i]);
    memmove(&ws->w[i], &ws->w[i + 1], (size_t)(ws->n - i - 1) * sizeof ws->w[0]);
    ws->n--;
}

/* Inserts a copy of w before position i (if room). */
static int insert_word(words *ws, int i, const char *w)
{
    if (ws->n >= AW_MAX) return 0;
    memmove(&ws->w[i + 1], &ws->w[i], (size_t)(ws->n - i) * sizeof ws->w[0]);
    ws->w[i] = sc_strdup(w);
    ws->n++;
    return 1;
}

static int lower_eq(const char *w, const char *c)
{
    char b[64];
    size_t st, ln;
    core(w, b, sizeof b, &st, &ln);
    return !strcmp(b, c);
}

/* Lower-cases the first letter of word 0 (unless it is "I" or all-caps). */
static void decap_first(words *ws)
{
    char *w = ws->w[0];
    if (strcmp(w, "I") && strlen(w) > 1 && isupper((unsigned char)w[0]) && !isupper((unsigned char)w[1]))
        w[0] = (char)tolower((unsigned char)w[0]);
}

static void cap_first(words *ws)
{
    ws->w[0][0] = (char)toupper((unsigned char)ws->w[0][0]);
}

/* Meaning-preserving synonyms (both directions), none of them in the
 * opposite list. */
static const char *const synonyms[][2] = {
    {"buy", "purchase"}, {"begin", "start"}, {"fix", "repair"}, {"big", "large"},
    {"phone", "mobile"}, {"find", "locate"}, {"choose", "select"}, {"change", "modify"},
    {"display", "show"}, {"quick", "fast"}, {"car", "vehicle"}, {"movie", "film"},
    {"talk", "speak"}, {"happy", "glad"}, {"error", "mistake"}, {"house", "home"},
    {"simple", "easy"}, {"finish", "complete"}, {"cost", "price"}, {"fee", "charge"},
    {"mistake", "error"}, {"app", "application"}, {"email", "e-mail"}, {"photo", "picture"},
    {"delete", "erase"}, {"problem", "issue"}, {"main", "primary"}, {"usually", "normally"},
    {"maybe", "perhaps"}, {"smart", "clever"}, {"stop", "quit"}, {"enough", "sufficient"},
    {"often", "frequently"}, {"huge", "enormous"}, {"improve", "enhance"}, {"idea", "concept"},
    {"difficult", "hard"}, {"country", "nation"}, {"rules", "regulations"},
};

/* Harmless rewrites (label 1), kinds 8..: polite prefix or suffix, another
 * way to ask "how do I", contractions, a synonym, clause order around a
 * comma, dropped filler words. Returns 1 when applied. */
static int harmless_edit(words *ws, int k, uint64_t *rng)
{
    char c0[64], c1[64];
    size_t st, ln;
    if (ws->n < 3) return 0;
    switch (k) {
    case 8: { /* polite prefix / suffix */
        static const char *const pre[] = {"Can you tell me", "Please tell me", "I'd like to know",
                                          "Quick question:", "Hi,", "Hello, could you tell me",
                                          "I was wondering", "Do you know"};
        static const char *const suf[] = {"please?", "thanks!", "thank you.", "please help."};
        uint64_t r = qd_rng_next(rng);
        if (r % 3 == 0) {
            char *last = ws->w[ws->n - 1];
            size_t l = strlen(last);
            if (l && last[l - 1] == '?') last[l - 1] = '\0';
            return insert_word(ws, ws->n, suf[(r >> 8) % SC_COUNTOF(suf)]);
        }
        const char *p = pre[(r >> 8) % SC_COUNTOF(pre)];
        decap_first(ws);
        words pw;
        split_words(p, &pw);
        int ok = 1;
        for (int j = pw.n - 1; j >= 0 && ok; j--) ok = insert_word(ws, 0, pw.w[j]);
        free_words(&pw);
        return ok;
    }
    case 9: { /* other ways to ask how */
        core(ws->w[0], c0, sizeof c0, &st, &ln);
        core(ws->w[1], c1, sizeof c1, &st, &ln);
        if (strcmp(c0, "how") || (strcmp(c1, "do") && strcmp(c1, "can")) || !lower_eq(ws->w[2], "i"))
            return 0;
        static const char *const alt[] = {"What's the way to", "What is the best way to",
                                          "How should I", "How would I", "What do I do to",
                                          "What steps do I take to", "How can I", "How do I"};
        const char *a = alt[qd_rng_next(rng) % SC_COUNTOF(alt)];
        char same[96];
        snprintf(same, sizeof same, "how %s i", c1);
        if (!strcasecmp(a, same)) return 0;
        drop_word(ws, 0);
        drop_word(ws, 0);
        drop_word(ws, 0);
        words pw;
        split_words(a, &pw);
        int ok = 1;
        for (int j = pw.n - 1; j >= 0 && ok; j--) ok = insert_word(ws, 0, pw.w[j]);
        free_words(&pw);
        return ok;
    }
    case 10: { /* contractions, either way */
        static const char *const ct[][3] = {
            {"what", "is", "what's"}, {"do", "not", "don't"}, {"i", "am", "i'm"},
            {"it", "is", "it's"}, {"does", "not", "doesn't"}, {"can", "not", "can't"},
            {"i", "have", "i've"}, {"is", "not", "isn't"}, {"that", "is", "that's"},
            {"i", "would", "i'd"}, {"there", "is", "there's"}, {"did", "not", "didn't"},
        };
        for (int i = 0; i + 1 < ws->n; i++)
            for (size_t m = 0; m < SC_COUNTOF(ct); m++) {
                if (lower_eq(ws->w[i], ct[m][0]) && !strcmp(ws->w[i + 1], ct[m][1])) {
                    int up = isupper((unsigned char)ws->w[i][0]);
                    drop_word(ws, i + 1);
                    free(ws->w[i]);
                    ws->w[i] = sc_strdup(ct[m][2]);
                    if (up) ws->w[i][0] = (char)toupper((unsigned char)ws->w[i][0]);
                    return 1;
                }
                if (!strcasecmp(ws->w[i], ct[m][2])) {
                    int up = isupper((unsigned char)ws->w[i][0]);
                    free(ws->w[i]);
                    ws->w[i] = sc_strdup(ct[m][0]);
                    if (up || !strcmp(ct[m][0], "i")) ws->w[i][0] = (char)toupper((unsigned char)ws->w[i][0]);
                    return insert_word(ws, i + 1, ct[m][1]);
                }
            }
        return 0;
    }
    case 11: /* a synonym */
        for (int i = 0; i < ws->n; i++) {
            core(ws->w[i], c0, sizeof c0, &st, &ln);
            for (size_t m = 0; m < SC_COUNTOF(synonyms); m++)
                for (int d = 0; d < 2; d++)
                    if (!strcmp(c0, synonyms[m][d])) {
                        replace_core(ws, i, synonyms[m][1 - d]);
                        return 1;
                    }
        }
        return 0;
    case 12: { /* "A, B?" -> "B, A?" */
        int cut = -1;
        for (int i = 1; i + 2 < ws->n; i++) {
            size_t l = strlen(ws->w[i]);
            if (l > 1 && ws->w[i][l - 1] == ',') { cut = i; break; }
        }
        if (cut < 1 || cut + 2 > ws->n - 1) return 0;
        char *last = ws->w[ws->n - 1];
        size_t l = strlen(last);
        char endp = l && (last[l - 1] == '?' || last[l - 1] == '.' || last[l - 1] == '!') ? last[l - 1] : 0;
        if (endp) last[l - 1] = '\0';
        ws->w[cut][strlen(ws->w[cut]) - 1] = '\0';
        words nw = {0};
        for (int i = cut + 1; i < ws->n; i++) nw.w[nw.n++] = ws->w[i];
        size_t lb = strlen(nw.w[nw.n - 1]);
        char *t = sc_malloc(lb + 2);
        memcpy(t, nw.w[nw.n - 1], lb);
        t[lb] = ',';
        t[lb + 1] = '\0';
        free(nw.w[nw.n - 1]);
        nw.w[nw.n - 1] = t;
        decap_first(ws);
        for (int i = 0; i <= cut; i++) nw.w[nw.n++] = ws->w[i];
        if (endp) {
            size_t la = strlen(nw.w[nw.n - 1]);
            char *u = sc_malloc(la + 2);
            memcpy(u, nw.w[nw.n - 1], la);
            u[la] = endp;
            u[la + 1] = '\0';
            free(nw.w[nw.n - 1]);
            nw.w[nw.n - 1] = u;
        }
        *ws = nw;
        cap_first(ws);
        return 1;
    }
    case 13: { /* dropped filler words */
        static const char *const fill[] = {"really", "actually", "exactly", "please", "just",
                                           "the", "a", "any", "ever", "basically", "currently"};
        int n0 = ws->n;
        for (int i = ws->n - 1; i >= 1; i--)
            for (size_t m = 0; m < SC_COUNTOF(fill); m++)
                if (!strcmp(ws->w[i], fill[m])) { drop_word(ws, i); break; }
        return ws->n < n0 && ws->n >= 3;
    }
    }
    return 0;
}

/* Applies edit kind k to text t; returns the new text or NULL. */
static char *edit(const char *t, int k, uint64_t *rng)
{
    words ws;
    split_words(t, &ws);
    char c[64], d[64];
    size_t st, ln;
    int done = 0;
    static const char *const nt[][2] = {
        {"is", "isn't"}, {"are", "aren't"}, {"was", "wasn't"}, {"were", "weren't"}, {"do", "don't"},
        {"does", "doesn't"}, {"did", "didn't"}, {"can", "can't"}, {"should", "shouldn't"},
        {"will", "won't"}, {"would", "wouldn't"}, {"could", "couldn't"}, {"have", "haven't"},
        {"has", "hasn't"},
    };
    static const char *const digit_words[] = {"zero", "one", "two", "three", "four", "five", "six",
                                              "seven", "eight", "nine", "ten"};
    for (int i = 0; i < ws.n && !done; i++) {
        core(ws.w[i], c, sizeof c, &st, &ln);
        if (!c[0]) continue;
        switch (k) {
        case 0: /* number changed */
            if (isdigit((unsigned char)c[0]) && strspn(c, "0123456789") == strlen(c) && strlen(c) < 9) {
                long v = atol(c), nv = v * 2 + 1 + (long)(qd_rng_next(rng) % 9);
                snprintf(d, sizeof d, "%ld", nv);
                replace_core(&ws, i, d);
                done = 1;
            }
            break;
        case 1: /* negated */
            for (size_t m = 0; m < SC_COUNTOF(nt) && !done; m++)
                if (!strcmp(c, nt[m][0]) && !(i > 0 && !strncasecmp(ws.w[i - 1], "how", 3))) {
                    replace_core(&ws, i, nt[m][1]);
                    done = 1;
                }
            break;
        case 2: { /* opposite word */
            const char *o = sc_verify_opposite_of(c);
            if (o && strcmp(c, "to") && strcmp(c, "from") && strcmp(c, "in") && strcmp(c, "out") &&
                strcmp(c, "with") && strcmp(c, "without")) {
                replace_core(&ws, i, o);
                done = 1;
            }
            break;
        }
        case 3: /* swapped around to / into / than */
            if (i > 0 && i + 1 < ws.n && (!strcmp(c, "to") || !strcmp(c, "into") || !strcmp(c, "than"))) {
                char l[64], r[64];
                size_t s1, l1, s2, l2;
                core(ws.w[i - 1], l, sizeof l, &s1, &l1);
                core(ws.w[i + 1], r, sizeof r, &s2, &l2);
                if (is_plain_word(l) && is_plain_word(r) && strcmp(l, r)) {
                    replace_core(&ws, i - 1, r);
                    replace_core(&ws, i + 1, l);
                    done = 1;
                }
            }
            break;
        case 4: /* another named thing */
            for (size_t m = 0; sc_verify_named_word(m) && !done; m++)
                if (!strcmp(c, sc_verify_named_word(m)) && sc_verify_named_word(m + 1)) {
                    replace_core(&ws, i, sc_verify_named_word(m + 1));
                    done = 1;
                }
            break;
        case 5: /* harmless: "how do i" -> "how can i" */
            if (!strcmp(c, "do") && i > 0 && i + 1 < ws.n && !strcasecmp(ws.w[i - 1], "how") &&
                (!strcmp(ws.w[i + 1], "I") || !strcmp(ws.w[i + 1], "i"))) {
                replace_core(&ws, i, "can");
                done = 1;
            }
            break;
        case 14: { /* another unit of the same measure */
            static const char *const groups[][8] = {
                {"minute", "hour", "day", "week", "month", "year", NULL},
                {"mm", "cm", "meter", "km", "inch", "foot", "mile", "yard"},
                {"gram", "kg", "kilogram", "pound", "ounce", "ton", NULL},
                {"dollar", "euro", "rupee", "yen", "usd", "eur", "gbp", "inr"},
                {"celsius", "fahrenheit", "kelvin", NULL},
                {"kb", "mb", "gb", "tb", NULL},
                {"liter", "gallon", "ml", "litre", NULL},
                {"mph", "kmh", NULL},
            };
            char base[64];
            snprintf(base, sizeof base, "%s", c);
            size_t bl = strlen(base);
            int plural = bl > 3 && base[bl - 1] == 's';
            if (plural) base[bl - 1] = '\0';
            for (size_t g = 0; g < SC_COUNTOF(groups) && !done; g++) {
                int n = 0, at = -1;
                while (n < 8 && groups[g][n]) {
                    if (!strcmp(groups[g][n], base) || !strcmp(groups[g][n], c)) at = n;
                    n++;
                }
                if (at < 0) continue;
                int to = (at + 1 + (int)(qd_rng_next(rng) % (uint64_t)(n - 1))) % n;
                snprintf(d, sizeof d, "%s%s", groups[g][to], plural && strcmp(groups[g][at], c) ? "s" : "");
                replace_core(&ws, i, d);
                done = 1;
            }
            break;
        }
        case 6: /* harmless: digits to number words */
            if (strlen(c) <= 2 && strspn(c, "0123456789") == strlen(c) && atoi(c) <= 10) {
                replace_core(&ws, i, digit_words[atoi(c)]);
                done = 1;
            }
            break;
        }
    }
    if (!done && k >= 8 && k <= 13) done = harmless_edit(&ws, k, rng);
    char *out = NULL;
    if (done) out = join(&ws);
    else if (k == 7 && ws.n > 2) {      /* harmless: lower case, no final '?' */
        out = join(&ws);
        for (char *p = out; *p; p++) *p = (char)tolower((unsigned char)*p);
        size_t n = strlen(out);
        while (n && (out[n - 1] == '?' || out[n - 1] == ' ')) out[--n] = '\0';
        if (!strcmp(out, t)) { free(out); out = NULL; }
    }
    free_words(&ws);
    return out;
}

static int augment(sc_embedder *e, int de, char **texts, size_t n, size_t per_kind, set *fit)
{
    enum { KINDS = 15 };
    static const int label[KINDS] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    size_t cap = (per_kind + g_augment_extra) * KINDS, m = 0;
    char **ta = sc_malloc(cap * sizeof *ta), **tb = sc_malloc(cap * sizeof *tb);
    int *y = sc_malloc(cap * sizeof *y), *tc = sc_calloc(cap, sizeof *tc);
    size_t count[KINDS] = {0};
    uint64_t rng = QD_SEED;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < KINDS; k++) {
            int rewrite = k >= 8 && k <= 13;
            if (count[k] >= (rewrite ? g_augment_extra : per_kind)) continue;
            if (rewrite && !(g_rewrite_kinds >> (k - 8) & 1)) continue;
            char *b = edit(texts[i], k, &rng);
            if (!b) continue;
            if (count[k] < (rewrite ? 4 : 2)) fprintf(stderr, "train_verify: synthetic %d: \"%s\" / \"%s\"\n", label[k], texts[i], b);
            ta[m] = texts[i];
            tb[m] = b;
            y[m] = label[k];
            m++;
            count[k]++;
            break;          /* one edit per text, spread over kinds */
        }
    }
    fprintf(stderr, "train_verify: synthetic pairs: number %zu, negation %zu, opposite %zu, swap %zu, "
            "named %zu, harmless %zu+%zu+%zu, rewrites polite %zu how %zu contraction %zu synonym %zu "
            "clause %zu filler %zu, unit %zu\n", count[0], count[1], count[2], count[3], count[4],
            count[5], count[6], count[7], count[8], count[9], count[10], count[11], count[12], count[13],
            count[14]);
    int rc = add_pairs(e, de, ta, tb, y, m, tc, 2, fit, fit);
    for (size_t i = 0; i < m; i++) free(tb[i]);
    free(ta);
    free(tb);
    free(y);
    free(tc);
    return rc;
}

/* STS-B dev as fit data: pairs scored >= 4 of 5 ("equivalent, maybe
 * minor details differ") are positives, < 3 negatives; the band between is
 * left out. Reworded paraphrases of short sentences, which QQP's fit rows
 * hold few of. STS-B test stays the benchmark's held-out Spearman. */
static int load_stsb(const char *dir, sc_embedder *e, int de, set *fit)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/stsb_sts-dev.csv", dir);
    qd_pairs all = {0};
    if (qd_load_stsb(path, &all) != 0) {
        fprintf(stderr, "train_verify: cannot read %s\n", path);
        return -1;
    }
    char **ta = sc_malloc(all.n * sizeof *ta), **tb = sc_malloc(all.n * sizeof *tb);
    int *y = sc_malloc(all.n * sizeof *y), *tc = sc_calloc(all.n, sizeof *tc);
    size_t n = 0, pos = 0;
    for (size_t i = 0; i < all.n; i++) {
        double g = all.v[i].score;
        if (g >= 3 && g < 4) continue;
        ta[n] = all.v[i].a;
        tb[n] = all.v[i].b;
        y[n] = g >= 4;
        pos += (size_t)y[n];
        n++;
    }
    int rc = add_pairs(e, de, ta, tb, y, n, tc, 3, fit, fit);
    fprintf(stderr, "train_verify: %zu stsb_dev fit pairs (%zu positive)\n", n, pos);
    free(ta);
    free(tb);
    free(y);
    free(tc);
    qd_free(&all);
    return rc;
}

/* FAQ-style pairs from an intent data set's training rows: per intent, 3
 * rows spread over it are the seeded entries (as in the FAQ scenario: 3
 * phrasings cached per answer); every other row is a query, paired with
 * its 3 nearest seeds by cosine (positive when the intents agree). Every
 * 5th query of an intent calibrates. */
static int faq_pairs(const qd_bank *bk, int src, sc_embedder *e, int de, set *fit, set *cal)
{
    int total[QD_MAX_INTENTS] = {0};
    for (size_t i = 0; i < bk->n; i++) total[bk->intent[i]]++;
    unsigned char *seed = sc_calloc(bk->n + 1, 1);
    for (size_t i = 0; i < bk->n; i++) {
        int stride = total[bk->intent[i]] / 3 > 0 ? total[bk->intent[i]] / 3 : 1;
        seed[i] = bk->pos[i] % stride == 0 && bk->pos[i] / stride < 3;
    }
    uint32_t dim = sc_embedder_dim(e);
    float *v = sc_malloc((bk->n + 1) * dim * sizeof *v);
    int rc = qd_embed_all(e, bk->text, bk->n, v);
    size_t cap = bk->n * 3 + 1, n = 0;
    char **ta = sc_malloc(cap * sizeof *ta), **tb = sc_malloc(cap * sizeof *tb);
    int *y = sc_malloc(cap * sizeof *y), *tc = sc_malloc(cap * sizeof *tc);
    for (size_t q = 0; q < bk->n && !rc; q++) {
        if (seed[q]) continue;
        size_t best[3] = {0};
        float bc[3] = {-2, -2, -2};
        for (size_t s = 0; s < bk->n; s++) {
            if (!seed[s]) continue;
            float c = qd_dot(v + q * dim, v + s * dim, dim);
            for (int k = 0; k < 3; k++)
                if (c > bc[k]) {
                    for (int m = 2; m > k; m--) { bc[m] = bc[m - 1]; best[m] = best[m - 1]; }
                    bc[k] = c;
                    best[k] = s;
                    break;
                }
        }
        for (int k = 0; k < 3; k++) {
            if (bc[k] == -2) continue;   /* fewer than 3 seeds in all */
            ta[n] = bk->text[q];
            tb[n] = bk->text[best[k]];
            y[n] = bk->intent[q] == bk->intent[best[k]];
            tc[n] = bk->pos[q] % 5 == 0;
            n++;
        }
    }
    free(v);
    if (!rc) rc = add_pairs(e, de, ta, tb, y, n, tc, src, fit, cal);
    free(ta);
    free(tb);
    free(y);
    free(tc);
    free(seed);
    return rc;
}

/* banking77 train without its tuning rows (qd_bank_tune_row: the FAQ dev
 * scenario of tools/train/tune.py); banking77 test is never read here. */
static int load_banking(const char *dir, sc_embedder *e, int de, set *fit, set *cal)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/banking77_train.csv", dir);
    qd_bank bk;
    if (qd_load_banking(path, &bk) != 0) {
        fprintf(stderr, "train_verify: cannot read %s\n", path);
        return -1;
    }
    qd_bank_keep_tune(&bk, 0);
    int rc = faq_pairs(&bk, 1, e, de, fit, cal);
    qd_bank_free(&bk);
    return rc;
}

/* CLINC150 train (--clinc 1): its val split tunes, its test split reports. */
static int load_clinc(const char *dir, sc_embedder *e, int de, set *fit, set *cal)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/clinc150_data_full.json.gz", dir);
    qd_bank bk;
    if (qd_load_clinc(path, "train", &bk) != 0) {
        fprintf(stderr, "train_verify: cannot read %s (train)\n", path);
        return -1;
    }
    int rc = faq_pairs(&bk, 3, e, de, fit, cal);   /* source 3: not counted as banking77 */
    qd_bank_free(&bk);
    return rc;
}

/* ---------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------- */

static void slug(const char *family, char *out, size_t cap, int upper)
{
    size_t i = 0;
    for (; family[i] && i + 1 < cap; i++) {
        char c = family[i];
        if (c == '-' || c == '.') c = '_';
        if (upper && c >= 'a' && c <= 'z') c = (char)(c - 32);
        out[i] = c;
    }
    out[i] = '\0';
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = sc_malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* Replaces (or inserts before the final #endif) this family's block. */
static int write_block(const char *path, const char *family, const char *block)
{
    char begin[128], end[128];
    snprintf(begin, sizeof begin, "/* @@begin %s@@ */", family);
    snprintf(end, sizeof end, "/* @@end %s@@ */\n", family);
    char *old = read_all(path);
    if (!old) {
        fprintf(stderr, "train_verify: cannot read %s\n", path);
        return -1;
    }
    char *b = strstr(old, begin), *e = b ? strstr(b, end) : NULL;
    size_t pre, post;
    if (b && e) {
        pre = (size_t)(b - old);
        post = (size_t)(e - old) + strlen(end);
    } else {
        char *endif = strstr(old, "#endif");
        char *last = NULL;
        while (endif) { last = endif; endif = strstr(endif + 1, "#endif"); }
        if (!last) return -1;
        pre = post = (size_t)(last - old);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(old, 1, pre, f);
    fputs(block, f);
    fputs(old + post, f);
    fclose(f);
    free(old);
    return 0;
}

static void usage(FILE *o)
{
    fprintf(o,
            "usage: train_verify [--embedder hash|use-lite] [--model-dir DIR] [--data DIR]\n"
            "                    [--qqp-train N] [--qqp-calib N] [--no-diff-embed]\n"
            "                    [--lambda X] [--trees N] [--eta X] [--augment N-per-kind]\n"
            "                    [--augment-rewrites N-per-kind] [--rewrite-kinds MASK] [--bank-weight N]\n"
            "                    [--no-ablation] [--dev PAIRS.tsv] [--qqp-extra N] [--stsb 0|1] [--clinc 0|1]\n"
            "                    [--write embed/verify_weights.h]\n"
            "                    [--dump FEATURES.csv]\n"
            "Trains the hit verifier on qqp_dev (seeded subsample) and banking77 train\n"
            "(without its tuning rows; --clinc 1: and CLINC150 train); prints the\n"
            "ablation and calibration CSV; with --write, replaces this embedder's block of the weights header.\n");
}

int main(int argc, char **argv)
{
    const char *embedder = "hash", *model_dir = "models/use-lite/dist", *data = getenv("SC_DATA_DIR");
    const char *write = NULL, *dump = NULL, *dev = NULL;
    int ablation = 1;
    size_t ntrain = 8000, ncal = 3000;
    int diff_embed = 1, ntrees = 200;
    double lambda = 1.0, eta = 0.1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--no-diff-embed")) diff_embed = 0;
        else if (!strcmp(a, "--no-ablation")) ablation = 0;
        else if (!v) { usage(stderr); return 2; }
        else if (!strcmp(a, "--embedder")) { embedder = v; i++; }
        else if (!strcmp(a, "--model-dir")) { model_dir = v; i++; }
        else if (!strcmp(a, "--data")) { data = v; i++; }
        else if (!strcmp(a, "--write")) { write = v; i++; }
        else if (!strcmp(a, "--dump")) { dump = v; i++; }
        else if (!strcmp(a, "--qqp-train")) { ntrain = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--qqp-calib")) { ncal = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--lambda")) { lambda = atof(v); i++; }
        else if (!strcmp(a, "--trees")) { ntrees = atoi(v); i++; }
        else if (!strcmp(a, "--augment")) { g_augment = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--augment-rewrites")) { g_augment_extra = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--dev")) { dev = v; i++; }
        else if (!strcmp(a, "--bank-weight")) { g_bank_weight = atoi(v); i++; }
        else if (!strcmp(a, "--qqp-extra")) { g_qqp_extra = (size_t)atol(v); i++; }
        else if (!strcmp(a, "--stsb")) { g_stsb = atoi(v); i++; }
        else if (!strcmp(a, "--clinc")) { g_clinc = atoi(v); i++; }
        else if (!strcmp(a, "--rewrite-kinds")) { g_rewrite_kinds = (unsigned)strtoul(v, NULL, 0); i++; }
        else if (!strcmp(a, "--eta")) { eta = atof(v); i++; }
        else { fprintf(stderr, "train_verify: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (!data || !*data) {
        fprintf(stderr, "train_verify: name the data directory with --data DIR or SC_DATA_DIR\n");
        return 2;
    }
    if (ntrain + ncal > QD_QQP_EVAL_AT) {
        fprintf(stderr, "train_verify: --qqp-train + --qqp-calib must be <= %d (the benchmark's split starts there)\n",
                QD_QQP_EVAL_AT);
        return 2;
    }
    char err[512];
    sc_embedder *e;
    sc_embedder_opts eo = {.name = embedder, .model_dir = model_dir};
    if (sc_embedder_open(&e, &eo, err, sizeof err) != 0) {
        fprintf(stderr, "train_verify: %s\n", err);
        return 1;
    }
    char family[64];
    snprintf(family, sizeof family, "%.*s", (int)strcspn(sc_embedder_id(e), "/"), sc_embedder_id(e));

    set fit = {0}, cal = {0};
    time_t t0 = time(NULL);
    if (load_qqp(data, ntrain, ncal, e, diff_embed, &fit, &cal) != 0 ||
        load_banking(data, e, diff_embed, &fit, &cal) != 0 ||
        (g_clinc && load_clinc(data, e, diff_embed, &fit, &cal) != 0) ||
        (g_stsb && load_stsb(data, e, diff_embed, &fit) != 0))
        return 1;
    fprintf(stderr, "train_verify: %zu fit + %zu calibration pairs, features in %lds\n", fit.n,
            cal.n, (long)(time(NULL) - t0));

    if (dump) {
        FILE *df = fopen(dump, "w");
        if (!df) { fprintf(stderr, "train_verify: cannot write %s\n", dump); return 1; }
        fprintf(df, "split,src,label");
        for (int j = 0; j < SC_VF_COUNT; j++) fprintf(df, ",%s", sc_verify_feature_name(j));
        fprintf(df, "\n");
        for (int k = 0; k < 2; k++) {
            const set *s = k ? &cal : &fit;
            for (size_t i = 0; i < s->n; i++) {
                fprintf(df, "%s,%d,%d", k ? "calib" : "fit", s->src[i], s->y[i]);
                for (int j = 0; j < SC_VF_COUNT; j++) fprintf(df, ",%.4g", s->x[i][j]);
                fprintf(df, "\n");
            }
        }
        fclose(df);
    }

    /* Ablation: calibration-split AUC with each feature group removed. */
    static const struct { const char *name; int feats[8]; } groups[] = {
        {"none", {-1}},
        {"word_alignment", {SC_VF_WORD_JACC, SC_VF_ALL_JACC, SC_VF_DIFF_LOG, SC_VF_DIFF_FRAC,
                            SC_VF_SUBST, SC_VF_COS_X_DIFF, -1}},
        {"diff_word_embedding", {SC_VF_DIFF_DISSIM, -1}},
        {"numbers_units", {SC_VF_NUM_MISMATCH, SC_VF_NUM_ONESIDED, SC_VF_UNIT_MISMATCH, -1}},
        {"negation_opposites", {SC_VF_NEG_MISMATCH, SC_VF_OPPOSITE, -1}},
        {"swapped_order", {SC_VF_SWAP, SC_VF_SWAP_REL, -1}},
        {"named_things", {SC_VF_NAME_MISMATCH, SC_VF_NAME_ONESIDED, -1}},
        {"question_word", {SC_VF_WH_MISMATCH, -1}},
        {"char3_jaccard", {SC_VF_CHAR3_JACC, -1}},
        {"length_ratio", {SC_VF_LEN_RATIO, -1}},
        {"all_but_cosine", {SC_VF_WORD_JACC, SC_VF_ALL_JACC, SC_VF_DIFF_LOG, SC_VF_DIFF_FRAC,
                            SC_VF_SUBST, SC_VF_COS_X_DIFF, SC_VF_DIFF_DISSIM, -2}},
    };
    printf("table,embedder,removed,auc_qqp_calib,auc_banking_calib,auc_all_calib\n");
    printf("ablation,%s,cosine_only", family);
    {
        static lr m;
        m.mask[SC_VF_COS] = m.mask[SC_VF_COS_SQ] = 1;
        lr_fit(&m, &fit, lambda);
        printf(",%.4f,%.4f,%.4f\n", set_auc(&m, &cal, 0), set_auc(&m, &cal, 1), set_auc(&m, &cal, -1));
    }
    static lr best;
    for (size_t gi = 0; gi < (ablation ? SC_COUNTOF(groups) : 1); gi++) {
        static lr m;
        memset(&m, 0, sizeof m);
        for (int j = 0; j < SC_VF_COUNT; j++) m.mask[j] = 1;
        if (!diff_embed) m.mask[SC_VF_DIFF_DISSIM] = 0;
        int allbut = 0;
        for (int k = 0; k < 8 && groups[gi].feats[k] >= 0; k++) m.mask[groups[gi].feats[k]] = 0;
        for (int k = 0; k < 8; k++) if (groups[gi].feats[k] == -2) allbut = 1;
        if (allbut) {      /* keep everything except the cosine */
            for (int j = 0; j < SC_VF_COUNT; j++) m.mask[j] = 1;
            m.mask[SC_VF_COS] = m.mask[SC_VF_COS_SQ] = m.mask[SC_VF_COS_X_DIFF] = 0;
            if (!diff_embed) m.mask[SC_VF_DIFF_DISSIM] = 0;
        }
        lr_fit(&m, &fit, lambda);
        if (gi == 0) {
            printf("ablation,%s,none_logistic_only,%.4f,%.4f,%.4f\n", family, set_auc(&m, &cal, 0),
                   set_auc(&m, &cal, 1), set_auc(&m, &cal, -1));
        }
        if (ntrees > 0) gbdt_fit(&m, &fit, ntrees, eta, 1.0);
        printf("ablation,%s,%s,%.4f,%.4f,%.4f\n", family, allbut ? "cosine" : groups[gi].name,
               set_auc(&m, &cal, 0), set_auc(&m, &cal, 1), set_auc(&m, &cal, -1));
        if (gi == 0) best = m;
    }

    /* Platt scaling on the calibration split, then the curve. */
    double *z = sc_malloc(cal.n * sizeof *z);
    for (size_t i = 0; i < cal.n; i++) z[i] = lr_logit(&best, cal.x[i]);
    double A, B;
    platt(z, cal.y, cal.n, &A, &B);
    int bn[10] = {0};
    double bp[10] = {0}, by[10] = {0};
    for (size_t i = 0; i < cal.n; i++) {
        double p = sigm(A * z[i] + B);
        int k = (int)(p * 10);
        if (k > 9) k = 9;
        bn[k]++;
        bp[k] += p;
        by[k] += cal.y[i];
    }
    free(z);
    char curve[2048];
    size_t cl = 0;
    printf("table,embedder,bin,n,mean_predicted,observed_correct\n");
    for (int k = 0; k < 10; k++) {
        if (!bn[k]) continue;
        printf("calibration,%s,%.1f-%.1f,%d,%.3f,%.3f\n", family, k / 10.0, (k + 1) / 10.0, bn[k],
               bp[k] / bn[k], by[k] / bn[k]);
        cl += (size_t)snprintf(curve + cl, sizeof curve - cl,
                               " *   %.1f-%.1f  n=%-5d predicted %.3f  observed %.3f\n",
                               k / 10.0, (k + 1) / 10.0, bn[k], bp[k] / bn[k], by[k] / bn[k]);
    }

    /* Fold standardisation and calibration into raw weights. */
    double w[SC_VF_COUNT], bias = best.w[SC_VF_COUNT];
    for (int j = 0; j < SC_VF_COUNT; j++) {
        w[j] = best.mask[j] ? best.w[j] / best.sd[j] : 0;
        bias -= w[j] * (best.mask[j] ? best.mean[j] : 0);
    }
    for (int j = 0; j < SC_VF_COUNT; j++) w[j] *= A;
    bias = A * bias + B;
    for (int t = 0; t < best.ntrees; t++)
        for (int k = 0; k < 8; k++) best.trees[t].leaf[k] = (float)(A * best.trees[t].leaf[k]);
    fprintf(stderr, "train_verify: Platt A=%.4f B=%.4f\n", A, B);

    /* Held-in precision/recall at the usual thresholds, and the dev set. */
    {
        sc_verify_model mm = {.embedder = family, .diff_embed = diff_embed, .bias = bias,
                              .ntrees = best.ntrees, .trees = best.trees};
        for (int j = 0; j < SC_VF_COUNT; j++) mm.w[j] = w[j];
        static const double th[] = {0.5, 0.6, 0.7};
        printf("table,set,threshold,n,served,precision,recall\n");
        for (int src = 0; src < 2; src++)
            for (size_t t = 0; t < SC_COUNTOF(th); t++) {
                size_t n = 0, pos = 0, hit = 0, tp = 0;
                for (size_t i = 0; i < cal.n; i++) {
                    if (cal.src[i] != src) continue;
                    double p = sc_verify_model_score(&mm, cal.x[i]);
                    n++;
                    pos += cal.y[i];
                    if (p >= th[t]) { hit++; tp += cal.y[i]; }
                }
                printf("heldin,%s_calib,%.2f,%zu,%.4f,%.4f,%.4f\n", src ? "banking77" : "qqp", th[t], n,
                       (double)hit / n, hit ? (double)tp / hit : NAN, pos ? (double)tp / pos : NAN);
            }
        qd_pairs dp = {0};
        if (dev && qd_load_lookalike(dev, &dp) == 0) {
            uint32_t dim = sc_embedder_dim(e);
            char **da = sc_malloc(dp.n * sizeof *da), **db = sc_malloc(dp.n * sizeof *db);
            for (size_t i = 0; i < dp.n; i++) { da[i] = dp.v[i].a; db[i] = dp.v[i].b; }
            float *va = sc_malloc(dp.n * dim * sizeof *va), *vb = sc_malloc(dp.n * dim * sizeof *vb);
            double *ps = sc_malloc(dp.n * sizeof *ps);
            int *lab = sc_malloc(dp.n * sizeof *lab);
            if (qd_embed_all(e, da, dp.n, va) == 0 && qd_embed_all(e, db, dp.n, vb) == 0) {
                for (size_t i = 0; i < dp.n; i++) {
                    float x[SC_VF_COUNT];
                    sc_verify_features(da[i], strlen(da[i]), db[i], strlen(db[i]),
                                       qd_dot(va + i * dim, vb + i * dim, dim), diff_embed ? e : NULL, x);
                    ps[i] = sc_verify_model_score(&mm, x);
                    lab[i] = dp.v[i].label;
                    if (getenv("SC_DEV_VERBOSE"))
                        fprintf(stderr, "dev %d %-10s %.3f cos %.3f | %s | %s\n", lab[i], dp.v[i].kind, ps[i],
                                (double)x[SC_VF_COS], da[i], db[i]);
                }
                printf("dev,auc,,%zu,%.4f,,\n", dp.n, qd_auc(ps, lab, dp.n));
                for (size_t t = 0; t < SC_COUNTOF(th); t++) {
                    size_t nl = 0, np = 0, hl = 0, hp = 0;
                    for (size_t i = 0; i < dp.n; i++) {
                        if (lab[i]) { np++; hp += ps[i] >= th[t]; }
                        else { nl++; hl += ps[i] >= th[t]; }
                    }
                    printf("dev,lookalikes_served,%.2f,%zu,%.4f,,\ndev,paraphrases_served,%.2f,%zu,%.4f,,\n",
                           th[t], nl, (double)hl / nl, th[t], np, (double)hp / np);
                }
            }
            free(da); free(db); free(va); free(vb); free(ps); free(lab);
            qd_free(&dp);
        }
    }

    if (write) {
        char lo[64], up[64];
        slug(family, lo, sizeof lo, 0);
        slug(family, up, sizeof up, 1);
        static char blk[1 << 20];
        size_t n = 0;
        n += (size_t)snprintf(blk + n, sizeof blk - n, "/* @@begin %s@@ */\n", family);
        n += (size_t)snprintf(blk + n, sizeof blk - n,
                              "/* Embedder %s: %zu fit pairs, %zu calibration pairs.\n"
                              " * Command: build/train_verify --embedder %s%s --qqp-train %zu"
                              " --qqp-calib %zu --lambda %g --trees %d --eta %g --augment %zu"
                              " --augment-rewrites %zu --rewrite-kinds 0x%x --qqp-extra %zu --stsb %d --write embed/verify_weights.h\n"
                              " * Calibration curve (held-in split, after Platt scaling):\n%s */\n",
                              sc_embedder_id(e), fit.n, cal.n, embedder,
                              diff_embed ? "" : " --no-diff-embed", ntrain, ncal, lambda, ntrees, eta, g_augment,
                              g_augment_extra, g_rewrite_kinds, g_qqp_extra, g_stsb, curve);
        if (best.ntrees) {
            n += (size_t)snprintf(blk + n, sizeof blk - n,
                                  "static const sc_verify_tree sc_verify_trees_%s[%d] = {\n", lo,
                                  best.ntrees);
            for (int t = 0; t < best.ntrees; t++) {
                const sc_verify_tree *tr = &best.trees[t];
                n += (size_t)snprintf(blk + n, sizeof blk - n, "    {{");
                for (int k = 0; k < 7; k++)
                    n += (size_t)snprintf(blk + n, sizeof blk - n, "%s%d", k ? "," : "", tr->feat[k]);
                n += (size_t)snprintf(blk + n, sizeof blk - n, "}, {");
                for (int k = 0; k < 7; k++)
                    n += (size_t)snprintf(blk + n, sizeof blk - n, "%s%.7g", k ? "," : "",
                                          tr->thr[k] > 1e30f ? 3.0e38 : (double)tr->thr[k]);
                n += (size_t)snprintf(blk + n, sizeof blk - n, "}, {");
                for (int k = 0; k < 8; k++)
                    n += (size_t)snprintf(blk + n, sizeof blk - n, "%s%.7g", k ? "," : "",
                                          (double)tr->leaf[k]);
                n += (size_t)snprintf(blk + n, sizeof blk - n, "}},\n");
            }
            n += (size_t)snprintf(blk + n, sizeof blk - n, "};\n");
        }
        n += (size_t)snprintf(blk + n, sizeof blk - n,
                              "#define SC_VERIFY_HAVE_%s 1\n"
                              "static const sc_verify_model sc_verify_model_%s = {\n"
                              "    .embedder = \"%s\",\n    .diff_embed = %d,\n    .bias = %.9g,\n"
                              "    .w = {\n",
                              up, lo, family, diff_embed, bias);
        for (int j = 0; j < SC_VF_COUNT; j++)
            n += (size_t)snprintf(blk + n, sizeof blk - n, "        %.9g, /* %s */\n", w[j],
                                  sc_verify_feature_name(j));
        n += (size_t)snprintf(blk + n, sizeof blk - n,
                              "    },\n");
        if (best.ntrees)
            n += (size_t)snprintf(blk + n, sizeof blk - n,
                                  "    .ntrees = %d,\n    .trees = sc_verify_trees_%s,\n", best.ntrees, lo);
        n += (size_t)snprintf(blk + n, sizeof blk - n,
                              "    .trained_on = \"qqp_dev %zu+%zu pairs (seed %u), "
                              "banking77 train%s; %s\",\n};\n/* @@end %s@@ */\n",
                              ntrain, ncal, QD_SEED, g_clinc ? ", CLINC150 train" : "", sc_embedder_id(e), family);
        if (write_block(write, family, blk) != 0) {
            fprintf(stderr, "train_verify: cannot write %s\n", write);
            return 1;
        }
        fprintf(stderr, "train_verify: wrote the %s block of %s\n", family, write);
    }
    for (int k = 0; k < 2; k++) {
        set *st = k ? &cal : &fit;
        free(st->x);
        free(st->y);
        free(st->src);
    }
    sc_embedder_close(e);
    return 0;
}
