/* Unit tests for server/akeys.c: the vote's answer keys by entry id. */
#include "tap.h"
#include "server/akeys.h"

#include <pthread.h>
#include <stdint.h>

static uint64_t key_of(uint64_t id) { return id * 0x2545f4914f6cdd1dull ^ 0xabcdef; }

SC_TEST(akeys_put_get_forget)
{
    sc_akeys *a = sc_akeys_create(100);   /* rounded up to 128 */
    REQUIRE(a);
    uint64_t k = 0;
    CHECK(!sc_akeys_get(a, 7, &k));
    sc_akeys_put(a, 7, 42, 0);
    CHECK(sc_akeys_get(a, 7, &k));
    CHECK_EQ_INT(k, 42);
    /* forget checks the id: another id that shares 7's slot leaves it */
    uint64_t other = 8;
    while (sc_akeys_put(a, other, 1, 0), sc_akeys_get(a, 7, &k)) other++;
    sc_akeys_put(a, 7, 42, 0);
    sc_akeys_forget(a, other);
    CHECK(sc_akeys_get(a, 7, &k));
    CHECK_EQ_INT(k, 42);
    sc_akeys_forget(a, 7);
    CHECK(!sc_akeys_get(a, 7, &k));
    /* id 0 (no entry) is never held */
    sc_akeys_put(a, 0, 1, 0);
    CHECK(!sc_akeys_get(a, 0, &k));
    /* More ids than slots: a held key is always the right one; later ids
     * take the slots of earlier ones. */
    size_t held = 0, wrong = 0;
    for (uint64_t id = 1; id <= 1000; id++) sc_akeys_put(a, id, key_of(id), 0);
    for (uint64_t id = 1; id <= 1000; id++)
        if (sc_akeys_get(a, id, &k)) {
            held++;
            wrong += k != key_of(id);
        }
    CHECK_EQ_INT(wrong, 0);
    CHECK(held > 40 && held <= 128);
    /* the last ids put are mostly held (sequential ids spread over slots) */
    size_t recent = 0;
    for (uint64_t id = 951; id <= 1000; id++) recent += sc_akeys_get(a, id, &k);
    CHECK(recent >= 35);
    /* An entry rewritten in place: its key goes, and a put whose epoch was
     * read before the change (its key may be the old answer's) is refused;
     * one read after is held. */
    uint64_t e0 = sc_akeys_epoch(a);
    sc_akeys_put(a, 1000, 5, e0);
    CHECK(sc_akeys_get(a, 1000, &k));
    sc_akeys_changed(a, 1000);
    CHECK(!sc_akeys_get(a, 1000, &k));
    CHECK(sc_akeys_epoch(a) != e0);
    sc_akeys_put(a, 1000, 6, e0);
    CHECK(!sc_akeys_get(a, 1000, &k));
    sc_akeys_put(a, 1000, 7, sc_akeys_epoch(a));
    CHECK(sc_akeys_get(a, 1000, &k));
    CHECK_EQ_INT(k, 7);
    sc_akeys_destroy(a);
    /* NULL is an empty table */
    CHECK(!sc_akeys_get(NULL, 7, &k));
    sc_akeys_put(NULL, 7, 1, 0);
    sc_akeys_forget(NULL, 7);
    sc_akeys_changed(NULL, 7);
    CHECK_EQ_INT(sc_akeys_epoch(NULL), 0);
}

static void *churn(void *arg)
{
    sc_akeys *a = arg;
    size_t wrong = 0;
    uint64_t k;
    for (uint64_t r = 0; r < 200000; r++) {
        uint64_t id = 1 + (r * 7919) % 5000;
        if (r % 3 == 0) sc_akeys_put(a, id, key_of(id), sc_akeys_epoch(a));
        else if (r % 17 == 0) sc_akeys_forget(a, id);
        else if (r % 101 == 0) sc_akeys_changed(a, id);
        else if (sc_akeys_get(a, id, &k) && k != key_of(id)) wrong++;
    }
    return (void *)wrong;
}

/* Two threads putting, forgetting and reading the same slots never read a
 * key that belongs to another id. */
SC_TEST(akeys_threads_never_mix_keys)
{
    sc_akeys *a = sc_akeys_create(1024);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, churn, a);
    size_t wrong = 0;
    for (int i = 0; i < 2; i++) {
        void *w;
        pthread_join(th[i], &w);
        wrong += (size_t)w;
    }
    CHECK_EQ_INT(wrong, 0);
    sc_akeys_destroy(a);
}
