/* The last semantic decisions of the cache, for the dashboard's threshold
 * view: per lookup that reached the semantic layer, the namespace, the
 * best candidate, its cosine, the score that was compared with the
 * threshold, the threshold and whether it was served. A fixed ring of
 * SC_RECENT_CAP slots (oldest overwritten); no prompt text is kept.
 * Thread-safe (one mutex; a lookup holds it for a copy of ~200 bytes). */
#ifndef SC_RECENT_H
#define SC_RECENT_H

#include <stddef.h>
#include <stdint.h>

#define SC_RECENT_CAP 512
#define SC_RECENT_NS_MAX 128

typedef struct sc_recent sc_recent;

typedef struct sc_recent_item {
    uint64_t seq;              /* 1, 2, ... in the order recorded */
    int64_t time_ms;           /* Unix time, milliseconds */
    char ns[SC_RECENT_NS_MAX + 1];
    uint64_t candidate;        /* id of the best candidate, 0 if none */
    float similarity;          /* its cosine (0 if none) */
    float score;               /* what was compared with the threshold */
    float threshold;
    int served;                /* 1: a semantic hit was served */
} sc_recent_item;

sc_recent *sc_recent_create(void);
void sc_recent_destroy(sc_recent *r);

/* Records one decision (ns longer than SC_RECENT_NS_MAX is cut). */
void sc_recent_add(sc_recent *r, const char *ns, uint64_t candidate, float similarity, float score,
                   float threshold, int served);

/* Copies up to max items, newest first, with seq > after, whose namespace
 * is ns (NULL: every namespace). Returns how many. */
size_t sc_recent_get(sc_recent *r, const char *ns, uint64_t after, sc_recent_item *out, size_t max);

#endif
