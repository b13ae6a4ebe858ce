/* The exact-hit memo (see memo.h). */
#include "server/memo.h"
#include "common/alloc.h"
#include "common/hash.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t h, gen, id;
    int64_t expires, touched;
    char *key;                 /* key bytes then value bytes */
    size_t klen, vlen;
} slot;

struct sc_memo {
    slot *slots;
    size_t nslots, max_item, max_bytes, bytes, items;
    uint64_t hits;
};

sc_memo *sc_memo_create(size_t slots, size_t max_item, size_t max_bytes)
{
    sc_memo *m = SC_NEW(sc_memo);
    size_t n = 1;
    while (n < slots) n <<= 1;
    m->slots = sc_calloc(n, sizeof *m->slots);
    m->nslots = n;
    m->max_item = max_item;
    m->max_bytes = max_bytes;
    return m;
}

static void drop(sc_memo *m, slot *s)
{
    if (!s->key) return;
    m->bytes -= s->klen + s->vlen;
    m->items--;
    free(s->key);
    memset(s, 0, sizeof *s);
}

void sc_memo_destroy(sc_memo *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nslots; i++) free(m->slots[i].key);
    free(m->slots);
    free(m);
}

int sc_memo_get(sc_memo *m, const void *key, size_t klen, uint64_t gen, int64_t now, sc_memo_hit *hit)
{
    uint64_t h = sc_hash64(key, klen, 0x3e30);
    slot *s = &m->slots[h & (m->nslots - 1)];
    if (!s->key || s->h != h || s->klen != klen) return 0;
    if (s->gen != gen || (s->expires && s->expires <= now)) {
        drop(m, s);
        return 0;
    }
    if (memcmp(s->key, key, klen) != 0) return 0;
    hit->val = s->key + s->klen;
    hit->len = s->vlen;
    hit->id = s->id;
    hit->touch = s->touched != now;
    s->touched = now;
    m->hits++;
    return 1;
}

void sc_memo_put(sc_memo *m, const void *key, size_t klen, uint64_t gen, const void *val, size_t vlen,
                 uint64_t id, int64_t expires, int64_t now)
{
    if (klen + vlen > m->max_item) return;
    uint64_t h = sc_hash64(key, klen, 0x3e30);
    slot *s = &m->slots[h & (m->nslots - 1)];
    drop(m, s);
    if (m->bytes + klen + vlen > m->max_bytes) return;
    s->key = sc_malloc(klen + vlen);
    memcpy(s->key, key, klen);
    memcpy(s->key + klen, val, vlen);
    s->h = h;
    s->gen = gen;
    s->id = id;
    s->expires = expires;
    s->touched = now;
    s->klen = klen;
    s->vlen = vlen;
    m->bytes += klen + vlen;
    m->items++;
}

size_t sc_memo_items(const sc_memo *m) { return m->items; }
uint64_t sc_memo_hits(const sc_memo *m) { return m->hits; }
