/* A bounded memo of exact-hit answers, for the loop-thread fast paths.
 *
 * Direct-mapped slots keyed by raw request bytes (the caller chooses them:
 * namespace + prompt for RESP, namespace + endpoint + body for HTTP), each
 * holding the bytes of the answer, the entry id, its expiry and the cache
 * generation (sc_cache_generation) read before the lookup that produced
 * it. An answer is trusted only while the generation is unchanged (no
 * entry was deleted, flushed, expired, evicted, replaced or updated since)
 * and the entry has not expired. Bounded in slots, bytes per item and
 * total bytes. Loop thread only (not thread-safe). */
#ifndef SC_MEMO_H
#define SC_MEMO_H

#include <stddef.h>
#include <stdint.h>

typedef struct sc_memo sc_memo;

typedef struct sc_memo_hit {
    const char *val;           /* valid until the next put on the memo */
    size_t len;
    uint64_t id;
    int touch;                 /* 1 once a second per entry: touch it */
} sc_memo_hit;

sc_memo *sc_memo_create(size_t slots, size_t max_item, size_t max_bytes);
void sc_memo_destroy(sc_memo *m);

/* 1 and *hit filled when key is memoised, still valid for gen and now. */
int sc_memo_get(sc_memo *m, const void *key, size_t klen, uint64_t gen, int64_t now, sc_memo_hit *hit);
/* Memoises val under key (replacing the slot's previous item); silently
 * skipped past the bounds. */
void sc_memo_put(sc_memo *m, const void *key, size_t klen, uint64_t gen, const void *val, size_t vlen,
                 uint64_t id, int64_t expires, int64_t now);
/* Items held, and memo hits so far. */
size_t sc_memo_items(const sc_memo *m);
uint64_t sc_memo_hits(const sc_memo *m);

#endif
