/* The cache pipeline (see cache.h): ties the embedder, the LMDB store, the
 * in-memory index and the verifier together.
 *
 * Lookup: exact key -> store (microseconds, no embedding); otherwise embed
 * the prompt, take the top-k candidates of the partition from the index
 * and score them: with semcache-embed the candidates' answers vote
 * (vote.h) on the cosines, then its verifier, where one was trained,
 * cross-checks the winner and may only refuse it; use-lite and hash score
 * each candidate with their verifier instead (with verify off, or for an
 * embedder without one: the nearest cosine). The best is served when its
 * score clears the threshold. Store: embed (unless the caller
 * has the vector already), put into LMDB (durable when put returns), then
 * add to the index. A maintenance thread expires and evicts entries once a
 * second; every removal reaches the index through the store's callback. */
#include "server/cache.h"
#include "server/akeys.h"
#include "server/shared.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "embed/embed.h"
#include "embed/verify.h"
#include "index/index.h"
#include "server/recent.h"
#include "server/learn.h"
#include "server/vote.h"
#include "storage/store.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SC_IMPORT_SPLIT_MIN 16   /* texts in a batch before embed_batch uses a second thread */
#define MAX_TOPK 64
#define AKEY_SLOTS 65536          /* the vote's answer keys held (1 MiB) */

struct sc_cache {
    const sc_config *cfg;
    sc_embedder *emb;
    sc_store *store;
    sc_index *index;
    sc_verify *verify;          /* NULL with verify off */
    int vote;                   /* semcache-embed with answer-vote on */
    int check;                  /* semcache-embed: the verifier only vetoes the vote's winner */
    double gamma;               /* scores reported as sc_score_of_cos(cos, gamma): semcache-embed's
                                   SC_EMBED_SCORE_GAMMA, else 1 (the cosine) */
    uint32_t dim;
    double threshold;           /* effective default */
    pthread_t maint;
    pthread_t ann;              /* builds the ANN lists after start-up */
    sc_shared *shared;          /* multi-node mode (--redis-cluster), or NULL */
    int ann_started;
    pthread_mutex_t maint_mu;
    pthread_mutex_t apply_mu;   /* multi-node: one apply_put at a time (feed thread, lookup_shared) */
    pthread_cond_t maint_cv;
    int maint_stop;
    int maint_started;
    atomic_ullong lookups, hits_exact, hits_semantic, misses, puts;
    atomic_ullong generation;   /* bumped after every committed removal or update */
    sc_recent *recent;          /* the last semantic decisions (dashboard) */
    sc_learn *learn;            /* verdicts, checks and the error budget */
    sc_akeys *akeys;            /* the vote's answer keys by id (NULL without the vote) */
};

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* ---------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------- */

/* Trims, collapses runs of white space to one space, lower-cases ASCII. */
static char *normalise(const char *p, size_t n, size_t *outlen)
{
    char *o = sc_malloc(n + 1);
    size_t k = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v') {
            space = k > 0;
            continue;
        }
        if (space) o[k++] = ' ';
        space = 0;
        o[k++] = (char)(ch < 128 ? tolower(ch) : ch);
    }
    o[k] = '\0';
    *outlen = k;
    return o;
}

/* The exact key of an already normalised prompt. */
static void key_of_normalised(const char *ns, uint64_t fp, const char *norm, size_t nlen,
                              uint8_t key[SC_EXACT_KEY_LEN])
{
    size_t nslen = strlen(ns);
    size_t total = nslen + 1 + 8 + nlen;
    uint8_t *buf = sc_malloc(total);
    memcpy(buf, ns, nslen + 1);
    for (int i = 0; i < 8; i++) buf[nslen + 1 + i] = (uint8_t)(fp >> (8 * i));
    memcpy(buf + nslen + 9, norm, nlen);
    sc_hash128(buf, total, key);
    free(buf);
}

void sc_cache_exact_key(const char *ns, uint64_t fp, const char *prompt, size_t len,
                        uint8_t key[SC_EXACT_KEY_LEN])
{
    size_t nlen;
    char *norm = normalise(prompt, len, &nlen);
    key_of_normalised(ns, fp, norm, nlen, key);
    free(norm);
}

/* 1 when prompt a normalises to norm (nlen bytes). */
static int normalises_to(const char *a, size_t alen, const char *norm, size_t nlen)
{
    size_t na;
    char *x = normalise(a, alen, &na);
    int same = na == nlen && memcmp(x, norm, na) == 0;
    free(x);
    return same;
}

/* ---------------------------------------------------------------------
 * Open / close / maintenance
 * ------------------------------------------------------------------- */

static void on_store_remove(void *ctx, uint64_t id, const char *ns, uint64_t fp)
{
    (void)ns;
    (void)fp;
    sc_cache *c = ctx;
    if (c->index) sc_index_remove(c->index, id);
    if (c->learn) sc_learn_forget(c->learn, id);
    sc_akeys_forget(c->akeys, id);
    atomic_fetch_add(&c->generation, 1);
}

/* An entry rewritten in place (sc_store_update: today only re-embedding
 * at open, before the index is built) may have a new answer, expiry or
 * exact key: memos of it are stale as after a removal. */
static void on_store_update(void *ctx, uint64_t id, const char *ns, uint64_t fp)
{
    (void)ns;
    (void)fp;
    sc_cache *c = ctx;
    sc_akeys_changed(c->akeys, id);
    atomic_fetch_add(&c->generation, 1);
}

/* The start-up rebuild runs on two threads: this one walks the store and
 * decodes the vectors (sc_store_foreach_vector), a second one adds them to
 * the index (adds take the index's writer lock one at a time anyway).
 * Batches of RB_BATCH rows go through a ring of RB_RING slots. */
enum { RB_BATCH = 256, RB_RING = 4 };

typedef struct rb_row {
    uint64_t id, fp;
    char ns[SC_RECORD_MAX_NS + 1];
} rb_row;

typedef struct rebuild {
    sc_cache *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rb_row *rows;               /* RB_RING * RB_BATCH */
    float *vecs;                /* RB_RING * RB_BATCH * dim */
    size_t fill[RB_RING];       /* rows in each slot */
    size_t head, tail;          /* slots [tail, head) are filled, not yet added */
    int done, threaded;
} rebuild;

static void rebuild_add(rebuild *b, size_t slot)
{
    for (size_t i = 0; i < b->fill[slot]; i++) {
        const rb_row *r = &b->rows[slot * RB_BATCH + i];
        sc_index_add(b->c->index, r->ns, r->fp, r->id, b->vecs + (slot * RB_BATCH + i) * b->c->dim);
    }
}

static void *rebuild_main(void *arg)
{
    rebuild *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->tail == b->head && !b->done) pthread_cond_wait(&b->cv, &b->mu);
        if (b->tail == b->head) break;
        size_t slot = b->tail % RB_RING;
        pthread_mutex_unlock(&b->mu);
        rebuild_add(b, slot);
        pthread_mutex_lock(&b->mu);
        b->tail++;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Hands the slot being filled to the adder (or adds it here). */
static void rebuild_publish(rebuild *b)
{
    size_t slot = b->head % RB_RING;
    if (!b->fill[slot]) return;
    if (!b->threaded) {
        rebuild_add(b, slot);
        b->fill[slot] = 0;
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->head++;
    pthread_cond_broadcast(&b->cv);
    while (b->head - b->tail == RB_RING) pthread_cond_wait(&b->cv, &b->mu); /* the next slot is free */
    b->fill[b->head % RB_RING] = 0;
    pthread_mutex_unlock(&b->mu);
}

static int rebuild_one(void *ctx, uint64_t id, const sc_record_head *h, const float *vec)
{
    rebuild *b = ctx;
    if (h->dim != b->c->dim || !vec) return 0;
    size_t slot = b->head % RB_RING, i = b->fill[slot];
    rb_row *r = &b->rows[slot * RB_BATCH + i];
    r->id = id;
    r->fp = h->fp;
    memcpy(r->ns, h->ns, strlen(h->ns) + 1);
    memcpy(b->vecs + (slot * RB_BATCH + i) * b->c->dim, vec, b->c->dim * sizeof(float));
    if (++b->fill[slot] == RB_BATCH) rebuild_publish(b);
    return 0;
}

/* Rebuilds the index from the store, the ANN lists of big partitions left
 * for ann_main (sc_index_bulk_load stays on). */
static int rebuild_index(sc_cache *c)
{
    rebuild b = {.c = c};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    b.rows = sc_malloc(RB_RING * RB_BATCH * sizeof(rb_row));
    b.vecs = sc_malloc(RB_RING * RB_BATCH * c->dim * sizeof(float));
    pthread_t th;
    b.threaded = pthread_create(&th, NULL, rebuild_main, &b) == 0;
    sc_index_bulk_load(c->index, 1);
    int rc = sc_store_foreach_vector(c->store, rebuild_one, &b);
    rebuild_publish(&b);
    if (b.threaded) {
        pthread_mutex_lock(&b.mu);
        b.done = 1;
        pthread_cond_broadcast(&b.cv);
        pthread_mutex_unlock(&b.mu);
        pthread_join(th, NULL);
    }
    free(b.rows);
    free(b.vecs);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    return rc;
}

typedef struct id_list {
    uint64_t *ids;
    size_t n, cap;
} id_list;

static int collect_id(void *ctx, const sc_record *r)
{
    id_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->ids = sc_realloc(l->ids, l->cap * sizeof *l->ids);
    }
    l->ids[l->n++] = r->id;
    return 0;
}

/* --reembed: a data dir written by another embedder gets every prompt
 * embedded again, in batches, before the index is built. Interrupted, it
 * starts over on the next start (meta keeps the old identity until done). */
static int reembed_all(sc_cache *c, char *err, size_t errlen)
{
    enum { BATCH = 32 };
    id_list l = {0};
    int rc = sc_store_foreach(c->store, collect_id, &l);
    sc_info("re-embedding %zu entries with %s", l.n, sc_embedder_id(c->emb));
    float *vecs = sc_malloc(sizeof(float) * c->dim * BATCH);
    for (size_t i = 0; i < l.n && !rc; i += BATCH) {
        sc_record recs[BATCH];
        const char *texts[BATCH];
        size_t lens[BATCH], n = 0;
        for (size_t k = i; k < l.n && n < BATCH; k++) {
            memset(&recs[n], 0, sizeof recs[n]);
            if (sc_store_get(c->store, l.ids[k], &recs[n])) continue;
            texts[n] = recs[n].prompt;
            lens[n] = recs[n].prompt_len;
            n++;
        }
        if (n) rc = sc_embed(c->emb, texts, lens, n, vecs);
        for (size_t k = 0; k < n; k++) {
            if (!rc) {
                free(recs[k].vec);
                recs[k].vec = sc_malloc(sizeof(float) * c->dim);
                memcpy(recs[k].vec, vecs + k * c->dim, sizeof(float) * c->dim);
                recs[k].dim = c->dim;
                rc = sc_store_update(c->store, &recs[k]);
            }
            sc_record_clear(&recs[k]);
        }
    }
    free(vecs);
    free(l.ids);
    if (!rc) rc = sc_store_reembed_done(c->store);
    if (rc) snprintf(err, errlen, "re-embedding %s failed: %s", c->cfg->data_dir, sc_strerror(rc));
    return rc;
}

/* ---------------------------------------------------------------------
 * Multi-node mode: what the feed thread applies to the local copy
 * ------------------------------------------------------------------- */

static int apply_put_locked(sc_cache *c, sc_record *r);

/* The feed thread and a worker's lookup_shared may apply the same record
 * at once: both would miss the check below and the second put would
 * replace the first under a new id (an id just served would vanish). */
static int apply_put(void *ctx, sc_record *r)
{
    sc_cache *c = ctx;
    pthread_mutex_lock(&c->apply_mu);
    int rc = apply_put_locked(c, r);
    pthread_mutex_unlock(&c->apply_mu);
    return rc;
}

static int apply_put_locked(sc_cache *c, sc_record *r)
{
    if (r->dim != c->dim || !r->vec || !r->has_exact_key) return SC_EINVAL;
    float *vec = r->vec;
    uint8_t key[SC_EXACT_KEY_LEN];
    memcpy(key, r->exact_key, sizeof key);
    /* The same version already here (read on an exact lookup before its
     * event came, or an event applied twice): keep it and its id. */
    uint64_t id;
    sc_record old = {0};
    if (sc_store_get_exact(c->store, key, &id) == 0 && sc_store_get(c->store, id, &old) == 0) {
        int same = old.created == r->created && old.response_len == r->response_len &&
                   (!r->response_len || memcmp(old.response, r->response, r->response_len) == 0) &&
                   strcmp(old.ns, r->ns) == 0;
        sc_record_clear(&old);
        if (same) {
            r->id = id;
            return SC_OK;
        }
    }
    int rc = sc_store_put(c->store, r, key);
    if (rc == SC_OK) rc = sc_index_add(c->index, r->ns, r->fp, r->id, vec);
    return rc;
}

static int apply_del(void *ctx, const uint8_t key[SC_RECORD_EXACT_LEN])
{
    sc_cache *c = ctx;
    uint64_t id;
    sc_record r = {0};
    if (sc_store_get_exact(c->store, key, &id) || sc_store_get(c->store, id, &r)) return SC_ENOTFOUND;
    int rc = sc_store_del(c->store, r.ns, id);
    sc_record_clear(&r);
    return rc;
}

/* Namespace ns gone from the store and the index, here only. */
static int flush_local(sc_cache *c, const char *ns, uint64_t *count)
{
    int rc = sc_store_flush_ns(c->store, ns, count);
    if (rc == SC_OK) sc_index_flush_ns(c->index, ns);
    return rc;
}

static int apply_flush(void *ctx, const char *ns)
{
    uint64_t n;
    return flush_local(ctx, ns, &n);
}

/* After start-up, in the background: the ANN lists of the partitions big
 * enough for them, built once for the whole load (searches use the exact
 * scan until each is swapped in; 1M rows: ~2.3 s on 2 cores). */
static void *ann_main(void *arg)
{
    sc_cache *c = arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sc_index_bulk_load(c->index, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sc_index_stats ist;
    sc_index_stats_get(c->index, &ist);
    if (ist.ann_partitions)
        sc_info("ANN lists built for %llu partitions in %.2f s", (unsigned long long)ist.ann_partitions,
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return NULL;
}

static void *maint_main(void *arg)
{
    sc_cache *c = arg;
    pthread_mutex_lock(&c->maint_mu);
    while (!c->maint_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->maint_cv, &c->maint_mu, &ts);
        if (c->maint_stop) break;
        pthread_mutex_unlock(&c->maint_mu);
        uint64_t removed = 0;
        int rc = sc_store_evict(c->store, now_s(), &removed);
        if (rc) sc_warn("eviction failed: %s", sc_strerror(rc));
        else if (removed) sc_debug("evicted or expired %llu entries", (unsigned long long)removed);
        pthread_mutex_lock(&c->maint_mu);
    }
    pthread_mutex_unlock(&c->maint_mu);
    return NULL;
}

int sc_cache_open(sc_cache **out, const sc_config *cfg, char *err, size_t errlen)
{
    sc_cache *c = SC_NEW(sc_cache);
    c->cfg = cfg;
    c->recent = sc_recent_create();
    pthread_mutex_init(&c->maint_mu, NULL);
    pthread_mutex_init(&c->apply_mu, NULL);
    pthread_cond_init(&c->maint_cv, NULL);
    const char *key = *cfg->upstream_key ? cfg->upstream_key : getenv(cfg->upstream_key_env);
    sc_embedder_opts eo = {
        .name = cfg->embedder, .model_dir = cfg->model_dir, .url = cfg->embed_url,
        .model = cfg->embed_model, .api_key = key, .dim = (uint32_t)cfg->embed_dim,
    };
    int rc = sc_embedder_open(&c->emb, &eo, err, errlen);
    if (rc) goto fail;
    c->dim = sc_embedder_dim(c->emb);

    sc_index_opts io = {.dim = c->dim, .backend = cfg->index_backend, .faiss_desc = cfg->faiss_desc,
                        .scan_bits = (uint32_t)cfg->index_scan_bits,
                        .ann_min_rows = cfg->index_ann_min_rows ? (uint32_t)cfg->index_ann_min_rows : UINT32_MAX};
    rc = sc_index_create(&c->index, &io);
    if (rc) {
        snprintf(err, errlen, "cannot create the %s index: %s", cfg->index_backend, sc_strerror(rc));
        goto fail;
    }
    sc_store_opts so = {
        .dir = cfg->data_dir, .sync = strcmp(cfg->durability, "sync") == 0,
        .sync_window_ms = cfg->sync_window_ms, .max_entries = cfg->max_entries,
        .max_bytes = cfg->max_bytes, .map_size_mb = cfg->map_size_mb,
        .embedder_id = sc_embedder_id(c->emb), .dim = c->dim, .reembed = cfg->reembed,
        .on_remove = on_store_remove, .on_remove_ctx = c, .on_update = on_store_update,
    };
    rc = sc_store_open(&c->store, &so, err, errlen);
    if (rc) goto fail;
    if (sc_store_needs_reembed(c->store) && (rc = reembed_all(c, err, errlen))) goto fail;
    if ((rc = sc_learn_open(&c->learn, c->store, cfg))) {
        snprintf(err, errlen, "cannot read the learned state in %s: %s", cfg->data_dir, sc_strerror(rc));
        goto fail;
    }
    if (strcmp(cfg->verify, "on") == 0) {
        rc = sc_verify_create(&c->verify, c->emb, NULL);
        if (rc == SC_ENOTFOUND) {
            sc_info("no verifier was trained for embedder %s", sc_embedder_id(c->emb));
            c->verify = NULL;
        } else if (rc) {
            snprintf(err, errlen, "cannot create the verifier: %s", sc_strerror(rc));
            goto fail;
        }
    }
    /* semcache-embed decides with the cosine and the answer vote; its
     * verifier (when one was trained) is a cross-check of the winner that
     * can only refuse a hit. Other embedders score with their verifier. */
    int own = strcmp(cfg->embedder, "semcache-embed") == 0;
    c->check = c->verify && own;
    /* The vote was tuned for semcache-embed only; use-lite and hash keep
     * the raw cosine their 0.90 default was tuned on. */
    c->vote = own && strcmp(cfg->answer_vote, "on") == 0;
    if (c->vote) c->akeys = sc_akeys_create(AKEY_SLOTS);
    c->gamma = own ? SC_EMBED_SCORE_GAMMA : 1;
    sc_learn_set_scale(c->learn, c->gamma);
    /* The tuned defaults (bench_quality and tools/train on the dev splits;
     * BENCHMARKS.md): semcache-embed's 0.95 (the vote's score on its
     * scale, sc_cache_embed_score: the cosine 0.82),
     * use-lite's verifier 0.60, the raw cosine 0.90. */
    if (cfg->threshold >= 0) c->threshold = cfg->threshold;
    else if (own) c->threshold = SC_DEFAULT_THRESHOLD_EMBED;
    else if (c->verify) c->threshold = SC_DEFAULT_THRESHOLD_VERIFIED;
    else c->threshold = SC_DEFAULT_THRESHOLD_COSINE;
    sc_info("semantic threshold %.2f (%s)", c->threshold, sc_cache_scorer(c));
    uint64_t t0 = (uint64_t)clock();
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    rc = rebuild_index(c);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    if (rc) {
        snprintf(err, errlen, "cannot rebuild the index from %s: %s", cfg->data_dir, sc_strerror(rc));
        goto fail;
    }
    sc_index_stats ist;
    sc_index_stats_get(c->index, &ist);
    sc_info("index rebuilt: %llu vectors in %llu partitions (%.2f s, %.2f s CPU)",
            (unsigned long long)ist.vectors, (unsigned long long)ist.partitions,
            (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) * 1e-9,
            (double)((uint64_t)clock() - t0) / CLOCKS_PER_SEC);
    if (*cfg->redis_cluster) {
        sc_shared_apply ap = {c, apply_put, apply_del, apply_flush};
        if ((rc = sc_shared_open(&c->shared, cfg, &ap, err, errlen))) goto fail;
        if ((rc = sc_shared_start(c->shared))) {
            snprintf(err, errlen, "cannot start the multi-node feed thread");
            goto fail;
        }
        sc_info("multi-node mode: entries shared through the Redis Cluster at %s", cfg->redis_cluster);
    }
    if (pthread_create(&c->ann, NULL, ann_main, c) == 0)
        c->ann_started = 1;
    else
        sc_index_bulk_load(c->index, 0);
    if (pthread_create(&c->maint, NULL, maint_main, c) == 0) c->maint_started = 1;
    *out = c;
    return SC_OK;
fail:
    sc_cache_close(c);
    return rc;
}

void sc_cache_close(sc_cache *c)
{
    if (!c) return;
    sc_shared_close(c->shared); /* its feed thread applies to the store: first */
    c->shared = NULL;
    if (c->ann_started) {
        sc_index_stop(c->index); /* a start-up build gives up rather than hold the shutdown */
        pthread_join(c->ann, NULL);
    }
    if (c->maint_started) {
        pthread_mutex_lock(&c->maint_mu);
        c->maint_stop = 1;
        pthread_cond_signal(&c->maint_cv);
        pthread_mutex_unlock(&c->maint_mu);
        pthread_join(c->maint, NULL);
    }
    sc_learn *l = c->learn;
    c->learn = NULL;
    sc_learn_close(l);   /* writes to the store: before it closes */
    if (c->store) sc_store_close(c->store);
    if (c->verify) sc_verify_destroy(c->verify);
    if (c->index) sc_index_destroy(c->index);
    sc_recent_destroy(c->recent);
    sc_akeys_destroy(c->akeys);
    if (c->emb) sc_embedder_close(c->emb);
    pthread_mutex_destroy(&c->maint_mu);
    pthread_mutex_destroy(&c->apply_mu);
    pthread_cond_destroy(&c->maint_cv);
    free(c);
}

/* ---------------------------------------------------------------------
 * Lookup
 * ------------------------------------------------------------------- */

void sc_cache_result_clear(sc_cache_result *res)
{
    sc_record_clear(&res->rec);
    free(res->vec);
    memset(res, 0, sizeof *res);
}

/* Fills res as an exact hit on record r (taken over). */
static void exact_hit(sc_cache_result *res, sc_record *r)
{
    res->outcome = SC_CACHE_HIT_EXACT;
    res->id = r->id;
    res->similarity = 1.0f;
    res->confidence = 1.0;
    res->rec = *r;
}

/* Guard against a hash collision of exact keys: the entry must be what
 * was asked (namespace, context and normalised prompt). */
static int asked_for(const sc_record *r, const char *ns, uint64_t fp, const char *norm, size_t nlen)
{
    return strcmp(r->ns, ns) == 0 && r->fp == fp && normalises_to(r->prompt, r->prompt_len, norm, nlen);
}

/* The exact layer for a query already normalised to norm (nlen bytes)
 * whose exact key is key. */
static int lookup_exact_norm(sc_cache *c, const char *ns, uint64_t fp, const char *norm, size_t nlen,
                             const uint8_t key[SC_EXACT_KEY_LEN], sc_cache_result *res)
{
    uint64_t id;
    sc_record r = {0};
    if (sc_store_get_exact(c->store, key, &id) || sc_store_get(c->store, id, &r)) return 0;
    if (!asked_for(&r, ns, fp, norm, nlen)) {
        sc_record_clear(&r);
        return 0;
    }
    exact_hit(res, &r);
    return 1;
}

/* Multi-node mode: an entry another node stored, not here yet (its
 * event is on the way): read from the cluster, stored here, an exact hit. */
static int lookup_shared(sc_cache *c, const char *ns, uint64_t fp, const char *norm, size_t nlen,
                         const uint8_t key[SC_EXACT_KEY_LEN], sc_cache_result *res)
{
    sc_record r;
    if (sc_shared_get(c->shared, ns, key, &r)) return 0;
    if (!asked_for(&r, ns, fp, norm, nlen) || apply_put(c, &r) != SC_OK) {
        sc_record_clear(&r);
        return 0;
    }
    free(r.vec);
    r.vec = NULL;
    r.dim = 0;
    exact_hit(res, &r);
    return 1;
}

static int lookup_exact(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                        sc_cache_result *res)
{
    size_t nlen;
    char *norm = normalise(prompt, len, &nlen);
    uint8_t key[SC_EXACT_KEY_LEN];
    key_of_normalised(ns, fp, norm, nlen, key);
    int hit = lookup_exact_norm(c, ns, fp, norm, nlen, key, res);
    free(norm);
    return hit;
}

int sc_cache_lookup_exact(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                          sc_cache_result *res)
{
    memset(res, 0, sizeof *res);
    if (!lookup_exact(c, ns, fp, prompt, len, res)) return 0;
    atomic_fetch_add(&c->lookups, 1);
    atomic_fetch_add(&c->hits_exact, 1);
    sc_store_touch(c->store, res->id, now_s());
    res->rid = sc_learn_decision(c->learn, ns, res->id, 0, 1.0, 0);
    return 1;
}

uint64_t sc_cache_note_decision(sc_cache *c, const char *ns, uint64_t id)
{
    return sc_learn_decision(c->learn, ns, id, 0, 1.0, 0);
}

sc_learn *sc_cache_learn(sc_cache *c) { return c->learn; }

int sc_cache_answers_agree(sc_cache *c, const char *a, size_t al, const char *b, size_t bl)
{
    size_t na, nb;
    char *x = normalise(a, al, &na), *y = normalise(b, bl, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    if (same) return 1;
    if (al <= SC_ANSWER_LABEL_MAX && bl <= SC_ANSWER_LABEL_MAX) return 0;   /* labels: exact only */
    float *v = sc_malloc(sizeof(float) * 2 * c->dim);
    const char *texts[2] = {a, b};
    size_t lens[2] = {al, bl};
    int agree = 0;
    if (sc_embed(c->emb, texts, lens, 2, v) == SC_OK) {
        double dot = 0;
        for (uint32_t i = 0; i < c->dim; i++) dot += (double)v[i] * v[c->dim + i];
        agree = dot >= SC_ANSWER_AGREE;
    }
    free(v);
    return agree;
}

static uint64_t phash_of_key(const uint8_t key[SC_EXACT_KEY_LEN])
{
    uint64_t h;
    memcpy(&h, key, 8);
    return h ? h : 1;
}

uint64_t sc_cache_prompt_hash(const char *ns, uint64_t fp, const char *prompt, size_t len)
{
    uint8_t key[SC_EXACT_KEY_LEN];
    sc_cache_exact_key(ns, fp, prompt, len, key);
    return phash_of_key(key);
}

int sc_cache_lookup(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                    double threshold, int flags, sc_cache_result *res)
{
    sc_cache_lookup_opts o = {.threshold = threshold, .flags = flags, .max_error = -1};
    return sc_cache_lookup_ex(c, ns, fp, prompt, len, &o, res);
}

/* The threshold of a lookup: the request's, else the error budget's
 * (learn.h), else the configured one. */
static double lookup_threshold(sc_cache *c, const char *ns, const sc_cache_lookup_opts *o, sc_cache_result *res)
{
    if (o->threshold >= 0) return o->threshold;
    res->max_error = sc_learn_budget(c->learn, ns, o->max_error);
    if (!(res->max_error > 0)) return c->threshold;
    return sc_learn_threshold(c->learn, ns, res->max_error, c->threshold, &res->learned);
}

/* The vote's key of entry r's answer: held since its put or an earlier
 * lookup, else computed from its stored JSON and held (unless an entry was
 * rewritten since epoch, read before r was). */
static uint64_t answer_key(sc_cache *c, const sc_record *r, uint64_t epoch)
{
    uint64_t key;
    if (sc_akeys_get(c->akeys, r->id, &key)) return key;
    size_t alen;
    char *ans = sc_cache_answer_text(r, &alen);
    key = sc_vote_answer_key(ans ? ans : r->response, ans ? alen : r->response_len);
    free(ans);
    sc_akeys_put(c->akeys, r->id, key, epoch);
    return key;
}

int sc_cache_lookup_ex(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                       const sc_cache_lookup_opts *o, sc_cache_result *res)
{
    memset(res, 0, sizeof *res);
    int flags = o->flags;
    atomic_fetch_add(&c->lookups, 1);
    size_t nlen;
    char *norm = normalise(prompt, len, &nlen);
    uint8_t key[SC_EXACT_KEY_LEN];   /* also the prompt's hash for what was learned */
    key_of_normalised(ns, fp, norm, nlen, key);
    int rc = SC_OK;
    if (lookup_exact_norm(c, ns, fp, norm, nlen, key, res)) goto out;
    if (c->shared && lookup_shared(c, ns, fp, norm, nlen, key, res)) goto out;
    if (flags & SC_LOOKUP_EXACT_ONLY) goto out;
    double threshold = lookup_threshold(c, ns, o, res);
    size_t k = (size_t)c->cfg->top_k, n = 0;
    if (k > MAX_TOPK) k = MAX_TOPK;
    sc_index_hit hits[MAX_TOPK];
    /* An empty partition (a conversation's later turns, a new namespace)
     * has nothing to find: a miss without the embedding on its path (the
     * write-back embeds the prompt, sc_cache_put with no vector). So an
     * embedder that fails fails only lookups that have rows to search; a
     * prompt the embedder would refuse is refused either way. */
    if (len > SC_EMBED_MAX_BYTES) {
        rc = SC_ETOOBIG;
        goto out;
    }
    if (sc_index_rows(c->index, ns, fp) > 0) {
        res->dim = c->dim;
        res->vec = sc_malloc(sizeof(float) * c->dim);
        if ((rc = sc_embed(c->emb, &prompt, &len, 1, res->vec))) goto out;
        if ((rc = sc_index_search(c->index, ns, fp, res->vec, k, hits, &n))) goto out;
    }
    double best_conf = -1;
    sc_record cands[MAX_TOPK];
    sc_vote_cand votes[MAX_TOPK];
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        sc_record r = {0};
        uint64_t epoch = sc_akeys_epoch(c->akeys);
        if (sc_store_get(c->store, hits[i].id, &r)) continue;   /* expired or gone */
        if (strcmp(r.ns, ns) != 0 || r.fp != fp) {
            sc_record_clear(&r);
            continue;
        }
        if (normalises_to(r.prompt, r.prompt_len, norm, nlen)) {
            /* The same prompt, stored since the exact layer looked (e.g.
             * by a finishing identical call): that is an exact hit. */
            sc_record_clear(&res->rec);
            for (size_t j = 0; j < nc; j++) sc_record_clear(&cands[j]);
            exact_hit(res, &r);
            goto out;
        }
        if (i == 0) res->similarity = hits[i].score;
        if (c->vote) {
            votes[nc].cos = hits[i].score;
            votes[nc].answer = answer_key(c, &r, epoch);
            cands[nc++] = r;
            continue;
        }
        double conf = hits[i].score;
        if (c->verify && !c->check)
            conf = sc_verify_score(c->verify, prompt, len, res->vec, r.prompt, r.prompt_len, r.vec,
                                   hits[i].score);
        if (conf > best_conf) {
            best_conf = conf;
            sc_record_clear(&res->rec);
            res->rec = r;
            res->id = r.id;
            res->similarity = hits[i].score;
            res->confidence = conf;
        } else {
            sc_record_clear(&r);
        }
        if (!c->verify || c->check) break;   /* raw cosine: the first is the best */
    }
    if (c->vote && nc > 0) {
        double conf;
        const float *vecs[MAX_TOPK];
        for (size_t i = 0; i < nc; i++) vecs[i] = cands[i].dim == c->dim ? cands[i].vec : NULL;
        sc_vote_merge_same(votes, vecs, c->dim, nc, SC_VOTE_SAME_QUESTION);
        /* The bonus of an unambiguous winner needs a look at its
         * neighbours: with one candidate a lookup (--top-k 1) every
         * winner would look alone. */
        sc_vote_params vp = sc_vote_default_params;
        if (k < 2) vp.alone = 0;
        int w = sc_vote(votes, nc, &vp, &conf);
        for (size_t i = 0; i < nc; i++) {
            if ((int)i != w) {
                sc_record_clear(&cands[i]);
                continue;
            }
            res->rec = cands[i];
            res->id = cands[i].id;
            res->similarity = votes[i].cos;
            res->confidence = conf;
            best_conf = conf;
        }
    }
    /* semcache-embed's scores on the threshold's scale (cache.h); the
     * cross-check below reads the cosine. */
    if (res->id) best_conf = res->confidence = sc_score_of_cos(best_conf, c->gamma);
    /* What was learned about the winner: blocked for this prompt, out of
     * semantic serving, or a threshold of its own. */
    if (res->id) {
        res->phash = phash_of_key(key);
        sc_learn_seen(c->learn, ns, best_conf);
        res->refused = sc_learn_gate(c->learn, res->id, res->phash, threshold, &threshold);
        if (res->refused) best_conf = -1;
    }
    res->threshold = threshold;
    if (c->check && res->id && best_conf >= threshold) {
        int decisive;
        double p = sc_verify_score_ex(c->verify, prompt, len, res->vec, res->rec.prompt, res->rec.prompt_len,
                                      res->rec.vec, res->similarity, &decisive);
        if (sc_cache_vetoes(p, decisive, SC_VERIFY_VETO, SC_VERIFY_VETO_DECISIVE)) { /* the cross-check refuses it: a look-alike */
            best_conf = -1;
            res->confidence = p;
            res->vetoed = 1;
        }
    }
    if (best_conf >= threshold && res->id) {
        res->outcome = SC_CACHE_HIT_SEMANTIC;
        atomic_fetch_add(&c->hits_semantic, 1);
        sc_store_touch(c->store, res->id, now_s());
        res->rid = sc_learn_decision(c->learn, ns, res->id, res->phash, res->confidence, 1);
    } else {
        res->outcome = SC_CACHE_MISS;
        sc_record_clear(&res->rec);
        atomic_fetch_add(&c->misses, 1);
    }
    res->similarity = (float)sc_score_of_cos(res->similarity, c->gamma);
    sc_recent_add(c->recent, ns, res->id, res->id ? res->similarity : 0.0f,
                  res->id ? (float)res->confidence : 0.0f, (float)threshold,
                  res->outcome == SC_CACHE_HIT_SEMANTIC);
out:
    free(norm);
    if (rc == SC_OK && res->outcome == SC_CACHE_HIT_EXACT) {
        atomic_fetch_add(&c->hits_exact, 1);
        sc_store_touch(c->store, res->id, now_s());
        res->rid = sc_learn_decision(c->learn, ns, res->id, 0, 1.0, 0);
    } else if (rc == SC_OK && (flags & SC_LOOKUP_EXACT_ONLY) && res->outcome == SC_CACHE_MISS) {
        atomic_fetch_add(&c->misses, 1);
    }
    return rc;
}

struct sc_recent *sc_cache_recent(sc_cache *c) { return c->recent; }

int sc_cache_search(sc_cache *c, const char *ns, const char *text, size_t len, size_t k,
                    sc_cache_search_hit *hits, size_t *n, size_t *parts)
{
    *n = 0;
    *parts = 0;
    if (k > SC_SEARCH_MAX_K) k = SC_SEARCH_MAX_K;
    if (k == 0) return SC_OK;
    float *q = sc_malloc(sizeof(float) * c->dim);
    uint64_t *fps = sc_malloc(sizeof(uint64_t) * SC_SEARCH_MAX_PARTS);
    sc_index_hit best[SC_SEARCH_MAX_K], part_hits[SC_SEARCH_MAX_K];
    size_t nb = 0;
    int rc = sc_embed(c->emb, &text, &len, 1, q);
    if (rc) goto out;
    *parts = sc_index_partitions(c->index, ns, fps, SC_SEARCH_MAX_PARTS);
    size_t np = *parts < SC_SEARCH_MAX_PARTS ? *parts : SC_SEARCH_MAX_PARTS;
    for (size_t p = 0; p < np; p++) {
        size_t m = 0;
        if ((rc = sc_index_search(c->index, ns, fps[p], q, k, part_hits, &m))) goto out;
        /* Merge: insertion into the sorted best-k. */
        for (size_t i = 0; i < m; i++) {
            size_t at = nb;
            while (at > 0 && best[at - 1].score < part_hits[i].score) at--;
            if (at >= k) continue;
            size_t last = nb < k ? nb : k - 1;
            memmove(&best[at + 1], &best[at], (last - at) * sizeof best[0]);
            best[at] = part_hits[i];
            if (nb < k) nb++;
        }
    }
    for (size_t i = 0; i < nb; i++) {
        sc_record r = {0};
        if (sc_store_get(c->store, best[i].id, &r)) continue;   /* expired or gone */
        if (strcmp(r.ns, ns) != 0) {
            sc_record_clear(&r);
            continue;
        }
        hits[*n] = (sc_cache_search_hit){best[i].id, (float)sc_score_of_cos(best[i].score, c->gamma), r};
        (*n)++;
    }
out:
    free(q);
    free(fps);
    return rc;
}

uint64_t sc_cache_generation(sc_cache *c) { return atomic_load(&c->generation); }

void sc_cache_note_exact_hit(sc_cache *c, uint64_t id, int touch)
{
    atomic_fetch_add(&c->lookups, 1);
    atomic_fetch_add(&c->hits_exact, 1);
    if (touch) sc_store_touch(c->store, id, now_s());
}

/* ---------------------------------------------------------------------
 * Store, delete, flush
 * ------------------------------------------------------------------- */

int64_t sc_cache_expires_in(long long ttl)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec + ttl + (ts.tv_nsec > 0);
}

/* Fills the fields sc_cache_put() defaults and the exact key. */
static void prepare(sc_cache *c, sc_record *r, const float *vec, uint8_t key[SC_EXACT_KEY_LEN])
{
    int64_t now = now_s();
    if (!r->created) r->created = now;
    if (!r->last_hit) r->last_hit = now;
    if (!r->expires && c->cfg->default_ttl > 0) r->expires = sc_cache_expires_in(c->cfg->default_ttl);
    if (!r->content_type) r->content_type = "text/plain";
    if (!r->model) r->model = "";
    r->dim = c->dim;
    r->vec = (float *)vec;
    sc_cache_exact_key(r->ns, r->fp, r->prompt, r->prompt_len, key);
}

/* Multi-node mode: the entry goes to the cluster (and is acknowledged
 * there) before it is stored here. A no-op on one node. */
static int share(sc_cache *c, sc_record *r, const uint8_t key[SC_EXACT_KEY_LEN])
{
    if (!c->shared) return SC_OK;
    r->has_exact_key = 1;
    memcpy(r->exact_key, key, SC_EXACT_KEY_LEN);
    return sc_shared_put(c->shared, r);
}

int sc_cache_cluster(sc_cache *c, sc_shared_stats *st)
{
    if (!c->shared) return 0;
    sc_shared_stats_get(c->shared, st);
    return 1;
}

int sc_cache_put(sc_cache *c, sc_record *r, const float *vec)
{
    float *own = NULL;
    if (!vec) {
        own = sc_malloc(sizeof(float) * c->dim);
        const char *p = r->prompt;
        size_t len = r->prompt_len;
        int rc = sc_embed(c->emb, &p, &len, 1, own);
        if (rc) {
            free(own);
            return rc;
        }
        vec = own;
    }
    uint8_t key[SC_EXACT_KEY_LEN];
    prepare(c, r, vec, key);
    uint64_t epoch = sc_akeys_epoch(c->akeys);
    int rc = share(c, r, key);
    if (rc == SC_OK) rc = sc_store_put(c->store, r, key);
    r->vec = NULL;
    r->dim = 0;
    if (rc == SC_OK) {
        rc = sc_index_add(c->index, r->ns, r->fp, r->id, vec);
        atomic_fetch_add(&c->puts, 1);
        /* Off the lookup's path: its answer key, ready for the votes
         * whose candidate it will be. */
        if (c->akeys) (void)answer_key(c, r, epoch);
    }
    free(own);
    return rc;
}

/* Half of a batch embedded on a second thread (embed_batch). */
typedef struct embed_half {
    sc_embedder *emb;
    const char *const *texts;
    const size_t *lens;
    size_t n;
    float *out;
    int rc;
} embed_half;

static void *embed_half_main(void *arg)
{
    embed_half *h = arg;
    h->rc = sc_embed(h->emb, h->texts, h->lens, h->n, h->out);
    return NULL;
}

/* Embeds a batch of an import on this thread and one more (sc_embed is
 * single-threaded, so otherwise the other core idles): ~1.7x the import
 * rate on 2 cores (BENCHMARKS.md). Small batches stay on this thread. */
static int embed_batch(sc_cache *c, const char *const *texts, const size_t *lens, size_t n, float *out)
{
    if (n < SC_IMPORT_SPLIT_MIN) return sc_embed(c->emb, texts, lens, n, out);
    size_t h = n / 2;
    embed_half x = {c->emb, texts + h, lens + h, n - h, out + h * c->dim, SC_OK};
    pthread_t th;
    if (pthread_create(&th, NULL, embed_half_main, &x) != 0) return sc_embed(c->emb, texts, lens, n, out);
    int rc = sc_embed(c->emb, texts, lens, h, out);
    pthread_join(th, NULL);
    return rc ? rc : x.rc;
}

int sc_cache_put_many(sc_cache *c, sc_record *const *recs, size_t n)
{
    enum { BATCH = 64 };
    int first_err = SC_OK;
    float *vecs = sc_malloc(sizeof(float) * c->dim * BATCH);
    uint8_t keys[BATCH][SC_EXACT_KEY_LEN];
    int rcs[BATCH];
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        const char *texts[BATCH];
        size_t lens[BATCH];
        for (size_t k = 0; k < m; k++) {
            texts[k] = recs[i + k]->prompt;
            lens[k] = recs[i + k]->prompt_len;
        }
        int rc = embed_batch(c, texts, lens, m, vecs);
        if (!rc) {
            for (size_t k = 0; k < m; k++) prepare(c, recs[i + k], vecs + k * c->dim, keys[k]);
            if (c->shared) {
                /* One by one: each is acknowledged by the cluster first. */
                rc = SC_OK;
                for (size_t k = 0; k < m; k++) {
                    rcs[k] = share(c, recs[i + k], keys[k]);
                    if (!rcs[k]) rcs[k] = sc_store_put(c->store, recs[i + k], keys[k]);
                    if (rcs[k] && !rc) rc = rcs[k];
                }
            } else {
                rc = sc_store_put_many(c->store, recs + i, (const uint8_t(*)[SC_EXACT_KEY_LEN])keys, m, rcs);
            }
            for (size_t k = 0; k < m; k++) {
                sc_record *r = recs[i + k];
                r->vec = NULL;
                r->dim = 0;
                if (rcs[k] == SC_OK) {
                    sc_index_add(c->index, r->ns, r->fp, r->id, vecs + k * c->dim);
                    atomic_fetch_add(&c->puts, 1);
                } else {
                    r->id = 0;
                }
            }
        } else {
            for (size_t k = 0; k < m; k++) recs[i + k]->id = 0;
        }
        if (rc && !first_err) first_err = rc;
    }
    free(vecs);
    return first_err;
}

int sc_cache_del(sc_cache *c, const char *ns, uint64_t id)
{
    if (c->shared) {
        sc_record r = {0};
        int rc = sc_store_get(c->store, id, &r);
        if (rc == SC_OK && (!ns || strcmp(r.ns, ns) == 0) && r.has_exact_key)
            rc = sc_shared_del(c->shared, r.ns, r.exact_key);
        sc_record_clear(&r);
        if (rc && rc != SC_ENOTFOUND) return rc;
    }
    return sc_store_del(c->store, ns, id);
}

int sc_cache_flush(sc_cache *c, const char *ns, uint64_t *count)
{
    if (c->shared) {
        int src = sc_shared_flush(c->shared, ns);
        if (src) return src;
    }
    return flush_local(c, ns, count);
}

int sc_cache_get(sc_cache *c, uint64_t id, sc_record *r)
{
    return sc_store_get(c->store, id, r);
}

int sc_cache_embed(sc_cache *c, const char *const *texts, const size_t *lens, size_t n, float *out)
{
    return sc_embed(c->emb, texts, lens, n, out);
}

uint32_t sc_cache_dim(const sc_cache *c) { return c->dim; }
const char *sc_cache_embedder_id(const sc_cache *c) { return sc_embedder_id(c->emb); }
double sc_cache_similarity_gamma(const sc_cache *c) { return c->gamma; }

const char *sc_cache_scorer(const sc_cache *c)
{
    if (c->check) return c->vote ? "cosine+vote+check" : "cosine+check";
    return c->verify ? "verifier" : c->vote ? "cosine+vote" : "cosine";
}

double sc_cache_threshold(const sc_cache *c) { return c->threshold; }

struct sc_akeys *sc_cache_akeys(sc_cache *c)
{
    return c->akeys;
}

char *sc_cache_answer_text(const sc_record *r, size_t *len)
{
    if (r->content_type && strncmp(r->content_type, "application/json", 16) == 0) {
        json_t *o = json_loadb(r->response, r->response_len, 0, NULL);
        json_t *ch = o ? json_array_get(json_object_get(o, "choices"), 0) : NULL;
        json_t *t = ch ? json_object_get(json_object_get(ch, "message"), "content") : NULL;
        if (!t && ch) t = json_object_get(ch, "text");
        if (json_is_string(t)) {
            *len = json_string_length(t);
            char *s = sc_strndup(json_string_value(t), *len);
            json_decref(o);
            return s;
        }
        json_decref(o);
    }
    *len = r->response_len;
    return sc_strndup(r->response, r->response_len);
}

void sc_cache_stats_get(sc_cache *c, sc_cache_stats *st)
{
    memset(st, 0, sizeof *st);
    sc_store_stats ss;
    sc_store_stats_get(c->store, &ss);
    sc_index_stats is;
    sc_index_stats_get(c->index, &is);
    st->entries = ss.entries;
    st->bytes = ss.bytes;
    st->disk_bytes = ss.disk_bytes;
    st->evicted = ss.evicted;
    st->expired = ss.expired;
    st->corrupt_skipped = ss.corrupt_skipped;
    st->index_vectors = is.vectors;
    st->index_partitions = is.partitions;
    st->index_ann_partitions = is.ann_partitions;
    st->lookups = atomic_load(&c->lookups);
    st->hits_exact = atomic_load(&c->hits_exact);
    st->hits_semantic = atomic_load(&c->hits_semantic);
    st->misses = atomic_load(&c->misses);
    st->puts = atomic_load(&c->puts);
}
