/* Answer keys by entry id, for the answer vote.
 *
 * A semantic lookup groups its candidates by answer (server/vote.h): each
 * candidate's answer text is pulled out of its stored JSON and reduced to
 * sc_vote_answer_key. That parse was ~8 us a candidate, ~30 us of every
 * lookup with the default 4 candidates (BENCHMARKS.md, "Where a miss's
 * time goes, phase by phase"). An entry's answer does not change under its
 * id (ids are not reused; an entry rewritten in place is reported with
 * sc_akeys_changed), so the key is computed once: at the put that stored
 * it (sc_cache_put), or at the first lookup that needs it.
 *
 * Direct-mapped slots (a newer id takes an older one's slot), locked in
 * stripes: any thread may call any function. Bounded: 16 bytes a slot.
 * Every call takes a NULL sc_akeys as empty. */
#ifndef SC_AKEYS_H
#define SC_AKEYS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sc_akeys sc_akeys;

/* slots is rounded up to a power of two (at least 64). */
sc_akeys *sc_akeys_create(size_t slots);
void sc_akeys_destroy(sc_akeys *a);

/* 1 and *key when id's key is held, else 0. id 0 is never held. */
int sc_akeys_get(sc_akeys *a, uint64_t id, uint64_t *key);
/* The count of sc_akeys_changed calls so far: read it before reading the
 * entry whose key is then put. */
uint64_t sc_akeys_epoch(sc_akeys *a);
/* Holds key for id (replacing whatever shared its slot), unless an entry
 * changed (sc_akeys_changed) since epoch was read: the key may come from
 * the answer before the change. */
void sc_akeys_put(sc_akeys *a, uint64_t id, uint64_t key, uint64_t epoch);
/* Drops id's key: an entry removed (its id is never used again). */
void sc_akeys_forget(sc_akeys *a, uint64_t id);
/* Drops id's key and refuses every put whose epoch was read before: an
 * entry rewritten in place, whose answer may have changed. */
void sc_akeys_changed(sc_akeys *a, uint64_t id);

#endif
