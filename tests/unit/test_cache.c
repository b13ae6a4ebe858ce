/* Unit tests for server/cache.c (with the model-free hash embedder and
 * verify off, except the answer keys' test, which needs the vote and so
 * semcache-embed, whose model is in the repository). */
#include "tap.h"
#include "common/alloc.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "embed/embed.h"
#include "server/akeys.h"
#include "server/cache.h"
#include "server/vote.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>

static void cache_cfg(sc_config *cfg, const char *dir)
{
    char err[256];
    sc_config_defaults(cfg);
    sc_config_set(cfg, "data-dir", dir, err, sizeof err);
    sc_config_set(cfg, "embedder", "hash", err, sizeof err);
    sc_config_set(cfg, "verify", "off", err, sizeof err);
    sc_config_set(cfg, "map-size-mb", "64", err, sizeof err);
}

/* Opens a cache on cfg; NULL (the test failed, naming why) when it cannot. */
static sc_cache *open_cache(const sc_config *cfg)
{
    char err[512];
    sc_cache *c = NULL;
    if (sc_cache_open(&c, cfg, err, sizeof err)) sc_test_fail(__FILE__, __LINE__, "open: %s", err);
    return c;
}

/* sc_store_update() rewrites an entry in place (its answer, expiry and
 * exact key may all change), so, like a removal, it must bump the
 * generation that exact-hit memos are tagged with. Its caller today is the
 * re-embedding at open: a data dir written by another embedder, opened
 * with reembed, has each entry rewritten once. */
SC_TEST(cache_update_bumps_generation)
{
    const char *dir = sc_test_tmpdir();
    enum { N = 3 };
    /* Entries written by another embedder of the same dimension. */
    sc_store_opts so = {.dir = dir, .sync = 1, .sync_window_ms = 50, .map_size_mb = 64,
                        .embedder_id = "other/1", .dim = 256};
    sc_store *s = NULL;
    char err[512];
    REQUIRE(sc_store_open(&s, &so, err, sizeof err) == SC_OK);
    for (int i = 0; i < N; i++) {
        char prompt[32];
        snprintf(prompt, sizeof prompt, "question %d", i);
        sc_record r;
        memset(&r, 0, sizeof r);
        r.ns = (char *)"ns";
        r.prompt = prompt;
        r.prompt_len = strlen(prompt);
        r.response = (char *)"answer";
        r.response_len = 6;
        r.content_type = (char *)"text/plain";
        r.model = (char *)"";
        r.vec = sc_calloc(256, sizeof(float));
        r.vec[i] = 1;
        r.dim = 256;
        uint8_t key[SC_EXACT_KEY_LEN];
        sc_cache_exact_key("ns", 0, prompt, strlen(prompt), key);
        CHECK_OK(sc_store_put(s, &r, key));
        free(r.vec);
    }
    sc_store_close(s);

    sc_config cfg;
    cache_cfg(&cfg, dir);
    sc_config_set(&cfg, "reembed", "yes", err, sizeof err);
    int saved = sc_log_level;
    sc_log_level = SC_LOG_ERROR;
    sc_cache *c = NULL;
    int rc = sc_cache_open(&c, &cfg, err, sizeof err);
    sc_log_level = saved;
    if (rc) sc_test_fail(__FILE__, __LINE__, "open: %s", err);
    REQUIRE(c);
    /* Nothing was removed: every bump is an update. */
    CHECK_EQ_INT(sc_cache_generation(c), N);
    sc_cache_result res;
    memset(&res, 0, sizeof res);
    CHECK_EQ_INT(sc_cache_lookup_exact(c, "ns", 0, "question 1", 10, &res), 1);
    sc_cache_result_clear(&res);
    sc_cache_close(c);

    /* Opened again (nothing to re-embed): no update, no bump. */
    sc_config_set(&cfg, "reembed", "no", err, sizeof err);
    sc_log_level = SC_LOG_ERROR;
    rc = sc_cache_open(&c, &cfg, err, sizeof err);
    sc_log_level = saved;
    if (rc) sc_test_fail(__FILE__, __LINE__, "reopen: %s", err);
    REQUIRE(c);
    CHECK_EQ_INT(sc_cache_generation(c), 0);
    sc_cache_close(c);
    sc_config_free(&cfg);
}

/* An import batch is embedded on two threads (embed_batch): every entry of
 * a 100-entry put_many must get its own prompt's vector, the same as one
 * embedded alone, and each is then found by itself at similarity ~1. */
SC_TEST(cache_put_many_two_threads_keep_order)
{
    enum { N = 100 };
    sc_config cfg;
    cache_cfg(&cfg, sc_test_tmpdir());
    sc_cache *c = open_cache(&cfg);
    REQUIRE(c);
    sc_record recs[N];
    sc_record *ptrs[N];
    char prompts[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(prompts[i], sizeof prompts[i], "question number %d about topic %d", i, i * 7919 % 101);
        memset(&recs[i], 0, sizeof recs[i]);
        recs[i].ns = (char *)"imp";
        recs[i].prompt = prompts[i];
        recs[i].prompt_len = strlen(prompts[i]);
        recs[i].response = prompts[i];
        recs[i].response_len = strlen(prompts[i]);
        recs[i].content_type = (char *)"text/plain";
        recs[i].model = (char *)"";
        ptrs[i] = &recs[i];
    }
    CHECK_OK(sc_cache_put_many(c, ptrs, N));
    uint32_t dim = sc_cache_dim(c);
    float *one = sc_malloc(sizeof(float) * dim);
    for (int i = 0; i < N; i++) {
        REQUIRE(recs[i].id != 0);
        sc_record got;
        memset(&got, 0, sizeof got);
        CHECK_OK(sc_cache_get(c, recs[i].id, &got));
        const char *t = prompts[i];
        size_t l = strlen(t);
        CHECK_OK(sc_cache_embed(c, &t, &l, 1, one));
        double dot = 0;
        for (uint32_t k = 0; k < dim && got.vec; k++) dot += (double)got.vec[k] * one[k];
        if (!(dot > 0.999)) sc_test_fail /* stored as fp16 */(__FILE__, __LINE__, "entry %d: stored vector cos %.6f to its own prompt", i, dot);
        sc_record_clear(&got);
    }
    free(one);
    sc_cache_close(c);
    sc_config_free(&cfg);
}

/* semcache-embed's score scale: monotone, 0 and 1 fixed, the tuned cosine
 * 0.82 at the default threshold, identity below 0. */
SC_TEST(cache_embed_score_scale)
{
    CHECK(sc_cache_embed_score(0) == 0);
    CHECK(sc_cache_embed_score(1) == 1);
    CHECK(sc_cache_embed_score(1.0000001) == 1);
    CHECK(sc_cache_embed_score(-0.25) == -0.25);
    CHECK(isnan(sc_cache_embed_score(NAN)));
    CHECK(fabs(sc_cache_embed_score(0.82) - SC_DEFAULT_THRESHOLD_EMBED) < 0.001);
    /* the band users set spans cosines of about 0.76-0.87 */
    CHECK(sc_cache_embed_score(0.76) < 0.92 && sc_cache_embed_score(0.77) > 0.92);
    CHECK(sc_cache_embed_score(0.86) < 0.97 && sc_cache_embed_score(0.87) > 0.97);
    double prev = -1;
    for (int i = -100; i <= 1000; i++) {
        double s = sc_cache_embed_score(i / 1000.0);
        if (!(s > prev)) sc_test_fail(__FILE__, __LINE__, "not increasing at %d/1000: %.6f after %.6f", i, s, prev);
        if (i >= 0 && (s < i / 1000.0 || s > 1)) sc_test_fail(__FILE__, __LINE__, "%d/1000 scores %.6f", i, s);
        prev = s;
    }
}

static void json_record(sc_record *r, const char *ns, const char *prompt, const char *json)
{
    memset(r, 0, sizeof *r);
    r->ns = (char *)ns;
    r->prompt = (char *)prompt;
    r->prompt_len = strlen(prompt);
    r->response = (char *)json;
    r->response_len = strlen(json);
    r->content_type = (char *)"application/json";
    r->model = (char *)"m";
}

/* The vote's answer keys (server/akeys.h), with semcache-embed (the
 * model in the repository): held from sc_cache_put, gone with the entry;
 * an import's entries get theirs from the first lookup that takes them as
 * candidates. */
SC_TEST(cache_answer_keys_held_and_forgotten)
{
    sc_config cfg;
    cache_cfg(&cfg, sc_test_tmpdir());
    char err[512];
    sc_config_set(&cfg, "embedder", "semcache-embed", err, sizeof err);
    sc_cache *c = open_cache(&cfg);
    REQUIRE(c);
    struct sc_akeys *a = sc_cache_akeys(c);
    REQUIRE(a);
    const char *ans = "Settings, then Display, then Dark.";
    sc_record r;
    json_record(&r, "d", "How do I turn on dark mode?",
                "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Settings, then Display, then Dark.\"}}]}");
    CHECK_OK(sc_cache_put(c, &r, NULL));
    uint64_t k = 0, id1 = r.id;
    CHECK(sc_akeys_get(a, id1, &k));
    CHECK(k == sc_vote_answer_key(ans, strlen(ans)));   /* the answer's text, not its JSON */
    CHECK_OK(sc_cache_del(c, "d", id1));
    CHECK(!sc_akeys_get(a, id1, &k));
    /* imported: no key until a lookup needs one */
    sc_record r2, *pr = &r2;
    json_record(&r2, "d", "How do I switch on dark mode?",
                "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Open Settings.\"}}]}");
    CHECK_OK(sc_cache_put_many(c, &pr, 1));
    REQUIRE(r2.id != 0);
    CHECK(!sc_akeys_get(a, r2.id, &k));
    sc_cache_result res;
    CHECK_OK(sc_cache_lookup(c, "d", 0, "How can I enable dark mode?", 27, 0.0, 0, &res));
    CHECK_EQ_INT(res.id, r2.id);
    sc_cache_result_clear(&res);
    CHECK(sc_akeys_get(a, r2.id, &k));
    CHECK(k == sc_vote_answer_key("Open Settings.", 14));
    sc_cache_close(c);
    sc_config_free(&cfg);
}

/* A lookup in a partition with no live row has nothing to find: a miss
 * without an embedding (res.vec NULL); sc_cache_put given no vector
 * embeds the prompt itself, and the next lookup there searches. */
SC_TEST(cache_empty_partition_miss_skips_embedding)
{
    sc_config cfg;
    cache_cfg(&cfg, sc_test_tmpdir());
    sc_cache *c = open_cache(&cfg);
    REQUIRE(c);
    const char *q = "how do i reset my password";
    sc_cache_result res;
    CHECK_OK(sc_cache_lookup(c, "d", 7, q, strlen(q), -1, 0, &res));
    CHECK_EQ_INT(res.outcome, SC_CACHE_MISS);
    CHECK(res.vec == NULL);
    CHECK_EQ_INT(res.id, 0);
    sc_cache_result_clear(&res);
    sc_cache_stats st;
    sc_cache_stats_get(c, &st);
    CHECK_EQ_INT(st.lookups, 1);
    CHECK_EQ_INT(st.misses, 1);
    /* The write-back of that miss, as the proxy does it: no vector. */
    sc_record r;
    json_record(&r, "d", q, "{\"choices\":[{\"message\":{\"content\":\"Use the link.\"}}]}");
    r.fp = 7;
    CHECK_OK(sc_cache_put(c, &r, NULL));
    uint64_t id = r.id;
    REQUIRE(id != 0);
    /* The same words in other spacing: found by the semantic layer. */
    const char *q2 = "how do i  reset my password?";
    CHECK_OK(sc_cache_lookup(c, "d", 7, q2, strlen(q2), 0.5, 0, &res));
    CHECK(res.vec != NULL);
    CHECK(res.outcome != SC_CACHE_MISS);
    CHECK_EQ_INT(res.id, id);
    sc_cache_result_clear(&res);
    /* Another context of the same namespace is still empty. */
    CHECK_OK(sc_cache_lookup(c, "d", 8, q2, strlen(q2), 0.5, 0, &res));
    CHECK_EQ_INT(res.outcome, SC_CACHE_MISS);
    CHECK(res.vec == NULL);
    sc_cache_result_clear(&res);
    /* Its only entry deleted, the partition is empty again. */
    CHECK_OK(sc_cache_del(c, "d", id));
    CHECK_OK(sc_cache_lookup(c, "d", 7, q2, strlen(q2), 0.5, 0, &res));
    CHECK_EQ_INT(res.outcome, SC_CACHE_MISS);
    CHECK(res.vec == NULL);
    sc_cache_result_clear(&res);
    sc_cache_close(c);
    sc_config_free(&cfg);
}

/* The same with an embedder that cannot answer (remote, nothing listening
 * on its port): an empty partition's lookup never calls it, a partition
 * with rows does and fails, and a prompt the embedder would refuse for
 * its size is refused in both. */
SC_TEST(cache_empty_partition_miss_needs_no_embedder)
{
    sc_config cfg;
    cache_cfg(&cfg, sc_test_tmpdir());
    char err[512];
    REQUIRE(sc_config_set(&cfg, "embedder", "remote", err, sizeof err) == 0);
    REQUIRE(sc_config_set(&cfg, "embed-url", "http://127.0.0.1:1", err, sizeof err) == 0);
    REQUIRE(sc_config_set(&cfg, "embed-model", "m", err, sizeof err) == 0);
    REQUIRE(sc_config_set(&cfg, "embed-dim", "8", err, sizeof err) == 0);
    sc_cache *c = open_cache(&cfg);
    REQUIRE(c);
    sc_cache_result res;
    CHECK_OK(sc_cache_lookup(c, "d", 1, "first question", 14, -1, 0, &res));
    CHECK_EQ_INT(res.outcome, SC_CACHE_MISS);
    sc_cache_result_clear(&res);
    /* Stored with its vector given: no embedding needed. */
    sc_record r;
    json_record(&r, "d", "first question", "{\"choices\":[{\"message\":{\"content\":\"a\"}}]}");
    r.fp = 1;
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    CHECK_OK(sc_cache_put(c, &r, v));
    int rc = sc_cache_lookup(c, "d", 1, "second question", 15, -1, 0, &res);
    CHECK(rc != SC_OK);                   /* rows to search: the embedder is called */
    sc_cache_result_clear(&res);
    CHECK_OK(sc_cache_lookup(c, "d", 1, "first question", 14, -1, 0, &res));
    CHECK_EQ_INT(res.outcome, SC_CACHE_HIT_EXACT);   /* the exact layer needs none */
    sc_cache_result_clear(&res);
    size_t big = (size_t)SC_EMBED_MAX_BYTES + 1;
    char *huge = malloc(big);
    REQUIRE(huge);
    memset(huge, 'a', big);
    CHECK_EQ_INT(sc_cache_lookup(c, "d", 2, huge, big, -1, 0, &res), SC_ETOOBIG);
    sc_cache_result_clear(&res);
    CHECK_EQ_INT(sc_cache_lookup(c, "d", 1, huge, big, -1, 0, &res), SC_ETOOBIG);
    sc_cache_result_clear(&res);
    free(huge);
    sc_cache_close(c);
    sc_config_free(&cfg);
}
