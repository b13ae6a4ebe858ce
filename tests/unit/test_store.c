/* Unit tests for storage/store*.c: put/get/exact/del/flush, namespace
 * isolation, TTL, caps (sampled LRU), touch, reopen, embedder mismatch and
 * re-embed, corrupt records, map full, group commit from many threads, and
 * the kill -9 durability test (a forked child killed mid-write). */
#include "tap.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/store.h"

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIM 4

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------- */

typedef struct removed_log {
    pthread_mutex_t mu;
    uint64_t ids[4096];
    char ns[4096][16];
    int n;
} removed_log;

static void on_remove(void *ctx, uint64_t id, const char *ns, uint64_t fp)
{
    (void)fp;
    removed_log *l = ctx;
    pthread_mutex_lock(&l->mu);
    if (l->n < 4096) {
        l->ids[l->n] = id;
        snprintf(l->ns[l->n], sizeof l->ns[0], "%s", ns);
        l->n++;
    }
    pthread_mutex_unlock(&l->mu);
}

static removed_log *new_log(void)
{
    removed_log *l = SC_NEW(removed_log);
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

static void opts_init(sc_store_opts *o, const char *dir, removed_log *l)
{
    memset(o, 0, sizeof *o);
    o->dir = dir;
    o->sync = 1;
    o->sync_window_ms = 50;
    o->map_size_mb = 64;
    o->embedder_id = "hash/1";
    o->dim = DIM;
    o->on_remove = l ? on_remove : NULL;
    o->on_remove_ctx = l;
}

static sc_store *open_store(const sc_store_opts *o)
{
    sc_store *s = NULL;
    char err[256];
    int rc = sc_store_open(&s, o, err, sizeof err);
    if (rc) printf("# open %s: %s (%s)\n", o->dir, sc_err_name(rc), err);
    return s;
}

/* A record whose strings point at static text (never cleared). */
static void rec_init(sc_record *r, const char *ns, const char *prompt, int64_t last_hit,
                     int64_t expires, float *vec)
{
    memset(r, 0, sizeof *r);
    r->ns = (char *)ns;
    r->prompt = (char *)prompt;
    r->prompt_len = strlen(prompt);
    r->response = (char *)"{\"answer\":42}";
    r->response_len = strlen(r->response);
    r->content_type = (char *)"application/json";
    r->model = (char *)"m";
    r->created = 1700000000;
    r->last_hit = last_hit;
    r->expires = expires;
    r->fp = 7;
    if (vec) {
        r->dim = DIM;
        r->vec = vec;
    }
}

static void key_of(uint8_t k[SC_EXACT_KEY_LEN], int i)
{
    memset(k, 0, SC_EXACT_KEY_LEN);
    memcpy(k, &i, sizeof i);
    k[15] = 0x5a;
}

static int log_has(removed_log *l, uint64_t id)
{
    for (int i = 0; i < l->n; i++)
        if (l->ids[i] == id) return 1;
    return 0;
}

/* ---------------------------------------------------------------------
 * Basic operations
 * ------------------------------------------------------------------- */

SC_TEST(store_put_get_exact_del)
{
    removed_log *l = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), l);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    float v[DIM] = {0.5f, 0.5f, 0.5f, 0.5f};
    sc_record r;
    uint8_t k1[SC_EXACT_KEY_LEN], k2[SC_EXACT_KEY_LEN];
    key_of(k1, 1);
    key_of(k2, 2);
    rec_init(&r, "ns1", "héllo wörld", 100, 0, v);
    CHECK_OK(sc_store_put(s, &r, k1));
    uint64_t id1 = r.id;
    CHECK(id1 != 0);
    rec_init(&r, "ns1", "second", 100, 0, NULL);
    CHECK_OK(sc_store_put(s, &r, k2));
    uint64_t id2 = r.id;
    CHECK(id2 > id1);

    sc_record g;
    CHECK_OK(sc_store_get(s, id1, &g));
    CHECK_EQ_INT(g.id, id1);
    CHECK(strcmp(g.ns, "ns1") == 0 && strcmp(g.prompt, "héllo wörld") == 0);
    CHECK(g.dim == DIM && g.vec && g.vec[3] == 0.5f);
    CHECK(g.has_exact_key && memcmp(g.exact_key, k1, SC_EXACT_KEY_LEN) == 0);
    sc_record_clear(&g);
    CHECK_EQ_INT(sc_store_get(s, 999, &g), SC_ENOTFOUND);

    uint64_t id;
    CHECK_OK(sc_store_get_exact(s, k1, &id));
    CHECK_EQ_INT(id, id1);
    uint8_t k3[SC_EXACT_KEY_LEN];
    key_of(k3, 3);
    CHECK_EQ_INT(sc_store_get_exact(s, k3, &id), SC_ENOTFOUND);

    /* A wrong vector dimension is refused. */
    float v8[8] = {0};
    rec_init(&r, "ns1", "bad dim", 1, 0, v8);
    r.dim = 8;
    CHECK_EQ_INT(sc_store_put(s, &r, NULL), SC_EINVAL);

    /* Same exact key again: the old entry is replaced and reported. */
    rec_init(&r, "ns1", "héllo wörld v2", 100, 0, v);
    CHECK_OK(sc_store_put(s, &r, k1));
    uint64_t id3 = r.id;
    CHECK_OK(sc_store_get_exact(s, k1, &id));
    CHECK_EQ_INT(id, id3);
    CHECK_EQ_INT(sc_store_get(s, id1, &g), SC_ENOTFOUND);
    CHECK(log_has(l, id1));

    /* Delete: the namespace must match. */
    CHECK_EQ_INT(sc_store_del(s, "other", id3), SC_ENOTFOUND);
    CHECK_OK(sc_store_del(s, "ns1", id3));
    CHECK_EQ_INT(sc_store_del(s, "ns1", id3), SC_ENOTFOUND);
    CHECK_EQ_INT(sc_store_get_exact(s, k1, &id), SC_ENOTFOUND);
    CHECK(log_has(l, id3));
    CHECK_OK(sc_store_del(s, NULL, id2));

    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 0);
    CHECK_EQ_INT(st.bytes, 0);
    CHECK(st.disk_bytes > 0);
    sc_store_close(s);
    free(l);
}

/* sc_store_update() reports each rewrite to on_update after the commit
 * (what the cache's exact-hit memo generation relies on); removals still
 * go to on_remove only, and touches to neither. */
typedef struct updated_log {
    pthread_mutex_t mu;
    uint64_t ids[16], fps[16];
    char ns[16][16];
    int n;
    removed_log *removed;
} updated_log;

static void on_update(void *ctx, uint64_t id, const char *ns, uint64_t fp)
{
    updated_log *u = ctx;
    pthread_mutex_lock(&u->mu);
    if (u->n < 16) {
        u->ids[u->n] = id;
        u->fps[u->n] = fp;
        snprintf(u->ns[u->n], sizeof u->ns[0], "%s", ns);
        u->n++;
    }
    pthread_mutex_unlock(&u->mu);
}

static void on_remove_u(void *ctx, uint64_t id, const char *ns, uint64_t fp)
{
    on_remove(((updated_log *)ctx)->removed, id, ns, fp);
}

SC_TEST(store_update_reported)
{
    updated_log *u = SC_NEW(updated_log);
    pthread_mutex_init(&u->mu, NULL);
    u->removed = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), NULL);
    o.on_remove = on_remove_u;
    o.on_remove_ctx = u;
    o.on_update = on_update;
    sc_store *s = open_store(&o);
    REQUIRE(s);
    float v[DIM] = {1, 0, 0, 0};
    uint8_t k1[SC_EXACT_KEY_LEN];
    key_of(k1, 1);
    sc_record r;
    rec_init(&r, "ns1", "q", 100, 0, v);
    CHECK_OK(sc_store_put(s, &r, k1));
    CHECK_EQ_INT(u->n, 0);

    sc_record g;
    CHECK_OK(sc_store_get(s, r.id, &g));
    free(g.response);
    g.response = sc_strdup("new answer");
    g.response_len = strlen(g.response);
    g.fp = 9;
    CHECK_OK(sc_store_update(s, &g));
    CHECK_EQ_INT(u->n, 1);   /* reported before sc_store_update returned */
    CHECK_EQ_INT(u->ids[0], r.id);
    CHECK_EQ_INT(u->fps[0], 9);
    CHECK(strcmp(u->ns[0], "ns1") == 0);
    CHECK_EQ_INT(u->removed->n, 0);
    sc_record_clear(&g);

    /* An update of an absent entry changes nothing and is not reported. */
    rec_init(&g, "ns1", "q", 100, 0, v);
    g.id = 4242;
    CHECK_EQ_INT(sc_store_update(s, &g), SC_ENOTFOUND);
    CHECK_EQ_INT(u->n, 1);
    /* Touches rewrite hit counters only: not reported. */
    CHECK_OK(sc_store_touch(s, r.id, 200));
    CHECK_OK(sc_store_del(s, "ns1", r.id));   /* the touch rides along with it */
    CHECK_EQ_INT(u->n, 1);
    CHECK_EQ_INT(u->removed->n, 1);
    sc_store_close(s);
    free(u->removed);
    free(u);
}

/* An update that files entry A under an exact key another present entry B
 * is filed under must not take the key from B (B would vanish from exact
 * lookup while still live, and two entries would claim one key), and an
 * update that moves A off a key it claims but does not own must not drop
 * B's mapping. The invariant checked throughout: get_exact(k) finds the
 * entry that owns k, and deleting an entry never drops another's key. */
SC_TEST(store_update_keeps_other_entrys_exact_key)
{
    removed_log *l = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), l);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    float v[DIM] = {1, 0, 0, 0};
    uint8_t k1[SC_EXACT_KEY_LEN], k2[SC_EXACT_KEY_LEN], k3[SC_EXACT_KEY_LEN];
    key_of(k1, 1);
    key_of(k2, 2);
    key_of(k3, 3);
    sc_record a, b, g;
    rec_init(&a, "ns1", "a", 100, 0, v);
    CHECK_OK(sc_store_put(s, &a, k1));
    rec_init(&b, "ns1", "b", 100, 0, v);
    CHECK_OK(sc_store_put(s, &b, k2));
    uint64_t id;

    /* A asks for B's key: B keeps it, A leaves its own. */
    CHECK_OK(sc_store_get(s, a.id, &g));
    memcpy(g.exact_key, k2, SC_EXACT_KEY_LEN);
    CHECK_OK(sc_store_update(s, &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_get_exact(s, k2, &id));
    CHECK_EQ_INT(id, b.id);
    CHECK_EQ_INT(sc_store_get_exact(s, k1, &id), SC_ENOTFOUND);
    CHECK_OK(sc_store_get(s, b.id, &g));   /* B is still there */
    sc_record_clear(&g);

    /* Rewritten again as it is (re-embedding): still B's key. */
    CHECK_OK(sc_store_get(s, a.id, &g));
    CHECK(g.has_exact_key && memcmp(g.exact_key, k2, SC_EXACT_KEY_LEN) == 0);
    CHECK_OK(sc_store_update(s, &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_get_exact(s, k2, &id));
    CHECK_EQ_INT(id, b.id);

    /* A moves on to a free key: it gets it, and B's mapping stays. */
    CHECK_OK(sc_store_get(s, a.id, &g));
    memcpy(g.exact_key, k3, SC_EXACT_KEY_LEN);
    CHECK_OK(sc_store_update(s, &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_get_exact(s, k3, &id));
    CHECK_EQ_INT(id, a.id);
    CHECK_OK(sc_store_get_exact(s, k2, &id));
    CHECK_EQ_INT(id, b.id);

    /* Deleting A leaves B findable; deleting B then frees the key. */
    CHECK_OK(sc_store_del(s, NULL, a.id));
    CHECK_EQ_INT(sc_store_get_exact(s, k3, &id), SC_ENOTFOUND);
    CHECK_OK(sc_store_get_exact(s, k2, &id));
    CHECK_EQ_INT(id, b.id);
    CHECK_EQ_INT(l->n, 1);   /* only A's delete was reported: nothing else removed */
    CHECK_OK(sc_store_del(s, NULL, b.id));
    CHECK_EQ_INT(sc_store_get_exact(s, k2, &id), SC_ENOTFOUND);

    /* A key whose owner is gone (a stale mapping) is free to take. */
    rec_init(&a, "ns1", "a", 100, 0, v);
    CHECK_OK(sc_store_put(s, &a, k1));
    CHECK_OK(sc_store_get(s, a.id, &g));
    memcpy(g.exact_key, k2, SC_EXACT_KEY_LEN);
    CHECK_OK(sc_store_update(s, &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_get_exact(s, k2, &id));
    CHECK_EQ_INT(id, a.id);
    sc_store_close(s);
    free(l);
}

SC_TEST(store_flush_ns_isolation)
{
    removed_log *l = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), l);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    sc_record r;
    uint64_t b_ids[3];
    uint8_t k[SC_EXACT_KEY_LEN];
    for (int i = 0; i < 8; i++) {
        /* Interleave the namespaces so the flush must skip within a run. */
        const char *ns = (i % 3 == 1) ? "b" : "a";
        rec_init(&r, ns, "p", 1, 0, NULL);
        key_of(k, i);
        CHECK_OK(sc_store_put(s, &r, k));
        if (i % 3 == 1) b_ids[i / 3] = r.id;
    }
    /* "ab" must not match "a" (prefix), and an unknown ns flushes nothing. */
    rec_init(&r, "ab", "p", 1, 0, NULL);
    CHECK_OK(sc_store_put(s, &r, NULL));
    uint64_t count = 99;
    CHECK_OK(sc_store_flush_ns(s, "zzz", &count));
    CHECK_EQ_INT(count, 0);
    CHECK_OK(sc_store_flush_ns(s, "a", &count));
    CHECK_EQ_INT(count, 5);
    CHECK_EQ_INT(l->n, 5);
    for (int i = 0; i < l->n; i++) CHECK(strcmp(l->ns[i], "a") == 0);
    sc_record g;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(sc_store_get(s, b_ids[i], &g));
        CHECK(strcmp(g.ns, "b") == 0);
        sc_record_clear(&g);
    }
    uint64_t id;
    key_of(k, 0);
    CHECK_EQ_INT(sc_store_get_exact(s, k, &id), SC_ENOTFOUND);
    key_of(k, 1);
    CHECK_OK(sc_store_get_exact(s, k, &id));
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 4);
    sc_store_close(s);
    free(l);
}

static int count_fn(void *ctx, const sc_record *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

SC_TEST(store_ttl_expiry)
{
    removed_log *l = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), l);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    int64_t now = (int64_t)time(NULL);
    sc_record r;
    uint8_t k[SC_EXACT_KEY_LEN];
    key_of(k, 1);
    rec_init(&r, "n", "old", 1, now - 10, NULL);
    CHECK_OK(sc_store_put(s, &r, k));
    uint64_t old_id = r.id;
    rec_init(&r, "n", "later", 1, now + 3600, NULL);
    CHECK_OK(sc_store_put(s, &r, NULL));
    uint64_t later_id = r.id;
    rec_init(&r, "n", "never", 1, 0, NULL);
    CHECK_OK(sc_store_put(s, &r, NULL));

    sc_record g;
    uint64_t id;
    CHECK_EQ_INT(sc_store_get(s, old_id, &g), SC_ENOTFOUND);
    CHECK_EQ_INT(sc_store_get_exact(s, k, &id), SC_ENOTFOUND);
    CHECK_OK(sc_store_get(s, later_id, &g));
    sc_record_clear(&g);
    int n = 0;
    CHECK_OK(sc_store_foreach(s, count_fn, &n));
    CHECK_EQ_INT(n, 2);

    uint64_t removed = 0;
    CHECK_OK(sc_store_evict(s, now, &removed));
    CHECK_EQ_INT(removed, 1);
    CHECK(log_has(l, old_id));
    CHECK_OK(sc_store_evict(s, now + 7200, &removed));
    CHECK_EQ_INT(removed, 1);
    CHECK(log_has(l, later_id));
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.expired, 2);
    CHECK_EQ_INT(st.entries, 1);
    sc_store_close(s);
    free(l);
}

SC_TEST(store_caps_evict_oldest_last_hit)
{
    removed_log *l = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), l);
    o.max_entries = 5;
    sc_store *s = open_store(&o);
    REQUIRE(s);
    sc_record r;
    uint64_t ids[10];
    int64_t hits[10];
    for (int i = 0; i < 10; i++) {
        hits[i] = 1000 + (i * 7) % 10; /* last_hit not in id order */
        rec_init(&r, "n", "p", hits[i], 0, NULL);
        CHECK_OK(sc_store_put(s, &r, NULL));
        ids[i] = r.id;
    }
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 5);
    CHECK_EQ_INT(st.evicted, 5);
    /* Putting one at a time, each eviction removes the oldest present, so
     * the survivors are the 5 newest last_hit values (1005..1009). */
    for (int i = 0; i < 10; i++) {
        sc_record g;
        int rc = sc_store_get(s, ids[i], &g);
        if (hits[i] >= 1005) {
            CHECK_EQ_INT(rc, 0);
        } else {
            CHECK_EQ_INT(rc, SC_ENOTFOUND);
            CHECK(log_has(l, ids[i]));
        }
        if (rc == 0) sc_record_clear(&g);
    }
    sc_store_close(s);
    free(l);
}

SC_TEST(store_caps_sampled_lru_and_bytes)
{
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), NULL);
    o.sync = 0; /* speed; durability is not what this tests */
    o.max_entries = 500;
    sc_store *s = open_store(&o);
    REQUIRE(s);
    sc_record r;
    for (int i = 0; i < 1000; i++) {
        rec_init(&r, "n", "p", i, 0, NULL);
        CHECK_OK(sc_store_put(s, &r, NULL));
    }
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 500);
    /* Sampled LRU is approximate: most survivors must be the newer half. */
    int newer = 0;
    for (uint64_t id = 1; id <= 1000; id++) {
        sc_record g;
        if (sc_store_get(s, id, &g) == 0) {
            if (g.last_hit >= 500) newer++;
            sc_record_clear(&g);
        }
    }
    printf("# %d of 500 survivors from the newer half\n", newer);
    CHECK(newer >= 400);
    sc_store_close(s);

    /* A byte cap: each record is ~130 bytes; cap at 10 records' worth. */
    opts_init(&o, sc_test_tmpdir(), NULL);
    rec_init(&r, "n", "p", 1, 0, NULL);
    size_t one = sc_record_encoded_size(&r);
    o.max_bytes = (long long)(one * 10);
    s = open_store(&o);
    REQUIRE(s);
    for (int i = 0; i < 30; i++) {
        rec_init(&r, "n", "p", i, 0, NULL);
        CHECK_OK(sc_store_put(s, &r, NULL));
    }
    sc_store_stats_get(s, &st);
    CHECK(st.bytes <= (uint64_t)o.max_bytes);
    CHECK_EQ_INT(st.entries, 10);
    CHECK_EQ_INT(st.bytes, one * 10);
    sc_store_close(s);
}

SC_TEST(store_touch_and_reopen_keeps_entries)
{
    sc_store_opts o;
    const char *dir = sc_test_tmpdir();
    opts_init(&o, dir, NULL);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    float v[DIM] = {1, 0, 0, 0};
    sc_record r;
    uint64_t ids[20];
    uint8_t k[SC_EXACT_KEY_LEN];
    for (int i = 0; i < 20; i++) {
        rec_init(&r, "n", "prompt", 10, 0, v);
        key_of(k, i);
        CHECK_OK(sc_store_put(s, &r, k));
        ids[i] = r.id;
    }
    CHECK_OK(sc_store_touch(s, ids[3], 500));
    CHECK_OK(sc_store_touch(s, ids[3], 400));
    CHECK_OK(sc_store_touch(s, 123456, 400)); /* unknown id: ignored */
    sc_store_close(s); /* flushes the pending touches */

    s = open_store(&o);
    REQUIRE(s);
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 20);
    sc_record g;
    CHECK_OK(sc_store_get(s, ids[3], &g));
    CHECK_EQ_INT(g.hits, 2);
    CHECK_EQ_INT(g.last_hit, 500);
    sc_record_clear(&g);
    for (int i = 0; i < 20; i++) {
        uint64_t id;
        key_of(k, i);
        CHECK_OK(sc_store_get_exact(s, k, &id));
        CHECK_EQ_INT(id, ids[i]);
    }
    /* Ids keep growing after a restart. */
    rec_init(&r, "n", "after", 10, 0, v);
    CHECK_OK(sc_store_put(s, &r, NULL));
    CHECK(r.id > ids[19]);
    /* A touch is applied by the writer within ~100 ms without a close. */
    CHECK_OK(sc_store_touch(s, r.id, 777));
    usleep(300 * 1000);
    CHECK_OK(sc_store_get(s, r.id, &g));
    CHECK_EQ_INT(g.hits, 1);
    sc_record_clear(&g);
    sc_store_close(s);
}

SC_TEST(store_nosync_mode_roundtrip)
{
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), NULL);
    o.sync = 0;
    o.sync_window_ms = 20;
    sc_store *s = open_store(&o);
    REQUIRE(s);
    sc_record r;
    rec_init(&r, "n", "p", 1, 0, NULL);
    CHECK_OK(sc_store_put(s, &r, NULL));
    usleep(60 * 1000); /* let the timer sync run */
    CHECK_OK(sc_store_sync(s));
    sc_store_close(s);
    s = open_store(&o);
    REQUIRE(s);
    sc_record g;
    CHECK_OK(sc_store_get(s, r.id, &g));
    sc_record_clear(&g);
    sc_store_close(s);
}

/* ---------------------------------------------------------------------
 * Identity: embedder and dimension
 * ------------------------------------------------------------------- */

SC_TEST(store_mismatched_embedder_or_dim_refused)
{
    sc_store_opts o;
    const char *dir = sc_test_tmpdir();
    opts_init(&o, dir, NULL);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    float v[DIM] = {1, 0, 0, 0};
    sc_record r;
    rec_init(&r, "n", "p", 1, 0, v);
    CHECK_OK(sc_store_put(s, &r, NULL));
    uint64_t id = r.id;
    sc_store_close(s);

    char err[256];
    sc_store *s2 = NULL;
    /* One process per data dir: a second open while the first is live. */
    s = open_store(&o);
    REQUIRE(s);
    CHECK_EQ_INT(sc_store_open(&s2, &o, err, sizeof err), SC_EBUSY);
    CHECK(strstr(err, "in use") != NULL);
    sc_store_close(s);
    o.embedder_id = "use-lite/1";
    CHECK_EQ_INT(sc_store_open(&s2, &o, err, sizeof err), SC_EMISMATCH);
    CHECK(s2 == NULL);
    CHECK(strstr(err, "hash/1") && strstr(err, "use-lite/1"));
    o.embedder_id = "hash/1";
    o.dim = 8;
    CHECK_EQ_INT(sc_store_open(&s2, &o, err, sizeof err), SC_EMISMATCH);
    CHECK(strstr(err, "dim 4") && strstr(err, "dim 8"));

    /* With reembed the open succeeds and the caller rewrites the vectors. */
    o.embedder_id = "use-lite/1";
    o.reembed = 1;
    int saved = sc_log_level;
    sc_log_level = SC_LOG_ERROR; /* the expected "needs re-embedding" warning */
    CHECK_OK(sc_store_open(&s2, &o, err, sizeof err));
    sc_log_level = saved;
    REQUIRE(s2);
    CHECK_EQ_INT(sc_store_needs_reembed(s2), 1);
    sc_record g;
    CHECK_OK(sc_store_get(s2, id, &g));
    CHECK_EQ_INT(g.dim, DIM);
    CHECK_EQ_INT(sc_store_update(s2, &g), SC_EINVAL); /* still the old dim */
    free(g.vec);
    g.vec = sc_calloc(8, sizeof(float));
    g.vec[7] = 1.0f;
    g.dim = 8;
    CHECK_OK(sc_store_update(s2, &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_reembed_done(s2));
    CHECK_EQ_INT(sc_store_needs_reembed(s2), 0);
    g.id = 424242;
    CHECK_EQ_INT(sc_store_update(s2, &g), SC_ENOTFOUND);
    sc_store_close(s2);

    o.reembed = 0;
    CHECK_OK(sc_store_open(&s2, &o, err, sizeof err));
    REQUIRE(s2);
    CHECK_EQ_INT(sc_store_needs_reembed(s2), 0);
    CHECK_OK(sc_store_get(s2, id, &g));
    CHECK(g.dim == 8 && g.vec[7] == 1.0f);
    sc_record_clear(&g);
    sc_store_stats st;
    sc_store_stats_get(s2, &st);
    CHECK_EQ_INT(st.entries, 1);
    sc_store_close(s2);
}

/* ---------------------------------------------------------------------
 * Corruption and limits
 * ------------------------------------------------------------------- */

/* Writes raw bytes under id into the entries table, bypassing the store. */
static int raw_put(const char *dir, uint64_t id, const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc) return rc;
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 64u << 20);
    if ((rc = mdb_env_open(env, dir, 0, 0644)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_dbi_open(txn, "entries", 0, &dbi)) == 0) {
            uint8_t kb[8];
            for (int i = 0; i < 8; i++) kb[i] = (uint8_t)(id >> (56 - 8 * i));
            MDB_val k = {8, kb}, v = {len, (void *)val};
            rc = mdb_put(txn, dbi, &k, &v, 0);
        }
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

SC_TEST(store_corrupt_record_skipped_and_reported)
{
    sc_store_opts o;
    const char *dir = sc_test_tmpdir();
    opts_init(&o, dir, NULL);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    sc_record r;
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        rec_init(&r, "n", "p", 1, 0, NULL);
        CHECK_OK(sc_store_put(s, &r, NULL));
        ids[i] = r.id;
    }
    sc_store_close(s);
    /* Overwrite the middle one: a valid record with one flipped bit. */
    rec_init(&r, "n", "p", 1, 0, NULL);
    uint8_t *buf;
    size_t len;
    REQUIRE(sc_record_encode(&r, &buf, &len) == 0);
    buf[len / 2] ^= 0x10;
    CHECK_EQ_INT(raw_put(dir, ids[1], buf, len), 0);
    free(buf);
    /* And a plain garbage value under a new id. */
    CHECK_EQ_INT(raw_put(dir, 1000, "garbage", 7), 0);

    int saved = sc_log_level;
    sc_log_level = SC_LOG_ERROR; /* the expected warnings */
    s = open_store(&o);
    REQUIRE(s);
    int n = 0;
    CHECK_OK(sc_store_foreach(s, count_fn, &n));
    CHECK_EQ_INT(n, 2);
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.corrupt_skipped, 2);
    sc_record g;
    CHECK_EQ_INT(sc_store_get(s, ids[1], &g), SC_ECORRUPT);
    CHECK(g.ns == NULL);
    CHECK_OK(sc_store_get(s, ids[2], &g));
    sc_record_clear(&g);
    /* The hand-written id 1000 is counted and ids continue past it. */
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 4);
    rec_init(&r, "n", "p", 1, 0, NULL);
    CHECK_OK(sc_store_put(s, &r, NULL));
    CHECK(r.id > 1000);
    /* A corrupt entry can still be deleted by id. */
    CHECK_OK(sc_store_del(s, NULL, 1000));
    CHECK_EQ_INT(sc_store_del(s, "n", ids[1]), SC_ENOTFOUND); /* ns unreadable */
    CHECK_OK(sc_store_del(s, NULL, ids[1]));
    sc_log_level = saved;
    sc_store_close(s);
}

SC_TEST(store_map_full_gives_efull)
{
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), NULL);
    o.map_size_mb = 1;
    sc_store *s = open_store(&o);
    REQUIRE(s);
    static char big[64 * 1024];
    memset(big, 'x', sizeof big);
    sc_record r;
    int rc = 0, stored = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rec_init(&r, "n", "p", 1, 0, NULL);
        r.response = big;
        r.response_len = sizeof big;
        rc = sc_store_put(s, &r, NULL);
        if (rc == 0) stored++;
    }
    CHECK_EQ_INT(rc, SC_EFULL);
    CHECK(stored > 0);
    /* Still usable: reads work, and deleting makes room again. */
    sc_record g;
    CHECK_OK(sc_store_get(s, 1, &g));
    sc_record_clear(&g);
    for (uint64_t id = 1; id <= (uint64_t)stored; id++) CHECK_OK(sc_store_del(s, NULL, id));
    rec_init(&r, "n", "p", 1, 0, NULL);
    r.response = big;
    r.response_len = sizeof big;
    CHECK_OK(sc_store_put(s, &r, NULL));
    sc_store_close(s);
}

/* ---------------------------------------------------------------------
 * Concurrency and durability
 * ------------------------------------------------------------------- */

typedef struct putter {
    sc_store *s;
    int n, fails;
    uint64_t ids[200];
} putter;

static void *putter_main(void *arg)
{
    putter *p = arg;
    float v[DIM] = {0, 1, 0, 0};
    for (int i = 0; i < p->n; i++) {
        sc_record r;
        rec_init(&r, "n", "concurrent", i, 0, v);
        if (sc_store_put(p->s, &r, NULL) != 0) p->fails++;
        p->ids[i] = r.id;
    }
    return NULL;
}

SC_TEST(store_concurrent_puts_group_commit)
{
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), NULL);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    enum { T = 4, N = 200 };
    static putter p[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        p[t] = (putter){.s = s, .n = N};
        pthread_create(&th[t], NULL, putter_main, &p[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    int fails = 0, missing = 0;
    for (int t = 0; t < T; t++) {
        fails += p[t].fails;
        for (int i = 0; i < N; i++) {
            sc_record g;
            if (sc_store_get(s, p[t].ids[i], &g) != 0)
                missing++;
            else
                sc_record_clear(&g);
        }
    }
    CHECK_EQ_INT(fails, 0);
    CHECK_EQ_INT(missing, 0);
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, T * N);
    /* Group commit: concurrent puts shared transactions. */
    printf("# %d puts in %llu commits\n", T * N, (unsigned long long)st.commits);
    CHECK(st.commits < (uint64_t)(T * N));
    sc_store_close(s);
}

typedef struct crash_arg {
    sc_store *s;
    int fd;
    pthread_mutex_t *mu;
} crash_arg;

static void *crash_putter(void *arg)
{
    crash_arg *a = arg;
    float v[DIM] = {0.5f, 0.5f, 0.5f, 0.5f};
    for (int i = 0;; i++) {
        sc_record r;
        uint8_t k[SC_EXACT_KEY_LEN];
        rec_init(&r, "crash", "durable prompt", i, 0, v);
        key_of(k, (int)(pthread_self() & 0x7fffffff) ^ (i << 8));
        if (sc_store_put(a->s, &r, k) != 0) _exit(3);
        /* Acknowledged: report the id (8-byte writes to a pipe are atomic). */
        if (write(a->fd, &r.id, sizeof r.id) != (ssize_t)sizeof r.id) _exit(4);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

SC_TEST(store_kill9_durability_sync_mode)
{
    const char *dir = sc_test_tmpdir();
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        sc_store_opts o;
        opts_init(&o, dir, NULL);
        sc_store *s = NULL;
        char err[256];
        if (sc_store_open(&s, &o, err, sizeof err) != 0) _exit(2);
        crash_arg a = {s, fds[1], NULL};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, crash_putter, &a);
        pthread_create(&t2, NULL, crash_putter, &a);
        pthread_join(t1, NULL);
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 1 << 16, n = 0;
    uint64_t *acked = sc_malloc(cap * sizeof *acked);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Read acknowledgements for ~300 ms (longer, up to 3 s, until 20 came
     * in, for slow disks), then kill -9 mid-write. */
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        double ms = (double)(t.tv_sec - t0.tv_sec) * 1e3 + (double)(t.tv_nsec - t0.tv_nsec) / 1e6;
        if ((ms >= 300 && n >= 20) || ms >= 3000) break;
        uint64_t id;
        ssize_t got = read(fds[0], &id, sizeof id);
        if (got != (ssize_t)sizeof id) break;
        if (n == cap) acked = sc_realloc(acked, (cap *= 2) * sizeof *acked);
        acked[n++] = id;
    }
    kill(pid, SIGKILL);
    /* Ids acknowledged before the kill may still sit in the pipe. */
    uint64_t id;
    while (read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) {
        if (n == cap) acked = sc_realloc(acked, (cap *= 2) * sizeof *acked);
        acked[n++] = id;
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    printf("# %zu puts acknowledged before SIGKILL\n", n);
    CHECK(n >= 2);

    sc_store_opts o;
    opts_init(&o, dir, NULL);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    qsort(acked, n, sizeof *acked, cmp_u64);
    size_t missing = 0, dup = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && acked[i] == acked[i - 1]) dup++;
        sc_record g;
        if (sc_store_get(s, acked[i], &g) != 0) {
            missing++;
        } else {
            if (strcmp(g.prompt, "durable prompt") != 0 || g.dim != DIM) missing++;
            sc_record_clear(&g);
        }
    }
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_INT(dup, 0);
    /* The counters in meta agree with the table, and the store still
     * takes writes. */
    int walked = 0;
    CHECK_OK(sc_store_foreach(s, count_fn, &walked));
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, walked);
    CHECK(st.corrupt_skipped == 0);
    CHECK((size_t)walked >= n);
    sc_record r;
    rec_init(&r, "crash", "after", 1, 0, NULL);
    CHECK_OK(sc_store_put(s, &r, NULL));
    sc_store_close(s);
    free(acked);
}

SC_TEST(store_caps_applied_by_evict_and_touch_protects)
{
    removed_log *l = new_log();
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), l);
    o.sync = 0;
    sc_store *s = open_store(&o);
    REQUIRE(s);
    sc_record r;
    uint64_t ids[20];
    for (int i = 0; i < 20; i++) {
        rec_init(&r, "n", "p", 100 + i, 0, NULL);
        CHECK_OK(sc_store_put(s, &r, NULL));
        ids[i] = r.id;
    }
    /* The oldest entry gets a recent hit, so it must survive. */
    CHECK_OK(sc_store_touch(s, ids[0], 10000));
    sc_store_close(s);

    /* Reopen with a lower cap: evict (no expired entries) enforces it. */
    o.max_entries = 3;
    s = open_store(&o);
    REQUIRE(s);
    uint64_t removed = 0;
    CHECK_OK(sc_store_evict(s, (int64_t)time(NULL), &removed));
    CHECK_EQ_INT(removed, 17);
    CHECK_EQ_INT(l->n, 17);
    sc_record g;
    CHECK_OK(sc_store_get(s, ids[0], &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_get(s, ids[19], &g));
    sc_record_clear(&g);
    CHECK_OK(sc_store_get(s, ids[18], &g));
    sc_record_clear(&g);
    CHECK_EQ_INT(sc_store_get(s, ids[1], &g), SC_ENOTFOUND);
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, 3);
    CHECK_EQ_INT(st.evicted, 17);
    sc_store_close(s);
    free(l);
}

/* put_many: one queueing of many records; all stored, ids distinct, exact
 * keys resolve, few commits, a bad record fails alone. */
SC_TEST(store_put_many_batches)
{
    sc_store_opts o;
    opts_init(&o, sc_test_tmpdir(), NULL);
    sc_store *s = open_store(&o);
    REQUIRE(s);
    enum { N = 50 };
    float v[DIM] = {0.5f, 0.5f, 0.5f, 0.5f};
    float bad[DIM * 2] = {0};
    sc_record recs[N];
    sc_record *ptrs[N];
    uint8_t keys[N][SC_EXACT_KEY_LEN];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        rec_init(&recs[i], "bulk", "same prompt text", 100, 0, v);
        key_of(keys[i], 1000 + i);
        ptrs[i] = &recs[i];
    }
    recs[7].dim = DIM * 2;   /* wrong dimension: refused alone */
    recs[7].vec = bad;
    sc_store_stats before;
    sc_store_stats_get(s, &before);
    CHECK_EQ_INT(sc_store_put_many(s, ptrs, (const uint8_t(*)[SC_EXACT_KEY_LEN])keys, N, rcs), SC_EINVAL);
    sc_store_stats after;
    sc_store_stats_get(s, &after);
    CHECK(after.commits - before.commits <= 3);
    CHECK_EQ_INT(rcs[7], SC_EINVAL);
    for (int i = 0; i < N; i++) {
        if (i == 7) continue;
        CHECK_EQ_INT(rcs[i], 0);
        CHECK(recs[i].id != 0);
        if (i > 0 && i != 8) CHECK(recs[i].id != recs[i - 1].id);
        uint64_t id = 0;
        CHECK_OK(sc_store_get_exact(s, keys[i], &id));
        CHECK_EQ_INT(id, recs[i].id);
    }
    CHECK_EQ_INT(after.entries, N - 1);
    sc_store_close(s);
}
