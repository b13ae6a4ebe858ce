/* Multi-node mode (`--redis-cluster`, issue 15): semcached nodes sharing
 * one cache through Redis Cluster.
 *
 * Redis holds the shared entries and carries the change feed; every node
 * keeps its own LMDB and index as a local copy, so lookups stay local
 * (Redis 7 has no vector search).
 *   - An entry lives under "sc:e:<namespace>:<exact key, hex>" as its
 *     encoded record (storage/record.h, vector included), with a Redis
 *     expiry when it has one.
 *   - A store writes it there (SET, then WAIT 1 when --redis-wait yes),
 *     then publishes a "put" event on the feed (cluster/feed.h), then
 *     stores it locally; only then is it acknowledged. A store the cluster
 *     did not take is an error, never acknowledged.
 *   - A delete or a flush does the same with "del" / "flush" events.
 *   - A feed thread reads every other node's events (positions saved in
 *     the data dir, file feed.pos) and applies them locally: a put reads
 *     the entry from Redis. A node that was away catches up from its
 *     positions; without them, or when the feed was trimmed past them, it
 *     copies every shared entry (SCAN on each master) instead.
 *   - An exact lookup that misses locally reads Redis (one keyed GET), so
 *     an entry stored on another node is an exact hit at once, before its
 *     event arrives.
 * When Redis is unreachable, lookups answer from the local copy (for a
 * second after each failure they do not even try the cluster); stores,
 * deletes and flushes fail with SC_EUPSTREAM after their retries. Any
 * thread may call any function (a small pool of cluster connections). */
#ifndef SC_SHARED_H
#define SC_SHARED_H

#include "common/config.h"
#include "storage/record.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sc_shared sc_shared;

/* What the feed thread applies to the local copy (server/cache.c). */
typedef struct sc_shared_apply {
    void *ctx;
    int (*put)(void *ctx, sc_record *r);                  /* r: decoded, exact key set */
    int (*del)(void *ctx, const uint8_t key[SC_RECORD_EXACT_LEN]);
    int (*flush)(void *ctx, const char *ns);
} sc_shared_apply;

typedef struct sc_shared_stats {
    int up;                     /* the last cluster call succeeded */
    uint64_t published, applied, copied, rebuilds, errors;
    double lag_ms_last, lag_ms_max;   /* publish to apply, other nodes' events */
} sc_shared_stats;

/* Connects to cfg->redis_cluster (password from cfg->redis_password_env).
 * SC_EUPSTREAM (err says why, without the password) when no seed gave a
 * slot map. */
int sc_shared_open(sc_shared **out, const sc_config *cfg, const sc_shared_apply *apply, char *err, size_t errlen);
/* Starts the feed thread: catch-up from the saved positions, or a full
 * copy. Call once the local store and index are ready. */
int sc_shared_start(sc_shared *sh);
void sc_shared_close(sc_shared *sh);

int sc_shared_put(sc_shared *sh, const sc_record *r);
int sc_shared_del(sc_shared *sh, const char *ns, const uint8_t key[SC_RECORD_EXACT_LEN]);
int sc_shared_flush(sc_shared *sh, const char *ns);
/* The shared entry under key into r (sc_record_clear it): 0, SC_ENOTFOUND,
 * SC_EUPSTREAM. */
int sc_shared_get(sc_shared *sh, const char *ns, const uint8_t key[SC_RECORD_EXACT_LEN], sc_record *r);

void sc_shared_stats_get(sc_shared *sh, sc_shared_stats *st);

#endif
