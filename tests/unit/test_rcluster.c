/* Unit tests for cluster/rcluster.c against a real Redis Cluster (3
 * masters, 3 replicas, started by tests/cluster/cluster.sh on loopback
 * ports): the slot function against the server's CLUSTER KEYSLOT, keys
 * spread over every master, a stale map corrected by MOVED, a slot in
 * migration followed through ASK, a master killed with SIGKILL (no
 * acknowledged write lost after the failover), and a cluster that is not
 * there (a bounded, named error). Skipped when redis-server is absent. */
#include "tap.h"
#include "cluster/rcluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[256];
static int base;
static int up;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void stop_cluster(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash tests/cluster/cluster.sh stop %s; rm -rf %s", dir, dir);
    if (system(cmd) != 0) printf("# stopping the cluster failed\n");
}

/* Starts the cluster once for every test of this file. */
static int cluster_up(void)
{
    if (up) return up > 0;
    up = -1;
    if (system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") != 0) {
        printf("# redis-server not installed: skipped\n");
        return 0;
    }
    /* Its own directory: sc_test_tmpdir() is replaced by the next test. */
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sc_rcluster_XXXXXX", tmp && *tmp && strlen(tmp) < 200 ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        sc_test_fail(__FILE__, __LINE__, "mkdtemp %s", dir);
        return 0;
    }
    base = 20000 + (int)(getpid() % 50) * 200; /* and bus ports at +100: below the ephemeral range */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash tests/cluster/cluster.sh start %s %d", dir, base);
    if (system(cmd) != 0) {
        stop_cluster();
        sc_test_fail(__FILE__, __LINE__, "could not start a Redis Cluster on ports %d-%d", base, base + 5);
        return 0;
    }
    atexit(stop_cluster);
    up = 1;
    return 1;
}

static sc_rc *connect_seed(int port)
{
    char seeds[64], err[256];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", port);
    sc_rc_opts o = {.seeds = seeds, .timeout_ms = 500, .max_attempts = 10, .retry_wait_ms = 100};
    sc_rc *rc = NULL;
    int e = sc_rc_open(&rc, &o, err, sizeof err);
    if (e) printf("# sc_rc_open: %s\n", err);
    return rc;
}

static redisReply *cmd2(sc_rc *rc, const char *a, const char *key)
{
    const char *argv[] = {a, key};
    int err;
    return sc_rc_command(rc, key, strlen(key), 2, argv, NULL, &err);
}

static int set_key(sc_rc *rc, const char *key, const char *val)
{
    const char *argv[] = {"SET", key, val};
    int err;
    redisReply *r = sc_rc_command(rc, key, strlen(key), 3, argv, NULL, &err);
    int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (r) freeReplyObject(r);
    return ok;
}

static int get_is(sc_rc *rc, const char *key, const char *want)
{
    redisReply *r = cmd2(rc, "GET", key);
    int ok = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
    if (r) freeReplyObject(r);
    return ok;
}

/* The ports of the current masters (a failover in an earlier test may
 * have promoted a replica); returns how many. */
static int master_ports(sc_rc *rc, int *ports)
{
    char m[8][64];
    size_t n = sc_rc_masters(rc, m, 8);
    for (size_t i = 0; i < n && i < 8; i++) ports[i] = atoi(strrchr(m[i], ':') + 1);
    return (int)n;
}

/* redis-cli's answer (first line) to args on port. */
static void cli(int port, const char *args, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d %s 2>/dev/null", port, args);
    out[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (!f) return;
    if (fgets(out, (int)cap, f)) out[strcspn(out, "\r\n")] = '\0';
    pclose(f);
}

SC_TEST(rcluster_slot_matches_the_server)
{
    CHECK_EQ_INT(sc_rc_slot("123456789", 9), 12739); /* CRC16-XMODEM's check value */
    CHECK_EQ_INT(sc_rc_slot("{user1000}.following", 20), sc_rc_slot("{user1000}.followers", 20));
    CHECK_EQ_INT(sc_rc_slot("foo{}{bar}", 10), sc_rc_slot("foo{}{bar}", 10)); /* empty tag: whole key */
    CHECK(sc_rc_slot("foo{}{bar}", 10) != sc_rc_slot("bar", 3));
    CHECK_EQ_INT(sc_rc_slot("foo{{bar}}zap", 13), sc_rc_slot("{bar", 4));
    if (!cluster_up()) return;
    static const char *keys[] = {"", "a", "foo", "semcache:e:42", "{ns}x", "x{ns}", "{}", "{a}{b}", "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char args[128], out[64];
        snprintf(args, sizeof args, "cluster keyslot '%s'", keys[i]);
        cli(base, args, out, sizeof out);
        CHECK_EQ_INT(atoi(out), sc_rc_slot(keys[i], strlen(keys[i])));
    }
}

SC_TEST(rcluster_keys_spread_over_every_master)
{
    if (!cluster_up()) return;
    sc_rc *rc = connect_seed(base + 1);
    REQUIRE(rc);
    char masters[8][64];
    CHECK_EQ_INT(sc_rc_masters(rc, masters, 8), 3);
    char key[32], val[32];
    size_t bad = 0;
    for (int i = 0; i < 600; i++) {
        snprintf(key, sizeof key, "k:%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        if (!set_key(rc, key, val)) bad++;
    }
    for (int i = 0; i < 600; i++) {
        snprintf(key, sizeof key, "k:%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        if (!get_is(rc, key, val)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* Every master holds some: the routing went by slot, not to one node. */
    int mp[8];
    REQUIRE(master_ports(rc, mp) == 3);
    for (int m = 0; m < 3; m++) {
        char out[64];
        cli(mp[m], "dbsize", out, sizeof out);
        CHECK(atoi(out) > 100);
    }
    sc_rc_stats st;
    sc_rc_stats_get(rc, &st);
    CHECK_EQ_INT(st.moved, 0);
    CHECK_EQ_INT(st.failures, 0);
    /* A server error is the caller's, not a retry. */
    const char *argv[] = {"INCR", "k:1"};
    int err = 0;
    redisReply *r = sc_rc_command(rc, "k:1", 3, 2, argv, NULL, &err);
    REQUIRE(r);
    CHECK(r->type == REDIS_REPLY_ERROR);
    freeReplyObject(r);
    sc_rc_close(rc);
}

SC_TEST(rcluster_stale_map_follows_moved)
{
    if (!cluster_up()) return;
    sc_rc *rc = connect_seed(base);
    REQUIRE(rc);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", base);
    sc_rc__test_point_all(rc, addr); /* as if every slot had been on the first master */
    char key[32], val[32];
    size_t bad = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "m:%d", i);
        snprintf(val, sizeof val, "w%d", i);
        if (!set_key(rc, key, val) || !get_is(rc, key, val)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    sc_rc_stats st;
    sc_rc_stats_get(rc, &st);
    printf("# %llu MOVED followed, %llu map reads\n", (unsigned long long)st.moved, (unsigned long long)st.refreshes);
    CHECK(st.moved >= 1);
    CHECK(st.moved <= 3); /* one MOVED re-reads the whole map */
    sc_rc_close(rc);
}

SC_TEST(rcluster_migrating_slot_follows_ask)
{
    if (!cluster_up()) return;
    sc_rc *rc = connect_seed(base);
    REQUIRE(rc);
    const char *key = "ask:key";
    REQUIRE(set_key(rc, key, "moving"));
    int slot = sc_rc_slot(key, strlen(key));
    /* Which master owns it, and another master to move it to. */
    int mp[8], src = -1;
    REQUIRE(master_ports(rc, mp) == 3);
    for (int m = 0; m < 3 && src < 0; m++) {
        char args[64], out[64];
        snprintf(args, sizeof args, "--raw exists %s", key);
        cli(mp[m], args, out, sizeof out);
        if (atoi(out) == 1) src = mp[m];
    }
    REQUIRE(src > 0);
    int dst = src == mp[0] ? mp[1] : mp[0];
    char sid[64], did[64], args[256], out[128];
    cli(src, "cluster myid", sid, sizeof sid);
    cli(dst, "cluster myid", did, sizeof did);
    snprintf(args, sizeof args, "cluster setslot %d importing %s", slot, sid);
    cli(dst, args, out, sizeof out);
    CHECK(strcmp(out, "OK") == 0);
    snprintf(args, sizeof args, "cluster setslot %d migrating %s", slot, did);
    cli(src, args, out, sizeof out);
    CHECK(strcmp(out, "OK") == 0);
    snprintf(args, sizeof args, "migrate 127.0.0.1 %d %s 0 5000", dst, key);
    cli(src, args, out, sizeof out);
    CHECK(strcmp(out, "OK") == 0);
    /* The key is on dst now, the slot still src's: src answers ASK. */
    CHECK(get_is(rc, key, "moving"));
    sc_rc_stats st;
    sc_rc_stats_get(rc, &st);
    CHECK_EQ_INT(st.ask, 1);
    CHECK_EQ_INT(st.moved, 0);
    /* Finish the migration on every master; then it is a MOVED. */
    for (int m = 0; m < 3; m++) {
        snprintf(args, sizeof args, "cluster setslot %d node %s", slot, did);
        cli(mp[m], args, out, sizeof out);
    }
    for (int t = 0; t < 50; t++) {
        snprintf(args, sizeof args, "cluster countkeysinslot %d", slot);
        cli(dst, args, out, sizeof out);
        if (atoi(out) == 1) break;
        usleep(20000);
    }
    CHECK(get_is(rc, key, "moving"));
    sc_rc_stats_get(rc, &st);
    CHECK_EQ_INT(st.ask, 1);
    CHECK(st.moved >= 1);
    sc_rc_close(rc);
}

SC_TEST(rcluster_master_killed_no_acknowledged_write_lost)
{
    if (!cluster_up()) return;
    sc_rc *rc = connect_seed(base + 2);
    REQUIRE(rc);
    /* Writes acknowledged after WAIT 1 (a replica has them), then the
     * master of their slot is killed. */
    char key[32], val[32];
    int acked = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "{fo}:%d", i);
        snprintf(val, sizeof val, "f%d", i);
        if (!set_key(rc, key, val)) continue;
        const char *wargv[] = {"WAIT", "1", "1000"};
        int err;
        redisReply *w = sc_rc_command(rc, key, strlen(key), 3, wargv, NULL, &err);
        if (w && w->type == REDIS_REPLY_INTEGER && w->integer >= 1) acked = i + 1;
        if (w) freeReplyObject(w);
        if (acked != i + 1) break;
    }
    CHECK_EQ_INT(acked, 300);
    /* {fo}'s master: the one holding the tag's slot. */
    int tagslot = sc_rc_slot("fo", 2), mp[8], victim = -1;
    REQUIRE(master_ports(rc, mp) == 3);
    for (int m = 0; m < 3 && victim < 0; m++) {
        char args[64], out[64];
        snprintf(args, sizeof args, "cluster countkeysinslot %d", tagslot);
        cli(mp[m], args, out, sizeof out);
        if (atoi(out) == 300) victim = mp[m];
    }
    REQUIRE(victim > 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash tests/cluster/cluster.sh kill %s %d", dir, victim);
    REQUIRE(system(cmd) == 0);
    double t0 = now_s();
    /* Writes go on as soon as the replica took over. */
    int wrote = 0;
    while (now_s() - t0 < 20 && !wrote) wrote = set_key(rc, "{fo}:after", "yes");
    printf("# a write went through %.1f s after the master's SIGKILL\n", now_s() - t0);
    CHECK(wrote);
    size_t lost = 0;
    for (int i = 0; i < acked; i++) {
        snprintf(key, sizeof key, "{fo}:%d", i);
        snprintf(val, sizeof val, "f%d", i);
        if (!get_is(rc, key, val)) lost++;
    }
    CHECK_EQ_INT(lost, 0);
    sc_rc_stats st;
    sc_rc_stats_get(rc, &st);
    printf("# %llu reconnects, %llu map reads, %llu given up\n", (unsigned long long)st.reconnects,
           (unsigned long long)st.refreshes, (unsigned long long)st.failures);
    CHECK(st.reconnects >= 1);
    sc_rc_close(rc);
}

SC_TEST(rcluster_nothing_there_is_a_named_bounded_error)
{
    char err[256];
    sc_rc *rc = NULL;
    sc_rc_opts o = {.seeds = "127.0.0.1:1,127.0.0.1:2", .timeout_ms = 200};
    double t0 = now_s();
    CHECK_EQ_INT(sc_rc_open(&rc, &o, err, sizeof err), SC_EUPSTREAM);
    CHECK(now_s() - t0 < 2.0);
    CHECK(strstr(err, "127.0.0.1:1,127.0.0.1:2") != NULL);
    CHECK(rc == NULL);
    o.seeds = "nohostport";
    CHECK_EQ_INT(sc_rc_open(&rc, &o, err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "nohostport") != NULL);
    o.seeds = "127.0.0.1:99999";
    CHECK_EQ_INT(sc_rc_open(&rc, &o, err, sizeof err), SC_EINVAL);
    o.seeds = "";
    CHECK_EQ_INT(sc_rc_open(&rc, &o, err, sizeof err), SC_EINVAL);
}

/* ---------------------------------------------------------------------
 * The change feed (cluster/feed.c)
 * ------------------------------------------------------------------- */

#include "cluster/feed.h"

typedef struct seen {
    int n;
    int last[2][50];            /* per publisher and entry: the last seq seen */
    int bad;
    double lag_sum, lag_max;
    double lags[400];
} seen;

static int on_event(void *ctx, int shard, const char *id, size_t nf, const char *const *fields,
                    const size_t *fl, const char *const *values, const size_t *vl)
{
    seen *s = ctx;
    (void)shard;
    (void)id;
    (void)fl;
    (void)vl;
    int pub = -1, ent = -1, seq = -1;
    double sent = 0;
    for (size_t i = 0; i < nf; i++) {
        if (strcmp(fields[i], "k") == 0 && sscanf(values[i], "e:%d:%d", &pub, &ent) != 2) s->bad++;
        if (strcmp(fields[i], "n") == 0) seq = atoi(values[i]);
        if (strcmp(fields[i], "t") == 0) sent = atof(values[i]);
    }
    if (pub < 0 || pub > 1 || ent < 0 || ent >= 50 || seq < 0) {
        s->bad++;
        return 0;
    }
    if (seq <= s->last[pub][ent]) s->bad++; /* out of order, or twice */
    s->last[pub][ent] = seq;
    if (sent > 0 && s->n < 400) s->lags[s->n] = now_s() - sent;
    s->n++;
    return 0;
}

static int publish(sc_feed *f, int pub, int i)
{
    char key[32], n[16], t[32];
    snprintf(key, sizeof key, "e:%d:%d", pub, i % 50);
    snprintf(n, sizeof n, "%d", i);
    snprintf(t, sizeof t, "%.6f", now_s());
    const char *fields[] = {"op", "k", "n", "t"}, *values[] = {"put", key, n, t};
    char id[SC_FEED_ID_MAX];
    return sc_feed_publish(f, key, strlen(key), 4, fields, values, id);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

SC_TEST(feed_in_order_once_and_catch_up)
{
    if (!cluster_up()) return;
    sc_rc *a = connect_seed(base), *b = connect_seed(base + 1), *r = connect_seed(base + 2);
    REQUIRE(a && b && r);
    sc_feed *fa, *fb, *fr;
    REQUIRE(sc_feed_open(&fa, a, "t1feed", 16, 100000) == 0);
    REQUIRE(sc_feed_open(&fb, b, "t1feed", 16, 100000) == 0);
    REQUIRE(sc_feed_open(&fr, r, "t1feed", 16, 100000) == 0);
    seen s;
    memset(&s, 0, sizeof s);
    memset(s.last, 0xff, sizeof s.last);
    sc_feed_pos pos;
    sc_feed_pos_init(&pos);
    for (int i = 0; i < 500; i++) {
        CHECK_OK(publish(fa, 0, i));
        CHECK_OK(publish(fb, 1, i));
    }
    int trimmed = 0;
    for (int t = 0; t < 100 && s.n < 1000; t++) CHECK(sc_feed_poll(fr, &pos, 64, on_event, &s, &trimmed) >= 0);
    CHECK_EQ_INT(s.n, 1000);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(trimmed, 0);
    /* A reader that was away: a new handle from the saved positions reads
     * only what came since, not the history. */
    for (int i = 500; i < 550; i++) CHECK_OK(publish(fa, 0, i));
    sc_feed_close(fr);
    REQUIRE(sc_feed_open(&fr, r, "t1feed", 16, 100000) == 0);
    int before = s.n;
    for (int t = 0; t < 20 && s.n < before + 50; t++) CHECK(sc_feed_poll(fr, &pos, 64, on_event, &s, &trimmed) >= 0);
    CHECK_EQ_INT(s.n - before, 50);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(trimmed, 0);
    CHECK_EQ_INT(sc_feed_poll(fr, &pos, 64, on_event, &s, &trimmed), 0);
    sc_feed_close(fa);
    sc_feed_close(fb);
    sc_feed_close(fr);
    sc_rc_close(a);
    sc_rc_close(b);
    sc_rc_close(r);
}

SC_TEST(feed_trimmed_past_a_reader_is_told)
{
    if (!cluster_up()) return;
    sc_rc *a = connect_seed(base);
    REQUIRE(a);
    sc_feed *f;
    REQUIRE(sc_feed_open(&f, a, "t2feed", 1, 50) == 0);
    sc_feed_pos old, now;
    sc_feed_pos_init(&old);
    CHECK_OK(publish(f, 0, 0));
    seen s;
    memset(&s, 0, sizeof s);
    memset(s.last, 0xff, sizeof s.last);
    int trimmed = 1;
    CHECK_EQ_INT(sc_feed_poll(f, &old, 10, on_event, &s, &trimmed), 1);
    CHECK_EQ_INT(trimmed, 0);
    /* ~50 kept (MAXLEN ~ trims whole nodes of 100): 1,000 more push the
     * reader's next event out. */
    for (int i = 1; i <= 1000; i++) CHECK_OK(publish(f, 0, i));
    sc_feed_close(f);
    REQUIRE(sc_feed_open(&f, a, "t2feed", 1, 50) == 0);
    CHECK(sc_feed_poll(f, &old, 10, on_event, &s, &trimmed) > 0);
    CHECK_EQ_INT(trimmed, 1);
    /* A node that rebuilds takes the current positions first: not trimmed. */
    CHECK_OK(sc_feed_pos_now(f, &now));
    CHECK_OK(publish(f, 0, 1001));
    CHECK_EQ_INT(sc_feed_poll(f, &now, 10, on_event, &s, &trimmed), 1);
    CHECK_EQ_INT(trimmed, 0);
    sc_feed_close(f);
    sc_rc_close(a);
}

SC_TEST(feed_lag_under_100ms)
{
    /* One node publishes 200 events, 2 ms apart; another polls every 5 ms
     * (interleaved here in one thread): the time from publish to read. */
    if (!cluster_up()) return;
    sc_rc *a = connect_seed(base), *r = connect_seed(base + 1);
    REQUIRE(a && r);
    sc_feed *fa, *fr;
    REQUIRE(sc_feed_open(&fa, a, "t3feed", 16, 100000) == 0);
    REQUIRE(sc_feed_open(&fr, r, "t3feed", 16, 100000) == 0);
    sc_feed_pos pos;
    CHECK_OK(sc_feed_pos_now(fr, &pos));
    seen s;
    memset(&s, 0, sizeof s);
    memset(s.last, 0xff, sizeof s.last);
    int trimmed;
    double next_poll = now_s();
    for (int i = 0; i < 200; i++) {
        CHECK_OK(publish(fa, 0, i));
        usleep(2000);
        if (now_s() >= next_poll) {
            CHECK(sc_feed_poll(fr, &pos, 100, on_event, &s, &trimmed) >= 0);
            next_poll = now_s() + 0.005;
        }
    }
    for (int t = 0; t < 50 && s.n < 200; t++) CHECK(sc_feed_poll(fr, &pos, 100, on_event, &s, &trimmed) >= 0);
    CHECK_EQ_INT(s.n, 200);
    qsort(s.lags, 200, sizeof(double), cmp_double);
    printf("# feed lag: p50 %.1f ms, p99 %.1f ms (poll every 5 ms, 16 shards)\n", s.lags[100] * 1e3, s.lags[198] * 1e3);
    CHECK(s.lags[198] < 0.1);
    sc_feed_close(fa);
    sc_feed_close(fr);
    sc_rc_close(a);
    sc_rc_close(r);
}
