/* The LMDB store: durable cache entries.
 *
 * One LMDB environment in the data dir with DBIs:
 *   entries: id (u64, big-endian key) -> record (record.h codec)
 *   exact:   exact key (16 bytes) -> id
 *   meta:    schema version, embedder id, dimension, next id, counters
 *   expiry:  (expires, id) -> empty, so evict finds expired entries
 *            without a scan
 *   learn:   what the cache learned from verdicts (server/learn.h):
 *            opaque key -> value; the key SC_STORE_LEARN_ENTRY + id (8
 *            bytes, big-endian) is removed with entry id
 *
 * Threads: every function may be called from any thread except the libuv
 * loop thread (they may block on disk). Reads run in their own read
 * transactions and never wait for the writer. Writes go through one writer
 * thread that batches concurrent puts into one transaction: sc_store_put()
 * returns once its batch committed, and in "sync" durability that means the
 * entry is on disk (fsync) when the call returns. In "nosync" it returns
 * after commit without fsync; the writer syncs at least every
 * sync_window_ms, so a power loss loses at most that window.
 *
 * Durability details: sync mode keeps LMDB's own commit protocol (data
 * pages fsynced, then the meta page written and fsynced), so a power loss
 * never loses an acknowledged put nor damages the file. A process crash
 * (kill -9) loses nothing in either mode: committed pages are in the page
 * cache. nosync uses MDB_NOSYNC: after a power loss the last window is
 * lost, and on a file system that reorders writes LMDB may not be able to
 * recover the file at all (LMDB's documented NOSYNC caveat); use sync where
 * that matters. Touches are never synced on their own.
 *
 * TTL: records whose `expires` passed are not returned by get and are
 * deleted by sc_store_evict(). Caps (max_entries, max_bytes): when a put
 * goes past them, sc_store_evict() (run by the server from a worker thread,
 * or by the writer itself) removes entries with the oldest last_hit, found
 * by sampling, until under the caps. Every id removed by eviction, delete
 * or flush is reported to the removal callback so the index drops it.
 *
 * Record format migration: a data dir written before record version 3
 * (fp32 or fp16 vectors; schema 1 or 2) is upgraded in place by
 * sc_store_open, before
 * it returns: 1,024 records per transaction, each transaction atomic, so a
 * kill -9 during the upgrade loses nothing and the next open finishes it
 * (meta keeps a "migrating" mark until the last batch). Records not yet
 * rewritten stay readable. Vectors become 12-bit codes with a scale;
 * nothing else in a record changes. The data file is then rewritten with full pages
 * (sc_store__compact, store_int.h; crash-safe the same way). Measured:
 * BENCHMARKS.md, "Memory and disk per entry". */
#ifndef SC_STORE_H
#define SC_STORE_H

#include "record.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sc_store sc_store;

#define SC_EXACT_KEY_LEN 16

typedef struct sc_store_opts {
    const char *dir;             /* created if missing */
    int sync;                    /* 1 = sync durability, 0 = nosync window */
    long long sync_window_ms;
    long long max_entries;       /* 0 = no cap */
    long long max_bytes;         /* 0 = no cap */
    long long map_size_mb;
    const char *embedder_id;     /* e.g. "use-lite/1", "hash/1" */
    uint32_t dim;
    int reembed;                 /* accept another embedder's data dir (caller re-embeds) */
    /* Called from the writer thread, after the removal committed, for each
     * removed id (ns is valid during the call only). It must not call back
     * into the store (the writer would wait for itself). */
    void (*on_remove)(void *ctx, uint64_t id, const char *ns, uint64_t fp);
    void *on_remove_ctx;
    /* Likewise for each entry rewritten by sc_store_update() (ns and fp
     * are the new record's), after the update committed; same rules as
     * on_remove, same ctx. Callers that memoise what the store served use
     * it to drop what the rewrite made stale. */
    void (*on_update)(void *ctx, uint64_t id, const char *ns, uint64_t fp);
} sc_store_opts;

typedef struct sc_store_stats {
    uint64_t entries;
    uint64_t bytes;              /* sum of encoded record sizes */
    uint64_t evicted;
    uint64_t expired;
    uint64_t corrupt_skipped;
    uint64_t disk_bytes;         /* LMDB pages in use x page size */
    uint64_t commits;            /* write transactions committed (group commit: < puts) */
} sc_store_stats;

/* Opens (creating) the store. SC_EMISMATCH when the data dir was written by
 * another embedder or dimension (err names both) unless opts->reembed. */
int sc_store_open(sc_store **out, const sc_store_opts *opts, char *err, size_t errlen);
/* Flushes pending writes, syncs and closes. */
void sc_store_close(sc_store *s);

/* Stores r (r->id is assigned and written back). exact_key may be NULL.
 * A previous entry under the same exact key is replaced (and reported
 * removed). Returns once committed (see durability above). r->has_exact_key
 * and r->exact_key are set from exact_key. SC_EINVAL when r->dim is neither
 * 0 nor the store's dimension, SC_ETOOBIG past the record bounds, SC_EFULL
 * when the LMDB map is full (raise map_size_mb or lower max_bytes). */
int sc_store_put(sc_store *s, sc_record *r, const uint8_t exact_key[SC_EXACT_KEY_LEN]);

/* Stores n records in as few transactions (and fsyncs) as the writer
 * batches them: all are queued at once, then awaited. keys may be NULL
 * (no exact keys) or hold n keys. rcs[i] gets each record's result and
 * recs[i]->id its id; returns the first error. */
int sc_store_put_many(sc_store *s, sc_record *const *recs, const uint8_t (*keys)[SC_EXACT_KEY_LEN],
                      size_t n, int *rcs);

/* Reads a record by id into *r (caller clears it). SC_ENOTFOUND when
 * absent or expired; SC_ECORRUPT when undecodable (logged, counted). */
int sc_store_get(sc_store *s, uint64_t id, sc_record *r);

/* Looks an exact key up: id of a live record or SC_ENOTFOUND (absent or
 * expired). SC_ECORRUPT (with *id set) when the entry is unreadable. */
int sc_store_get_exact(sc_store *s, const uint8_t key[SC_EXACT_KEY_LEN], uint64_t *id);

/* Records a hit: hits++ and last_hit = now. Batched by the writer (applied
 * with the next write batch or within ~100 ms); may be lost on a crash (it
 * only steers eviction). Never waits for the disk. SC_EBUSY (touch dropped)
 * when 65536 touches are already pending. */
int sc_store_touch(sc_store *s, uint64_t id, int64_t now);

/* Deletes one entry; SC_ENOTFOUND if absent. ns may be NULL (any). */
int sc_store_del(sc_store *s, const char *ns, uint64_t id);

/* Deletes every entry of namespace ns; *count = how many. */
int sc_store_flush_ns(sc_store *s, const char *ns, uint64_t *count);

/* Removes expired entries and evicts past the caps. *removed = how many. */
int sc_store_evict(sc_store *s, int64_t now, uint64_t *removed);

/* Calls fn for every live, decodable record (start-up index rebuild).
 * The record passed to fn is valid only during the call. Corrupt records
 * are logged, counted and skipped. fn returning non-zero stops the walk.
 * The walk reads one snapshot (a read transaction); writes made meanwhile,
 * also from fn, are not seen by it. Measured: ~1M 512-d entries in 2.4 s. */
int sc_store_foreach(sc_store *s, int (*fn)(void *ctx, const sc_record *r), void *ctx);

/* The same walk for the index rebuild, lighter: fn gets each live,
 * decodable record's id, head (namespace, fingerprint, dim...) and vector
 * (h->dim floats; NULL when it has none), valid only during the call,
 * with none of the strings copied (sc_record_decode_vector). */
int sc_store_foreach_vector(sc_store *s,
                            int (*fn)(void *ctx, uint64_t id, const sc_record_head *h, const float *vec),
                            void *ctx);

void sc_store_stats_get(sc_store *s, sc_store_stats *st);

/* ---- Extensions (storage issue 3) ----
 *
 * Re-embedding. When the store was opened with opts->reembed over a data
 * dir written by another embedder or dimension, sc_store_needs_reembed()
 * returns 1. The caller then walks the entries (collect ids with
 * sc_store_foreach(), then for each: sc_store_get(), replace r.vec/r.dim
 * with the new embedding, sc_store_update()), and finally calls
 * sc_store_reembed_done(), which records the configured embedder id and
 * dimension in meta. Until then meta keeps the old identity, so a crash
 * half-way through re-embeds again on the next start. Entries not yet
 * re-embedded still carry their old r->dim; skip those in the index. */
int sc_store_needs_reembed(sc_store *s);
int sc_store_reembed_done(sc_store *s);

/* Rewrites the entry r->id with r (same id; exact key and expiry follow
 * r->has_exact_key/exact_key and r->expires). SC_ENOTFOUND if absent,
 * SC_EINVAL if r->dim is neither 0 nor the store's dimension. Waits for the
 * commit like sc_store_put(); opts->on_update is called after it.
 * Exact keys: unlike a put, an update never takes a key from another entry.
 * If r's key already belongs to another present entry (one filed under it),
 * that entry keeps it and r is stored unmapped: sc_store_get_exact() of the
 * key still finds the other entry, never r, and r's record keeps the key it
 * was given (deleting r leaves the mapping alone). The old key of r->id is
 * dropped only if it maps to r->id. So an update never makes another live
 * entry unreachable by its exact key, and removes nothing. */
int sc_store_update(sc_store *s, const sc_record *r);

/* Forces an fsync of everything committed so far (nosync mode); any thread. */
int sc_store_sync(sc_store *s);

/* Learned state (the "learn" DBI). A put goes through the writer like an
 * entry's (durable as puts are in the configured durability); vlen 0
 * deletes the key. SC_EINVAL past the bounds. foreach visits every key in
 * key order (fn returns non-zero to stop); the pointers are valid during
 * the call only. */
#define SC_STORE_LEARN_ENTRY 'e'
#define SC_STORE_LEARN_KEY_MAX 256
#define SC_STORE_LEARN_VAL_MAX 65536
int sc_store_learn_put(sc_store *s, const void *key, size_t klen, const void *val, size_t vlen);
int sc_store_learn_foreach(sc_store *s, int (*fn)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen),
                           void *ctx);

#endif
