/* Learned state: see learn.h. One mutex (mu) guards the memory; writes to
 * the store happen outside it, serialised by persist_mu so that the last
 * snapshot taken is the last one written (the store's writer may call
 * sc_learn_forget, which takes mu, while a put waits for it). */
#include "server/learn.h"
#include "server/score.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_MAX 128
#define Z95 1.645

typedef struct entry_st {
    struct entry_st *next;
    uint64_t id;
    uint32_t good, bad;   /* served hits judged (verdicts, shadow checks) */
    uint32_t miss_good, miss_bad;   /* miss checks: it was the candidate refused */
    float raise;
    uint8_t off;
    uint16_t ns;          /* index into namespaces */
    uint16_t nblock, cap;
    uint64_t *block;      /* prompts it may not serve (grown on demand) */
} entry_st;

static void entry_free(entry_st *e)
{
    free(e->block);
    free(e);
}

static void block_add(entry_st *e, uint64_t phash)
{
    for (size_t i = 0; i < e->nblock; i++)
        if (e->block[i] == phash) return;
    if (e->nblock >= SC_LEARN_BLOCK_MAX) return;
    if (e->nblock == e->cap) {
        e->cap = e->cap ? (uint16_t)(e->cap * 2) : 4;
        e->block = sc_realloc(e->block, (size_t)e->cap * sizeof *e->block);
    }
    e->block[e->nblock++] = phash;
}

/* What a namespace has counted: its calibration and its evidence. Kept on
 * disk as is (ns_disk). */
typedef struct ns_counts {
    uint64_t seen[SC_LEARN_BINS];
    uint32_t obs[SC_LEARN_BINS], wrong[SC_LEARN_BINS];
    uint64_t verdicts_good, verdicts_bad, shadow_checks, shadow_wrong, miss_checks, miss_wrong;
    uint64_t exact;       /* exact hits served: answers that count in the budget too */
} ns_counts;

typedef struct ns_st {
    char name[NS_MAX + 1];
    ns_counts k;
    uint32_t dirty;
    double budget;        /* from namespace-max-error-rate, -1 = none */
    uint64_t entries_off, entries_raised, blocked;   /* over its entries (account) */
} ns_st;

/* What a namespace's record holds on disk (host byte order: the data dir
 * is not portable across architectures anyway, as LMDB's is not). */
typedef struct ns_disk {
    uint32_t version, bins;
    ns_counts k;
} ns_disk;

typedef struct entry_disk {
    uint32_t version, good, bad, miss_good, miss_bad;
    float raise;
    uint16_t ns_len, nblock;
    uint8_t off, pad[3];
    /* then nblock u64 prompt hashes, then ns_len bytes of namespace */
} entry_disk;

typedef struct decision {
    uint64_t rid, entry, phash;
    float score;
    uint16_t ns;
    uint8_t semantic, judged;
} decision;

struct sc_learn {
    pthread_mutex_t mu, persist_mu;
    sc_store *store;
    double budget;                       /* global, 0 = none */
    entry_st **buckets;
    size_t nbuckets, nentries;
    ns_st *ns;
    size_t nns;
    decision *dec;
    uint32_t seq;
    uint32_t nonce;
    double gamma;                        /* scores are sc_score_of_cos(cos, gamma) (sc_learn_set_scale) */
};

/* --------------------------------------------------------------------- */

/* The grid is uniform in the cosine the score was made from (scores are
 * sc_score_of_cos(cos, gamma), score.h; gamma 1: the score itself), so the
 * estimator sees what it saw before semcache-embed's scale and was
 * measured with (BENCHMARKS.md, Error budget). Grid point j is the score
 * at the bottom of bin j. */
static size_t bin_of(const sc_learn *l, double score)
{
    if (!(score > 0)) return 0;
    if (score >= 1) return SC_LEARN_BINS - 1;
    size_t b = (size_t)(sc_score_to_cos(score, l->gamma) * SC_LEARN_BINS);
    return b >= SC_LEARN_BINS ? SC_LEARN_BINS - 1 : b;
}

static double grid_score(const sc_learn *l, size_t j)
{
    return sc_score_of_cos((double)j / SC_LEARN_BINS, l->gamma);
}

void sc_learn_set_scale(sc_learn *l, double gamma)
{
    pthread_mutex_lock(&l->mu);
    l->gamma = gamma >= 1 ? gamma : 1;
    pthread_mutex_unlock(&l->mu);
}

static size_t bucket_of(const sc_learn *l, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (l->nbuckets - 1);
}

static entry_st *entry_find(sc_learn *l, uint64_t id)
{
    for (entry_st *e = l->buckets[bucket_of(l, id)]; e; e = e->next)
        if (e->id == id) return e;
    return NULL;
}

static void rehash(sc_learn *l)
{
    size_t old = l->nbuckets;
    entry_st **ob = l->buckets;
    l->nbuckets = old * 2;
    l->buckets = sc_calloc(l->nbuckets, sizeof *l->buckets);
    for (size_t i = 0; i < old; i++) {
        for (entry_st *e = ob[i], *n; e; e = n) {
            n = e->next;
            size_t b = bucket_of(l, e->id);
            e->next = l->buckets[b];
            l->buckets[b] = e;
        }
    }
    free(ob);
}

static entry_st *entry_get(sc_learn *l, uint64_t id, uint16_t ns)
{
    entry_st *e = entry_find(l, id);
    if (e) return e;
    if (l->nentries >= l->nbuckets) rehash(l);
    e = sc_calloc(1, sizeof *e);
    e->id = id;
    e->ns = ns;
    size_t b = bucket_of(l, id);
    e->next = l->buckets[b];
    l->buckets[b] = e;
    l->nentries++;
    return e;
}

/* The namespace's index, created when missing (-1 past SC_LEARN_MAX_NS). */
static int ns_index(sc_learn *l, const char *name, int create)
{
    for (size_t i = 0; i < l->nns; i++)
        if (strcmp(l->ns[i].name, name) == 0) return (int)i;
    if (!create || l->nns >= SC_LEARN_MAX_NS || strlen(name) > NS_MAX) return -1;
    ns_st *n = &l->ns[l->nns];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->budget = -1;
    return (int)l->nns++;
}

/* Adds (sign 1) or takes back (-1) an entry's share of its namespace's
 * counters: around every change of off, raise or the blocked prompts. */
static void account(sc_learn *l, const entry_st *e, int sign)
{
    ns_st *n = &l->ns[e->ns];
    n->entries_off += (uint64_t)(sign * (e->off ? 1 : 0));
    n->entries_raised += (uint64_t)(sign * (e->raise > 0 ? 1 : 0));
    n->blocked += (uint64_t)(sign * (int)e->nblock);
}

/* --------------------------------------------------------------------- */
/* Persistence. */

static size_t ns_key(const ns_st *n, uint8_t *key)
{
    size_t len = strlen(n->name);
    key[0] = 'n';
    memcpy(key + 1, n->name, len);
    return len + 1;
}

static void entry_key(uint64_t id, uint8_t key[9])
{
    key[0] = SC_STORE_LEARN_ENTRY;
    for (int i = 0; i < 8; i++) key[1 + i] = (uint8_t)(id >> (56 - 8 * i));
}

/* Writes namespace i's calibration (caller holds persist_mu, not mu). */
static void persist_ns(sc_learn *l, int i)
{
    uint8_t key[NS_MAX + 1];
    ns_disk d;
    pthread_mutex_lock(&l->mu);
    ns_st *n = &l->ns[i];
    size_t klen = ns_key(n, key);
    memset(&d, 0, sizeof d);
    d.version = 1;
    d.bins = SC_LEARN_BINS;
    d.k = n->k;
    n->dirty = 0;
    pthread_mutex_unlock(&l->mu);
    int rc = sc_store_learn_put(l->store, key, klen, &d, sizeof d);
    if (rc && rc != SC_ECLOSED) sc_warn("learn: cannot save namespace '%s': %s", n->name, sc_strerror(rc));
}

/* Writes entry id's state, or deletes it when the entry has none left
 * (caller holds persist_mu, not mu). */
static void persist_entry(sc_learn *l, uint64_t id)
{
    uint8_t key[9], buf[sizeof(entry_disk) + SC_LEARN_BLOCK_MAX * 8 + NS_MAX];
    size_t len = 0;
    entry_key(id, key);
    pthread_mutex_lock(&l->mu);
    entry_st *e = entry_find(l, id);
    if (e) {
        const char *ns = l->ns[e->ns].name;
        entry_disk d = {.version = 2, .good = e->good, .bad = e->bad, .miss_good = e->miss_good,
                        .miss_bad = e->miss_bad, .raise = e->raise,
                        .ns_len = (uint16_t)strlen(ns), .nblock = e->nblock, .off = e->off};
        memcpy(buf, &d, sizeof d);
        len = sizeof d;
        if (e->nblock) memcpy(buf + len, e->block, (size_t)e->nblock * 8);
        len += (size_t)e->nblock * 8;
        memcpy(buf + len, ns, d.ns_len);
        len += d.ns_len;
    }
    pthread_mutex_unlock(&l->mu);
    if (!e) return;   /* forgotten: the store removed its key with the entry */
    int rc = sc_store_learn_put(l->store, key, sizeof key, buf, len);
    if (rc && rc != SC_ECLOSED) sc_warn("learn: cannot save entry %llu: %s", (unsigned long long)id, sc_strerror(rc));
}

static int load_one(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    sc_learn *l = ctx;
    const uint8_t *key = k;
    if (klen >= 2 && key[0] == 'n' && klen <= NS_MAX + 1 && vlen == sizeof(ns_disk)) {
        char name[NS_MAX + 1];
        memcpy(name, key + 1, klen - 1);
        name[klen - 1] = '\0';
        ns_disk d;
        memcpy(&d, v, sizeof d);
        int i = ns_index(l, name, 1);
        if (i < 0 || d.version != 1 || d.bins != SC_LEARN_BINS) return 0;
        l->ns[i].k = d.k;
    } else if (klen == 9 && key[0] == SC_STORE_LEARN_ENTRY && vlen >= sizeof(entry_disk)) {
        entry_disk d;
        memcpy(&d, v, sizeof d);
        if ((d.version != 1 && d.version != 2) || d.nblock > SC_LEARN_BLOCK_MAX || d.ns_len == 0 || d.ns_len > NS_MAX ||
            vlen != sizeof d + (size_t)d.nblock * 8 + d.ns_len)
            return 0;
        char name[NS_MAX + 1];
        memcpy(name, (const uint8_t *)v + sizeof d + (size_t)d.nblock * 8, d.ns_len);
        name[d.ns_len] = '\0';
        int i = ns_index(l, name, 1);
        if (i < 0) return 0;
        uint64_t id = 0;
        for (int j = 1; j < 9; j++) id = (id << 8) | key[j];
        entry_st *e = entry_get(l, id, (uint16_t)i);
        account(l, e, -1);
        e->good = d.good;
        e->bad = d.bad;
        e->miss_good = d.miss_good;
        e->miss_bad = d.miss_bad;
        e->raise = d.version == 2 ? d.raise : 0;   /* version 1: a raise on the old scale */
        e->off = d.off;
        for (size_t j = 0; j < d.nblock; j++) {
            uint64_t h;
            memcpy(&h, (const uint8_t *)v + sizeof d + j * 8, 8);
            block_add(e, h);
        }
        account(l, e, 1);
    }
    return 0;
}

/* --------------------------------------------------------------------- */

int sc_learn_open(sc_learn **out, sc_store *store, const sc_config *cfg)
{
    sc_learn *l = sc_calloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->persist_mu, NULL);
    l->store = store;
    l->budget = cfg->max_error_rate;
    l->nbuckets = 1024;
    l->buckets = sc_calloc(l->nbuckets, sizeof *l->buckets);
    l->ns = sc_calloc(SC_LEARN_MAX_NS, sizeof *l->ns);
    l->dec = sc_calloc(SC_LEARN_DECISIONS, sizeof *l->dec);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    l->nonce = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 10) ^ ((uint32_t)getpid() << 16)) | 1u;
    l->gamma = 1;
    for (size_t i = 0; i < cfg->ns_error_rates.n; i++) {
        char name[NS_MAX + 1];
        double rate;
        if (sc_config_ns_rate(cfg->ns_error_rates.items[i], name, sizeof name, &rate)) continue;
        int j = ns_index(l, name, 1);
        if (j >= 0) l->ns[j].budget = rate;
    }
    int rc = sc_store_learn_foreach(store, load_one, l);
    if (rc) {
        sc_learn_close(l);
        return rc;
    }
    *out = l;
    return SC_OK;
}

void sc_learn_close(sc_learn *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->persist_mu);
    for (size_t i = 0; i < l->nns; i++)
        if (l->ns[i].dirty) persist_ns(l, (int)i);
    pthread_mutex_unlock(&l->persist_mu);
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (entry_st *e = l->buckets[i], *n; e; e = n) {
            n = e->next;
            entry_free(e);
        }
    }
    free(l->buckets);
    free(l->ns);
    free(l->dec);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->persist_mu);
    free(l);
}

double sc_learn_budget(sc_learn *l, const char *ns, double req_budget)
{
    if (req_budget >= 0) return req_budget;
    double b = l->budget;
    pthread_mutex_lock(&l->mu);
    int i = ns_index(l, ns, 0);
    if (i >= 0 && l->ns[i].budget >= 0) b = l->ns[i].budget;
    pthread_mutex_unlock(&l->mu);
    return b;
}

/* Wilson's upper bound for a share p seen in n trials, at z. */
/* Wilson's score bound for a share p seen in n trials: the upper one for
 * z > 0, the lower one for z < 0. */
static double wilson(double p, double n, double z)
{
    double z2 = z * z, den = 1 + z2 / n;
    double centre = p + z2 / (2 * n);
    double half = z * sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    return (centre + half) / den;
}

/* The monotone bound of a grid point j: the error of the candidates just
 * at and above j (bins j, j+1, ... until SC_LEARN_BAND_MIN observations)
 * bounds the error of everything above j when the share of wrong
 * candidates does not grow with the score. Miss checks observe nearly
 * every candidate just under the threshold in use, so this band is well
 * measured where the weighted estimate (shadow checks only) is not. 1 when
 * bins j and up hold too few observations. */
static double band_upper(const ns_st *n, size_t j)
{
    uint64_t obs = 0, wrong = 0;
    for (size_t b = j; b < SC_LEARN_BINS && obs < SC_LEARN_BAND_MIN; b++) {
        obs += n->k.obs[b];
        wrong += n->k.wrong[b];
    }
    return obs < SC_LEARN_BAND_MIN ? 1.0 : wilson((double)wrong / (double)obs, (double)obs, Z95);
}

static double threshold_locked(const sc_learn *l, const ns_st *n, double budget, double fallback, int *learned)
{
    *learned = 0;
    uint64_t total = 0;
    for (size_t b = 0; b < SC_LEARN_BINS; b++) total += n->k.obs[b];
    if ((double)total < Z95 * Z95 * (1 - budget) / budget) return fallback;
    *learned = 1;
    /* Sums over bins >= j of the weighted observations: each of bin b's
     * obs[b] observations has weight w = seen[b] / obs[b]. The budget is
     * on every answer served, so the semantic hits' bound is diluted by
     * the exact hits (right by construction) served beside them. */
    double sw = 0, sw2 = 0, swe = 0, sem = 0, best = SC_LEARN_NO_SEMANTIC, low_at_fallback = 0;
    size_t jf = bin_of(l, fallback);
    for (size_t j = SC_LEARN_BINS; j-- > 0;) {
        sem += (double)n->k.seen[j];
        if (n->k.obs[j] > 0) {
            double seen = n->k.seen[j] > n->k.obs[j] ? (double)n->k.seen[j] : (double)n->k.obs[j];
            double w = seen / n->k.obs[j];
            sw += w * n->k.obs[j];
            sw2 += w * w * n->k.obs[j];
            swe += w * n->k.wrong[j];
        }
        if (sw <= 0) continue;
        double p = swe / sw, neff = sw * sw / sw2;
        double u = wilson(p, neff, Z95), band = band_upper(n, j);
        if (band < u) u = band;
        double share = sem > 0 ? sem / (sem + (double)n->k.exact) : 1;
        if (u * share <= budget) best = grid_score(l, j);
        if (j == jf) low_at_fallback = wilson(p, neff, -Z95) * share;
    }
    /* Looser than the configured threshold only when shown to keep the
     * budget; stricter only when the configured one is shown to break it
     * (its lower bound is over the budget). In between it stands. */
    if (best <= fallback || low_at_fallback > budget) return best;
    *learned = 0;
    return fallback;
}

double sc_learn_threshold(sc_learn *l, const char *ns, double budget, double fallback, int *learned)
{
    *learned = 0;
    if (!(budget > 0)) return fallback;
    pthread_mutex_lock(&l->mu);
    int i = ns_index(l, ns, 0);
    double t = i >= 0 ? threshold_locked(l, &l->ns[i], budget, fallback, learned) : fallback;
    pthread_mutex_unlock(&l->mu);
    return t;
}

void sc_learn_seen(sc_learn *l, const char *ns, double score)
{
    pthread_mutex_lock(&l->mu);
    int i = ns_index(l, ns, 1);
    if (i >= 0) l->ns[i].k.seen[bin_of(l, score)]++;
    pthread_mutex_unlock(&l->mu);
}

int sc_learn_gate(sc_learn *l, uint64_t id, uint64_t phash, double threshold, double *eff)
{
    int rc = SC_LEARN_OK;
    *eff = threshold;
    pthread_mutex_lock(&l->mu);
    entry_st *e = entry_find(l, id);
    if (e) {
        if (e->off) rc = SC_LEARN_OFF;
        for (size_t i = 0; rc == SC_LEARN_OK && i < e->nblock; i++)
            if (e->block[i] == phash) rc = SC_LEARN_BLOCKED;
        if (e->raise > *eff) *eff = e->raise;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

uint64_t sc_learn_decision(sc_learn *l, const char *ns, uint64_t id, uint64_t phash, double score, int semantic)
{
    pthread_mutex_lock(&l->mu);
    int i = ns_index(l, ns, 1);
    uint32_t seq = ++l->seq;
    uint64_t rid = ((uint64_t)l->nonce << 32) | seq;
    if (i >= 0 && !semantic) l->ns[i].k.exact++;
    decision *d = &l->dec[seq % SC_LEARN_DECISIONS];
    *d = (decision){.rid = i >= 0 ? rid : 0, .entry = id, .phash = phash, .score = (float)score,
                    .ns = (uint16_t)(i >= 0 ? i : 0), .semantic = (uint8_t)semantic};
    pthread_mutex_unlock(&l->mu);
    return rid;
}

void sc_learn_rid_format(uint64_t rid, char out[SC_LEARN_RID_LEN + 1])
{
    /* "%016llx" by hand: every hit formats one, and snprintf was ~8 % of
     * a pipelined SEM.GET's CPU (BENCHMARKS.md, RESP) */
    static const char hex[] = "0123456789abcdef";
    for (int i = SC_LEARN_RID_LEN - 1; i >= 0; i--, rid >>= 4) out[i] = hex[rid & 15];
    out[SC_LEARN_RID_LEN] = '\0';
}

int sc_learn_rid_parse(const char *s, size_t len, uint64_t *rid)
{
    if (len != SC_LEARN_RID_LEN) return SC_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return SC_EINVAL;
        v = (v << 4) | (uint64_t)d;
    }
    *rid = v;
    return SC_OK;
}

static void view(const entry_st *e, sc_learn_entry *out)
{
    memset(out, 0, sizeof *out);
    if (!e) return;
    out->good = e->good;
    out->bad = e->bad;
    out->miss_good = e->miss_good;
    out->miss_bad = e->miss_bad;
    out->threshold = e->raise;
    out->off = e->off;
    out->blocked = e->nblock;
}

/* Applies one observation to the entry and the namespace (mu held).
 * Returns 1 when the namespace is due to be written. A served hit judged
 * wrong (verdict, shadow check) blocks the prompt, raises the entry's
 * threshold and counts towards taking it out of semantic serving; a miss
 * check only calibrates the namespace and is counted on the entry. */
static int apply_locked(sc_learn *l, int nsi, uint64_t id, uint64_t phash, double score, int correct, int source)
{
    ns_st *n = &l->ns[nsi];
    size_t b = bin_of(l, score);
    n->k.obs[b]++;
    if (!correct) n->k.wrong[b]++;
    if (id) {
        entry_st *e = entry_get(l, id, (uint16_t)nsi);
        account(l, e, -1);
        int served = source != SC_LEARN_MISS;
        if (correct) {
            if (served) e->good++;
            else e->miss_good++;
        } else {
            if (served) e->bad++;
            else e->miss_bad++;
            if (served) {   /* a miss check only calibrates (see learn.h) */
                double step = SC_LEARN_RAISE_SHARE * (1 - score);
                float r = (float)(score + (step < SC_LEARN_RAISE ? step : SC_LEARN_RAISE));
                if (r > e->raise) e->raise = r;
                if (phash) block_add(e, phash);
            }
            if (e->bad >= SC_LEARN_QUARANTINE_BAD && e->bad > e->good) e->off = 1;
        }
        account(l, e, 1);
    }
    return ++n->dirty >= SC_LEARN_NS_FLUSH;
}

int sc_learn_verdict(sc_learn *l, uint64_t rid, int correct, const char *only_ns, uint64_t *entry,
                     sc_learn_entry *out)
{
    pthread_mutex_lock(&l->mu);
    uint32_t seq = (uint32_t)rid;
    decision *d = &l->dec[seq % SC_LEARN_DECISIONS];
    if (rid == 0 || d->rid != rid) {
        pthread_mutex_unlock(&l->mu);
        return SC_ENOTFOUND;
    }
    if (only_ns && strcmp(l->ns[d->ns].name, only_ns) != 0) {
        pthread_mutex_unlock(&l->mu);
        return SC_EFORBIDDEN;
    }
    if (d->judged) {
        pthread_mutex_unlock(&l->mu);
        return SC_EEXISTS;
    }
    d->judged = 1;
    ns_st *n = &l->ns[d->ns];
    if (correct)
        n->k.verdicts_good++;
    else
        n->k.verdicts_bad++;
    /* An exact hit's verdict counts for the entry, not the calibration of
     * semantic scores (its score is 1 by definition). */
    int due;
    if (d->semantic) {
        due = apply_locked(l, d->ns, d->entry, d->phash, d->score, correct, SC_LEARN_VERDICT);
    } else {
        entry_st *e = entry_get(l, d->entry, d->ns);
        account(l, e, -1);
        if (correct)
            e->good++;
        else if (++e->bad >= SC_LEARN_QUARANTINE_BAD && e->bad > e->good)
            e->off = 1;
        account(l, e, 1);
        due = ++n->dirty >= SC_LEARN_NS_FLUSH;
    }
    uint64_t id = d->entry;
    int nsi = d->ns;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_lock(&l->persist_mu);
    persist_entry(l, id);
    if (due) persist_ns(l, nsi);
    pthread_mutex_unlock(&l->persist_mu);
    pthread_mutex_lock(&l->mu);
    view(entry_find(l, id), out);
    pthread_mutex_unlock(&l->mu);
    *entry = id;
    return SC_OK;
}

void sc_learn_observe(sc_learn *l, const char *ns, uint64_t id, uint64_t phash, double score, int correct,
                      int source)
{
    pthread_mutex_lock(&l->mu);
    int i = ns_index(l, ns, 1);
    if (i < 0) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    ns_st *n = &l->ns[i];
    if (source == SC_LEARN_SHADOW) {
        n->k.shadow_checks++;
        n->k.shadow_wrong += !correct;
    } else if (source == SC_LEARN_MISS) {
        n->k.miss_checks++;
        n->k.miss_wrong += !correct;
    }
    int due = apply_locked(l, i, id, phash, score, correct, source);
    /* Entry state is written when something that changes serving changed
     * (a wrong observation); right ones ride along with the next write. */
    int entry_changed = id && !correct;
    pthread_mutex_unlock(&l->mu);
    if (!entry_changed && !due) return;
    pthread_mutex_lock(&l->persist_mu);
    if (entry_changed) persist_entry(l, id);
    if (due) persist_ns(l, i);
    pthread_mutex_unlock(&l->persist_mu);
}

int sc_learn_entry_get(sc_learn *l, uint64_t id, sc_learn_entry *out)
{
    pthread_mutex_lock(&l->mu);
    entry_st *e = entry_find(l, id);
    view(e, out);
    pthread_mutex_unlock(&l->mu);
    return e != NULL;
}

void sc_learn_forget(sc_learn *l, uint64_t id)
{
    pthread_mutex_lock(&l->mu);
    entry_st **pp = &l->buckets[bucket_of(l, id)];
    while (*pp && (*pp)->id != id) pp = &(*pp)->next;
    if (*pp) {
        entry_st *e = *pp;
        account(l, e, -1);
        *pp = e->next;
        entry_free(e);
        l->nentries--;
    }
    pthread_mutex_unlock(&l->mu);
}

json_t *sc_learn_ns_json(sc_learn *l, const char *ns, double fallback)
{
    double budget = sc_learn_budget(l, ns, -1);
    pthread_mutex_lock(&l->mu);
    int i = ns_index(l, ns, 0);
    if (i < 0) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    const ns_st *n = &l->ns[i];
    int learned = 0;
    double t = budget > 0 ? threshold_locked(l, n, budget, fallback, &learned) : fallback;
    uint64_t obs = 0, wrong = 0, off = n->entries_off, blocked = n->blocked, raised = n->entries_raised;
    for (size_t b = 0; b < SC_LEARN_BINS; b++) {
        obs += n->k.obs[b];
        wrong += n->k.wrong[b];
    }
    json_t *o = json_pack("{s:f,s:f,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "max_error_rate", budget,
                          "threshold", t > 1 ? -1.0 : t, "learned", learned, "observations", (json_int_t)obs,
                          "observed_wrong", (json_int_t)wrong, "verdicts_good", (json_int_t)n->k.verdicts_good,
                          "verdicts_bad", (json_int_t)n->k.verdicts_bad, "shadow_checks", (json_int_t)n->k.shadow_checks,
                          "shadow_wrong", (json_int_t)n->k.shadow_wrong, "miss_checks", (json_int_t)n->k.miss_checks,
                          "miss_wrong", (json_int_t)n->k.miss_wrong, "entries_off", (json_int_t)off,
                          "entries_raised", (json_int_t)raised, "blocked_prompts", (json_int_t)blocked);
    if (o && t > 1) json_object_set_new(o, "semantic", json_false());   /* no threshold meets the budget */
    pthread_mutex_unlock(&l->mu);
    return o;
}

void sc_learn_totals_get(sc_learn *l, sc_learn_totals *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nns; i++) {
        const ns_st *n = &l->ns[i];
        t->verdicts_good += n->k.verdicts_good;
        t->verdicts_bad += n->k.verdicts_bad;
        t->shadow_checks += n->k.shadow_checks;
        t->shadow_wrong += n->k.shadow_wrong;
        t->miss_checks += n->k.miss_checks;
        t->miss_wrong += n->k.miss_wrong;
        t->entries_off += n->entries_off;
        t->blocked_prompts += n->blocked;
    }
    pthread_mutex_unlock(&l->mu);
}

json_t *sc_learn_json(sc_learn *l, double fallback)
{
    json_t *o = json_object();
    pthread_mutex_lock(&l->mu);
    size_t n = l->nns;
    char (*names)[NS_MAX + 1] = sc_malloc((n ? n : 1) * sizeof *names);
    for (size_t i = 0; i < n; i++) memcpy(names[i], l->ns[i].name, NS_MAX + 1);
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        json_t *v = sc_learn_ns_json(l, names[i], fallback);
        if (v) json_object_set_new(o, names[i], v);
    }
    free(names);
    return o;
}
