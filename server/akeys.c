/* Answer keys by entry id (see akeys.h). */
#include "server/akeys.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdlib.h>

#define STRIPES 64

typedef struct slot {
    uint64_t id;               /* 0 = empty */
    uint64_t key;
} slot;

struct sc_akeys {
    slot *slots;
    unsigned shift;            /* 64 - log2(slots) */
    pthread_mutex_t mu[STRIPES];
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
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&a->mu[i], NULL);
    return a;
}

void sc_akeys_destroy(sc_akeys *a)
{
    if (!a) return;
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&a->mu[i]);
    free(a->slots);
    free(a);
}

/* Ids are handed out in sequence: a multiplicative hash (its top bits)
 * spreads them. */
static size_t slot_of(const sc_akeys *a, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> a->shift);
}

int sc_akeys_get(sc_akeys *a, uint64_t id, uint64_t *key)
{
    if (!a || !id) return 0;
    size_t i = slot_of(a, id);
    pthread_mutex_t *mu = &a->mu[i % STRIPES];
    pthread_mutex_lock(mu);
    int found = a->slots[i].id == id;
    if (found) *key = a->slots[i].key;
    pthread_mutex_unlock(mu);
    return found;
}

void sc_akeys_put(sc_akeys *a, uint64_t id, uint64_t key)
{
    if (!a || !id) return;
    size_t i = slot_of(a, id);
    pthread_mutex_t *mu = &a->mu[i % STRIPES];
    pthread_mutex_lock(mu);
    a->slots[i] = (slot){id, key};
    pthread_mutex_unlock(mu);
}

void sc_akeys_forget(sc_akeys *a, uint64_t id)
{
    if (!a || !id) return;
    size_t i = slot_of(a, id);
    pthread_mutex_t *mu = &a->mu[i % STRIPES];
    pthread_mutex_lock(mu);
    if (a->slots[i].id == id) a->slots[i] = (slot){0, 0};
    pthread_mutex_unlock(mu);
}
