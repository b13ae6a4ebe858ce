/* Shared by bench_quality and tools/train_verify: loaders for the quality
 * data sets in the data directory (QQP JSONL.gz via `gzip -dc`, the GPTCache
 * mock JSON, banking77 CSV, CLINC150 JSON.gz, STS-B TSV, our look-alike
 * TSV), the fixed splits both programs agree on, batch embedding, ROC AUC
 * and Spearman.
 * Header-only (static functions) because it serves two programs and no
 * library module.
 *
 * Splits (fixed, documented in BENCHMARKS.md (Quality)):
 *   qqp_dev rows are shuffled with seed QD_SEED; positions [0, train) train
 *   the verifier, [train, train+calib) calibrate it (Platt) and report the
 *   ablations, [QD_QQP_EVAL_AT, +n) are the benchmark's qqp_dev pairs.
 *   banking77: intents sorted by name. train_verify reads banking77 train
 *   only, less its tuning rows (qd_bank_tune_row, tools/train/data.py's
 *   "b77_tune"), which bench_quality --dev uses as its FAQ scenario;
 *   banking77 test is for bench_quality's report (its odd intents, the
 *   "held-out" row, were the ones earlier verifiers did not train on).
 *   bench_quality's FAQ scenario picks its entries: 3 per intent by a
 *   shuffle with QD_SEED, for banking77 and CLINC150 alike. */
#ifndef SC_QUALITY_DATA_H
#define SC_QUALITY_DATA_H

#include "common/alloc.h"
#include "embed/embed.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QD_SEED 20261127u
#define QD_QQP_EVAL_AT 12000     /* first shuffled qqp_dev row of the bench split */
#define QD_QQP_EXTRA_AT 30000    /* first shuffled qqp_dev row of train_verify --qqp-extra (bench --qqp-n must stay <= 18000) */
#define QD_MAX_INTENTS 256       /* banking77 has 77, CLINC150 150 */

typedef struct qd_pair {
    char *a, *b;
    int label;                    /* 1 = same answer fits */
    double score;                 /* STS-B gold 0-5 */
    char kind[24];                /* look-alike kind, or "" */
} qd_pair;

typedef struct qd_pairs {
    qd_pair *v;
    size_t n, cap;
} qd_pairs;

static inline void qd_push(qd_pairs *p, const char *a, const char *b, int label, double score,
                    const char *kind)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->v = sc_realloc(p->v, p->cap * sizeof *p->v);
    }
    qd_pair *q = &p->v[p->n++];
    q->a = sc_strdup(a);
    q->b = sc_strdup(b);
    q->label = label;
    q->score = score;
    snprintf(q->kind, sizeof q->kind, "%s", kind ? kind : "");
}

static inline void qd_free(qd_pairs *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].a);
        free(p->v[i].b);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

static inline uint64_t qd_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* perm[0..n) = a seeded Fisher-Yates shuffle of 0..n-1. */
static inline size_t *qd_shuffle(size_t n, uint64_t seed)
{
    size_t *perm = sc_malloc((n ? n : 1) * sizeof *perm);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    uint64_t s = seed;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(qd_rng_next(&s) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    return perm;
}

/* QQP JSONL.gz: every row, in file order. */
static inline int qd_load_qqp(const char *path, qd_pairs *out)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)n, 0, &je);
        if (!o) continue;
        const char *a = json_string_value(json_object_get(o, "text_a"));
        const char *b = json_string_value(json_object_get(o, "text_b"));
        json_int_t l = json_integer_value(json_object_get(o, "label"));
        if (a && b) qd_push(out, a, b, (int)l, 0, NULL);
        json_decref(o);
    }
    free(line);
    return pclose(f) == 0 && out->n ? 0 : -1;
}

/* The GPTCache mock data: (origin, similar) pairs, all positive. */
static inline int qd_load_gptcache(const char *path, qd_pairs *out)
{
    json_error_t je;
    json_t *arr = json_load_file(path, 0, &je);
    if (!arr || !json_is_array(arr)) {
        json_decref(arr);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *a = json_string_value(json_object_get(o, "origin"));
        const char *b = json_string_value(json_object_get(o, "similar"));
        if (a && b) qd_push(out, a, b, 1, 0, NULL);
    }
    json_decref(arr);
    return 0;
}

/* STS-B: tab-separated; fields 5 (score), 6 and 7 (sentences). */
static inline int qd_load_stsb(const char *path, qd_pairs *out)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char *fld[8];
        int k = 0;
        char *p = line;
        while (k < 7) {
            fld[k++] = p;
            char *t = strchr(p, '\t');
            if (!t) break;
            *t = '\0';
            p = t + 1;
        }
        if (k < 7) continue;
        qd_push(out, fld[5], fld[6], 0, atof(fld[4]), NULL);
    }
    free(line);
    fclose(f);
    return out->n ? 0 : -1;
}

/* Look-alike fixture: label TAB kind TAB a TAB b, '#' comments. */
static inline int qd_load_lookalike(const char *path, qd_pairs *out)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0 || line[0] == '#') continue;
        char *f1 = strchr(line, '\t');
        if (!f1) continue;
        *f1++ = '\0';
        char *f2 = strchr(f1, '\t');
        if (!f2) continue;
        *f2++ = '\0';
        char *f3 = strchr(f2, '\t');
        if (!f3) continue;
        *f3++ = '\0';
        qd_push(out, f2, f3, atoi(line), 0, f1);
    }
    free(line);
    fclose(f);
    return out->n ? 0 : -1;
}

/* An intent-labelled query set (banking77, CLINC150): texts with their
 * intent number (intents sorted by name). */
typedef struct qd_bank {
    char **text;
    int *intent;
    int *pos;                     /* position of the query within its intent */
    size_t n;
    char *names[QD_MAX_INTENTS];
    int nintents;
} qd_bank;

static inline int qd_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Numbers the intents of bk->text[0..n) (cats[i] is text i's intent name)
 * by sorted name and sets intent and pos; frees cats. */
static inline int qd_bank_number(qd_bank *bk, char **cats)
{
    for (size_t i = 0; i < bk->n; i++) {
        int found = 0;
        for (int k = 0; k < bk->nintents; k++)
            if (strcmp(bk->names[k], cats[i]) == 0) found = 1;
        if (!found && bk->nintents < QD_MAX_INTENTS) bk->names[bk->nintents++] = sc_strdup(cats[i]);
    }
    qsort(bk->names, (size_t)bk->nintents, sizeof bk->names[0], qd_cmp_str);
    bk->intent = sc_malloc((bk->n ? bk->n : 1) * sizeof *bk->intent);
    bk->pos = sc_malloc((bk->n ? bk->n : 1) * sizeof *bk->pos);
    int count[QD_MAX_INTENTS] = {0}, rc = 0;
    for (size_t i = 0; i < bk->n; i++) {
        int k = 0;
        while (k < bk->nintents && strcmp(bk->names[k], cats[i]) != 0) k++;
        if (k == bk->nintents) rc = -1;    /* more intents than QD_MAX_INTENTS */
        bk->intent[i] = k;
        bk->pos[i] = k < bk->nintents ? count[k]++ : 0;
        free(cats[i]);
    }
    free(cats);
    return bk->n && rc == 0 ? 0 : -1;
}

static inline int qd_load_banking(const char *path, qd_bank *bk)
{
    memset(bk, 0, sizeof *bk);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0, vcap = 0;
    ssize_t n;
    char **cats = NULL;
    int first = 1;
    char *more = NULL;
    size_t mcap = 0;
    int unclosed = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        /* A quoted text may span lines (banking77 train has a few): read
         * on while its quotes are open. */
        size_t quotes = 0;
        for (ssize_t i = 0; i < n; i++) quotes += line[i] == '"';
        while (line[0] == '"' && quotes % 2) {
            ssize_t m = getline(&more, &mcap, f);
            if (m <= 0) {
                unclosed = 1;   /* a quote open at the end of the file */
                break;
            }
            for (ssize_t i = 0; i < m; i++) quotes += more[i] == '"';
            if ((size_t)(n + m + 1) > cap) {
                cap = (size_t)(n + m + 1);
                line = sc_realloc(line, cap);
            }
            memcpy(line + n, more, (size_t)m + 1);
            n += m;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (first) { first = 0; continue; }    /* header */
        char *comma = strrchr(line, ',');
        if (!comma) continue;
        *comma = '\0';
        char *text = line;
        size_t tl = strlen(text);
        if (tl >= 2 && text[0] == '"' && text[tl - 1] == '"') {
            text[tl - 1] = '\0';
            text++;
            char *w = text;          /* "" -> " */
            for (char *r = text; *r; r++) {
                if (r[0] == '"' && r[1] == '"') r++;
                *w++ = *r;
            }
            *w = '\0';
        }
        if (bk->n == vcap) {
            vcap = vcap ? vcap * 2 : 4096;
            bk->text = sc_realloc(bk->text, vcap * sizeof *bk->text);
            cats = sc_realloc(cats, vcap * sizeof *cats);
        }
        bk->text[bk->n] = sc_strdup(text);
        cats[bk->n] = sc_strdup(comma + 1);
        bk->n++;
    }
    free(line);
    free(more);
    fclose(f);
    int rc = qd_bank_number(bk, cats);
    return unclosed ? -1 : rc;
}

/* CLINC150 (data_full.json.gz via `gzip -dc`): the list `split` ("train",
 * "val", "test") of [text, intent] pairs. */
static inline int qd_load_clinc(const char *path, const char *split, qd_bank *bk)
{
    memset(bk, 0, sizeof *bk);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    json_error_t je;
    json_t *root = json_loadf(f, 0, &je);
    int st = pclose(f);
    json_t *list = json_object_get(root, split);
    if (st != 0 || !json_is_array(list)) {
        json_decref(root);
        return -1;
    }
    size_t cap = json_array_size(list) + 1;
    bk->text = sc_malloc(cap * sizeof *bk->text);
    char **cats = sc_malloc(cap * sizeof *cats);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *row = json_array_get(list, i);
        const char *t = json_string_value(json_array_get(row, 0));
        const char *c = json_string_value(json_array_get(row, 1));
        if (!t || !c) continue;
        bk->text[bk->n] = sc_strdup(t);
        cats[bk->n] = sc_strdup(c);
        bk->n++;
    }
    json_decref(root);
    return qd_bank_number(bk, cats);
}

static inline void qd_bank_free(qd_bank *bk)
{
    for (size_t i = 0; i < bk->n; i++) free(bk->text[i]);
    for (int k = 0; k < bk->nintents; k++) free(bk->names[k]);
    free(bk->text);
    free(bk->intent);
    free(bk->pos);
}

static inline int qd_bank_train_intent(int intent) { return intent % 2 == 0; }

/* CRC-32 (IEEE, as zlib's crc32) of a string with its white space runs
 * (Python's str.split: Unicode white space too) folded to one space and
 * trimmed, as tools/train/data.py reads texts. */
static inline size_t qd_space_len(const unsigned char *s)
{
    if (*s == ' ' || (*s >= '\t' && *s <= '\r') || (*s >= 0x1c && *s <= 0x1f)) return 1;
    if (s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;                  /* U+1680 */
    if (s[0] == 0xe2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 ||
                                         s[2] == 0xaf))
        return 3;                                                                  /* U+2000-200A, 2028, 2029, 202F */
    if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;                  /* U+205F */
    if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;                  /* U+3000 */
    return 0;
}

static inline uint32_t qd_crc32_byte(uint32_t c, unsigned char ch)
{
    c ^= ch;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    return c;
}

static inline uint32_t qd_crc32_words(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t c = 0xffffffffu;
    int pending = 0, any = 0;   /* a space is owed before the next word */
    while (*s) {
        size_t sl = qd_space_len(s);
        if (sl) {
            pending = any;
            s += sl;
            continue;
        }
        if (pending) c = qd_crc32_byte(c, ' ');
        c = qd_crc32_byte(c, *s++);
        pending = 0;
        any = 1;
    }
    return ~c;
}

/* A banking77 train row of the tuning split (tools/train/data.py's
 * "b77_tune": crc32(text) % 5 == 0), never trained on. */
static inline int qd_bank_tune_row(const char *text) { return qd_crc32_words(text) % 5 == 0; }

/* Keeps only banking77 train's tuning rows (tune = 1: bench_quality --dev)
 * or only the others (tune = 0: train_verify), in file order; positions
 * within each intent are counted again over the rows kept. */
static inline void qd_bank_keep_tune(qd_bank *bk, int tune)
{
    size_t m = 0;
    int count[QD_MAX_INTENTS] = {0};
    for (size_t i = 0; i < bk->n; i++) {
        if (qd_bank_tune_row(bk->text[i]) != tune) {
            free(bk->text[i]);
            continue;
        }
        bk->text[m] = bk->text[i];
        bk->intent[m] = bk->intent[i];
        bk->pos[m] = count[bk->intent[i]]++;
        m++;
    }
    bk->n = m;
}

/* Embeds n texts in batches of 32 into out[n * dim]. */
static inline int qd_embed_all(sc_embedder *e, char *const *texts, size_t n, float *out)
{
    uint32_t dim = sc_embedder_dim(e);
    for (size_t i = 0; i < n; i += 32) {
        size_t m = n - i < 32 ? n - i : 32;
        size_t lens[32];
        for (size_t k = 0; k < m; k++) lens[k] = strlen(texts[i + k]);
        int rc = sc_embed(e, (const char *const *)(texts + i), lens, m, out + i * dim);
        if (rc) return rc;
    }
    return 0;
}

static inline float qd_dot(const float *a, const float *b, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++) s += (double)a[i] * b[i];
    return (float)s;
}

typedef struct { double s; int y; } qd_sy;

static inline int qd_cmp_sy(const void *a, const void *b)
{
    double x = ((const qd_sy *)a)->s, y = ((const qd_sy *)b)->s;
    return x < y ? -1 : x > y;
}

/* ROC AUC of scores s against labels y (ties count one half). */
static inline double qd_auc(const double *s, const int *y, size_t n)
{
    qd_sy *v = sc_malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (qd_sy){s[i], y[i]};
    qsort(v, n, sizeof *v, qd_cmp_sy);
    double rank_sum = 0;
    size_t pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s) j++;
        double r = (i + 1 + j) / 2.0;   /* average 1-based rank */
        for (size_t k = i; k < j; k++)
            if (v[k].y) { rank_sum += r; pos++; }
        i = j;
    }
    free(v);
    size_t neg = n - pos;
    if (!pos || !neg) return NAN;
    return (rank_sum - pos * (pos + 1) / 2.0) / ((double)pos * neg);
}

static inline void qd_ranks(const double *s, size_t n, double *r)
{
    qd_sy *v = sc_malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (qd_sy){s[i], (int)i};
    qsort(v, n, sizeof *v, qd_cmp_sy);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s) j++;
        for (size_t k = i; k < j; k++) r[v[k].y] = (i + 1 + j) / 2.0;
        i = j;
    }
    free(v);
}

static inline double qd_spearman(const double *x, const double *y, size_t n)
{
    double *rx = sc_malloc(n * sizeof *rx), *ry = sc_malloc(n * sizeof *ry);
    qd_ranks(x, n, rx);
    qd_ranks(y, n, ry);
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) { mx += rx[i]; my += ry[i]; }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    return sxy / sqrt(sxx * syy);
}

#endif
