/* Answer keys by entry id (see akeys.h). */
#include "server/akeys.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define STRIPES 64

typedef struct slot {
    uint64_t id;               /* 0 = empty */
    uint64_t key;
} slot;

/* One lock a cache line, so that neighbouring stripes do not share one. */
typedef struct stripe {
    _Alignas(64) pthread_mutex_t mu;
} stripe;

struct sc_akeys {
    slot *slots;
    unsigned shift;            /* 64 - log2(slots) */
    atomic_ullong epoch;       /* sc_akeys_changed calls */
    stripe st[STRIPES];
};

sc_akeys *sc_akeys_create(size_t slots)
{
    sc_akeys *a = SC_NEW(sc_akeys);
    size_t n = STRIPES;
    unsigned bits = 6;
    while (n < slots) {
        n <<= 1;
        bits++;
    }
    a->slots = sc_calloc(n, sizeof *a->slots);
    a->shift = 64 - bits;
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&a->st[i].mu, NULL);
    return a;
}

void sc_akeys_destroy(sc_akeys *a)
{
    if (!a) return;
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&a->st[i].mu);
    free(a->slots);
    free(a);
}

/* Ids are handed out in sequence: a multiplicative hash (its top bits)
 * spreads them. */
static size_t slot_of(const sc_akeys *a, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> a->shift);
}

/* Locks id's slot (its stripe) and returns it; unlock_slot after. */
static slot *lock_slot(sc_akeys *a, uint64_t id)
{
    size_t i = slot_of(a, id);
    pthread_mutex_lock(&a->st[i % STRIPES].mu);
    return &a->slots[i];
}

static void unlock_slot(sc_akeys *a, const slot *s)
{
    pthread_mutex_unlock(&a->st[(size_t)(s - a->slots) % STRIPES].mu);
}

int sc_akeys_get(sc_akeys *a, uint64_t id, uint64_t *key)
{
    if (!a || !id) return 0;
    slot *s = lock_slot(a, id);
    int found = s->id == id;
    if (found) *key = s->key;
    unlock_slot(a, s);
    return found;
}

uint64_t sc_akeys_epoch(sc_akeys *a)
{
    return a ? atomic_load(&a->epoch) : 0;
}

/* The epoch is checked under the slot's lock, and sc_akeys_changed moves
 * it before it takes that lock to clear the slot: a put either comes
 * before the clearing (which then drops it) or sees the new epoch. */
void sc_akeys_put(sc_akeys *a, uint64_t id, uint64_t key, uint64_t epoch)
{
    if (!a || !id) return;
    slot *s = lock_slot(a, id);
    if (atomic_load(&a->epoch) == epoch) *s = (slot){id, key};
    unlock_slot(a, s);
}

void sc_akeys_forget(sc_akeys *a, uint64_t id)
{
    if (!a || !id) return;
    slot *s = lock_slot(a, id);
    if (s->id == id) *s = (slot){0, 0};
    unlock_slot(a, s);
}

void sc_akeys_changed(sc_akeys *a, uint64_t id)
{
    if (!a) return;
    atomic_fetch_add(&a->epoch, 1);
    sc_akeys_forget(a, id);
}
