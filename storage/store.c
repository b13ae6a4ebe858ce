/* The LMDB store: opening and closing the environment, the meta checks
 * (schema, embedder, dimension), the read side (get, get_exact, foreach)
 * and stats. Writes live in store_writer.c.
 *
 * The environment is opened with MDB_NOTLS so read transactions are not
 * tied to threads: reads come from many worker threads, and a small pool of
 * reset read transactions (mdb_txn_reset/renew) avoids taking a reader slot
 * for each get. In nosync durability it is also opened with MDB_NOSYNC and
 * the writer calls mdb_env_sync() on its timer. */
#include "store_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------
 * Small helpers shared with store_writer.c
 * ------------------------------------------------------------------- */

int sc_store__err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return SC_ENOTFOUND;
    case MDB_KEYEXIST: return SC_EEXISTS;
    case MDB_MAP_FULL: case MDB_TXN_FULL: case MDB_PAGE_FULL: case MDB_CURSOR_FULL:
        return SC_EFULL;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID: case MDB_BAD_VALSIZE:
        return SC_ECORRUPT;
    case MDB_VERSION_MISMATCH: return SC_EVERSION;
    case MDB_READERS_FULL: case MDB_TLS_FULL: case MDB_DBS_FULL: return SC_EBUSY;
    case MDB_MAP_RESIZED: return SC_EBUSY;
    default:
        if (rc > 0) return sc_err_from_errno(rc);
        return SC_EIO;
    }
}

void sc_store__id_key(uint8_t out[8], uint64_t id)
{
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(id >> (56 - 8 * i));
}

uint64_t sc_store__key_id(const MDB_val *k)
{
    if (k->mv_size != 8) return 0;
    const uint8_t *p = k->mv_data;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = (id << 8) | p[i];
    return id;
}

int64_t sc_store__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int get_u64le(const MDB_val *v, uint64_t *out)
{
    if (v->mv_size != 8) return SC_ECORRUPT;
    const uint8_t *p = v->mv_data;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
    *out = x;
    return 0;
}

/* ---------------------------------------------------------------------
 * Read transactions
 * ------------------------------------------------------------------- */

static int rtxn_acquire(sc_store *s, MDB_txn **out)
{
    MDB_txn *txn = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool > 0) txn = s->pool[--s->npool];
    pthread_mutex_unlock(&s->pool_mu);
    if (txn) {
        if (mdb_txn_renew(txn) == 0) {
            *out = txn;
            return 0;
        }
        mdb_txn_abort(txn);
    }
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, out);
    return sc_store__err(rc);
}

static void rtxn_release(sc_store *s, MDB_txn *txn)
{
    mdb_txn_reset(txn);
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool < SC_STORE_RTXN_POOL) {
        s->pool[s->npool++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (txn) mdb_txn_abort(txn);
}

/* ---------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char *tmp = sc_strdup(dir);
    int rc = 0;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = sc_err_from_errno(errno);
        *p = '/';
        if (rc) break;
    }
    if (!rc && mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = sc_err_from_errno(errno);
    free(tmp);
    return rc;
}

int sc_store__meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v)
{
    uint8_t b[8];
    put_u64le(b, v);
    MDB_val k = {strlen(name), (void *)name}, d = {8, b};
    return mdb_put(txn, dbi, &k, &d, 0);
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, MDB_val *out)
{
    MDB_val k = {strlen(name), (void *)name};
    return mdb_get(txn, dbi, &k, out);
}

/* Writes the identity of a fresh store (or of a re-embedded one). */
static int meta_write_identity(sc_store *s, MDB_txn *txn)
{
    const char *emb = s->embedder_id;
    MDB_val k = {8, (void *)"embedder"}, d = {strlen(emb), (void *)emb};
    int rc = mdb_put(txn, s->dbi_meta, &k, &d, 0);
    if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "schema", SC_STORE_SCHEMA);
    if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "dim", s->dim);
    return rc;
}

/* Exposed to the writer for STORE_OP_META (re-embed finished). */
int sc_store__meta_write_identity(sc_store *s, MDB_txn *txn);
int sc_store__meta_write_identity(sc_store *s, MDB_txn *txn)
{
    return meta_write_identity(s, txn);
}

/* Cross-checks meta against the entries table (both O(1)): the entry
 * count LMDB keeps, and next_id against the largest id present, so ids stay
 * unique and puts can append even if meta was damaged or the table was
 * written by hand. */
static int reconcile_counters(sc_store *s, MDB_txn *txn)
{
    MDB_stat ms;
    int rc = mdb_stat(txn, s->dbi_entries, &ms);
    if (rc) return sc_store__err(rc);
    if (ms.ms_entries != s->entries) {
        sc_warn("%s: meta counts %llu entries, the table holds %zu; using the table",
                s->dir, (unsigned long long)s->entries, ms.ms_entries);
        s->entries = ms.ms_entries;
        if ((rc = sc_store__meta_put_u64(txn, s->dbi_meta, "entries", s->entries)) != 0)
            return sc_store__err(rc);
    }
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->dbi_entries, &cur)) != 0) return sc_store__err(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == 0) {
        uint64_t last = sc_store__key_id(&k);
        if (last >= s->next_id) {
            sc_warn("%s: next id %llu is not above the largest id %llu; fixed", s->dir,
                    (unsigned long long)s->next_id, (unsigned long long)last);
            s->next_id = last + 1;
            if ((rc = sc_store__meta_put_u64(txn, s->dbi_meta, "next_id", s->next_id)) != 0)
                return sc_store__err(rc);
        }
    } else if (rc == MDB_NOTFOUND) {
        if (s->bytes != 0) {
            s->bytes = 0;
            if ((rc = sc_store__meta_put_u64(txn, s->dbi_meta, "bytes", 0)) != 0)
                return sc_store__err(rc);
        }
    } else {
        return sc_store__err(rc);
    }
    return 0;
}

/* Opens the DBIs and checks or initialises meta, in one write txn. */
static int open_dbs(sc_store *s, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        snprintf(err, errlen, "%s: cannot begin transaction: %s", s->dir, mdb_strerror(rc));
        return sc_store__err(rc);
    }
    if ((rc = mdb_dbi_open(txn, "entries", MDB_CREATE, &s->dbi_entries)) ||
        (rc = mdb_dbi_open(txn, "exact", MDB_CREATE, &s->dbi_exact)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->dbi_meta)) ||
        (rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &s->dbi_expiry)) ||
        (rc = mdb_dbi_open(txn, "learn", MDB_CREATE, &s->dbi_learn))) {
        snprintf(err, errlen, "%s: cannot open tables: %s", s->dir, mdb_strerror(rc));
        mdb_txn_abort(txn);
        return sc_store__err(rc);
    }
    MDB_val v;
    int sc = 0;
    rc = meta_get(txn, s->dbi_meta, "schema", &v);
    if (rc == MDB_NOTFOUND) {
        /* A fresh store. */
        s->next_id = 1;
        rc = meta_write_identity(s, txn);
        if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "next_id", 1);
        if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "entries", 0);
        if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "bytes", 0);
        if (rc) {
            snprintf(err, errlen, "%s: cannot initialise meta: %s", s->dir, mdb_strerror(rc));
            sc = sc_store__err(rc);
        }
    } else if (rc) {
        snprintf(err, errlen, "%s: cannot read meta: %s", s->dir, mdb_strerror(rc));
        sc = sc_store__err(rc);
    } else {
        uint64_t schema = 0, dim = 0;
        MDB_val ev, nv, cv, bv, dv;
        if (get_u64le(&v, &schema) != 0 || meta_get(txn, s->dbi_meta, "embedder", &ev) ||
            meta_get(txn, s->dbi_meta, "dim", &dv) || get_u64le(&dv, &dim) ||
            meta_get(txn, s->dbi_meta, "next_id", &nv) || get_u64le(&nv, &s->next_id) ||
            meta_get(txn, s->dbi_meta, "entries", &cv) || get_u64le(&cv, &s->entries) ||
            meta_get(txn, s->dbi_meta, "bytes", &bv) || get_u64le(&bv, &s->bytes)) {
            snprintf(err, errlen, "%s: the store's meta table is damaged", s->dir);
            sc = SC_ECORRUPT;
        } else if (schema < 1 || schema > SC_STORE_SCHEMA) {
            snprintf(err, errlen, "%s: store schema version %llu, this build reads 1 to %d",
                     s->dir, (unsigned long long)schema, SC_STORE_SCHEMA);
            sc = SC_EVERSION;
        } else {
            MDB_val mv;
            s->migrate = schema < SC_STORE_SCHEMA || meta_get(txn, s->dbi_meta, "migrating", &mv) == 0;
            s->compact = meta_get(txn, s->dbi_meta, "compact", &mv) == 0;
            size_t elen = ev.mv_size > 200 ? 200 : ev.mv_size;
            int same = ev.mv_size == strlen(s->embedder_id) &&
                       memcmp(ev.mv_data, s->embedder_id, ev.mv_size) == 0 && dim == s->dim;
            if (!same && !s->opts.reembed) {
                snprintf(err, errlen,
                         "%s was written by embedder '%.*s' (dim %llu) but the configured "
                         "embedder is '%s' (dim %u); use another data dir, or start with "
                         "--reembed yes to re-embed every entry with it",
                         s->dir, (int)elen, (const char *)ev.mv_data,
                         (unsigned long long)dim, s->embedder_id, s->dim);
                sc = SC_EMISMATCH;
            } else if (!same) {
                sc_warn("%s: written by embedder '%.*s' (dim %llu), configured '%s' (dim %u): "
                        "entries need re-embedding", s->dir, (int)elen,
                        (const char *)ev.mv_data, (unsigned long long)dim, s->embedder_id,
                        s->dim);
                s->needs_reembed = 1;
            }
        }
    }
    if (!sc) sc = reconcile_counters(s, txn);
    if (sc) {
        mdb_txn_abort(txn);
        return sc;
    }
    rc = mdb_txn_commit(txn);
    if (rc) {
        snprintf(err, errlen, "%s: cannot commit meta: %s", s->dir, mdb_strerror(rc));
        return sc_store__err(rc);
    }
    return 0;
}

int sc_store__env_open(sc_store *s, char *err, size_t errlen)
{
    int mrc;
    if ((mrc = mdb_env_create(&s->env)) ||
        (mrc = mdb_env_set_maxdbs(s->env, 8)) ||
        (mrc = mdb_env_set_maxreaders(s->env, 1024)) ||
        (mrc = mdb_env_set_mapsize(s->env, s->map_size))) {
        snprintf(err, errlen, "%s: cannot set up LMDB: %s", s->dir, mdb_strerror(mrc));
        return sc_store__err(mrc);
    }
    unsigned flags = MDB_NOTLS | (s->opts.sync ? 0 : MDB_NOSYNC);
    if ((mrc = mdb_env_open(s->env, s->dir, flags, 0644)) != 0) {
        snprintf(err, errlen, "%s: cannot open LMDB environment: %s", s->dir, mdb_strerror(mrc));
        return sc_store__err(mrc);
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead) sc_info("%s: cleared %d stale reader slot(s)", s->dir, dead);
    return open_dbs(s, err, errlen);
}

int sc_store_open(sc_store **out, const sc_store_opts *opts, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    *out = NULL;
    if (!opts || !opts->dir || !opts->dir[0]) {
        snprintf(err, errlen, "store: no data dir");
        return SC_EINVAL;
    }
    if (opts->dim > SC_RECORD_MAX_DIM) {
        snprintf(err, errlen, "store: dim %u above the maximum %d", opts->dim, SC_RECORD_MAX_DIM);
        return SC_EINVAL;
    }
    int rc = mkdir_p(opts->dir);
    if (rc) {
        snprintf(err, errlen, "%s: cannot create: %s", opts->dir, sc_strerror(rc));
        return rc;
    }
    /* LMDB itself allows several processes, but the writer keeps counters
     * in memory, so a second server on the same dir is refused. */
    char lock_path[4096];
    snprintf(lock_path, sizeof lock_path, "%s/semcached.lock", opts->dir);
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        rc = sc_err_from_errno(errno);
        snprintf(err, errlen, "%s: cannot open: %s", lock_path, strerror(errno));
        return rc;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "%s is in use by another semcached process (%s is locked)",
                 opts->dir, lock_path);
        close(lock_fd);
        return SC_EBUSY;
    }
    sc_store *s = SC_NEW(sc_store);
    s->lock_fd = lock_fd;
    s->opts = *opts;
    s->dir = sc_strdup(opts->dir);
    s->opts.dir = s->dir;
    s->embedder_id = sc_strdup(opts->embedder_id ? opts->embedder_id : "");
    s->opts.embedder_id = s->embedder_id;
    s->dim = opts->dim;
    s->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)sc_store__now_ms();
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->done, NULL);

    long long map_mb = opts->map_size_mb > 0 ? opts->map_size_mb : 1024;
    /* Records above ~2 KB (a 512-d fp16 vector and a 1 KB answer) take
     * whole 4 KB LMDB overflow pages, so the file can be ~1.8x the encoded
     * bytes. */
    if (opts->max_bytes > 0 && opts->max_bytes / (1 << 20) * 2 > map_mb)
        sc_warn("%s: max_bytes %lld may not fit a %lld MB map (pages need up to ~2x "
                "the record bytes); puts may fail with SC_EFULL", opts->dir, opts->max_bytes,
                map_mb);
    s->map_size = (size_t)map_mb << 20;
    sc_store__compact_cleanup(s);
    if ((rc = sc_store__env_open(s, err, errlen)) != 0) goto fail;
    if (s->migrate && (rc = sc_store__migrate(s, err, errlen)) != 0) goto fail;
    /* An upgrade left the old records' pages free inside the file: give
     * them back to the disk. */
    if (s->migrate == 0 && s->compact && (rc = sc_store__compact(s, err, errlen)) != 0) goto fail;
    atomic_store(&s->pub_entries, s->entries);
    atomic_store(&s->pub_bytes, s->bytes);
    if ((rc = sc_store__writer_start(s)) != 0) {
        snprintf(err, errlen, "%s: cannot start the writer thread", s->dir);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    sc_store_close(s);
    return rc;
}

void sc_store_close(sc_store *s)
{
    if (!s) return;
    if (s->writer_started) sc_store__writer_stop(s);
    for (int i = 0; i < s->npool; i++) mdb_txn_abort(s->pool[i]);
    s->npool = 0;
    if (s->env) {
        if (!s->opts.sync) mdb_env_sync(s->env, 1);
        mdb_env_close(s->env);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    free(s->touches);
    free(s->scratch);
    free(s->dir);
    free(s->embedder_id);
    free(s);
}

int sc_store_needs_reembed(sc_store *s)
{
    return s->needs_reembed;
}

/* ---------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------- */

static int expired(int64_t expires, int64_t now)
{
    return expires != 0 && expires <= now;
}

static void note_corrupt(sc_store *s, uint64_t id, int rc)
{
    atomic_fetch_add(&s->corrupt_skipped, 1);
    sc_warn("%s: entry %llu is unreadable (%s); skipped", s->dir, (unsigned long long)id,
            sc_strerror(rc));
}

int sc_store_get(sc_store *s, uint64_t id, sc_record *r)
{
    memset(r, 0, sizeof *r);
    MDB_txn *txn;
    int rc = rtxn_acquire(s, &txn);
    if (rc) return rc;
    uint8_t kb[8];
    sc_store__id_key(kb, id);
    MDB_val k = {8, kb}, v;
    int mrc = mdb_get(txn, s->dbi_entries, &k, &v);
    if (mrc) {
        rc = sc_store__err(mrc);
    } else if ((rc = sc_record_decode(v.mv_data, v.mv_size, r)) != 0) {
        note_corrupt(s, id, rc);
        rc = rc == SC_EVERSION ? SC_EVERSION : SC_ECORRUPT;
    } else if (expired(r->expires, (int64_t)time(NULL))) {
        sc_record_clear(r);
        rc = SC_ENOTFOUND;
    } else {
        r->id = id;
    }
    rtxn_release(s, txn);
    return rc;
}

int sc_store_get_exact(sc_store *s, const uint8_t key[SC_EXACT_KEY_LEN], uint64_t *id)
{
    *id = 0;
    MDB_txn *txn;
    int rc = rtxn_acquire(s, &txn);
    if (rc) return rc;
    MDB_val k = {SC_EXACT_KEY_LEN, (void *)key}, v, ev;
    uint64_t found = 0;
    int mrc = mdb_get(txn, s->dbi_exact, &k, &v);
    if (mrc) {
        rc = sc_store__err(mrc);
    } else if (get_u64le(&v, &found) != 0) {
        rc = SC_ECORRUPT;
    } else {
        uint8_t kb[8];
        sc_store__id_key(kb, found);
        MDB_val ik = {8, kb};
        sc_record_head h;
        if ((mrc = mdb_get(txn, s->dbi_entries, &ik, &ev)) != 0) {
            rc = sc_store__err(mrc);
        } else if (sc_record_peek(ev.mv_data, ev.mv_size, &h) != 0) {
            /* The id is still reported so the caller can delete it. */
            *id = found;
            rc = SC_ECORRUPT;
        } else if (!h.has_exact_key || memcmp(h.exact_key, key, SC_EXACT_KEY_LEN) != 0 ||
                   expired(h.expires, (int64_t)time(NULL))) {
            rc = SC_ENOTFOUND;
        } else {
            *id = found;
        }
    }
    rtxn_release(s, txn);
    return rc;
}

int sc_store_learn_foreach(sc_store *s, int (*fn)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen),
                           void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc) return sc_store__err(mrc);
    if ((mrc = mdb_cursor_open(txn, s->dbi_learn, &cur)) != 0) {
        mdb_txn_abort(txn);
        return sc_store__err(mrc);
    }
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) break;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return SC_OK;
}

/* Walks the entries table in one read transaction: each(x, id, value)
 * for every record, until it returns non-zero. */
static int walk_entries(sc_store *s, int (*each)(void *x, uint64_t id, const MDB_val *v), void *x)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc) return sc_store__err(mrc);
    if ((mrc = mdb_cursor_open(txn, s->dbi_entries, &cur)) != 0) {
        mdb_txn_abort(txn);
        return sc_store__err(mrc);
    }
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (each(x, sc_store__key_id(&k), &v)) break;
    int rc = mrc != 0 && mrc != MDB_NOTFOUND ? sc_store__err(mrc) : 0;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

typedef struct walk_ctx {
    sc_store *s;
    int64_t now;
    int (*fn)(void *ctx, const sc_record *r);
    int (*vfn)(void *ctx, uint64_t id, const sc_record_head *h, const float *vec);
    void *ctx;
    float *vec;
} walk_ctx;

/* Live, decodable records to fn (corrupt ones counted and skipped). */
static int each_record(void *x, uint64_t id, const MDB_val *v)
{
    walk_ctx *w = x;
    sc_record r;
    int drc = sc_record_decode(v->mv_data, v->mv_size, &r);
    if (drc != 0) {
        note_corrupt(w->s, id, drc);
        return 0;
    }
    int stop = 0;
    if (!expired(r.expires, w->now)) {
        r.id = id;
        stop = w->fn(w->ctx, &r);
    }
    sc_record_clear(&r);
    return stop;
}

static int each_vector(void *x, uint64_t id, const MDB_val *v)
{
    walk_ctx *w = x;
    sc_record_head h;
    int drc = sc_record_decode_vector(v->mv_data, v->mv_size, &h, w->vec, SC_RECORD_MAX_DIM);
    if (drc != 0) {
        note_corrupt(w->s, id, drc);
        return 0;
    }
    return !expired(h.expires, w->now) && w->vfn(w->ctx, id, &h, h.dim ? w->vec : NULL);
}

int sc_store_foreach(sc_store *s, int (*fn)(void *ctx, const sc_record *r), void *ctx)
{
    walk_ctx w = {.s = s, .now = (int64_t)time(NULL), .fn = fn, .ctx = ctx};
    return walk_entries(s, each_record, &w);
}

int sc_store_foreach_vector(sc_store *s,
                            int (*fn)(void *ctx, uint64_t id, const sc_record_head *h, const float *vec),
                            void *ctx)
{
    walk_ctx w = {.s = s, .now = (int64_t)time(NULL), .vfn = fn, .ctx = ctx,
                  .vec = sc_malloc(SC_RECORD_MAX_DIM * sizeof(float))};
    int rc = walk_entries(s, each_vector, &w);
    free(w.vec);
    return rc;
}

void sc_store_stats_get(sc_store *s, sc_store_stats *st)
{
    memset(st, 0, sizeof *st);
    st->entries = atomic_load(&s->pub_entries);
    st->bytes = atomic_load(&s->pub_bytes);
    st->evicted = atomic_load(&s->evicted);
    st->expired = atomic_load(&s->expired);
    st->corrupt_skipped = atomic_load(&s->corrupt_skipped);
    st->commits = atomic_load(&s->commits);
    MDB_envinfo info;
    MDB_stat ms;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &ms) == 0)
        st->disk_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
}
