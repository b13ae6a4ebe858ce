/* Record format migration: rewrites records of an older version (1: fp32
 * vectors, 2: fp16) as the current one (3: 12-bit codes) in place, when a
 * store is opened.
 *
 * Crash safety comes from LMDB's transactions: each batch of records (at
 * most 1,024 and about 8 MB of new records; halved down to one record
 * when the map is too full for it) is rewritten and committed as one
 * transaction, together with the byte counter, so after a kill -9 every
 * record is either the old version or the new one, never half of each,
 * and decode reads all versions. The first transaction writes the
 * current schema and a "migrating" mark in meta; the last one removes the
 * mark. A start that finds the mark (or an older schema) migrates again
 * from the first id, skipping the records already rewritten (peek reads
 * their version without decoding them). A build that reads only older
 * schemas refuses the data dir as soon as any record may be new.
 *
 * Ids, exact keys, expiry and learned state do not change: only the
 * entries table's values are rewritten. A record that does not decode is
 * left as it is (reads skip and count it, as before). */
#include "store_int.h"

#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t sc_store__migrate_batch;
void (*sc_store__migrate_hook)(uint64_t rewritten);

#define MIGRATE_BATCH 1024
#define MIGRATE_BATCH_BYTES ((size_t)8 << 20) /* new record bytes per transaction */

typedef struct pending {
    uint8_t key[8];
    uint8_t *buf;
    size_t len, old_len;
} pending;

/* One transaction: from id *from on, rewrites up to batch old records
 * (and about MIGRATE_BATCH_BYTES of new ones: LMDB cannot reuse the pages
 * a transaction frees within it, so a batch needs that much free map).
 * Sets *done when the table's end was reached; *from moves past the last
 * id looked at, and s->bytes changes, only when the batch committed. */
static int migrate_batch(sc_store *s, size_t batch, pending *pend, uint64_t *from, int *done,
                         uint64_t *rewritten, uint64_t *unreadable)
{
    uint64_t next = *from, bytes = s->bytes;
    size_t new_bytes = 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return sc_store__err(rc);
    size_t np = 0;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->dbi_entries, &cur)) != 0) goto out;
    uint8_t kb[8];
    sc_store__id_key(kb, next);
    MDB_val k = {8, kb}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && np < batch && new_bytes < MIGRATE_BATCH_BYTES) {
        uint64_t id = sc_store__key_id(&k);
        sc_record_head h;
        int peek = sc_record_peek(v.mv_data, v.mv_size, &h);
        if (peek != 0 && peek != SC_EVERSION) {
            (*unreadable)++;
        } else if (peek == 0 && h.version < SC_RECORD_VERSION) {
            sc_record r;
            if (sc_record_decode(v.mv_data, v.mv_size, &r) == 0) {
                pending *p = &pend[np];
                if ((rc = sc_record_encode(&r, &p->buf, &p->len)) != 0) {
                    sc_record_clear(&r);
                    break;
                }
                sc_record_clear(&r);
                memcpy(p->key, k.mv_data, 8);
                p->old_len = v.mv_size;
                new_bytes += p->len;
                np++;
            } else {
                (*unreadable)++;
            }
        }
        next = id + 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    *done = rc == MDB_NOTFOUND;
    if (rc != 0 && rc != MDB_NOTFOUND) goto out;
    rc = 0;
    /* Rewrites after the walk (no cursor left on a page being changed). */
    for (size_t i = 0; i < np && !rc; i++) {
        MDB_val pk = {8, pend[i].key}, pv = {pend[i].len, pend[i].buf};
        if ((rc = mdb_put(txn, s->dbi_entries, &pk, &pv, 0)) == 0) {
            /* Clamped like the writer's: damaged meta must not wrap it. */
            bytes = bytes >= pend[i].old_len ? bytes - pend[i].old_len : 0;
            bytes += pend[i].len;
        }
    }
    if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "schema", SC_STORE_SCHEMA);
    if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "bytes", bytes);
    if (!rc) {
        MDB_val mk = {9, (void *)"migrating"};
        if (*done) {
            rc = mdb_del(txn, s->dbi_meta, &mk, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
            /* the file is compacted next (sc_store__compact); a start that
             * finds this mark compacts it */
            if (!rc) rc = sc_store__meta_put_u64(txn, s->dbi_meta, "compact", 1);
        } else {
            rc = sc_store__meta_put_u64(txn, s->dbi_meta, "migrating", 1);
        }
    }
out:
    for (size_t i = 0; i < np; i++) free(pend[i].buf);
    if (rc) {
        mdb_txn_abort(txn);
        /* rc is an LMDB code or errno, or an SC_E* code (-999..-1) from
         * the codec. */
        return rc > 0 || rc <= SC_ERR_FIRST_ ? sc_store__err(rc) : rc;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) return sc_store__err(rc);
    *rewritten += np;
    *from = next;
    if (*done) s->compact = 1;
    s->bytes = bytes;
    return 0;
}

int sc_store__migrate(sc_store *s, char *err, size_t errlen)
{
    size_t batch = sc_store__migrate_batch ? sc_store__migrate_batch : MIGRATE_BATCH;
    pending *pend = calloc(batch, sizeof *pend);
    if (!pend) {
        snprintf(err, errlen, "%s: no memory to upgrade the records", s->dir);
        return SC_ENOMEM;
    }
    uint64_t from = 0, rewritten = 0, unreadable = 0, before = s->bytes;
    int64_t t0 = sc_store__now_ms(), last_log = t0;
    int done = 0, rc = 0;
    sc_info("%s: upgrading the entries to record format %d (12-bit vector codes) in place",
            s->dir, SC_RECORD_VERSION);
    while (!done) {
        uint64_t seen = unreadable;
        rc = migrate_batch(s, batch, pend, &from, &done, &rewritten, &unreadable);
        if (rc == SC_EFULL && batch > 1) {
            batch /= 2; /* the map is nearly full: smaller transactions */
            unreadable = seen;
            continue;
        }
        if (rc) break;
        if (sc_store__migrate_hook) sc_store__migrate_hook(rewritten);
        int64_t now = sc_store__now_ms();
        if (now - last_log >= 2000) {
            sc_info("%s: upgraded %llu entries so far", s->dir, (unsigned long long)rewritten);
            last_log = now;
        }
    }
    free(pend);
    if (rc) {
        snprintf(err, errlen, "%s: upgrading the records to format %d failed after %llu: %s "
                 "(nothing is lost; the next start goes on%s)", s->dir, SC_RECORD_VERSION,
                 (unsigned long long)rewritten, sc_strerror(rc),
                 rc == SC_EFULL ? ", with a larger --map-size-mb" : "");
        return rc;
    }
    s->migrate = 0;
    sc_info("%s: upgraded %llu entries to record format %d in %lld ms (%llu -> %llu record "
            "bytes%s)", s->dir, (unsigned long long)rewritten, SC_RECORD_VERSION,
            (long long)(sc_store__now_ms() - t0), (unsigned long long)before,
            (unsigned long long)s->bytes,
            unreadable ? "; some records are unreadable and were left" : "");
    return 0;
}

void (*sc_store__compact_hook)(int stage);

#define COMPACT_DIR "compact.tmp"

void sc_store__compact_cleanup(sc_store *s)
{
    char tmp[4096], file[4200], lock[4200];
    snprintf(tmp, sizeof tmp, "%s/" COMPACT_DIR, s->dir);
    snprintf(file, sizeof file, "%s/data.mdb", tmp);
    snprintf(lock, sizeof lock, "%s/lock.mdb", tmp);
    int had = unlink(file) == 0;
    unlink(lock);
    if (rmdir(tmp) == 0 && had)
        sc_info("%s: removed an unfinished compaction copy (the data file is the one before it)", s->dir);
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return sc_err_from_errno(errno);
    int rc = fsync(fd) == 0 ? 0 : sc_err_from_errno(errno);
    close(fd);
    return rc;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Removes meta's "compact" mark; a failure only warns (the next start
 * compacts again). */
static void drop_mark(sc_store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (!rc) {
        MDB_val mk = {7, (void *)"compact"};
        rc = mdb_del(txn, s->dbi_meta, &mk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
        if (rc) mdb_txn_abort(txn);
        else rc = mdb_txn_commit(txn);
    }
    s->compact = 0;
    if (rc) sc_warn("%s: cannot clear the compaction mark (%s); the next start compacts again", s->dir,
                    mdb_strerror(rc));
}

/* The tables, copied in this order. */
static const char *const tables[] = {"meta", "entries", "exact", "expiry", "learn"};
#define COPY_TXN_RECORDS 20000 /* records per write transaction of the copy */

/* Copies every table of s into a new environment in dir, record by record
 * in key order with MDB_APPEND, so every page of the copy is filled (LMDB
 * splits an appended-to page at its end, not in half); a physical copy
 * (mdb_env_copy2 with MDB_CP_COMPACT) would only drop the free pages and
 * keep the half-full ones the upgrade left. Synced before it returns. */
static int copy_repacked(sc_store *s, const char *dir)
{
    MDB_env *dst = NULL;
    MDB_txn *rt = NULL, *wt = NULL;
    int rc;
    /* The source's map size, not the configured one: LMDB grows a map to
     * the file it opens, so a data dir can hold more than a lowered
     * --map-size-mb. */
    MDB_envinfo info;
    size_t map = s->map_size;
    if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > map) map = info.me_mapsize;
    if ((rc = mdb_env_create(&dst)) || (rc = mdb_env_set_maxdbs(dst, 8)) ||
        (rc = mdb_env_set_mapsize(dst, map)) ||
        (rc = mdb_env_open(dst, dir, MDB_NOSYNC, 0644)))
        goto out;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rt))) goto out;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0] && !rc; t++) {
        MDB_dbi from, to;
        MDB_cursor *cur = NULL;
        if ((rc = mdb_dbi_open(rt, tables[t], 0, &from))) break;
        if ((rc = mdb_txn_begin(dst, NULL, 0, &wt))) break;
        if ((rc = mdb_dbi_open(wt, tables[t], MDB_CREATE, &to))) break;
        if ((rc = mdb_cursor_open(rt, from, &cur))) break;
        MDB_val k, v;
        size_t n = 0;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if ((rc = mdb_put(wt, to, &k, &v, MDB_APPEND))) break;
            if (++n % COPY_TXN_RECORDS == 0) {   /* bounded dirty pages */
                rc = mdb_txn_commit(wt);
                wt = NULL;
                if (rc || (rc = mdb_txn_begin(dst, NULL, 0, &wt))) break;
            }
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND) rc = 0;
        if (rc) break;
        rc = mdb_txn_commit(wt);
        wt = NULL;
    }
    if (!rc) rc = mdb_env_sync(dst, 1);
out:
    if (wt) mdb_txn_abort(wt);
    if (rt) mdb_txn_abort(rt);
    if (dst) mdb_env_close(dst);
    return rc ? sc_store__err(rc) : 0;
}

int sc_store__compact(sc_store *s, char *err, size_t errlen)
{
    char tmp[4096], copy[4200], data[4200];
    snprintf(tmp, sizeof tmp, "%s/" COMPACT_DIR, s->dir);
    snprintf(copy, sizeof copy, "%s/data.mdb", tmp);
    snprintf(data, sizeof data, "%s/data.mdb", s->dir);
    int64_t t0 = sc_store__now_ms();
    long long before = file_size(data);
    int rc = 0;   /* a copy an earlier start left was removed by sc_store_open */
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) { /* EEXIST: foreign files the cleanup left */
        rc = sc_err_from_errno(errno);
    } else {
        rc = copy_repacked(s, tmp);
        if (!rc) rc = fsync_path(copy, 0);
    }
    if (rc) {
        sc_warn("%s: compacting the data file after the upgrade failed (%s); it keeps its free "
                "pages, which later writes reuse", s->dir, sc_strerror(rc));
        sc_store__compact_cleanup(s);
        drop_mark(s);
        return 0;
    }
    if (sc_store__compact_hook) sc_store__compact_hook(1);
    for (int i = 0; i < s->npool; i++) mdb_txn_abort(s->pool[i]);
    s->npool = 0;
    mdb_env_close(s->env);
    s->env = NULL;
    int moved = rename(copy, data) == 0;
    if (!moved) {
        sc_warn("%s: cannot put the compacted copy in place (%s); keeping the data file as it was "
                "(the next start tries again)", s->dir, strerror(errno));
    } else {
        /* The lock file describes the old file's transactions: an LMDB
         * reader of another process (mdb_stat, a backup) keeps it from
         * being reset on the reopen, and the copy's meta pages would then
         * be read by the old transaction counter, which can pick the
         * copy's older meta page and drop its last transaction. A fresh
         * lock file starts from the copy's own. */
        char lock[4200];
        snprintf(lock, sizeof lock, "%s/lock.mdb", s->dir);
        unlink(lock);
        if ((rc = fsync_path(s->dir, 1)) != 0)
            /* The rename is done; only its durability is in doubt, and
             * both files are whole. */
            sc_warn("%s: cannot sync the directory after compacting: %s", s->dir, sc_strerror(rc));
    }
    sc_store__compact_cleanup(s);
    if (sc_store__compact_hook) sc_store__compact_hook(2);
    if ((rc = sc_store__env_open(s, err, errlen)) != 0) return rc;
    if (!moved) return 0; /* the mark stays */
    drop_mark(s);
    sc_info("%s: compacted the data file in %lld ms: %lld -> %lld bytes", s->dir,
            (long long)(sc_store__now_ms() - t0), before, file_size(data));
    return 0;
}
