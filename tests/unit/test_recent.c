/* Unit tests for the dashboard's ring of recent semantic decisions
 * (server/recent.c) and the index's partition listing that the entry
 * browser's search walks (sc_index_partitions). */
#include "tap.h"
#include "server/recent.h"
#include "index/index.h"

#include <stdint.h>
#include <string.h>

SC_TEST(recent_newest_first_and_filtered)
{
    sc_recent *r = sc_recent_create();
    sc_recent_item out[8];
    CHECK_EQ_INT((int)sc_recent_get(r, NULL, 0, out, 8), 0);
    sc_recent_add(r, "a", 11, 0.91f, 0.93f, 0.86f, 1);
    sc_recent_add(r, "b", 0, 0.0f, 0.0f, 0.86f, 0);
    sc_recent_add(r, "a", 12, 0.70f, 0.41f, 0.90f, 0);
    size_t n = sc_recent_get(r, NULL, 0, out, 8);
    CHECK_EQ_INT((int)n, 3);
    CHECK_EQ_INT((int)out[0].seq, 3);
    CHECK_EQ_INT((int)out[0].candidate, 12);
    CHECK(out[0].served == 0 && out[0].score > 0.40f && out[0].score < 0.42f);
    CHECK(out[0].threshold > 0.89f && out[0].threshold < 0.91f);
    CHECK(out[0].time_ms > 1600000000000LL);
    CHECK_EQ_INT((int)out[2].seq, 1);
    CHECK(out[2].served == 1 && !strcmp(out[2].ns, "a"));
    /* Only namespace a, newest first. */
    n = sc_recent_get(r, "a", 0, out, 8);
    CHECK_EQ_INT((int)n, 2);
    CHECK(!strcmp(out[0].ns, "a") && !strcmp(out[1].ns, "a"));
    CHECK_EQ_INT((int)out[1].candidate, 11);
    CHECK_EQ_INT((int)sc_recent_get(r, "c", 0, out, 8), 0);
    /* after: only what is newer than what the caller has. */
    n = sc_recent_get(r, NULL, 2, out, 8);
    CHECK_EQ_INT((int)n, 1);
    CHECK_EQ_INT((int)out[0].seq, 3);
    CHECK_EQ_INT((int)sc_recent_get(r, NULL, 3, out, 8), 0);
    /* max bounds the copy. */
    CHECK_EQ_INT((int)sc_recent_get(r, NULL, 0, out, 1), 1);
    CHECK_EQ_INT((int)out[0].seq, 3);
    sc_recent_destroy(r);
}

SC_TEST(recent_ring_overwrites_oldest_and_cuts_long_names)
{
    sc_recent *r = sc_recent_create();
    for (int i = 0; i < SC_RECENT_CAP + 100; i++) sc_recent_add(r, i % 2 ? "odd" : "even", (uint64_t)i + 1, 0.5f, 0.5f, 0.9f, 0);
    static sc_recent_item out[SC_RECENT_CAP + 10];
    size_t n = sc_recent_get(r, NULL, 0, out, SC_RECENT_CAP + 10);
    CHECK_EQ_INT((int)n, SC_RECENT_CAP);
    CHECK_EQ_INT((int)out[0].seq, SC_RECENT_CAP + 100);
    CHECK_EQ_INT((int)out[n - 1].seq, 101);
    for (size_t i = 1; i < n; i++) CHECK(out[i].seq + 1 == out[i - 1].seq);
    /* An `after` older than the ring holds still starts at the oldest kept. */
    CHECK_EQ_INT((int)sc_recent_get(r, NULL, 5, out, SC_RECENT_CAP + 10), SC_RECENT_CAP);
    char longns[400];
    memset(longns, 'x', sizeof longns - 1);
    longns[sizeof longns - 1] = '\0';
    sc_recent_add(r, longns, 1, 0.5f, 0.5f, 0.9f, 1);
    CHECK_EQ_INT((int)sc_recent_get(r, NULL, 0, out, 1), 1);
    CHECK_EQ_INT((int)strlen(out[0].ns), SC_RECENT_NS_MAX);
    sc_recent_destroy(r);
    sc_recent_destroy(NULL);
}

SC_TEST(index_partitions_lists_a_namespace)
{
    sc_index *ix = NULL;
    sc_index_opts o = {.dim = 8, .backend = "flat"};
    REQUIRE(sc_index_create(&ix, &o) == 0);
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    CHECK_OK(sc_index_add(ix, "a", 7, 1, v));
    CHECK_OK(sc_index_add(ix, "a", 9, 2, v));
    CHECK_OK(sc_index_add(ix, "a", 9, 3, v));
    CHECK_OK(sc_index_add(ix, "b", 7, 4, v));
    uint64_t fps[4] = {0};
    size_t n = sc_index_partitions(ix, "a", fps, 4);
    CHECK_EQ_INT((int)n, 2);
    CHECK((fps[0] == 7 && fps[1] == 9) || (fps[0] == 9 && fps[1] == 7));
    /* max smaller than the count: the count is still whole. */
    CHECK_EQ_INT((int)sc_index_partitions(ix, "a", fps, 1), 2);
    CHECK_EQ_INT((int)sc_index_partitions(ix, "a", NULL, 0), 2);
    CHECK_EQ_INT((int)sc_index_partitions(ix, "b", fps, 4), 1);
    CHECK_EQ_INT((int)sc_index_partitions(ix, "zz", fps, 4), 0);
    CHECK_OK(sc_index_flush_ns(ix, "a"));
    CHECK_EQ_INT((int)sc_index_partitions(ix, "a", fps, 4), 0);
    sc_index_destroy(ix);
}
