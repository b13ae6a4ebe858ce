/* The store's single writer thread and every write operation.
 *
 * Callers (sc_store_put, _update, _del, _flush_ns, _evict) build a
 * store_op on their stack, append it to the queue and wait on a condvar.
 * The writer takes everything queued at once and applies it in one LMDB
 * write transaction (group commit): while it commits (and, in sync mode,
 * fsyncs) one batch, the next batch gathers. Touches (hit counters) are
 * fire-and-forget: they wait in an array and ride along with the next
 * batch, or go alone after SC_STORE_TOUCH_DELAY_MS.
 *
 * Failure handling: an LMDB error inside a transaction (MDB_MAP_FULL, ...)
 * spoils the whole transaction, so the writer aborts it and re-runs each op
 * of the batch in a transaction of its own; only the op that fails gets the
 * error (MDB_MAP_FULL -> SC_EFULL). Counter changes and removal (and
 * update) callbacks are collected per transaction and applied only after
 * it committed.
 *
 * Tables touched here: entries (id -> record), exact (key -> id, u64 LE),
 * expiry ((expires BE, sign-flipped) | id BE -> empty; lets evict find the
 * expired entries without a scan) and meta (next_id, entries, bytes). */
#include "store_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

int sc_store__meta_write_identity(sc_store *s, MDB_txn *txn);

#define SAMPLE_K 16            /* entries sampled per eviction round */
#define SCAN_ALL_BELOW 64      /* below this many entries, scan instead */

/* ---------------------------------------------------------------------
 * Transaction context
 * ------------------------------------------------------------------- */

/* A removal (or, with updated set, an update) to report after commit. */
typedef struct removal {
    uint64_t id, fp;
    int updated;
    char ns[SC_RECORD_MAX_NS + 1];
} removal;

typedef struct wctx {
    sc_store *s;
    MDB_txn *txn;
    int mrc;                   /* first LMDB error: the txn is spoilt */
    size_t put_pages;          /* pages the puts of this txn may take */
    size_t free_pages;         /* LMDB's free list, counted once per txn (+1; 0 = not yet) */
    uint64_t next_id, entries, bytes;
    uint64_t evicted, expired;
    int wrote_meta_counters;
    removal *rm;
    size_t nrm, rm_cap;
} wctx;

static int fail(wctx *c, int mrc)
{
    if (!c->mrc) c->mrc = mrc;
    return sc_store__err(mrc);
}

static void expiry_key(uint8_t out[16], int64_t expires, uint64_t id)
{
    uint64_t e = (uint64_t)expires ^ (1ull << 63);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(e >> (56 - 8 * i));
    sc_store__id_key(out + 8, id);
}

static void push_report(wctx *c, uint64_t id, const sc_record_head *h, int updated)
{
    if (!(updated ? c->s->opts.on_update : c->s->opts.on_remove)) return;
    if (c->nrm == c->rm_cap) {
        c->rm_cap = c->rm_cap ? c->rm_cap * 2 : 16;
        c->rm = sc_realloc(c->rm, c->rm_cap * sizeof *c->rm);
    }
    removal *r = &c->rm[c->nrm++];
    r->id = id;
    r->updated = updated;
    r->fp = h ? h->fp : 0;
    if (h)
        memcpy(r->ns, h->ns, sizeof r->ns);
    else
        r->ns[0] = '\0';
}

/* Deletes a key that may already be gone (aux tables). */
static int del_aux(wctx *c, MDB_dbi dbi, void *key, size_t klen)
{
    MDB_val k = {klen, key};
    int mrc = mdb_del(c->txn, dbi, &k, NULL);
    if (mrc && mrc != MDB_NOTFOUND) return fail(c, mrc);
    return 0;
}

/* Removes entry id (whose current value is v) and its exact and expiry
 * keys; accounts and queues the removal callback. */
static int remove_entry(wctx *c, uint64_t id, MDB_val v)
{
    sc_store *s = c->s;
    sc_record_head h;
    int have_head = sc_record_peek(v.mv_data, v.mv_size, &h) == 0;
    size_t size = v.mv_size;
    if (have_head && h.has_exact_key) {
        /* Drop the exact key only if it still points at this entry. */
        MDB_val k = {SC_EXACT_KEY_LEN, h.exact_key}, ev;
        int mrc = mdb_get(c->txn, s->dbi_exact, &k, &ev);
        if (mrc == 0 && ev.mv_size == 8) {
            uint64_t other = 0;
            const uint8_t *p = ev.mv_data;
            for (int i = 7; i >= 0; i--) other = (other << 8) | p[i];
            int rc = other == id ? del_aux(c, s->dbi_exact, h.exact_key, SC_EXACT_KEY_LEN) : 0;
            if (rc) return rc;
        } else if (mrc && mrc != MDB_NOTFOUND) {
            return fail(c, mrc);
        }
    }
    if (have_head && h.expires) {
        uint8_t ek[16];
        expiry_key(ek, h.expires, id);
        int rc = del_aux(c, s->dbi_expiry, ek, sizeof ek);
        if (rc) return rc;
    }
    uint8_t kb[9];
    sc_store__id_key(kb, id);
    MDB_val k = {8, kb};
    int mrc = mdb_del(c->txn, s->dbi_entries, &k, NULL);
    if (mrc) return fail(c, mrc);
    /* What was learned about the entry goes with it (sc_store_learn_put). */
    kb[8] = 0;
    memmove(kb + 1, kb, 8);
    kb[0] = SC_STORE_LEARN_ENTRY;
    int rc = del_aux(c, s->dbi_learn, kb, 9);
    if (rc) return rc;
    c->entries = c->entries ? c->entries - 1 : 0;
    c->bytes = c->bytes >= size ? c->bytes - size : 0;
    push_report(c, id, have_head ? &h : NULL, 0);
    return 0;
}

static int get_entry(wctx *c, uint64_t id, MDB_val *v)
{
    uint8_t kb[8];
    sc_store__id_key(kb, id);
    MDB_val k = {8, kb};
    int mrc = mdb_get(c->txn, c->s->dbi_entries, &k, v);
    if (mrc == MDB_NOTFOUND) return SC_ENOTFOUND;
    if (mrc) return fail(c, mrc);
    return 0;
}

/* ---------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------- */

static int put_exact(wctx *c, const uint8_t *key, uint64_t id)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(id >> (8 * i));
    MDB_val k = {SC_EXACT_KEY_LEN, (void *)key}, d = {8, b};
    int mrc = mdb_put(c->txn, c->s->dbi_exact, &k, &d, 0);
    return mrc ? fail(c, mrc) : 0;
}

/* *id = the entry exact key `key` maps to, 0 when unmapped. */
static int exact_get(wctx *c, const uint8_t *key, uint64_t *id)
{
    MDB_val k = {SC_EXACT_KEY_LEN, (void *)key}, ev;
    *id = 0;
    int mrc = mdb_get(c->txn, c->s->dbi_exact, &k, &ev);
    if (mrc == MDB_NOTFOUND) return 0;
    if (mrc) return fail(c, mrc);
    if (ev.mv_size != 8) return 0;
    const uint8_t *p = ev.mv_data;
    for (int i = 7; i >= 0; i--) *id = (*id << 8) | p[i];
    return 0;
}

/* *owner = the entry other than self that key belongs to: the mapped entry,
 * if it is present and its record is filed under key; else 0 (the key is
 * free, or the mapping is stale). */
static int exact_owner(wctx *c, const uint8_t *key, uint64_t self, uint64_t *owner)
{
    uint64_t id;
    MDB_val v;
    sc_record_head h;
    *owner = 0;
    int rc = exact_get(c, key, &id);
    if (rc || !id || id == self) return rc;
    rc = get_entry(c, id, &v);
    if (rc == SC_ENOTFOUND) return 0;
    if (rc) return rc;
    if (sc_record_peek(v.mv_data, v.mv_size, &h) == 0 && h.has_exact_key &&
        memcmp(h.exact_key, key, SC_EXACT_KEY_LEN) == 0)
        *owner = id;
    return 0;
}

static int put_expiry(wctx *c, int64_t expires, uint64_t id)
{
    if (!expires) return 0;
    uint8_t ek[16];
    expiry_key(ek, expires, id);
    MDB_val k = {sizeof ek, ek}, d = {0, NULL};
    int mrc = mdb_put(c->txn, c->s->dbi_expiry, &k, &d, 0);
    return mrc ? fail(c, mrc) : 0;
}

/* Room kept free in the LMDB map for removals: a delete or a flush needs
 * fresh pages too (copy-on-write of the tree, the free list's own record),
 * so a map filled to its last page could not even be flushed to make room.
 * A put that would leave less than this is refused with SC_EFULL. Best
 * effort: the free list's count includes pages an open reader still pins
 * (not reusable until it ends), so a long reader can shrink the reserve. */
#define RESERVE_MIN_PAGES 128
#define RESERVE_DIV 50               /* at least 2 % of the map */

/* Pages on LMDB's free list (reusable) as last committed. LMDB opens no
 * cursor on its free list in a write txn, so this reads it in a read txn
 * of its own (the env is MDB_NOTLS: allowed beside the writer's txn).
 * Only called near the end of the map. */
static size_t free_list_pages(MDB_env *env)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) return 0;
    if (mdb_cursor_open(txn, 0, &cur)) {   /* dbi 0: LMDB's FREE_DBI */
        mdb_txn_abort(txn);
        return 0;
    }
    size_t n = 0;
    MDB_val k, v;
    for (int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (v.mv_size >= sizeof(size_t)) {
            size_t cnt;
            memcpy(&cnt, v.mv_data, sizeof cnt);   /* an IDL: count, then the page numbers */
            n += cnt;
        }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

/* 1 when a record of len bytes fits and leaves the reserve. */
static int room_for_put(wctx *c, size_t len)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(c->s->env, &info) || mdb_env_stat(c->s->env, &st) || !st.ms_psize) return 1;
    size_t psize = st.ms_psize, map_pages = info.me_mapsize / psize;
    size_t need = len / psize + 8;   /* overflow pages, and the trees' pages it may split */
    size_t reserve = map_pages / RESERVE_DIV > RESERVE_MIN_PAGES ? map_pages / RESERVE_DIV : RESERVE_MIN_PAGES;
    size_t tail = map_pages > info.me_last_pgno + 1 ? map_pages - info.me_last_pgno - 1 : 0;
    size_t want = c->put_pages + need + reserve;
    if (tail < want) {
        if (!c->free_pages) c->free_pages = free_list_pages(c->s->env) + 1;
        if (tail + c->free_pages - 1 < want) return 0;
    }
    c->put_pages += need;
    return 1;
}

static int op_put(wctx *c, store_op *op)
{
    sc_store *s = c->s;
    int rc;
    if (!room_for_put(c, op->len)) return SC_EFULL;
    if (op->exact) {
        MDB_val k = {SC_EXACT_KEY_LEN, (void *)op->exact}, ev, old;
        int mrc = mdb_get(c->txn, s->dbi_exact, &k, &ev);
        if (mrc == 0 && ev.mv_size == 8) {
            uint64_t old_id = 0;
            const uint8_t *p = ev.mv_data;
            for (int i = 7; i >= 0; i--) old_id = (old_id << 8) | p[i];
            rc = get_entry(c, old_id, &old);
            if (rc == 0) rc = remove_entry(c, old_id, old);
            if (rc && rc != SC_ENOTFOUND) return rc;
        } else if (mrc && mrc != MDB_NOTFOUND) {
            return fail(c, mrc);
        }
    }
    uint64_t id = c->next_id++;
    uint8_t kb[8];
    sc_store__id_key(kb, id);
    MDB_val k = {8, kb}, d = {op->len, (void *)op->buf};
    int mrc = mdb_put(c->txn, s->dbi_entries, &k, &d, MDB_APPEND);
    if (mrc) return fail(c, mrc);
    if (op->exact && (rc = put_exact(c, op->exact, id)) != 0) return rc;
    if ((rc = put_expiry(c, op->expires, id)) != 0) return rc;
    c->entries++;
    c->bytes += op->len;
    op->id = id;
    return 0;
}

static int op_update(wctx *c, store_op *op)
{
    sc_store *s = c->s;
    MDB_val old;
    int rc = get_entry(c, op->id, &old);
    if (rc) return rc;
    sc_record_head oh, nh;
    int have_old = sc_record_peek(old.mv_data, old.mv_size, &oh) == 0;
    if (sc_record_peek(op->buf, op->len, &nh) != 0) return SC_EINVAL;
    size_t old_size = old.mv_size;
    if (have_old && oh.expires && oh.expires != nh.expires) {
        uint8_t ek[16];
        expiry_key(ek, oh.expires, op->id);
        if ((rc = del_aux(c, s->dbi_expiry, ek, sizeof ek)) != 0) return rc;
    }
    /* The exact keys: the old one is dropped only if it maps to this entry,
     * and the new one is taken only if no other present entry is filed
     * under it (else that entry keeps it; see sc_store_update()). */
    if (have_old && oh.has_exact_key &&
        (!nh.has_exact_key || memcmp(oh.exact_key, nh.exact_key, SC_EXACT_KEY_LEN) != 0)) {
        uint64_t mapped;
        if ((rc = exact_get(c, oh.exact_key, &mapped)) != 0) return rc;
        if (mapped == op->id &&
            (rc = del_aux(c, s->dbi_exact, oh.exact_key, SC_EXACT_KEY_LEN)) != 0)
            return rc;
    }
    uint64_t owner = 0;
    if (nh.has_exact_key && (rc = exact_owner(c, nh.exact_key, op->id, &owner)) != 0) return rc;
    uint8_t kb[8];
    sc_store__id_key(kb, op->id);
    MDB_val k = {8, kb}, d = {op->len, (void *)op->buf};
    int mrc = mdb_put(c->txn, s->dbi_entries, &k, &d, 0);
    if (mrc) return fail(c, mrc);
    if (nh.has_exact_key && !owner && (rc = put_exact(c, nh.exact_key, op->id)) != 0) return rc;
    if ((rc = put_expiry(c, nh.expires, op->id)) != 0) return rc;
    c->bytes = c->bytes - (c->bytes >= old_size ? old_size : c->bytes) + op->len;
    push_report(c, op->id, &nh, 1);
    return 0;
}

static int op_del(wctx *c, store_op *op)
{
    MDB_val v;
    int rc = get_entry(c, op->id, &v);
    if (rc) return rc;
    if (op->ns) {
        sc_record_head h;
        if (sc_record_peek(v.mv_data, v.mv_size, &h) != 0 || strcmp(h.ns, op->ns) != 0)
            return SC_ENOTFOUND;
    }
    return remove_entry(c, op->id, v);
}

/* Collects the ids of entries for which match() holds, then removes them
 * (deleting while a cursor walks the same table is avoided on purpose). */
static int op_flush(wctx *c, store_op *op)
{
    sc_store *s = c->s;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->txn, s->dbi_entries, &cur);
    if (mrc) return fail(c, mrc);
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sc_record_head h;
        if (sc_record_peek(v.mv_data, v.mv_size, &h) != 0 || strcmp(h.ns, op->ns) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = sc_realloc(ids, cap * sizeof *ids);
        }
        ids[n++] = sc_store__key_id(&k);
    }
    mdb_cursor_close(cur);
    int rc = 0;
    if (mrc != MDB_NOTFOUND) rc = fail(c, mrc);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = get_entry(c, ids[i], &v);
        if (rc == 0) rc = remove_entry(c, ids[i], v);
        if (rc == SC_ENOTFOUND) rc = 0;
    }
    free(ids);
    op->count = rc ? 0 : n;
    return rc;
}

static uint64_t rng_next(sc_store *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s->rng = x;
}

/* Finds the entry with the oldest last_hit: all of them when few, else
 * the oldest of SAMPLE_K random positions. An unreadable record is picked
 * at once. Returns 0 and *victim, or SC_ENOTFOUND when empty. */
static int pick_victim(wctx *c, uint64_t *victim)
{
    sc_store *s = c->s;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->txn, s->dbi_entries, &cur);
    if (mrc) return fail(c, mrc);
    MDB_val k, v;
    int rc = SC_ENOTFOUND;
    int64_t best = 0;
    sc_record_head h;
    if (c->entries <= SCAN_ALL_BELOW) {
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            int ok = sc_record_peek(v.mv_data, v.mv_size, &h) == 0;
            if (!ok || rc != 0 || h.last_hit < best) {
                *victim = sc_store__key_id(&k);
                best = ok ? h.last_hit : INT64_MIN;
                rc = 0;
                if (!ok) break;
            }
        }
    } else {
        uint64_t lo = 0, hi = 0;
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) lo = sc_store__key_id(&k);
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0) hi = sc_store__key_id(&k);
        for (int i = 0; i < SAMPLE_K && hi >= lo && hi; i++) {
            uint64_t want = lo + rng_next(s) % (hi - lo + 1);
            uint8_t kb[8];
            sc_store__id_key(kb, want);
            k.mv_size = 8;
            k.mv_data = kb;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
            if (mrc) break;
            int ok = sc_record_peek(v.mv_data, v.mv_size, &h) == 0;
            if (!ok || rc != 0 || h.last_hit < best) {
                *victim = sc_store__key_id(&k);
                best = ok ? h.last_hit : INT64_MIN;
                rc = 0;
                if (!ok) break;
            }
        }
    }
    mdb_cursor_close(cur);
    if (mrc && mrc != MDB_NOTFOUND) return fail(c, mrc);
    return rc;
}

static int over_caps(const wctx *c)
{
    const sc_store_opts *o = &c->s->opts;
    return (o->max_entries > 0 && c->entries > (uint64_t)o->max_entries) ||
           (o->max_bytes > 0 && c->bytes > (uint64_t)o->max_bytes);
}

static int enforce_caps(wctx *c, uint64_t *removed)
{
    while (over_caps(c)) {
        uint64_t id;
        MDB_val v;
        int rc = pick_victim(c, &id);
        if (rc == SC_ENOTFOUND) {
            /* The table is empty: the counters drifted (damaged meta).
             * Reset them rather than loop. */
            c->entries = 0;
            c->bytes = 0;
            break;
        }
        if (rc) return rc;
        if ((rc = get_entry(c, id, &v)) != 0) return rc;
        if ((rc = remove_entry(c, id, v)) != 0) return rc;
        c->evicted++;
        if (removed) (*removed)++;
    }
    return 0;
}

static int op_evict(wctx *c, store_op *op)
{
    sc_store *s = c->s;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->txn, s->dbi_expiry, &cur);
    if (mrc) return fail(c, mrc);
    uint8_t (*keys)[16] = NULL;
    size_t n = 0, cap = 0;
    uint8_t limit[16];
    expiry_key(limit, op->now, UINT64_MAX);
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || memcmp(k.mv_data, limit, 16) > 0) break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            keys = sc_realloc(keys, cap * sizeof *keys);
        }
        memcpy(keys[n++], k.mv_data, 16);
    }
    mdb_cursor_close(cur);
    int rc = 0;
    if (mrc && mrc != MDB_NOTFOUND) rc = fail(c, mrc);
    uint64_t removed = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        MDB_val kk = {8, keys[i] + 8};
        uint64_t id = sc_store__key_id(&kk);
        if ((rc = del_aux(c, s->dbi_expiry, keys[i], 16)) != 0) break;
        rc = get_entry(c, id, &v);
        if (rc == SC_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0) rc = remove_entry(c, id, v);
        if (rc == 0) {
            c->expired++;
            removed++;
        }
    }
    free(keys);
    if (!rc) rc = enforce_caps(c, &removed);
    op->count = rc ? 0 : removed;
    return rc;
}

static int apply_op(wctx *c, store_op *op)
{
    switch (op->kind) {
    case STORE_OP_PUT: return op_put(c, op);
    case STORE_OP_UPDATE: return op_update(c, op);
    case STORE_OP_DEL: return op_del(c, op);
    case STORE_OP_FLUSH: return op_flush(c, op);
    case STORE_OP_EVICT: return op_evict(c, op);
    case STORE_OP_META: {
        int mrc = sc_store__meta_write_identity(c->s, c->txn);
        return mrc ? fail(c, mrc) : 0;
    }
    case STORE_OP_LEARN: {
        MDB_val k = {op->klen, (void *)op->key};
        if (op->len == 0) return del_aux(c, c->s->dbi_learn, (void *)op->key, op->klen);
        MDB_val v = {op->len, (void *)op->buf};
        int mrc = mdb_put(c->txn, c->s->dbi_learn, &k, &v, 0);
        return mrc ? fail(c, mrc) : 0;
    }
    }
    return SC_EINVAL;
}

static void apply_touches(wctx *c, const store_touch *t, size_t n)
{
    sc_store *s = c->s;
    for (size_t i = 0; i < n && !c->mrc; i++) {
        MDB_val v;
        if (get_entry(c, t[i].id, &v) != 0) continue;
        if (v.mv_size > s->scratch_cap) {
            s->scratch_cap = v.mv_size;
            s->scratch = sc_realloc(s->scratch, s->scratch_cap);
        }
        memcpy(s->scratch, v.mv_data, v.mv_size);
        if (sc_record_patch_hit(s->scratch, v.mv_size, t[i].now) != 0) continue;
        uint8_t kb[8];
        sc_store__id_key(kb, t[i].id);
        MDB_val k = {8, kb}, d = {v.mv_size, s->scratch};
        int mrc = mdb_put(c->txn, s->dbi_entries, &k, &d, 0);
        if (mrc) fail(c, mrc);
    }
}

static int write_counters(wctx *c)
{
    sc_store *s = c->s;
    static const char *names[3] = {"next_id", "entries", "bytes"};
    uint64_t vals[3] = {c->next_id, c->entries, c->bytes};
    uint64_t olds[3] = {s->next_id, s->entries, s->bytes};
    for (int i = 0; i < 3; i++) {
        if (vals[i] == olds[i]) continue;
        uint8_t b[8];
        for (int j = 0; j < 8; j++) b[j] = (uint8_t)(vals[i] >> (8 * j));
        MDB_val k = {strlen(names[i]), (void *)names[i]}, d = {8, b};
        int mrc = mdb_put(c->txn, s->dbi_meta, &k, &d, 0);
        if (mrc) return fail(c, mrc);
    }
    return 0;
}

/* LMDB reports a write cut short by a full disk as EIO (only a write that
 * wrote nothing carries ENOSPC): name the cause when the data dir's disk
 * is (nearly) full. */
static int disk_cause(sc_store *s, int rc)
{
    struct statvfs fs;
    if (rc == SC_EIO && statvfs(s->dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < (1u << 20))
        return SC_ENOSPACE;
    return rc;
}

/* Runs ops[0..n) and the touches in one transaction. Returns 0 when it
 * committed (each op->rc holds its own result), else the SC_E* error that
 * spoilt the transaction (nothing of it happened). */
static int run_txn(sc_store *s, store_op **ops, size_t n, const store_touch *t, size_t nt)
{
    wctx c = {.s = s, .next_id = s->next_id, .entries = s->entries, .bytes = s->bytes};
    int mrc = mdb_txn_begin(s->env, NULL, 0, &c.txn);
    if (mrc) return sc_store__err(mrc);
    int any_put = 0;
    for (size_t i = 0; i < n && !c.mrc; i++) {
        ops[i]->rc = apply_op(&c, ops[i]);
        any_put |= ops[i]->kind == STORE_OP_PUT || ops[i]->kind == STORE_OP_UPDATE;
    }
    if (!c.mrc && nt) apply_touches(&c, t, nt);
    if (!c.mrc && any_put) enforce_caps(&c, NULL);
    if (!c.mrc) write_counters(&c);
    if (!c.mrc) {
        mrc = mdb_txn_commit(c.txn);
        if (mrc) c.mrc = mrc;
    } else {
        mdb_txn_abort(c.txn);
    }
    if (c.mrc) {
        free(c.rm);
        return disk_cause(s, sc_store__err(c.mrc));
    }
    s->next_id = c.next_id;
    s->entries = c.entries;
    s->bytes = c.bytes;
    atomic_store(&s->pub_entries, c.entries);
    atomic_store(&s->pub_bytes, c.bytes);
    atomic_fetch_add(&s->evicted, c.evicted);
    atomic_fetch_add(&s->expired, c.expired);
    atomic_fetch_add(&s->commits, 1);
    for (size_t i = 0; i < c.nrm; i++)
        (c.rm[i].updated ? s->opts.on_update : s->opts.on_remove)(s->opts.on_remove_ctx, c.rm[i].id,
                                                                  c.rm[i].ns, c.rm[i].fp);
    free(c.rm);
    return 0;
}

static void run_batch(sc_store *s, store_op **ops, size_t n, const store_touch *t, size_t nt)
{
    int rc = run_txn(s, ops, n, t, nt);
    if (rc == 0) return;
    if (n == 1 && nt == 0) {
        ops[0]->rc = rc;
        return;
    }
    /* Something spoilt the shared transaction: retry each op alone so only
     * the culprit fails. Pending touches are dropped (they are advisory). */
    if (nt) sc_debug("%s: dropping %zu touches after %s", s->dir, nt, sc_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        int r1 = run_txn(s, &ops[i], 1, NULL, 0);
        if (r1) ops[i]->rc = r1;
    }
}

/* ---------------------------------------------------------------------
 * The writer thread
 * ------------------------------------------------------------------- */

static void deadline_ts(struct timespec *ts, int64_t ms)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (ms % 1000) * 1000000;
}

static void *writer_main(void *arg)
{
    sc_store *s = arg;
    store_op **ops = NULL;
    size_t ops_cap = 0;
    store_touch *tbuf = NULL;
    size_t tcap = 0;
    int dirty = 0;
    int64_t dirty_since = 0;
    int64_t window = s->opts.sync_window_ms > 0 ? s->opts.sync_window_ms : 1000;

    size_t last_n = 0, queued_at_finish = 0;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (;;) {
            int64_t now = sc_store__now_ms();
            if (s->head || s->stop) break;
            if (s->ntouch && now - s->touch_first_ms >= SC_STORE_TOUCH_DELAY_MS) break;
            if (dirty && now - dirty_since >= window) break;
            int64_t wake_at = INT64_MAX;
            if (s->ntouch) wake_at = s->touch_first_ms + SC_STORE_TOUCH_DELAY_MS;
            if (dirty && dirty_since + window < wake_at) wake_at = dirty_since + window;
            if (wake_at == INT64_MAX) {
                pthread_cond_wait(&s->wake, &s->mu);
            } else {
                struct timespec ts;
                deadline_ts(&ts, wake_at);
                pthread_cond_timedwait(&s->wake, &s->mu, &ts);
            }
        }
        /* Sync mode: gather. The threads of the last batch were just
         * released and will mostly be back within microseconds; without
         * waiting for them, concurrent putters split into alternating
         * groups and each fsync carries only half of them. The target is
         * what the last batch plus what queued behind it suggest; the wait
         * is bounded by SC_STORE_GATHER_US (small next to an fsync), and a
         * single putter (target 1) never waits. */
        if (s->opts.sync && !s->stop) {
            size_t target = last_n + queued_at_finish;
            if (target > SC_STORE_GATHER_MAX) target = SC_STORE_GATHER_MAX;
            if (s->nqueued < target) {
                struct timespec now_ts, ts;
                clock_gettime(CLOCK_MONOTONIC, &now_ts);
                int64_t ns = (int64_t)now_ts.tv_nsec + SC_STORE_GATHER_US * 1000;
                ts.tv_sec = now_ts.tv_sec + ns / 1000000000;
                ts.tv_nsec = ns % 1000000000;
                while (s->nqueued < target && !s->stop &&
                       pthread_cond_timedwait(&s->wake, &s->mu, &ts) == 0) {
                }
            }
        }
        /* Take the whole queue and the pending touches. */
        store_op *list = s->head;
        s->head = s->tail = NULL;
        s->nqueued = 0;
        size_t n = 0;
        for (store_op *o = list; o; o = o->next) {
            if (n == ops_cap) {
                ops_cap = ops_cap ? ops_cap * 2 : 64;
                ops = sc_realloc(ops, ops_cap * sizeof *ops);
            }
            ops[n++] = o;
        }
        size_t nt = s->ntouch;
        if (nt) {
            if (nt > tcap) {
                tcap = nt;
                tbuf = sc_realloc(tbuf, tcap * sizeof *tbuf);
            }
            memcpy(tbuf, s->touches, nt * sizeof *tbuf);
            s->ntouch = 0;
        }
        int stopping = s->stop;
        pthread_mutex_unlock(&s->mu);

        if (n || nt) {
            run_batch(s, ops, n, tbuf, nt);
            if (!s->opts.sync && !dirty) {
                dirty = 1;
                dirty_since = sc_store__now_ms();
            }
        }
        if (dirty && (stopping || sc_store__now_ms() - dirty_since >= window)) {
            int mrc = mdb_env_sync(s->env, 1);
            if (mrc) sc_warn("%s: sync failed: %s", s->dir, mdb_strerror(mrc));
            dirty = 0;
        }

        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < n; i++) ops[i]->done = 1;
        if (n) pthread_cond_broadcast(&s->done);
        if (n) {
            last_n = n;
            queued_at_finish = s->nqueued;
        }
        if (stopping && !s->head && !s->ntouch) break;
    }
    pthread_mutex_unlock(&s->mu);
    free(ops);
    free(tbuf);
    return NULL;
}

int sc_store__writer_start(sc_store *s)
{
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) return SC_ENOMEM;
    s->writer_started = 1;
    return 0;
}

void sc_store__writer_stop(sc_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    s->writer_started = 0;
}

/* Queues op and waits until the writer has committed its batch. */
static int submit(sc_store *s, store_op *op)
{
    op->next = NULL;
    op->done = 0;
    op->rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        return SC_ECLOSED;
    }
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    s->nqueued++;
    pthread_cond_signal(&s->wake);
    while (!op->done) pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return op->rc;
}

/* Queues n ops at once (so they share one transaction and one fsync)
 * and waits until all are committed. */
static void submit_many(sc_store *s, store_op *ops, size_t n)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        store_op *op = &ops[i];
        op->next = NULL;
        op->done = 0;
        if (s->stop) {
            op->rc = SC_ECLOSED;
            op->done = 1;
            continue;
        }
        if (s->tail)
            s->tail->next = op;
        else
            s->head = op;
        s->tail = op;
        s->nqueued++;
    }
    pthread_cond_signal(&s->wake);
    for (size_t i = 0; i < n; i++)
        while (!ops[i].done) pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------------
 * Public write functions
 * ------------------------------------------------------------------- */

int sc_store_put(sc_store *s, sc_record *r, const uint8_t exact_key[SC_EXACT_KEY_LEN])
{
    if (r->dim && r->dim != s->dim) return SC_EINVAL;
    int saved_has = r->has_exact_key;
    uint8_t saved_key[SC_RECORD_EXACT_LEN];
    memcpy(saved_key, r->exact_key, sizeof saved_key);
    if (exact_key) {
        r->has_exact_key = 1;
        memcpy(r->exact_key, exact_key, SC_EXACT_KEY_LEN);
    } else {
        r->has_exact_key = 0;
        memset(r->exact_key, 0, sizeof r->exact_key);
    }
    uint8_t *buf;
    size_t len;
    int rc = sc_record_encode(r, &buf, &len);
    if (rc) {
        r->has_exact_key = saved_has;
        memcpy(r->exact_key, saved_key, sizeof saved_key);
        return rc;
    }
    store_op op = {.kind = STORE_OP_PUT, .buf = buf, .len = len, .exact = exact_key,
                   .expires = r->expires};
    rc = submit(s, &op);
    free(buf);
    if (rc == 0) r->id = op.id;
    return rc;
}

int sc_store_put_many(sc_store *s, sc_record *const *recs, const uint8_t (*keys)[SC_EXACT_KEY_LEN],
                      size_t n, int *rcs)
{
    store_op *ops = sc_calloc(n ? n : 1, sizeof *ops);
    uint8_t **bufs = sc_calloc(n ? n : 1, sizeof *bufs);
    size_t nq = 0;
    int first = 0;
    size_t *which = sc_calloc(n ? n : 1, sizeof *which);
    for (size_t i = 0; i < n; i++) {
        sc_record *r = recs[i];
        rcs[i] = 0;
        if (r->dim && r->dim != s->dim) {
            rcs[i] = SC_EINVAL;
            continue;
        }
        r->has_exact_key = keys != NULL;
        if (keys) memcpy(r->exact_key, keys[i], SC_EXACT_KEY_LEN);
        size_t len;
        int rc = sc_record_encode(r, &bufs[i], &len);
        if (rc) {
            rcs[i] = rc;
            continue;
        }
        ops[nq] = (store_op){.kind = STORE_OP_PUT, .buf = bufs[i], .len = len,
                             .exact = keys ? keys[i] : NULL, .expires = r->expires};
        which[nq++] = i;
    }
    if (nq) submit_many(s, ops, nq);
    for (size_t q = 0; q < nq; q++) {
        size_t i = which[q];
        rcs[i] = ops[q].rc;
        if (!ops[q].rc) recs[i]->id = ops[q].id;
    }
    for (size_t i = 0; i < n; i++) {
        free(bufs[i]);
        if (rcs[i] && !first) first = rcs[i];
    }
    free(ops);
    free(bufs);
    free(which);
    return first;
}

int sc_store_update(sc_store *s, const sc_record *r)
{
    if (!r->id) return SC_EINVAL;
    if (r->dim && r->dim != s->dim) return SC_EINVAL;
    uint8_t *buf;
    size_t len;
    int rc = sc_record_encode(r, &buf, &len);
    if (rc) return rc;
    store_op op = {.kind = STORE_OP_UPDATE, .buf = buf, .len = len, .id = r->id,
                   .expires = r->expires};
    rc = submit(s, &op);
    free(buf);
    return rc;
}

int sc_store_touch(sc_store *s, uint64_t id, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        return SC_ECLOSED;
    }
    if (s->ntouch >= SC_STORE_TOUCH_MAX) {
        pthread_mutex_unlock(&s->mu);
        return SC_EBUSY;
    }
    if (s->ntouch == s->touch_cap) {
        s->touch_cap = s->touch_cap ? s->touch_cap * 2 : 256;
        s->touches = sc_realloc(s->touches, s->touch_cap * sizeof *s->touches);
    }
    if (s->ntouch == 0) {
        s->touch_first_ms = sc_store__now_ms();
        pthread_cond_signal(&s->wake); /* so the writer arms its timer */
    }
    s->touches[s->ntouch++] = (store_touch){id, now};
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int sc_store_del(sc_store *s, const char *ns, uint64_t id)
{
    store_op op = {.kind = STORE_OP_DEL, .id = id, .ns = ns};
    return submit(s, &op);
}

int sc_store_flush_ns(sc_store *s, const char *ns, uint64_t *count)
{
    if (count) *count = 0;
    if (!ns) return SC_EINVAL;
    store_op op = {.kind = STORE_OP_FLUSH, .ns = ns};
    int rc = submit(s, &op);
    if (rc == 0 && count) *count = op.count;
    return rc;
}

int sc_store_evict(sc_store *s, int64_t now, uint64_t *removed)
{
    if (removed) *removed = 0;
    store_op op = {.kind = STORE_OP_EVICT, .now = now};
    int rc = submit(s, &op);
    if (rc == 0 && removed) *removed = op.count;
    return rc;
}

int sc_store_reembed_done(sc_store *s)
{
    store_op op = {.kind = STORE_OP_META};
    int rc = submit(s, &op);
    if (rc == 0) s->needs_reembed = 0;
    return rc;
}

int sc_store_learn_put(sc_store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen == 0 || klen > SC_STORE_LEARN_KEY_MAX || vlen > SC_STORE_LEARN_VAL_MAX) return SC_EINVAL;
    store_op op = {.kind = STORE_OP_LEARN, .key = key, .klen = klen, .buf = val, .len = vlen};
    return submit(s, &op);
}

int sc_store_sync(sc_store *s)
{
    /* mdb_env_sync() may run beside the writer's transactions: it flushes
     * what has been committed so far. */
    int mrc = mdb_env_sync(s->env, 1);
    return sc_store__err(mrc);
}
