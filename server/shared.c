/* Multi-node mode: the shared entries in Redis Cluster and the feed
 * thread (the contract is in shared.h). */
#include "server/shared.h"
#include "cluster/feed.h"
#include "cluster/rcluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL 4
#define SHARDS 16
#define FEED_MAXLEN 100000
#define FEED_PREFIX "sc:feed"
#define KEY_PREFIX "sc:e:"
#define POLL_MIN_MS 5             /* between polls while events come */
#define POLL_MAX_MS 40            /* ... doubling up to this while none do */
#define POS_SAVE_MS 1000

typedef struct conn {
    pthread_mutex_t mu;
    sc_rc *rc;
    sc_feed *feed;
} conn;

struct sc_shared {
    const sc_config *cfg;
    sc_shared_apply apply;
    conn pool[POOL];
    conn fc;                    /* the feed thread's own */
    atomic_uint next;
    char node[17];              /* this process's id on the feed */
    char pos_path[1024];
    pthread_t th;
    int started;
    atomic_int stop;
    pthread_mutex_t smu;        /* stats */
    sc_shared_stats st;
    atomic_llong down_until;    /* wall ms: lookups skip the cluster until then */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a failure, lookups leave the cluster alone for this long (each
 * would wait out its retries); stores still try, and report. */
#define DOWN_BACKOFF_MS 1000

static void note(sc_shared *sh, int ok, uint64_t *counter, uint64_t n)
{
    atomic_store(&sh->down_until, ok ? 0 : (long long)wall_ms() + DOWN_BACKOFF_MS);
    pthread_mutex_lock(&sh->smu);
    sh->st.up = ok;
    if (!ok) sh->st.errors++;
    if (counter) *counter += n;
    pthread_mutex_unlock(&sh->smu);
}

static conn *conn_get(sc_shared *sh)
{
    unsigned start = atomic_fetch_add(&sh->next, 1);
    for (unsigned i = 0; i < POOL; i++) {
        conn *c = &sh->pool[(start + i) % POOL];
        if (pthread_mutex_trylock(&c->mu) == 0) return c;
    }
    conn *c = &sh->pool[start % POOL];
    pthread_mutex_lock(&c->mu);
    return c;
}

static void conn_put(conn *c) { pthread_mutex_unlock(&c->mu); }

/* "sc:e:<ns>:<32 hex>" */
static size_t entry_key(char *out, size_t cap, const char *ns, const uint8_t key[SC_RECORD_EXACT_LEN])
{
    int n = snprintf(out, cap, KEY_PREFIX "%s:", ns);
    for (int i = 0; i < SC_RECORD_EXACT_LEN && (size_t)n + 2 < cap; i++) n += snprintf(out + n, cap - (size_t)n, "%02x", key[i]);
    return (size_t)n;
}

/* The exact key back from the hex tail of an entry key; 0 or -1. */
static int key_of_entry(const char *k, size_t len, uint8_t key[SC_RECORD_EXACT_LEN])
{
    if (len < 2 * SC_RECORD_EXACT_LEN) return -1;
    const char *h = k + len - 2 * SC_RECORD_EXACT_LEN;
    for (int i = 0; i < SC_RECORD_EXACT_LEN; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return -1;
        key[i] = (uint8_t)v;
    }
    return 0;
}

/* WAIT 1 on key's master (with --redis-wait yes): 0 when a replica has
 * what this connection wrote. */
static int wait_replica(sc_shared *sh, conn *c, const char *k, size_t klen)
{
    if (!sh->cfg->redis_wait) return 0;
    const char *argv[] = {"WAIT", "1", "1000"};
    int err;
    redisReply *r = sc_rc_command(c->rc, k, klen, 3, argv, NULL, &err);
    int ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;
    if (r) freeReplyObject(r);
    return ok ? 0 : SC_EUPSTREAM;
}

static int publish(sc_shared *sh, conn *c, const char *op, const char *k, size_t klen, const char *ns)
{
    char t[24], id[SC_FEED_ID_MAX];
    snprintf(t, sizeof t, "%lld", (long long)wall_ms());
    const char *fields[] = {"op", "o", "t", "k", "ns"}, *values[] = {op, sh->node, t, k, ns};
    return sc_feed_publish(c->feed, k, klen, 5, fields, values, id);
}

/* A write to entry k (argv on its master, a reply of type want), made
 * durable on a replica, then announced on the feed as op: the order
 * every store and delete follows before it is acknowledged. */
static int write_and_announce(sc_shared *sh, const char *k, size_t kl, int argc, const char **argv,
                              const size_t *lens, int want, const char *op, const char *ns)
{
    conn *c = conn_get(sh);
    int err = 0;
    redisReply *rep = sc_rc_command(c->rc, k, kl, argc, argv, lens, &err);
    int rc = rep && rep->type == want ? 0 : SC_EUPSTREAM;
    if (rep) freeReplyObject(rep);
    if (!rc) rc = wait_replica(sh, c, k, kl);
    if (!rc) rc = publish(sh, c, op, k, kl, ns);
    conn_put(c);
    note(sh, rc == 0, rc ? NULL : &sh->st.published, 1);
    return rc;
}

int sc_shared_put(sc_shared *sh, const sc_record *r)
{
    if (!r->has_exact_key || !r->ns) return SC_EINVAL;
    uint8_t *buf;
    size_t len;
    int rc = sc_record_encode(r, &buf, &len);
    if (rc) return rc;
    char k[SC_RECORD_MAX_NS + 64], px[24];
    size_t kl = entry_key(k, sizeof k, r->ns, r->exact_key);
    const char *argv[5] = {"SET", k, (const char *)buf, "PX", px};
    size_t lens[5] = {3, kl, len, 2, 0};
    int argc = 3;
    if (r->expires > 0) {
        long long ms = ((long long)r->expires - wall_ms() / 1000) * 1000;
        if (ms <= 0) {
            free(buf);
            return 0; /* already expired: nothing to share */
        }
        lens[4] = (size_t)snprintf(px, sizeof px, "%lld", ms);
        argc = 5;
    }
    rc = write_and_announce(sh, k, kl, argc, argv, lens, REDIS_REPLY_STATUS, "put", r->ns);
    free(buf);
    return rc;
}

int sc_shared_del(sc_shared *sh, const char *ns, const uint8_t key[SC_RECORD_EXACT_LEN])
{
    char k[SC_RECORD_MAX_NS + 64];
    size_t kl = entry_key(k, sizeof k, ns, key);
    const char *argv[] = {"DEL", k};
    size_t lens[] = {3, kl};
    return write_and_announce(sh, k, kl, 2, argv, lens, REDIS_REPLY_INTEGER, "del", ns);
}

/* Calls fn for every shared entry key matching pattern, master by master
 * (SCAN); stops at the first error. */
static int scan_keys(sc_shared *sh, sc_rc *rc, const char *pattern,
                     int (*fn)(sc_shared *sh, sc_rc *rc, const char *k, size_t kl, void *ctx), void *ctx)
{
    char masters[SC_RC_MAX_NODES][64];
    size_t nm = sc_rc_masters(rc, masters, SC_RC_MAX_NODES);
    for (size_t m = 0; m < nm && m < SC_RC_MAX_NODES; m++) {
        char cursor[32] = "0";
        do {
            const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
            int err = 0;
            redisReply *r = sc_rc_command_node(rc, masters[m], 6, argv, NULL, &err);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[0]->len >= sizeof cursor) {
                if (r) freeReplyObject(r);
                return SC_EUPSTREAM;
            }
            memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
            redisReply *keys = r->element[1];
            int rc2 = 0;
            for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements && !rc2; i++)
                if (keys->element[i]->type == REDIS_REPLY_STRING)
                    rc2 = fn(sh, rc, keys->element[i]->str, keys->element[i]->len, ctx);
            freeReplyObject(r);
            if (rc2) return rc2;
        } while (strcmp(cursor, "0") != 0);
    }
    return 0;
}

static int del_one(sc_shared *sh, sc_rc *rc, const char *k, size_t kl, void *ctx)
{
    (void)sh;
    (void)ctx;
    const char *argv[] = {"DEL", k};
    size_t lens[] = {3, kl};
    int err = 0;
    redisReply *r = sc_rc_command(rc, k, kl, 2, argv, lens, &err);
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r) freeReplyObject(r);
    return ok ? 0 : SC_EUPSTREAM;
}

int sc_shared_flush(sc_shared *sh, const char *ns)
{
    char pattern[SC_RECORD_MAX_NS + 16];
    snprintf(pattern, sizeof pattern, KEY_PREFIX "%s:*", ns);
    conn *c = conn_get(sh);
    int rc = scan_keys(sh, c->rc, pattern, del_one, NULL);
    if (!rc) rc = publish(sh, c, "flush", ns, strlen(ns), ns);
    conn_put(c);
    note(sh, rc == 0, rc ? NULL : &sh->st.published, 1);
    return rc;
}

/* GET k and decode it. */
static int get_entry(sc_rc *rc, const char *k, size_t kl, sc_record *r)
{
    const char *argv[] = {"GET", k};
    size_t lens[] = {3, kl};
    int err = 0;
    redisReply *rep = sc_rc_command(rc, k, kl, 2, argv, lens, &err);
    if (!rep) return SC_EUPSTREAM;
    int out = rep->type == REDIS_REPLY_NIL ? SC_ENOTFOUND
              : rep->type == REDIS_REPLY_STRING ? sc_record_decode((const uint8_t *)rep->str, rep->len, r)
              : SC_EUPSTREAM;
    freeReplyObject(rep);
    return out;
}

int sc_shared_get(sc_shared *sh, const char *ns, const uint8_t key[SC_RECORD_EXACT_LEN], sc_record *r)
{
    char k[SC_RECORD_MAX_NS + 64];
    size_t kl = entry_key(k, sizeof k, ns, key);
    memset(r, 0, sizeof *r);
    if (wall_ms() < atomic_load(&sh->down_until)) return SC_EUPSTREAM; /* failed just now */
    conn *c = conn_get(sh);
    int rc = get_entry(c->rc, k, kl, r);
    conn_put(c);
    note(sh, rc != SC_EUPSTREAM, NULL, 0);
    return rc;
}

/* ---------------------------------------------------------------------
 * The feed thread
 * ------------------------------------------------------------------- */

typedef struct feed_ctx {
    sc_shared *sh;
    sc_rc *rc;
} feed_ctx;

static int copy_one(sc_shared *sh, sc_rc *rc, const char *k, size_t kl, void *ctx)
{
    (void)ctx;
    sc_record r;
    int e = get_entry(rc, k, kl, &r);
    if (e == SC_ENOTFOUND) return 0; /* expired or deleted since the SCAN */
    if (e == SC_EUPSTREAM) return e;
    if (e == 0) {
        if (sh->apply.put(sh->apply.ctx, &r) == 0) note(sh, 1, &sh->st.copied, 1);
        sc_record_clear(&r);
    }
    return 0;
}

/* Every shared entry copied in (a node without positions, or trimmed
 * past them); the positions are taken first, so nothing published during
 * the copy is missed. */
static int full_copy(sc_shared *sh, sc_rc *rc, sc_feed *feed, sc_feed_pos *pos)
{
    int e = sc_feed_pos_now(feed, pos);
    if (!e) e = scan_keys(sh, rc, KEY_PREFIX "*", copy_one, NULL);
    pthread_mutex_lock(&sh->smu);
    sh->st.rebuilds++;
    pthread_mutex_unlock(&sh->smu);
    if (!e) sc_info("multi-node: copied %llu shared entries", (unsigned long long)sh->st.copied);
    return e;
}

static const char *field(size_t nf, const char *const *f, const char *const *v, const char *name, size_t *len,
                         const size_t *vl)
{
    for (size_t i = 0; i < nf; i++)
        if (strcmp(f[i], name) == 0) {
            *len = vl[i];
            return v[i];
        }
    *len = 0;
    return NULL;
}

static int on_event(void *ctx, int shard, const char *id, size_t nf, const char *const *fields,
                    const size_t *fl, const char *const *values, const size_t *vl)
{
    (void)shard;
    (void)id;
    (void)fl;
    feed_ctx *x = ctx;
    sc_shared *sh = x->sh;
    size_t ol, opl, kl, nl, tl;
    const char *o = field(nf, fields, values, "o", &ol, vl), *op = field(nf, fields, values, "op", &opl, vl);
    const char *k = field(nf, fields, values, "k", &kl, vl), *ns = field(nf, fields, values, "ns", &nl, vl);
    const char *t = field(nf, fields, values, "t", &tl, vl);
    if (!o || !op || !k || !ns || (ol == strlen(sh->node) && memcmp(o, sh->node, ol) == 0)) return 0;
    int done = 0;
    if (strcmp(op, "put") == 0) {
        sc_record r;
        int e = get_entry(x->rc, k, kl, &r);
        if (e == 0) {
            done = sh->apply.put(sh->apply.ctx, &r) == 0;
            sc_record_clear(&r);
        }
    } else if (strcmp(op, "del") == 0) {
        uint8_t key[SC_RECORD_EXACT_LEN];
        if (key_of_entry(k, kl, key) == 0) done = sh->apply.del(sh->apply.ctx, key) != SC_EINVAL;
    } else if (strcmp(op, "flush") == 0 && nl <= SC_RECORD_MAX_NS) {
        char nsb[SC_RECORD_MAX_NS + 1];
        memcpy(nsb, ns, nl);
        nsb[nl] = '\0';
        done = sh->apply.flush(sh->apply.ctx, nsb) == 0;
    }
    pthread_mutex_lock(&sh->smu);
    if (done) sh->st.applied++;
    if (t) {
        double lag = (double)(wall_ms() - atoll(t));
        sh->st.lag_ms_last = lag;
        if (lag > sh->st.lag_ms_max) sh->st.lag_ms_max = lag;
    }
    pthread_mutex_unlock(&sh->smu);
    return 0;
}

static int pos_load(sc_shared *sh, sc_feed_pos *pos)
{
    sc_feed_pos_init(pos);
    FILE *f = fopen(sh->pos_path, "r");
    if (!f) return -1;
    int k, n = 0;
    char id[SC_FEED_ID_MAX];
    while (fscanf(f, "%d %47s", &k, id) == 2)
        if (k >= 0 && k < SHARDS) {
            strcpy(pos->id[k], id);
            n++;
        }
    fclose(f);
    return n == SHARDS ? 0 : -1;
}

static void pos_save(sc_shared *sh, const sc_feed_pos *pos)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", sh->pos_path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    for (int k = 0; k < SHARDS; k++) fprintf(f, "%d %s\n", k, pos->id[k]);
    if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0) rename(tmp, sh->pos_path);
    else fclose(f);
}

static void *feed_main(void *arg)
{
    sc_shared *sh = arg;
    conn *c = &sh->fc;
    sc_feed_pos pos;
    int need_copy = pos_load(sh, &pos) != 0;
    feed_ctx x = {sh, c->rc};
    int64_t saved = 0;
    int wait_ms = POLL_MIN_MS;
    while (!atomic_load(&sh->stop)) {
        if (need_copy) {
            need_copy = full_copy(sh, c->rc, c->feed, &pos) != 0;
            if (need_copy) {
                note(sh, 0, NULL, 0);
                usleep(500 * 1000);
                continue;
            }
            pos_save(sh, &pos);
        }
        int trimmed = 0;
        long n = sc_feed_poll(c->feed, &pos, 256, on_event, &x, &trimmed);
        if (n < 0) note(sh, 0, NULL, 0);
        if (trimmed) {
            sc_warn("multi-node: the feed was trimmed past this node's position; copying every entry");
            need_copy = 1;
            continue;
        }
        int64_t now = wall_ms();
        if (n > 0 && now - saved >= POS_SAVE_MS) {
            pos_save(sh, &pos);
            saved = now;
        }
        /* An idle node polls less (16 XREADs a poll): the first event
         * after a quiet spell waits at most POLL_MAX_MS. */
        wait_ms = n > 0 ? POLL_MIN_MS : wait_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : wait_ms * 2;
        if (n <= 0) usleep((useconds_t)wait_ms * 1000);
    }
    pos_save(sh, &pos);
    return NULL;
}

/* ---------------------------------------------------------------------
 * Open / close
 * ------------------------------------------------------------------- */

int sc_shared_open(sc_shared **out, const sc_config *cfg, const sc_shared_apply *apply, char *err, size_t errlen)
{
    *out = NULL;
    sc_shared *sh = SC_NEW(sc_shared);
    sh->cfg = cfg;
    sh->apply = *apply;
    pthread_mutex_init(&sh->smu, NULL);
    const char *pw = *cfg->redis_password_env ? getenv(cfg->redis_password_env) : NULL;
    sc_rc_opts o = {.seeds = cfg->redis_cluster, .password = pw, .timeout_ms = 1000, .max_attempts = 6,
                    .retry_wait_ms = 100};
    int rc = 0;
    for (int i = 0; i <= POOL && !rc; i++) {
        conn *c = i < POOL ? &sh->pool[i] : &sh->fc;
        pthread_mutex_init(&c->mu, NULL);
        rc = sc_rc_open(&c->rc, &o, err, errlen);
        if (!rc) rc = sc_feed_open(&c->feed, c->rc, FEED_PREFIX, SHARDS, FEED_MAXLEN);
    }
    if (rc) {
        for (int i = 0; i <= POOL; i++) {
            conn *c = i < POOL ? &sh->pool[i] : &sh->fc;
            sc_feed_close(c->feed);
            sc_rc_close(c->rc);
        }
        free(sh);
        return rc;
    }
    FILE *u = fopen("/dev/urandom", "rb");
    uint64_t id = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32);
    if (u) {
        if (fread(&id, sizeof id, 1, u) != 1) id ^= (uint64_t)clock();
        fclose(u);
    }
    snprintf(sh->node, sizeof sh->node, "%016llx", (unsigned long long)id);
    snprintf(sh->pos_path, sizeof sh->pos_path, "%s/feed.pos", cfg->data_dir);
    sh->st.up = 1;
    *out = sh;
    return 0;
}

int sc_shared_start(sc_shared *sh)
{
    if (pthread_create(&sh->th, NULL, feed_main, sh) != 0) return SC_ENOMEM;
    sh->started = 1;
    return 0;
}

void sc_shared_close(sc_shared *sh)
{
    if (!sh) return;
    atomic_store(&sh->stop, 1);
    if (sh->started) pthread_join(sh->th, NULL);
    for (int i = 0; i <= POOL; i++) {
        conn *c = i < POOL ? &sh->pool[i] : &sh->fc;
        sc_feed_close(c->feed);
        sc_rc_close(c->rc);
        pthread_mutex_destroy(&c->mu);
    }
    pthread_mutex_destroy(&sh->smu);
    free(sh);
}

void sc_shared_stats_get(sc_shared *sh, sc_shared_stats *st)
{
    pthread_mutex_lock(&sh->smu);
    *st = sh->st;
    pthread_mutex_unlock(&sh->smu);
}
