/* Internals shared by store.c (open/close, reads, stats) and
 * store_writer.c (the writer thread and every write operation). Not part of
 * the store's interface; nothing outside storage/ includes this.
 *
 * Ownership of the counters: next_id, entries and bytes are changed only by
 * the writer thread, inside a write transaction, and published (atomics)
 * after the transaction committed; meta holds the same values, written in
 * the same transaction, so they survive restarts and crashes. */
#ifndef SC_STORE_INT_H
#define SC_STORE_INT_H

#include "store.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Schema 3: records of version 3 (12-bit vector codes). Schema 1 (fp32)
 * and 2 (fp16) data dirs are migrated on open (store_migrate.c). */
#define SC_STORE_SCHEMA 3
#define SC_STORE_RTXN_POOL 64     /* reset read transactions kept for reuse */
#define SC_STORE_TOUCH_MAX 65536  /* pending touches past this are dropped */
#define SC_STORE_TOUCH_DELAY_MS 100
#define SC_STORE_GATHER_US 200    /* sync mode: wait for returning putters */
#define SC_STORE_GATHER_MAX 64

typedef enum store_op_kind {
    STORE_OP_PUT,
    STORE_OP_UPDATE,
    STORE_OP_DEL,
    STORE_OP_FLUSH,
    STORE_OP_EVICT,
    STORE_OP_META,
    STORE_OP_LEARN,
} store_op_kind;

/* One queued write. Lives on the calling thread's stack; the caller waits
 * until `done` is set by the writer (under s->mu). */
typedef struct store_op {
    struct store_op *next;
    store_op_kind kind;
    int done;
    int rc;
    const uint8_t *buf;       /* PUT/UPDATE: encoded record; LEARN: value (len 0: delete) */
    const uint8_t *key;       /* LEARN */
    size_t klen;
    size_t len;
    const uint8_t *exact;     /* PUT: exact key or NULL */
    int64_t expires;          /* PUT/UPDATE: from the record */
    uint64_t id;              /* PUT: out; UPDATE/DEL: in */
    const char *ns;           /* DEL (may be NULL) / FLUSH */
    int64_t now;              /* EVICT */
    uint64_t count;           /* FLUSH/EVICT: out */
} store_op;

typedef struct store_touch {
    uint64_t id;
    int64_t now;
} store_touch;

struct sc_store {
    MDB_env *env;
    MDB_dbi dbi_entries, dbi_exact, dbi_meta, dbi_expiry, dbi_learn;
    sc_store_opts opts;
    char *dir;
    int lock_fd;              /* flock'ed semcached.lock: one process per dir */
    char *embedder_id;
    uint32_t dim;
    _Atomic int needs_reembed;
    int migrate;              /* open: records of an older version may remain */
    int compact;              /* open: meta's "compact" mark (an upgrade's free pages) */
    size_t map_size;          /* LMDB map size, bytes */

    /* Writer queue, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* writer waits here for work */
    pthread_cond_t done;      /* callers wait here for their op */
    store_op *head, *tail;
    size_t nqueued;           /* ops in the queue */
    store_touch *touches;
    size_t ntouch, touch_cap;
    int64_t touch_first_ms;   /* monotonic ms of the oldest pending touch */
    int stop;
    int writer_started;
    pthread_t writer;

    /* Writer-owned state. */
    uint64_t next_id, entries, bytes;
    uint64_t rng;
    uint8_t *scratch;
    size_t scratch_cap;

    /* Published counters (any thread reads). */
    _Atomic uint64_t pub_entries, pub_bytes;
    _Atomic uint64_t evicted, expired, corrupt_skipped, commits;

    /* Pool of reset read-only transactions (MDB_NOTLS lets any thread use
     * any of them). */
    pthread_mutex_t pool_mu;
    MDB_txn *pool[SC_STORE_RTXN_POOL];
    int npool;
};

/* Converts an LMDB (or errno) return code to an SC_E* code. */
int sc_store__err(int mdb_rc);
/* Big-endian u64 key encoding for the entries DBI (so ids sort). */
void sc_store__id_key(uint8_t out[8], uint64_t id);
uint64_t sc_store__key_id(const MDB_val *k);
int64_t sc_store__now_ms(void);

/* Writes meta[name] = v (8 bytes, little-endian). */
int sc_store__meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v);

/* store_migrate.c: rewrites every record of an older version in the
 * current one (before the writer starts); see store.h, "Record format
 * migration". */
int sc_store__migrate(sc_store *s, char *err, size_t errlen);
/* Test hooks, 0/NULL in production: records rewritten per transaction
 * (default 1024), and a function called after each migration commit. */
extern size_t sc_store__migrate_batch;
extern void (*sc_store__migrate_hook)(uint64_t rewritten);

/* store.c: creates and opens s->env on s->dir and its tables (open_dbs). */
int sc_store__env_open(sc_store *s, char *err, size_t errlen);

/* store_migrate.c: rewrites the data file with full pages (after an
 * upgrade, which rewrites every record where it was, leaving half-full
 * pages and free ones, and never shrinks the file; its last transaction
 * sets meta's "compact" mark, removed once the copy is in place, so a
 * start killed before that compacts again). A copy of every table, record
 * by record with MDB_APPEND, is written to DIR/compact.tmp/data.mdb and
 * synced, the environment is closed, the
 * copy renamed over DIR/data.mdb (atomic) and the directory synced, then
 * the environment is opened again. A kill -9 before the rename leaves the
 * old file whole (sc_store__compact_cleanup removes the partial copy at
 * the next open); after it, the copy is whole. A copy that fails (disk
 * full) is dropped with a warning: the store stays as it was and opens. */
int sc_store__compact(sc_store *s, char *err, size_t errlen);
void sc_store__compact_cleanup(sc_store *s);
/* Test hook, NULL in production: called with 1 when the copy is synced
 * (before the rename), 2 after the rename. */
extern void (*sc_store__compact_hook)(int stage);

/* Writer thread lifecycle (store_writer.c). */
int sc_store__writer_start(sc_store *s);
void sc_store__writer_stop(sc_store *s);

#endif
