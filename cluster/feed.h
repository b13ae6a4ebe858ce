/* The change feed of multi-node mode (issue 15's second part, not wired
 * into the server yet): events (an entry stored, deleted, a namespace
 * flushed) appended to Redis Streams in the cluster and read by every node
 * from positions it saves, so a node that was away catches up from where
 * it stopped.
 *
 * The feed is `shards` streams, "<prefix>:{<k>}" for k = 0..shards-1 (the
 * hash tag spreads them over the cluster's slots, hence its masters). An
 * event about an entry goes to the shard of its key (the key's slot mod
 * shards), so the events of one entry stay in order; a reader sees each
 * shard in order, shards independently. Streams are trimmed to about
 * maxlen entries each (XADD MAXLEN ~): a reader whose position fell behind
 * what was trimmed is told so (`trimmed`: the entry at its position is
 * gone) and must rebuild from a full scan instead.
 *
 * Uses a sc_rc client (rcluster.h): not thread-safe either, one feed per
 * thread. */
#ifndef SC_FEED_H
#define SC_FEED_H

#include "cluster/rcluster.h"

#include <stddef.h>
#include <stdint.h>

#define SC_FEED_MAX_SHARDS 64
#define SC_FEED_ID_MAX 48           /* "ms-seq" and its NUL */

typedef struct sc_feed sc_feed;

/* A reader's positions: the last id read in each shard ("0-0": none). */
typedef struct sc_feed_pos {
    char id[SC_FEED_MAX_SHARDS][SC_FEED_ID_MAX];
} sc_feed_pos;

/* Called for each event read: its shard, stream id and field/value pairs
 * (nf pairs, valid during the call). Non-zero stops the poll (the event
 * counts as read). */
typedef int (*sc_feed_fn)(void *ctx, int shard, const char *id, size_t nf, const char *const *fields,
                          const size_t *field_lens, const char *const *values, const size_t *value_lens);

/* shards 1..SC_FEED_MAX_SHARDS; maxlen >= 1. SC_EINVAL otherwise. */
int sc_feed_open(sc_feed **out, sc_rc *rc, const char *prefix, int shards, size_t maxlen);
void sc_feed_close(sc_feed *f);

/* The shard of an entry key. */
int sc_feed_shard(const sc_feed *f, const char *key, size_t len);

/* Appends an event (nf field/value pairs) to key's shard; *id gets its
 * stream id. 0, SC_EUPSTREAM (the cluster did not take it: not
 * published), SC_EINVAL. */
int sc_feed_publish(sc_feed *f, const char *key, size_t klen, size_t nf, const char *const *fields,
                    const char *const *values, char id[SC_FEED_ID_MAX]);

/* Sets every position to "0-0" (read from the start). */
void sc_feed_pos_init(sc_feed_pos *pos);
/* Sets every position to its shard's last event: a node about to rebuild
 * from a full scan takes it first, then reads the feed from there (events
 * during the scan come twice; applying one is idempotent). 0 or
 * SC_EUPSTREAM. */
int sc_feed_pos_now(sc_feed *f, sc_feed_pos *pos);

/* Reads up to max events a shard after pos, calling fn for each in
 * order, and advances pos past them. *trimmed is set when a shard was
 * trimmed past pos (events were lost to this reader: rebuild). Returns
 * the number of events read, or a negative SC_E* code (what was read
 * before the failure stays read and pos says so). */
long sc_feed_poll(sc_feed *f, sc_feed_pos *pos, size_t max, sc_feed_fn fn, void *ctx, int *trimmed);

#endif
