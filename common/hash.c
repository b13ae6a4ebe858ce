/* xxHash wrappers. */
#include "hash.h"
#include "alloc.h"
#include "log.h"

#include <string.h>
#include <xxhash.h>

uint64_t sc_hash64(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

void sc_hash128(const void *p, size_t n, uint8_t out[16])
{
    XXH128_hash_t h = XXH3_128bits(p, n);
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(h.high64 >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(h.low64 >> (56 - 8 * i));
    }
}

void sc_hasher_init(sc_hasher *h, uint64_t seed)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s) sc_panic("out of memory (XXH3 state)");
    XXH3_64bits_reset_withSeed(s, seed);
    h->state = s;
}

void sc_hasher_add(sc_hasher *h, const void *p, size_t n)
{
    uint64_t len = n;
    XXH3_64bits_update(h->state, &len, sizeof len);
    if (n) XXH3_64bits_update(h->state, p, n);
}

void sc_hasher_add_str(sc_hasher *h, const char *s)
{
    sc_hasher_add(h, s ? s : "", s ? strlen(s) : 0);
}

void sc_hasher_add_u64(sc_hasher *h, uint64_t v)
{
    XXH3_64bits_update(h->state, &v, sizeof v);
}

uint64_t sc_hasher_final(sc_hasher *h)
{
    uint64_t v = XXH3_64bits_digest(h->state);
    XXH3_freeState(h->state);
    h->state = NULL;
    return v;
}
