/* Hashing for keys and fingerprints (xxHash XXH3). Pure, any thread. */
#ifndef SC_HASH_H
#define SC_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t sc_hash64(const void *p, size_t n, uint64_t seed);
/* 128-bit hash written as 16 bytes (fixed order) into out. */
void sc_hash128(const void *p, size_t n, uint8_t out[16]);

/* Incremental 64-bit hashing of several fields; each field is length-
 * prefixed so ("ab","c") and ("a","bc") differ. */
typedef struct sc_hasher { void *state; } sc_hasher;
void sc_hasher_init(sc_hasher *h, uint64_t seed);
void sc_hasher_add(sc_hasher *h, const void *p, size_t n);
void sc_hasher_add_str(sc_hasher *h, const char *s);
void sc_hasher_add_u64(sc_hasher *h, uint64_t v);
uint64_t sc_hasher_final(sc_hasher *h);   /* also frees the state */

#endif
