/* Redis Cluster client: slot map, node connections, redirections and
 * retries (the contract is in rcluster.h). */
#include "cluster/rcluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NO_NODE 0xffffu

typedef struct node {
    char host[64];
    int port;
    redisContext *c;            /* NULL until used, and after a failure */
    int64_t down_until;         /* monotonic ms: a refresh skips it until then */
} node;

struct sc_rc {
    sc_rc_opts o;
    char *seeds, *password;
    node nodes[SC_RC_MAX_NODES];
    size_t nnodes, nseeds;
    uint16_t slots[SC_RC_SLOTS];   /* node index, NO_NODE = unknown */
    sc_rc_stats st;
    char last_err[160];
};

/* ---------------------------------------------------------------------
 * Slots: CRC16-XMODEM (polynomial 0x1021, initial 0), mod 16384
 * ------------------------------------------------------------------- */

static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++) crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

uint16_t sc_rc_slot(const char *key, size_t len)
{
    /* A {tag} with at least one byte in it: only the tag is hashed. */
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) return crc16(open + 1, (size_t)(close - open - 1)) & (SC_RC_SLOTS - 1);
    }
    return crc16(key, len) & (SC_RC_SLOTS - 1);
}

/* ---------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* "host:port" -> parts; 0 or SC_EINVAL. */
static int parse_addr(const char *s, size_t n, char host[64], int *port)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':') colon = s + i;
    if (!colon || colon == s || (size_t)(colon - s) >= 64) return SC_EINVAL;
    size_t hl = (size_t)(colon - s);
    char num[8];
    size_t pl = n - hl - 1;
    if (pl == 0 || pl >= sizeof num) return SC_EINVAL;
    memcpy(num, colon + 1, pl);
    num[pl] = '\0';
    char *end;
    long p = strtol(num, &end, 10);
    if (*end || p <= 0 || p > 65535) return SC_EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* A node the map no longer names and that holds no connection (not a
 * seed): its entry can take a new address. NO_NODE when none. */
static uint16_t node_unused(const sc_rc *rc)
{
    uint8_t used[SC_RC_MAX_NODES] = {0};
    for (size_t s = 0; s < SC_RC_SLOTS; s++)
        if (rc->slots[s] != NO_NODE) used[rc->slots[s]] = 1;
    for (size_t i = rc->nseeds; i < rc->nnodes; i++)
        if (!used[i] && !rc->nodes[i].c) return (uint16_t)i;
    return NO_NODE;
}

/* The index of node host:port, added when new (in a forgotten node's
 * place when the table is full: nodes change addresses over a long
 * life); NO_NODE when nothing can be reused. */
static uint16_t node_of(sc_rc *rc, const char *host, int port)
{
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i].port == port && strcmp(rc->nodes[i].host, host) == 0) return (uint16_t)i;
    uint16_t idx = rc->nnodes < SC_RC_MAX_NODES ? (uint16_t)rc->nnodes++ : node_unused(rc);
    if (idx == NO_NODE) return NO_NODE;
    node *n = &rc->nodes[idx];
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->c = NULL;
    n->down_until = 0;
    return idx;
}

static void node_drop(node *n)
{
    if (n->c) redisFree(n->c);
    n->c = NULL;
}

static void set_err(sc_rc *rc, const node *n, const char *what)
{
    snprintf(rc->last_err, sizeof rc->last_err, "%.63s:%d: %.80s", n->host, n->port, what);
}

/* The node's connection, opened (and authenticated) when needed. */
static redisContext *node_conn(sc_rc *rc, node *n)
{
    if (n->c) return n->c;
    struct timeval tv = {rc->o.timeout_ms / 1000, (rc->o.timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(n->host, n->port, tv);
    if (!c || c->err) {
        set_err(rc, n, c ? c->errstr : "cannot allocate a connection");
        if (c) redisFree(c);
        n->down_until = mono_ms() + 1000;
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (rc->password) {
        redisReply *r = redisCommand(c, "AUTH %s", rc->password);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        if (!ok) set_err(rc, n, !r ? "no reply to AUTH" : "AUTH refused");
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    n->c = c;
    return c;
}

/* ---------------------------------------------------------------------
 * The slot map
 * ------------------------------------------------------------------- */

/* Reads CLUSTER SLOTS from node n into a new map; 0 when every slot is
 * covered. A master's empty host means "the address you asked". */
static int read_map(sc_rc *rc, node *n, uint16_t *map)
{
    redisContext *c = node_conn(rc, n);
    if (!c) return SC_EUPSTREAM;
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    if (!r) {
        set_err(rc, n, c->errstr[0] ? c->errstr : "no reply to CLUSTER SLOTS");
        node_drop(n);
        return SC_EUPSTREAM;
    }
    int rc_ = SC_EUPSTREAM;
    if (r->type != REDIS_REPLY_ARRAY) {
        set_err(rc, n, r->type == REDIS_REPLY_ERROR ? r->str : "CLUSTER SLOTS: not an array");
        goto out;
    }
    for (size_t i = 0; i < SC_RC_SLOTS; i++) map[i] = NO_NODE;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 || e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const char *host = e->element[2]->element[0]->str;
        if (!*host) host = n->host;
        if (lo < 0 || hi >= SC_RC_SLOTS || lo > hi || strlen(host) >= 64) continue;
        uint16_t idx = node_of(rc, host, (int)e->element[2]->element[1]->integer);
        for (long long s = lo; s <= hi; s++) map[s] = idx;
    }
    rc_ = 0;
    for (size_t i = 0; i < SC_RC_SLOTS && !rc_; i++)
        if (map[i] == NO_NODE) {
            set_err(rc, n, "the cluster does not cover every slot");
            rc_ = SC_EUPSTREAM;
        }
out:
    freeReplyObject(r);
    return rc_;
}

int sc_rc_refresh(sc_rc *rc)
{
    uint16_t *m = sc_malloc(SC_RC_SLOTS * sizeof(uint16_t));
    rc->st.refreshes++;
    /* Any node will do: the ones known, the seeds first (they were added
     * first). A node that fails is skipped. */
    /* Nodes with a connection first, then the others, skipping those
     * that could not be reached in the last second (each would cost a
     * connect timeout); the seeds were added first. */
    int done = SC_EUPSTREAM;
    int64_t now = mono_ms();
    for (int pass = 0; pass < 2 && done; pass++)
        for (size_t i = 0; i < rc->nnodes && done; i++) {
            node *n = &rc->nodes[i];
            if (pass == 0 ? !n->c : n->c || n->down_until > now) continue;
            done = read_map(rc, n, m);
        }
    if (!done) memcpy(rc->slots, m, SC_RC_SLOTS * sizeof(uint16_t));
    free(m);
    return done;
}

/* ---------------------------------------------------------------------
 * Open / close
 * ------------------------------------------------------------------- */

int sc_rc_open(sc_rc **out, const sc_rc_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (!opts || !opts->seeds || !*opts->seeds) {
        snprintf(err, errlen, "no Redis Cluster seed node given");
        return SC_EINVAL;
    }
    sc_rc *rc = SC_NEW(sc_rc);
    rc->o = *opts;
    if (rc->o.timeout_ms <= 0) rc->o.timeout_ms = 1000;
    if (rc->o.max_attempts <= 0) rc->o.max_attempts = 8;
    if (rc->o.retry_wait_ms <= 0) rc->o.retry_wait_ms = 100;
    rc->seeds = sc_strdup(opts->seeds);
    rc->password = opts->password && *opts->password ? sc_strdup(opts->password) : NULL;
    rc->o.seeds = rc->seeds;
    rc->o.password = rc->password;
    for (size_t i = 0; i < SC_RC_SLOTS; i++) rc->slots[i] = NO_NODE;
    for (const char *p = rc->seeds; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char host[64];
        int port;
        if (parse_addr(p, n, host, &port) || node_of(rc, host, port) == NO_NODE) {
            snprintf(err, errlen, "bad Redis Cluster seed '%.*s' (want host:port[,host:port...])", (int)(n > 80 ? 80 : n), p);
            sc_rc_close(rc);
            return SC_EINVAL;
        }
        p += n + (end != NULL);
    }
    rc->nseeds = rc->nnodes;
    if (sc_rc_refresh(rc)) {
        snprintf(err, errlen, "no Redis Cluster node of '%s' gave a full slot map (last: %s)", rc->seeds,
                 rc->last_err);
        sc_rc_close(rc);
        return SC_EUPSTREAM;
    }
    *out = rc;
    return 0;
}

void sc_rc_close(sc_rc *rc)
{
    if (!rc) return;
    for (size_t i = 0; i < rc->nnodes; i++) node_drop(&rc->nodes[i]);
    free(rc->seeds);
    if (rc->password) memset(rc->password, 0, strlen(rc->password));
    free(rc->password);
    free(rc);
}

/* ---------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------- */

/* "MOVED 3999 127.0.0.1:6381" / "ASK ..." -> the node; NO_NODE if it does
 * not parse. */
static uint16_t redirect_target(sc_rc *rc, const char *msg, long *slot)
{
    const char *sp = strchr(msg, ' ');
    if (!sp) return NO_NODE;
    char *end;
    *slot = strtol(sp + 1, &end, 10);
    if (*end != ' ' || *slot < 0 || *slot >= SC_RC_SLOTS) return NO_NODE;
    char host[64];
    int port;
    if (parse_addr(end + 1, strlen(end + 1), host, &port)) return NO_NODE;
    return node_of(rc, host, port);
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* The lengths of argv's words: lens, or strlen of each into buf (at most
 * 64 words; NULL past that). */
static const size_t *arg_lens(int argc, const char **argv, const size_t *lens, size_t buf[64])
{
    if (lens) return lens;
    if (argc > 64) return NULL;
    for (int i = 0; i < argc; i++) buf[i] = strlen(argv[i]);
    return buf;
}

redisReply *sc_rc_command(sc_rc *rc, const char *key, size_t keylen, int argc, const char **argv,
                          const size_t *lens, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    *err = 0;
    if (!rc || !key || argc <= 0 || !argv) {
        *err = SC_EINVAL;
        return NULL;
    }
    size_t lbuf[64];
    const size_t *l = arg_lens(argc, argv, lens, lbuf);
    if (!l) {
        *err = SC_EINVAL;
        return NULL;
    }
    uint16_t slot = sc_rc_slot(key, keylen), ask_node = NO_NODE;
    for (int attempt = 0; attempt < rc->o.max_attempts; attempt++) {
        uint16_t idx = ask_node != NO_NODE ? ask_node : rc->slots[slot];
        if (idx == NO_NODE) {
            if (sc_rc_refresh(rc)) sleep_ms(rc->o.retry_wait_ms);
            continue;
        }
        node *n = &rc->nodes[idx];
        redisContext *c = node_conn(rc, n);
        redisReply *r = NULL;
        if (c && ask_node != NO_NODE) {
            redisReply *a = redisCommand(c, "ASKING");
            if (a) freeReplyObject(a);
            else node_drop(n);
            c = n->c;
        }
        if (c) {
            r = redisCommandArgv(c, argc, argv, l);
            if (!r) {
                set_err(rc, n, c->errstr[0] ? c->errstr : "no reply");
                node_drop(n);
            }
        }
        ask_node = NO_NODE;
        if (!r) { /* lost or refused: the cluster may be failing over */
            rc->st.reconnects++;
            sleep_ms(rc->o.retry_wait_ms);
            (void)sc_rc_refresh(rc);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR && r->str) {
            long s;
            if (starts_with(r->str, "MOVED ")) {
                uint16_t to = redirect_target(rc, r->str, &s);
                rc->st.moved++;
                freeReplyObject(r);
                if (to != NO_NODE) rc->slots[s] = to;
                (void)sc_rc_refresh(rc); /* usually more than one slot moved */
                if (to != NO_NODE) rc->slots[s] = to;
                continue;
            }
            if (starts_with(r->str, "ASK ")) {
                ask_node = redirect_target(rc, r->str, &s);
                rc->st.ask++;
                freeReplyObject(r);
                continue;
            }
            if (starts_with(r->str, "TRYAGAIN") || starts_with(r->str, "CLUSTERDOWN")) {
                set_err(rc, n, r->str);
                freeReplyObject(r);
                sleep_ms(rc->o.retry_wait_ms);
                (void)sc_rc_refresh(rc);
                continue;
            }
        }
        return r;
    }
    rc->st.failures++;
    *err = SC_EUPSTREAM;
    sc_debug("redis cluster: gave up on a command after %d attempts (last: %s)", rc->o.max_attempts, rc->last_err);
    return NULL;
}

redisReply *sc_rc_command_node(sc_rc *rc, const char *addr, int argc, const char **argv, const size_t *lens,
                               int *err)
{
    int dummy;
    if (!err) err = &dummy;
    *err = 0;
    char host[64];
    int port;
    uint16_t idx;
    if (!rc || !addr || argc <= 0 || argc > 64 || !argv || parse_addr(addr, strlen(addr), host, &port) ||
        (idx = node_of(rc, host, port)) == NO_NODE) {
        *err = SC_EINVAL;
        return NULL;
    }
    size_t lbuf[64];
    const size_t *l = arg_lens(argc, argv, lens, lbuf);
    node *n = &rc->nodes[idx];
    for (int attempt = 0; attempt < rc->o.max_attempts; attempt++) {
        redisContext *c = node_conn(rc, n);
        redisReply *r = c ? redisCommandArgv(c, argc, argv, l) : NULL;
        if (r) return r;
        if (c) {
            set_err(rc, n, c->errstr[0] ? c->errstr : "no reply");
            node_drop(n);
        }
        rc->st.reconnects++;
        sleep_ms(rc->o.retry_wait_ms);
    }
    rc->st.failures++;
    *err = SC_EUPSTREAM;
    return NULL;
}

size_t sc_rc_masters(const sc_rc *rc, char (*addrs)[64], size_t max)
{
    uint8_t seen[SC_RC_MAX_NODES] = {0};
    size_t n = 0;
    for (size_t s = 0; s < SC_RC_SLOTS; s++) {
        uint16_t i = rc->slots[s];
        if (i == NO_NODE || seen[i]) continue;
        seen[i] = 1;
        if (n < max) snprintf(addrs[n], 64, "%s:%d", rc->nodes[i].host, rc->nodes[i].port);
        n++;
    }
    return n;
}

void sc_rc_stats_get(const sc_rc *rc, sc_rc_stats *st) { *st = rc->st; }

void sc_rc__test_point_all(sc_rc *rc, const char *addr)
{
    char host[64];
    int port;
    if (parse_addr(addr, strlen(addr), host, &port)) return;
    uint16_t idx = node_of(rc, host, port);
    for (size_t s = 0; s < SC_RC_SLOTS; s++) rc->slots[s] = idx;
}
