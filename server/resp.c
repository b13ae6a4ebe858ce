/* The RESP2 listener (see resp.h for the contract).
 *
 * Per connection: bytes read go into conn->in; process() parses them into
 * a queue of commands (sc_resp_parse), runs queued commands that need no
 * cache directly on the loop thread, and hands the next run of commands to
 * the thread pool as one batch when the head of the queue needs the cache.
 * Replies of a batch are collected in its own buffer by the worker and
 * written by the after-work callback, so the order of replies is always the
 * order of requests. A connection has at most one batch in flight; the
 * refcount (tcp handle, timer handle, batch, pending writes) keeps it alive
 * until all of them are done, even when the socket closes first.
 *
 * SEM.GET first tries the loop thread: the exact-hit memo (memo_get), then
 * sc_cache_lookup_exact() (LMDB reads only); only a miss makes it a batch
 * command. Batches of all connections share cfg->workers pool slots
 * (wait list, FIFO) so the HTTP side always keeps a thread.
 *
 * What a worker may touch: its batch, the connection's session (auth
 * state, name), the cache and the server's atomic counters. The loop
 * thread leaves the session alone while a batch is in flight. */
#include "server/resp.h"
#include "server/learn.h"
#include "server/memo.h"
#include "server/listen.h"
#include "server/resp_parse.h"
#include "server/api.h"
#include "server/server.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define IN_HIGH (1u << 20)          /* buffered input that pauses reading */
#define OUT_HIGH (8u << 20)         /* queued output that pauses processing */
#define QMAX 256                    /* parsed commands waiting per connection */
#define QBYTES (16u << 20)          /* their argument bytes */
#define BATCH_MAX 128               /* commands per thread-pool hop */
#define BATCH_OUT_MAX (4u << 20)    /* reply bytes after which a batch stops */
#define BATCH_BUDGET_NS 20000000ull /* thread time after which a batch stops */
#define REPLY_MAX ((size_t)1 << 30)
#define OUT_KEEP (256u << 10)       /* reply buffer kept between rounds */
#define STOP_DRAIN_MS 5000          /* a stop waits this long for a client to read its replies */
#define MEMO_SLOTS 4096             /* exact-hit memo: direct-mapped slots */
#define MEMO_MAX_REPLY (256u << 10) /* larger replies are not memoised */
#define MEMO_MAX_KEY 4096           /* nor longer ns + prompt */
#define MEMO_BYTES (32u << 20)      /* total memo memory */
#define NAME_MAX_LEN 128

struct sc_resp {
    sc_conns conns; /* the listener and the open connections */
    const sc_config *cfg;
    sc_cache *cache;
    const sc_auth *auth;
    sc_resp_limits lim;
    int port;
    time_t started;
    uint64_t next_id;
    atomic_ullong conns_total, conns_rejected, commands, proto_errors, errors;
    atomic_ullong stalled;      /* clients closed for leaving replies unread */
    size_t batches, max_batches;        /* in the thread pool now / at most */
    struct conn *wait_head, *wait_tail; /* waiting for a batch slot */
    sc_memo *memo;                      /* loop thread only */
    atomic_ullong memo_hits;
    atomic_ullong *overloaded;          /* where overload misses are counted (sc_resp_count_overloads) */
};

/* What a command may read and change about its connection. */
typedef struct session {
    uint64_t id;
    int authed; /* or auth is off */
    int role;
    const char *key_ns; /* the key's namespace (user role) */
    char name[NAME_MAX_LEN + 1];
    char addr[64];
} session;

typedef struct conn {
    sc_conn base; /* first: handles, refcount (+ batch, writes), list links */
    sc_resp *srv;
    sc_resp_parser parser;
    sc_buf in;            /* received, not parsed yet */
    sc_buf out;           /* replies of loop-thread commands, being collected */
    sc_resp_cmd *q[QMAX]; /* parsed, not run yet (ring) */
    size_t qhead, qlen, qbytes;
    struct batch *busy;
    session ss;
    char proto_err[SC_RESP_ERR_MAX];
    int has_proto_err;
    int mid_command; /* the parser holds part of a command */
    int waiting;     /* in the server's wait list */
    uint64_t wait_since; /* since when (0: not waiting; a batch's queue time counts from here) */
    struct conn *wait_next;
    int reading;
    int processing;
    int closing; /* close once the output is flushed */
    int draining; /* the server stops: finish the command still arriving, then close */
    int eof;
    size_t out_queued;
    uint64_t write_since;  /* ns: last write progress while output was queued */
    uint64_t mid_since;    /* ns: last input while a command was half received */
} conn;
_Static_assert(offsetof(conn, base) == 0, "sc_conn must come first (see listen.h)");

typedef struct batch {
    uv_work_t work;
    conn *c;
    sc_resp_cmd *cmds[BATCH_MAX];
    size_t n, done;
    int quit;
    uint64_t queued_ns; /* since when its commands waited for a thread */
    sc_buf out;
} batch;

typedef struct wreq {
    uv_write_t w;
    conn *c;
    size_t len;
    char *data;
} wreq;

static void process(conn *c);
static void conn_close(conn *c);
static void arm_stall(conn *c);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------
 * Reply encoding
 * ------------------------------------------------------------------- */

static void r_raw(sc_buf *o, const char *s, size_t n)
{
    if (sc_buf_append(o, s, n)) sc_panic("reply buffer over %zu bytes", o->max);
}

static void r_status(sc_buf *o, const char *s)
{
    r_raw(o, "+", 1);
    r_raw(o, s, strlen(s));
    r_raw(o, "\r\n", 2);
}

/* An error line; CR/LF in the text (which may quote the client) become
 * spaces so the reply stays one line. */
__attribute__((format(printf, 2, 3))) static void r_error(sc_buf *o, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    for (int i = 0; i < n; i++)
        if (msg[i] == '\r' || msg[i] == '\n') msg[i] = ' ';
    r_raw(o, "-", 1);
    r_raw(o, msg, (size_t)n);
    r_raw(o, "\r\n", 2);
}

/* Appends "<type><v>\r\n" without printf (hot path). */
static void r_head(sc_buf *o, char type, long long v)
{
    char b[32];
    char *p = b + sizeof b;
    *--p = '\n';
    *--p = '\r';
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    *--p = type;
    r_raw(o, p, (size_t)(b + sizeof b - p));
}

static void r_int(sc_buf *o, long long v)
{
    r_head(o, ':', v);
}

static void r_bulk(sc_buf *o, const char *s, size_t n)
{
    r_head(o, '$', (long long)n);
    r_raw(o, s, n);
    r_raw(o, "\r\n", 2);
}

static void r_str(sc_buf *o, const char *s)
{
    r_bulk(o, s, strlen(s));
}

static void r_nil(sc_buf *o)
{
    r_raw(o, "$-1\r\n", 5);
}

static void r_array(sc_buf *o, size_t n)
{
    r_head(o, '*', (long long)n);
}

/* Prints up to `max` bytes of an argument for an error message. */
static void quote_arg(char *dst, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[j] = '\0';
}

/* ---------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------- */

enum { F_CACHE = 1, F_NOAUTH = 2 }; /* needs the cache; allowed before AUTH */
enum { EXEC_OK, EXEC_NEED_WORKER, EXEC_QUIT };

typedef struct ctx {
    sc_resp *s;
    session *ss;
    sc_resp_cmd *cmd;
    sc_buf *out;
    int worker;      /* on a worker thread (else the loop) */
    int overloaded;  /* waited over --max-queue-ms: SEM.GET answers exact hits only */
    int need_worker; /* set by a loop-thread attempt: rerun on a worker */
} ctx;

typedef void (*cmd_fn)(ctx *x);

typedef struct command {
    const char *name;
    int arity; /* > 0: exact; < 0: at least -arity */
    int flags;
    cmd_fn fn;
    const char *summary;
    const char *syntax;
} command;

static int arg_eq(const sc_resp_cmd *c, size_t i, const char *s)
{
    size_t n = strlen(s);
    return i < c->argc && c->len[i] == n && strncasecmp(c->argv[i], s, n) == 0;
}

static int parse_i64(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20) return SC_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end != s + n || isspace((unsigned char)s[0])) return SC_EINVAL;
    *out = v;
    return SC_OK;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20 || s[0] < '0' || s[0] > '9') return SC_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end != s + n) return SC_EINVAL;
    *out = v;
    return SC_OK;
}

/* Checks a namespace argument against the bounds and the session's key.
 * Writes the error reply and returns 0 when it is refused. */
static int ns_ok(ctx *x, size_t i)
{
    const char *ns = x->cmd->argv[i];
    size_t n = x->cmd->len[i];
    if (n != strlen(ns) || !sc_server_valid_ns(ns)) {
        char q[80];
        quote_arg(q, sizeof q, ns, n);
        r_error(x->out,
                "ERR invalid namespace '%s': want 1-128 characters of A-Z a-z 0-9 _ - . :", q);
        return 0;
    }
    if (x->ss->role == SC_ROLE_USER && x->ss->key_ns && strcmp(ns, x->ss->key_ns) != 0) {
        r_error(x->out, "NOPERM this key may only use namespace '%s'", x->ss->key_ns);
        return 0;
    }
    return 1;
}

/* Turns a cache failure into an error reply. */
static void cache_error(ctx *x, int rc, const char *what)
{
    atomic_fetch_add(&x->s->errors, 1);
    switch (rc) {
    case SC_EINVAL:
        r_error(x->out, "ERR %s: invalid argument", what);
        break;
    case SC_ETOOBIG:
        r_error(x->out, "ERR %s: value too large", what);
        break;
    case SC_EFULL:
    case SC_ENOSPACE:
        r_error(x->out, "ERR %s: %s", what, sc_strerror(rc));
        break;
    default:
        r_error(x->out, "IOERR %s failed: %s", what, sc_strerror(rc));
        break;
    }
}

static void cmd_ping(ctx *x)
{
    if (x->cmd->argc > 2) {
        r_error(x->out, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (x->cmd->argc == 2)
        r_bulk(x->out, x->cmd->argv[1], x->cmd->len[1]);
    else
        r_status(x->out, "PONG");
}

static void cmd_echo(ctx *x)
{
    r_bulk(x->out, x->cmd->argv[1], x->cmd->len[1]);
}

static void cmd_quit(ctx *x)
{
    r_status(x->out, "OK");
}

static void cmd_select(ctx *x)
{
    long long db;
    if (parse_i64(x->cmd->argv[1], x->cmd->len[1], &db))
        r_error(x->out, "ERR value is not an integer or out of range");
    else if (db != 0)
        r_error(x->out, "ERR DB index is out of range");
    else
        r_status(x->out, "OK");
}

/* AUTH password | AUTH username password. Returns 1 when accepted. */
static int do_auth(ctx *x, const char *key, size_t len)
{
    if (!sc_auth_enabled(x->s->auth)) {
        r_error(x->out,
                "ERR AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?");
        return 0;
    }
    const char *ns = NULL;
    int role = sc_auth_check(x->s->auth, key, len, &ns);
    if (role == SC_ROLE_NONE) {
        r_error(x->out, "WRONGPASS invalid username-password pair or user is disabled.");
        return 0;
    }
    x->ss->authed = 1;
    x->ss->role = role;
    x->ss->key_ns = ns;
    return 1;
}

static void cmd_auth(ctx *x)
{
    size_t k = x->cmd->argc == 3 ? 2 : 1;
    if (x->cmd->argc > 3) {
        r_error(x->out, "ERR syntax error");
        return;
    }
    if (do_auth(x, x->cmd->argv[k], x->cmd->len[k])) r_status(x->out, "OK");
}

static void cmd_hello(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    size_t i = 1;
    if (c->argc > 1) {
        long long ver;
        if (parse_i64(c->argv[1], c->len[1], &ver) || ver < 1 || ver > 3) {
            r_error(x->out, "NOPROTO unsupported protocol version");
            return;
        }
        if (ver != 2) {
            r_error(x->out, "NOPROTO sorry, this protocol version is not supported");
            return;
        }
        i = 2;
    }
    const char *setname = NULL;
    size_t setname_len = 0;
    for (; i < c->argc; i++) {
        if (arg_eq(c, i, "AUTH") && i + 2 < c->argc) {
            if (!do_auth(x, c->argv[i + 2], c->len[i + 2])) return;
            i += 2;
        } else if (arg_eq(c, i, "SETNAME") && i + 1 < c->argc) {
            setname = c->argv[i + 1];
            setname_len = c->len[i + 1];
            i++;
        } else {
            r_error(x->out, "ERR Syntax error in HELLO option '%.64s'", c->argv[i]);
            return;
        }
    }
    if (!x->ss->authed) {
        r_error(
            x->out,
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time");
        return;
    }
    if (setname) quote_arg(x->ss->name, sizeof x->ss->name, setname, setname_len);
    r_array(x->out, 14);
    r_str(x->out, "server");
    r_str(x->out, "semcached");
    r_str(x->out, "version");
    r_str(x->out, SC_VERSION);
    r_str(x->out, "proto");
    r_int(x->out, 2);
    r_str(x->out, "id");
    r_int(x->out, (long long)x->ss->id);
    r_str(x->out, "mode");
    r_str(x->out, "standalone");
    r_str(x->out, "role");
    r_str(x->out, "master");
    r_str(x->out, "modules");
    r_array(x->out, 0);
}

static void client_line(ctx *x, sc_buf *b)
{
    sc_buf_printf(b, "id=%llu addr=%s name=%s db=0 cmd=client\n", (unsigned long long)x->ss->id,
                  x->ss->addr, x->ss->name);
}

static void cmd_client(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    if (arg_eq(c, 1, "SETNAME") && c->argc == 3) {
        for (size_t i = 0; i < c->len[2]; i++)
            if (c->argv[2][i] <= ' ' || c->argv[2][i] > '~') {
                r_error(x->out,
                        "ERR Client names cannot contain spaces, newlines or special characters.");
                return;
            }
        quote_arg(x->ss->name, sizeof x->ss->name, c->argv[2], c->len[2]);
        r_status(x->out, "OK");
    } else if (arg_eq(c, 1, "GETNAME") && c->argc == 2) {
        if (x->ss->name[0])
            r_str(x->out, x->ss->name);
        else
            r_nil(x->out);
    } else if (arg_eq(c, 1, "ID") && c->argc == 2) {
        r_int(x->out, (long long)x->ss->id);
    } else if (arg_eq(c, 1, "SETINFO") && c->argc == 4) {
        r_status(x->out, "OK");
    } else if ((arg_eq(c, 1, "INFO") || arg_eq(c, 1, "LIST")) && c->argc >= 2) {
        /* Only this connection: the others belong to the loop thread. */
        sc_buf b;
        sc_buf_init(&b, 4096);
        client_line(x, &b);
        r_bulk(x->out, b.data, b.len);
        sc_buf_free(&b);
    } else if ((arg_eq(c, 1, "NO-EVICT") || arg_eq(c, 1, "NO-TOUCH") || arg_eq(c, 1, "REPLY")) &&
               c->argc == 3) {
        r_status(x->out, "OK");
    } else {
        char sub[64];
        quote_arg(sub, sizeof sub, c->argv[1], c->len[1]);
        r_error(x->out, "ERR unknown subcommand '%s'. Try CLIENT HELP.", sub);
    }
}

/* CONFIG GET answers the few parameters tools read (redis-benchmark asks
 * for save and appendonly); everything else is an empty list. */
static void cmd_config(ctx *x)
{
    static const char *const params[][2] = {
        {"save", ""},
        {"appendonly", "no"},
        {"databases", "1"},
        {"maxmemory", "0"},
    };
    sc_resp_cmd *c = x->cmd;
    if (!arg_eq(c, 1, "GET") || c->argc < 3) {
        r_error(x->out,
                "ERR CONFIG is not supported by semcached except CONFIG GET; see semcached --help");
        return;
    }
    size_t n = 0;
    int hit[SC_COUNTOF(params)] = {0};
    for (size_t i = 0; i < SC_COUNTOF(params); i++)
        for (size_t j = 2; j < c->argc && !hit[i]; j++)
            if (fnmatch(c->argv[j], params[i][0], FNM_CASEFOLD) == 0) {
                hit[i] = 1;
                n++;
            }
    r_array(x->out, 2 * n);
    for (size_t i = 0; i < SC_COUNTOF(params); i++)
        if (hit[i]) {
            r_str(x->out, params[i][0]);
            r_str(x->out, params[i][1]);
        }
}

static void cmd_command(ctx *x);
static void cmd_info(ctx *x);
static void cmd_dbsize(ctx *x);
static void cmd_sem_set(ctx *x);
static void cmd_sem_get(ctx *x);
static void cmd_sem_del(ctx *x);
static void cmd_sem_flush(ctx *x);
static void cmd_sem_stats(ctx *x);
static void cmd_sem_feedback(ctx *x);

static const command commands[] = {
    {"sem.set", -4, F_CACHE, cmd_sem_set,
     "Stores a prompt's response in a namespace; returns the entry id",
     "SEM.SET ns prompt response [EX seconds]"},
    {"sem.get", -3, F_CACHE, cmd_sem_get,
     "Finds the response of the same or a semantically close prompt: nil or [response, similarity, "
     "id, request]",
     "SEM.GET ns prompt [THRESHOLD x] [MAXERROR rate] [EXACT]"},
    {"sem.feedback", 4, F_CACHE, cmd_sem_feedback,
     "Records a verdict on a served hit (its request id from SEM.GET): GOOD or BAD; returns OK",
     "SEM.FEEDBACK ns request GOOD|BAD"},
    {"sem.del", 3, F_CACHE, cmd_sem_del, "Deletes an entry by id; returns 1 or 0", "SEM.DEL ns id"},
    {"sem.flush", 2, F_CACHE, cmd_sem_flush,
     "Deletes every entry of a namespace; returns the count", "SEM.FLUSH ns"},
    {"sem.stats", 1, F_CACHE, cmd_sem_stats, "Cache statistics as name/value pairs", "SEM.STATS"},
    {"ping", -1, 0, cmd_ping, "Returns PONG or the message", "PING [message]"},
    {"echo", 2, 0, cmd_echo, "Returns the message", "ECHO message"},
    {"info", -1, F_CACHE, cmd_info, "Server information and statistics", "INFO [section ...]"},
    {"dbsize", 1, F_CACHE, cmd_dbsize, "Number of cached entries", "DBSIZE"},
    {"auth", -2, F_NOAUTH, cmd_auth, "Authenticates the connection with an API key",
     "AUTH [username] key"},
    {"hello", -1, F_NOAUTH, cmd_hello, "Handshake (RESP2 only)",
     "HELLO [2 [AUTH username key] [SETNAME name]]"},
    {"client", -2, 0, cmd_client, "Connection name and information",
     "CLIENT SETNAME|GETNAME|SETINFO|ID|INFO"},
    {"command", -1, 0, cmd_command, "Describes the commands", "COMMAND [COUNT|DOCS|INFO|LIST]"},
    {"select", 2, 0, cmd_select, "Selects database 0 (the only one)", "SELECT 0"},
    {"config", -2, 0, cmd_config, "CONFIG GET answers save, appendonly, databases, maxmemory",
     "CONFIG GET pattern [pattern ...]"},
    {"quit", 1, F_NOAUTH, cmd_quit, "Closes the connection", "QUIT"},
};

static const command *lookup(const sc_resp_cmd *c)
{
    for (size_t i = 0; i < SC_COUNTOF(commands); i++)
        if (arg_eq(c, 0, commands[i].name)) return &commands[i];
    return NULL;
}

static void command_info(sc_buf *o, const command *k)
{
    int keyed = (k->flags & F_CACHE) && strncmp(k->name, "sem.", 4) == 0 &&
                strcmp(k->name, "sem.stats") != 0;
    r_array(o, 10);
    r_str(o, k->name);
    r_int(o, k->arity);
    r_array(o, (k->flags & F_NOAUTH) ? 2 : 1);
    r_status(o, (k->flags & F_CACHE) ? "write" : "fast");
    if (k->flags & F_NOAUTH) r_status(o, "no-auth");
    r_int(o, keyed);
    r_int(o, keyed);
    r_int(o, keyed);
    r_array(o, 0); /* ACL categories */
    r_array(o, 0); /* tips */
    r_array(o, 0); /* key specs */
    r_array(o, 0); /* subcommands */
}

static void cmd_command(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    size_t n = SC_COUNTOF(commands);
    if (c->argc == 1) {
        r_array(x->out, n);
        for (size_t i = 0; i < n; i++)
            command_info(x->out, &commands[i]);
    } else if (arg_eq(c, 1, "COUNT")) {
        r_int(x->out, (long long)n);
    } else if (arg_eq(c, 1, "LIST")) {
        r_array(x->out, n);
        for (size_t i = 0; i < n; i++)
            r_str(x->out, commands[i].name);
    } else if (arg_eq(c, 1, "INFO")) {
        r_array(x->out, c->argc - 2);
        for (size_t j = 2; j < c->argc; j++) {
            sc_resp_cmd one = {.argc = 1, .argv = &c->argv[j], .len = &c->len[j]};
            const command *k = lookup(&one);
            if (k)
                command_info(x->out, k);
            else
                r_raw(x->out, "*-1\r\n", 5);
        }
    } else if (arg_eq(c, 1, "DOCS")) {
        /* A map as a flat array: name, [summary, text, since, version,
         * group, generic, syntax?, ...]. */
        size_t want = c->argc > 2 ? 0 : n;
        for (size_t j = 2; j < c->argc; j++) {
            sc_resp_cmd one = {.argc = 1, .argv = &c->argv[j], .len = &c->len[j]};
            if (lookup(&one)) want++;
        }
        r_array(x->out, want * 2);
        for (size_t i = 0; i < n; i++) {
            const command *k = &commands[i];
            int listed = c->argc == 2;
            for (size_t j = 2; j < c->argc && !listed; j++)
                listed = c->len[j] == strlen(k->name) &&
                         strncasecmp(c->argv[j], k->name, c->len[j]) == 0;
            if (!listed) continue;
            r_str(x->out, k->name);
            r_array(x->out, 8);
            r_str(x->out, "summary");
            r_str(x->out, k->summary);
            r_str(x->out, "since");
            r_str(x->out, SC_VERSION);
            r_str(x->out, "group");
            r_str(x->out, "generic");
            r_str(x->out, "syntax");
            r_str(x->out, k->syntax);
        }
    } else {
        char sub[64];
        quote_arg(sub, sizeof sub, c->argv[1], c->len[1]);
        r_error(x->out, "ERR unknown subcommand '%s'. Try COMMAND HELP.", sub);
    }
}

/* ---- cache commands (worker thread) ---- */

static void cmd_sem_set(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    if (!ns_ok(x, 1)) return;
    long long ex = 0;
    for (size_t i = 4; i < c->argc; i++) {
        if (arg_eq(c, i, "EX") && i + 1 < c->argc) {
            if (parse_i64(c->argv[i + 1], c->len[i + 1], &ex) || ex <= 0 ||
                ex > 100LL * 365 * 86400) {
                r_error(x->out, "ERR invalid expire time in 'sem.set' command");
                return;
            }
            i++;
        } else {
            r_error(x->out, "ERR syntax error");
            return;
        }
    }
    sc_record r;
    memset(&r, 0, sizeof r);
    r.ns = c->argv[1];
    r.fp = 0;
    r.prompt = c->argv[2];
    r.prompt_len = c->len[2];
    r.response = c->argv[3];
    r.response_len = c->len[3];
    r.content_type = (char *)"text/plain";
    r.model = (char *)"";
    r.expires = ex ? sc_cache_expires_in(ex) : 0;   /* rounded up: lives >= ex s */
    int rc = sc_cache_put(x->s->cache, &r, NULL);
    if (rc) {
        cache_error(x, rc, "SEM.SET");
        return;
    }
    r_int(x->out, (long long)r.id);
}

/* ---- the exact-hit memo (loop thread only) ----
 *
 * A SEM.GET answered by the loop-thread fast path keeps its reply bytes
 * here, keyed by the raw (ns, prompt) and tagged with the cache generation
 * read before the lookup. A later identical SEM.GET is answered from the
 * memo while the generation is unchanged (no entry was deleted, flushed,
 * expired, evicted or replaced since) and the entry's own expiry has not
 * passed; it still counts as an exact hit and touches the entry (at most
 * once a second: last_hit has one-second resolution). Anything
 * else falls through to the real lookup. Bounded: 4096 slots, 32 MiB. */

/* The key of a (ns, prompt) pair: ns, NUL, raw prompt; 0 when too long. */
static size_t memo_key(char *key, const char *ns, size_t nslen, const char *prompt, size_t plen)
{
    size_t klen = nslen + 1 + plen;
    if (klen > MEMO_MAX_KEY) return 0;
    memcpy(key, ns, nslen);
    key[nslen] = '\0';
    memcpy(key + nslen + 1, prompt, plen);
    return klen;
}

static int memo_get(sc_resp *s, uint64_t gen, const char *ns, size_t nslen, const char *prompt,
                    size_t plen, sc_buf *out)
{
    char key[MEMO_MAX_KEY];
    size_t klen = memo_key(key, ns, nslen, prompt, plen);
    sc_memo_hit hit;
    if (!klen || !sc_memo_get(s->memo, key, klen, gen, (int64_t)time(NULL), &hit)) return 0;
    /* The memo holds the reply up to its request id: each answer from it
     * is a decision of its own. */
    r_raw(out, hit.val, hit.len);
    char rid[SC_LEARN_RID_LEN + 1];
    sc_learn_rid_format(sc_cache_note_decision(s->cache, key, hit.id), rid);
    r_bulk(out, rid, SC_LEARN_RID_LEN);
    sc_cache_note_exact_hit(s->cache, hit.id, hit.touch);
    atomic_fetch_add(&s->memo_hits, 1);
    return 1;
}

static void memo_put(sc_resp *s, uint64_t gen, const char *ns, size_t nslen, const char *prompt,
                     size_t plen, const char *reply, size_t rlen, uint64_t id, int64_t expires)
{
    char key[MEMO_MAX_KEY];
    size_t klen = memo_key(key, ns, nslen, prompt, plen);
    if (klen) sc_memo_put(s->memo, key, klen, gen, reply, rlen, id, expires, (int64_t)time(NULL));
}

/* Argument i as a number from 0 to max into *out; -1 after an -ERR that
 * names the option. */
static int arg_number(ctx *x, size_t i, const char *option, double max, double *out)
{
    const sc_resp_cmd *c = x->cmd;
    char *end;
    errno = 0;
    double v = strtod(c->argv[i], &end);
    if (errno || c->len[i] == 0 || end != c->argv[i] + c->len[i] || !(v >= 0) || v > max) {
        r_error(x->out, "ERR %s must be a number between 0 and %g", option, max);
        return -1;
    }
    *out = v;
    return 0;
}

static void cmd_sem_get(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    if (!ns_ok(x, 1)) return;
    double threshold = -1, max_error = -1;
    int exact = 0;
    for (size_t i = 3; i < c->argc; i++) {
        if (arg_eq(c, i, "THRESHOLD") && i + 1 < c->argc) {
            if (arg_number(x, ++i, "THRESHOLD", 1, &threshold)) return;
        } else if (arg_eq(c, i, "MAXERROR") && i + 1 < c->argc) {
            if (arg_number(x, ++i, "MAXERROR", 0.5, &max_error)) return;
        } else if (arg_eq(c, i, "EXACT")) {
            exact = 1;
        } else {
            r_error(x->out, "ERR syntax error");
            return;
        }
    }
    sc_cache_result res;
    memset(&res, 0, sizeof res);
    int rc;
    uint64_t gen = 0;
    size_t mark = x->out->len;
    if (!x->worker) {
        /* Fast path on the loop thread: exact hits need no embedding. */
        gen = sc_cache_generation(x->s->cache);
        if (memo_get(x->s, gen, c->argv[1], c->len[1], c->argv[2], c->len[2], x->out)) return;
        if (!sc_cache_lookup_exact(x->s->cache, c->argv[1], 0, c->argv[2], c->len[2], &res)) {
            sc_cache_result_clear(&res);
            x->need_worker = 1;
            return;
        }
        rc = SC_OK;
    } else {
        /* The worker lookup checks the exact layer again: commands batched
         * behind another one never tried the fast path (a miss there counts
         * nothing). */
        sc_cache_lookup_opts o = {.threshold = threshold, .flags = exact || x->overloaded ? SC_LOOKUP_EXACT_ONLY : 0,
                                  .max_error = max_error};
        rc = sc_cache_lookup_ex(x->s->cache, c->argv[1], 0, c->argv[2], c->len[2], &o, &res);
        if (rc == SC_OK && res.outcome == SC_CACHE_MISS && x->overloaded && !exact) {
            /* As /cache/lookup's 503: the semantic layer was skipped. */
            sc_cache_result_clear(&res);
            if (x->s->overloaded) atomic_fetch_add(x->s->overloaded, 1);
            r_error(x->out, "OVERLOADED the lookup waited over --max-queue-ms (%lld ms) for a worker; "
                            "exact hits are still served, retry later", x->s->cfg->max_queue_ms);
            return;
        }
    }
    if (rc) {
        sc_cache_result_clear(&res);
        cache_error(x, rc, "SEM.GET");
        return;
    }
    if (res.outcome == SC_CACHE_MISS) {
        r_nil(x->out);
    } else {
        size_t len = 0;
        int plain =
            !res.rec.content_type || strncmp(res.rec.content_type, "application/json", 16) != 0;
        char *text = plain ? NULL : sc_cache_answer_text(&res.rec, &len);
        r_array(x->out, 4);
        if (text)
            r_bulk(x->out, text, len);
        else
            r_bulk(x->out, res.rec.response ? res.rec.response : "",
                   res.rec.response ? res.rec.response_len : 0);
        if (res.outcome == SC_CACHE_HIT_EXACT) {
            r_raw(x->out, "$8\r\n1.000000\r\n", 14);
        } else {
            char sim[32];
            snprintf(sim, sizeof sim, "%.6f", (double)res.similarity);
            r_str(x->out, sim);
        }
        r_int(x->out, (long long)res.id);
        free(text);
        if (!x->worker)
            memo_put(x->s, gen, c->argv[1], c->len[1], c->argv[2], c->len[2],
                     x->out->data + mark, x->out->len - mark, res.id, res.rec.expires);
        char rid[SC_LEARN_RID_LEN + 1];
        sc_learn_rid_format(res.rid, rid);
        r_bulk(x->out, rid, SC_LEARN_RID_LEN);
    }
    sc_cache_result_clear(&res);
}

/* SEM.FEEDBACK ns request GOOD|BAD: the verdict must be on a hit served in
 * ns (a user key may name only its own ns: ns_ok). */
static void cmd_sem_feedback(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    if (!ns_ok(x, 1)) return;
    int correct;
    if (arg_eq(c, 3, "GOOD")) {
        correct = 1;
    } else if (arg_eq(c, 3, "BAD")) {
        correct = 0;
    } else {
        r_error(x->out, "ERR verdict must be GOOD or BAD");
        return;
    }
    uint64_t rid, entry;
    if (sc_learn_rid_parse(c->argv[2], c->len[2], &rid)) {
        r_error(x->out, "ERR request must be the 16 hex digits SEM.GET answered");
        return;
    }
    sc_learn_entry st;
    int rc = sc_learn_verdict(sc_cache_learn(x->s->cache), rid, correct, c->argv[1], &entry, &st);
    if (rc == SC_ENOTFOUND)
        r_error(x->out, "ERR no served hit with that request id in this namespace (ids are kept for the last %d hits)",
                SC_LEARN_DECISIONS);
    else if (rc == SC_EFORBIDDEN)
        r_error(x->out, "NOPERM that request was served in another namespace");
    else if (rc == SC_EEXISTS)
        r_error(x->out, "ERR that request was judged already");
    else if (rc)
        cache_error(x, rc, "SEM.FEEDBACK");
    else
        r_raw(x->out, "+OK\r\n", 5);
}

static void cmd_sem_del(ctx *x)
{
    sc_resp_cmd *c = x->cmd;
    if (!ns_ok(x, 1)) return;
    uint64_t id;
    if (parse_u64(c->argv[2], c->len[2], &id)) {
        r_error(x->out, "ERR id is not an integer or out of range");
        return;
    }
    int rc = sc_cache_del(x->s->cache, c->argv[1], id);
    if (rc == SC_ENOTFOUND)
        r_int(x->out, 0);
    else if (rc)
        cache_error(x, rc, "SEM.DEL");
    else
        r_int(x->out, 1);
}

static void cmd_sem_flush(ctx *x)
{
    if (!ns_ok(x, 1)) return;
    uint64_t count = 0;
    int rc = sc_cache_flush(x->s->cache, x->cmd->argv[1], &count);
    if (rc)
        cache_error(x, rc, "SEM.FLUSH");
    else
        r_int(x->out, (long long)count);
}

#define STAT_FIELDS(X)                                                                             \
    X(entries)                                                                                     \
    X(bytes) X(disk_bytes) X(lookups) X(hits_exact) X(hits_semantic) X(misses) X(puts) X(evicted)  \
        X(expired) X(corrupt_skipped) X(index_vectors) X(index_partitions)

static void cmd_sem_stats(ctx *x)
{
    sc_cache_stats st;
    memset(&st, 0, sizeof st);
    sc_cache_stats_get(x->s->cache, &st);
    size_t n = 0;
#define COUNT_(f) n++;
    STAT_FIELDS(COUNT_)
#undef COUNT_
    r_array(x->out, 2 * (n + 6));
#define EMIT_(f)                                                                                   \
    r_str(x->out, #f);                                                                             \
    r_int(x->out, (long long)st.f);
    STAT_FIELDS(EMIT_)
#undef EMIT_
    uint64_t hits = st.hits_exact + st.hits_semantic;
    char ratio[32];
    snprintf(ratio, sizeof ratio, "%.4f", st.lookups ? (double)hits / (double)st.lookups : 0.0);
    r_str(x->out, "hit_ratio");
    r_str(x->out, ratio);
    r_str(x->out, "threshold");
    char th[32];
    snprintf(th, sizeof th, "%.4f", sc_cache_threshold(x->s->cache));
    r_str(x->out, th);
    r_str(x->out, "embedder");
    r_str(x->out, sc_cache_embedder_id(x->s->cache));
    r_str(x->out, "resp_commands");
    r_int(x->out, (long long)atomic_load(&x->s->commands));
    r_str(x->out, "resp_connections");
    r_int(x->out, (long long)atomic_load(&x->s->conns_total));
    r_str(x->out, "resp_memo_hits");
    r_int(x->out, (long long)atomic_load(&x->s->memo_hits));
}

static void cmd_dbsize(ctx *x)
{
    sc_cache_stats st;
    memset(&st, 0, sizeof st);
    sc_cache_stats_get(x->s->cache, &st);
    r_int(x->out, (long long)st.entries);
}

static int want_section(const sc_resp_cmd *c, const char *name)
{
    if (c->argc == 1) return 1;
    for (size_t i = 1; i < c->argc; i++)
        if (arg_eq(c, i, name) || arg_eq(c, i, "all") || arg_eq(c, i, "everything") ||
            arg_eq(c, i, "default"))
            return 1;
    return 0;
}

static void cmd_info(ctx *x)
{
    sc_resp *s = x->s;
    sc_buf b;
    sc_buf_init(&b, 1 << 16);
    time_t now = time(NULL);
    long long up = (long long)(now - s->started);
    if (want_section(x->cmd, "server"))
        sc_buf_printf(
            &b,
            "# Server\r\nredis_version:7.0.0\r\nsemcached_version:%s\r\nredis_mode:standalone\r\n"
            "os:Linux\r\narch_bits:%d\r\nprocess_id:%ld\r\ntcp_port:%d\r\n"
            "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n\r\n",
            SC_VERSION, (int)(sizeof(void *) * 8), (long)getpid(), s->port, up, up / 86400);
    if (want_section(x->cmd, "clients"))
        sc_buf_printf(&b, "# Clients\r\nmaxclients:%lld\r\n\r\n", s->cfg->max_conns);
    if (want_section(x->cmd, "persistence"))
        sc_buf_printf(&b, "# Persistence\r\nloading:0\r\n\r\n");
    sc_cache_stats st;
    memset(&st, 0, sizeof st);
    int need_stats = want_section(x->cmd, "stats") || want_section(x->cmd, "keyspace") ||
                     want_section(x->cmd, "semcache");
    if (need_stats) sc_cache_stats_get(s->cache, &st);
    if (want_section(x->cmd, "stats"))
        sc_buf_printf(&b,
                      "# Stats\r\ntotal_connections_received:%llu\r\nrejected_connections:%llu\r\n"
                      "total_commands_processed:%llu\r\ntotal_error_replies:%llu\r\n"
                      "total_protocol_errors:%llu\r\nclients_closed_unread_replies:%llu\r\n"
                      "keyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
                      "expired_keys:%llu\r\nevicted_keys:%llu\r\n\r\n",
                      (unsigned long long)atomic_load(&s->conns_total),
                      (unsigned long long)atomic_load(&s->conns_rejected),
                      (unsigned long long)atomic_load(&s->commands),
                      (unsigned long long)atomic_load(&s->errors),
                      (unsigned long long)atomic_load(&s->proto_errors),
                      (unsigned long long)atomic_load(&s->stalled),
                      (unsigned long long)(st.hits_exact + st.hits_semantic),
                      (unsigned long long)st.misses, (unsigned long long)st.expired,
                      (unsigned long long)st.evicted);
    if (want_section(x->cmd, "semcache"))
        sc_buf_printf(
            &b,
            "# Semcache\r\nembedder:%s\r\nthreshold:%.4f\r\nentries:%llu\r\nbytes:%llu\r\n"
            "disk_bytes:%llu\r\nlookups:%llu\r\nhits_exact:%llu\r\nhits_semantic:%llu\r\n"
            "misses:%llu\r\nputs:%llu\r\nindex_vectors:%llu\r\nindex_partitions:%llu\r\n\r\n",
            sc_cache_embedder_id(s->cache), sc_cache_threshold(s->cache),
            (unsigned long long)st.entries, (unsigned long long)st.bytes,
            (unsigned long long)st.disk_bytes, (unsigned long long)st.lookups,
            (unsigned long long)st.hits_exact, (unsigned long long)st.hits_semantic,
            (unsigned long long)st.misses, (unsigned long long)st.puts,
            (unsigned long long)st.index_vectors, (unsigned long long)st.index_partitions);
    if (want_section(x->cmd, "keyspace"))
        sc_buf_printf(&b, "# Keyspace\r\ndb0:keys=%llu,expires=0,avg_ttl=0\r\n",
                      (unsigned long long)st.entries);
    r_bulk(x->out, b.data ? b.data : "", b.len);
    sc_buf_free(&b);
}

/* Runs one command. In the loop thread (worker == 0) a command that needs
 * the cache is not run: EXEC_NEED_WORKER. */
static int exec_cmd(sc_resp *s, session *ss, sc_resp_cmd *cmd, sc_buf *out, int worker, int overloaded)
{
    const command *k = lookup(cmd);
    if (k && (k->flags & F_CACHE) && !worker && ss->authed && k->fn != cmd_sem_get)
        return EXEC_NEED_WORKER;
    if (!k) {
        char name[64], args[160];
        size_t j = 0;
        quote_arg(name, sizeof name, cmd->argv[0], cmd->len[0]);
        args[0] = '\0';
        for (size_t i = 1; i < cmd->argc && j + 8 < sizeof args; i++) {
            char a[48];
            quote_arg(a, sizeof a, cmd->argv[i], cmd->len[i]);
            int w = snprintf(args + j, sizeof args - j, "'%s' ", a);
            if (w < 0 || (size_t)w >= sizeof args - j) break;
            j += (size_t)w;
        }
        atomic_fetch_add(&s->commands, 1);
        atomic_fetch_add(&s->errors, 1);
        r_error(out, "ERR unknown command '%s', with args beginning with: %s", name, args);
        return EXEC_OK;
    }
    if (!ss->authed && !(k->flags & F_NOAUTH)) {
        atomic_fetch_add(&s->commands, 1);
        atomic_fetch_add(&s->errors, 1);
        r_error(out, "NOAUTH Authentication required.");
        return EXEC_OK;
    }
    if ((k->arity > 0 && cmd->argc != (size_t)k->arity) ||
        (k->arity < 0 && cmd->argc < (size_t)-k->arity)) {
        atomic_fetch_add(&s->commands, 1);
        atomic_fetch_add(&s->errors, 1);
        r_error(out, "ERR wrong number of arguments for '%s' command", k->name);
        return EXEC_OK;
    }
    ctx x = {.s = s, .ss = ss, .cmd = cmd, .out = out, .worker = worker, .overloaded = overloaded};
    size_t mark = out->len;
    k->fn(&x);
    if (x.need_worker) {
        sc_assert(out->len == mark);
        return EXEC_NEED_WORKER;
    }
    atomic_fetch_add(&s->commands, 1);
    return k->fn == cmd_quit ? EXEC_QUIT : EXEC_OK;
}

/* ---------------------------------------------------------------------
 * Connection lifetime and output
 * ------------------------------------------------------------------- */

/* Frees the server (sc_conns calls it when a stop is complete). */
static void resp_free(void *p)
{
    sc_resp *s = p;
    sc_memo_destroy(s->memo);
    free(s);
}

/* Frees a connection whose last reference went (sc_conns calls it). */
static void conn_release(sc_conn *base)
{
    conn *c = (conn *)base;
    for (size_t i = 0; i < c->qlen; i++)
        sc_resp_cmd_free(c->q[(c->qhead + i) % QMAX]);
    sc_resp_parser_free(&c->parser);
    sc_buf_free(&c->in);
    sc_buf_free(&c->out);
    free(c);
}

static void unwait(conn *c);

static void conn_close(conn *c)
{
    if (c->base.closed) return;
    unwait(c);
    c->reading = 0;
    sc_conn_close(&c->base);
}

/* Closes a connection whose replies are all written without losing them
 * to a reset (sc_conn_linger, listen.h): an error reply for a bad command
 * followed by more bytes, QUIT with more commands pipelined behind it, or
 * the last reply of a stopping server. A half-closed client has nothing
 * left to send: it closes at once. */
static void conn_linger(conn *c)
{
    if (c->eof) conn_close(c);
    else sc_conn_linger(&c->base, SC_CONN_LINGER_MS);   /* bounded, stopping or not */
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Reads while there is room for input and the connection is live. */
static void update_reading(conn *c)
{
    if (c->base.lingering) return;   /* reading is the linger's */
    int want = !c->base.closed && !c->closing && !c->eof && c->in.len < IN_HIGH;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->base.tcp, sc_listen_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->base.tcp);
        c->reading = 0;
    }
}

static void on_written(uv_write_t *w, int status)
{
    wreq *wr = (wreq *)w;
    conn *c = wr->c;
    size_t before = c->out_queued;
    c->out_queued -= wr->len;
    c->write_since = now_ns();   /* the client read: progress */
    free(wr->data);
    free(wr);
    if (status < 0) {
        conn_close(c);
    } else if (c->closing && c->out_queued == 0) {
        conn_linger(c);
    } else if (before >= OUT_HIGH && c->out_queued < OUT_HIGH && !c->base.closed &&
               !c->processing) {
        process(c); /* a slow reader caught up */
    }
    sc_conn_unref(&c->base);
}

/* Sends bytes: straight into the socket when it takes them and nothing is
 * queued before them (the common case: no allocation, no copy), else the
 * rest is copied into a write request. */
static void send_bytes(conn *c, const char *data, size_t len)
{
    if (c->base.closed || len == 0) return;
    size_t done = 0;
    if (c->out_queued == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->base.tcp, &b, 1);
        if (n > 0) {
            done = (size_t)n;
            c->base.sent += done;
        } else if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (done == len) return;
    }
    wreq *wr = SC_NEW(wreq);
    wr->c = c;
    wr->len = len - done;
    wr->data = sc_malloc(wr->len);
    memcpy(wr->data, data + done, wr->len);
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)wr->len);
    sc_conn_ref(&c->base);
    int was_empty = c->out_queued == 0;
    c->out_queued += wr->len;
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->base.tcp, &ub, 1, on_written);
    if (rc < 0) {
        c->out_queued -= wr->len;
        sc_conn_unref(&c->base);
        free(wr->data);
        free(wr);
        conn_close(c);
    } else {
        c->base.sent += wr->len;
        if (was_empty) {
            c->write_since = now_ns();
            arm_stall(c);
        }
    }
}

/* Sends what process() collected in c->out; keeps its memory unless big. */
static void flush_out(conn *c)
{
    send_bytes(c, c->out.data, c->out.len);
    if (c->out.cap > OUT_KEEP)
        sc_buf_free(&c->out);
    else
        sc_buf_reset(&c->out);
}

/* ---------------------------------------------------------------------
 * Parsing and dispatch
 * ------------------------------------------------------------------- */

static uint64_t write_stall_ms(const conn *c)
{
    const sc_config *cfg = c->srv->cfg;
    return (uint64_t)(cfg->resp_stall_timeout_ms > 0 ? cfg->resp_stall_timeout_ms : cfg->idle_timeout_ms + 5000);
}

/* The connection's one timer, for two stalls: a command half received
 * with no more input for idle-timeout-ms, and replies queued that the
 * client has not read (no write progress) for the write-stall bound. */
static void on_stall(uv_timer_t *t)
{
    conn *c = t->data;
    /* A stopping server's timer is the stop deadline's (sc_resp_stop). */
    if (c->base.closed || c->srv->conns.stopping) return;
    uint64_t now = now_ns(), next = UINT64_MAX;
    if (c->out_queued > 0) {
        /* Progress inside a big write counts (listen.h). */
        if (sc_conn_peer_progress(&c->base)) c->write_since = now;
        uint64_t lim = write_stall_ms(c) * 1000000ull, el = now - c->write_since;
        if (el >= lim) {
            atomic_fetch_add(&c->srv->stalled, 1);
            sc_debug("RESP client left %zu bytes of replies unread for %llu ms; closing", c->out_queued,
                     (unsigned long long)(el / 1000000));
            conn_close(c);
            return;
        }
        next = lim - el;
    }
    if (!c->busy && c->mid_command) {
        uint64_t lim = (uint64_t)c->srv->cfg->idle_timeout_ms * 1000000ull, el = now - c->mid_since;
        if (el >= lim) {
            sc_debug("RESP client stalled in the middle of a command; closing");
            conn_close(c);
            return;
        }
        if (lim - el < next) next = lim - el;
    }
    if (next != UINT64_MAX) uv_timer_start(&c->base.timer, on_stall, next / 1000000 + 1, 0);
}

/* (Re)arms the timer for whichever stall is possible now. */
static void arm_stall(conn *c)
{
    if (c->base.closed || c->srv->conns.stopping) return;
    if (c->out_queued > 0 || c->mid_command) on_stall(&c->base.timer);
    else uv_timer_stop(&c->base.timer);
}

/* Parses buffered input into the queue while there is room. */
static void fill_queue(conn *c)
{
    size_t off = 0;
    while (off < c->in.len && !c->has_proto_err && c->qlen < QMAX && c->qbytes < QBYTES) {
        size_t used;
        sc_resp_cmd *cmd;
        int rc = sc_resp_parse(&c->parser, c->in.data + off, c->in.len - off, &used, &cmd);
        if (rc) {
            c->has_proto_err = 1;
            snprintf(c->proto_err, sizeof c->proto_err, "%s", c->parser.err);
            atomic_fetch_add(&c->srv->proto_errors, 1);
            off = c->in.len;
            break;
        }
        off += used;
        if (cmd) {
            c->q[(c->qhead + c->qlen) % QMAX] = cmd;
            c->qlen++;
            c->qbytes += cmd->bytes;
        }
    }
    if (off == c->in.len)
        sc_buf_reset(&c->in);
    else
        sc_buf_consume(&c->in, off);
    /* A command half received: arm the stall timer. */
    c->mid_command = sc_resp_parser_midway(&c->parser) || c->in.len > 0;
    if (c->mid_command) c->mid_since = now_ns();   /* input arrived: progress */
    arm_stall(c);
}

static sc_resp_cmd *q_pop(conn *c)
{
    sc_resp_cmd *cmd = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % QMAX;
    c->qlen--;
    c->qbytes -= cmd->bytes;
    return cmd;
}

static void q_push_front(conn *c, sc_resp_cmd *cmd)
{
    c->qhead = (c->qhead + QMAX - 1) % QMAX;
    c->q[c->qhead] = cmd;
    c->qlen++;
    c->qbytes += cmd->bytes;
}

static void work_cb(uv_work_t *w)
{
    batch *b = w->data;
    conn *c = b->c;
    uint64_t t0 = now_ns();
    long long bound = c->srv->cfg->max_queue_ms;
    int overloaded = bound > 0 && t0 - b->queued_ns >= (uint64_t)bound * 1000000ull;
    for (b->done = 0; b->done < b->n;) {
        int r = exec_cmd(c->srv, &c->ss, b->cmds[b->done], &b->out, 1, overloaded);
        b->done++;
        if (r == EXEC_QUIT) {
            b->quit = 1;
            break;
        }
        /* Give the thread back now and then (a run of durable SEM.SETs
         * can take a while); the rest is requeued behind other work. */
        if (b->out.len >= BATCH_OUT_MAX || now_ns() - t0 > BATCH_BUDGET_NS) break;
    }
}

/* Lets connections waiting for a batch slot go on, in order, while there
 * are free slots (one that no longer needs a slot passes its turn on). */
static void wake_waiters(sc_resp *s)
{
    while (s->wait_head && s->batches < s->max_batches) {
        conn *w = s->wait_head;
        s->wait_head = w->wait_next;
        if (!s->wait_head) s->wait_tail = NULL;
        w->waiting = 0;
        w->wait_next = NULL;
        process(w);
        if (!w->waiting && !w->busy) w->wait_since = 0;   /* passed its turn on */
    }
}

static void unwait(conn *c)
{
    sc_resp *s = c->srv;
    if (!c->waiting) return;
    conn **pp = &s->wait_head;
    conn *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (*pp) *pp = c->wait_next;
    if (s->wait_tail == c) s->wait_tail = prev;
    c->waiting = 0;
    c->wait_next = NULL;
}

static void after_work_cb(uv_work_t *w, int status)
{
    batch *b = w->data;
    conn *c = b->c;
    (void)status;
    for (size_t i = 0; i < b->done; i++)
        sc_resp_cmd_free(b->cmds[i]);
    /* Commands left over (output limit) go back to the queue front. */
    for (size_t i = b->n; i > b->done; i--)
        q_push_front(c, b->cmds[i - 1]);
    c->busy = NULL;
    send_bytes(c, b->out.data, b->out.len);
    sc_buf_free(&b->out);
    if (b->quit) c->closing = 1;
    free(b);
    c->srv->batches--;
    wake_waiters(c->srv);
    if (!c->base.closed) {
        if (c->closing && c->out_queued == 0)
            conn_linger(c);
        else
            process(c);
    }
    sc_conn_unref(&c->base);
}

static void start_batch(conn *c)
{
    batch *b = SC_NEW(batch);
    b->c = c;
    b->work.data = b;
    sc_buf_init(&b->out, REPLY_MAX);
    while (c->qlen > 0 && b->n < BATCH_MAX)
        b->cmds[b->n++] = q_pop(c);
    b->queued_ns = c->wait_since ? c->wait_since : now_ns();
    c->wait_since = 0;
    unwait(c);
    c->busy = b;
    sc_conn_ref(&c->base);
    c->srv->batches++;
    int rc = uv_queue_work(c->srv->conns.loop, &b->work, work_cb, after_work_cb);
    if (rc) sc_panic("uv_queue_work: %s", uv_strerror(rc));
}

/* Runs what can run now; see the file comment. */
static void process(conn *c)
{
    if (c->processing) return;
    c->processing = 1;
    while (!c->base.closed && !c->closing && !c->busy && c->out_queued < OUT_HIGH) {
        fill_queue(c);
        if (c->qlen == 0) break;
        int quit = 0, need_worker = 0;
        while (c->qlen > 0 && !quit) {
            sc_resp_cmd *cmd = c->q[c->qhead];
            int r = exec_cmd(c->srv, &c->ss, cmd, &c->out, 0, 0);
            if (r == EXEC_NEED_WORKER) {
                need_worker = 1;
                break;
            }
            sc_resp_cmd_free(q_pop(c));
            if (r == EXEC_QUIT) quit = 1;
        }
        flush_out(c);
        if (quit) {
            c->closing = 1;
            break;
        }
        if (need_worker) {
            sc_resp *s = c->srv;
            if (s->batches >= s->max_batches) {
                /* Keep threads for the HTTP side: wait for a slot. */
                if (!c->waiting) {
                    c->waiting = 1;
                    c->wait_since = now_ns();
                    if (s->wait_tail)
                        s->wait_tail->wait_next = c;
                    else
                        s->wait_head = c;
                    s->wait_tail = c;
                }
                break;
            }
            start_batch(c);
        }
    }
    if (!c->base.closed && !c->busy && c->qlen == 0 && !c->closing) {
        if (c->has_proto_err) {
            r_error(&c->out, "ERR %s", c->proto_err);
            flush_out(c);
            c->closing = 1;
        } else if ((c->eof && c->in.len == 0) || (c->draining && !c->mid_command)) {
            c->closing = 1;
        }
    }
    if (!c->base.closed && c->closing && c->out_queued == 0 && !c->busy) conn_linger(c);
    if (!c->base.closed) update_reading(c);
    c->processing = 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (nread < 0) {
        if (nread == UV_EOF) {
            c->eof = 1; /* answer what was sent, then close */
            update_reading(c);
            process(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing) return;
    /* Cannot fail: reading pauses at IN_HIGH, below the buffer's bound. */
    if (sc_buf_append(&c->in, buf->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    process(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
    sc_resp *s = ls->data;
    if (status < 0) {
        sc_warn("RESP accept failed: %s", uv_strerror(status));
        return;
    }
    conn *c = SC_NEW(conn);
    c->srv = s;
    sc_conn_add(&s->conns, &c->base);
    sc_buf_init(&c->in, IN_HIGH + 65536);
    sc_buf_init(&c->out, REPLY_MAX);
    sc_resp_parser_init(&c->parser, &s->lim);
    c->ss.id = ++s->next_id;
    c->ss.authed = !sc_auth_enabled(s->auth);
    if (uv_accept(ls, (uv_stream_t *)&c->base.tcp) < 0) {
        conn_close(c);
        return;
    }
    atomic_fetch_add(&s->conns_total, 1);
    if (s->conns.stopping || s->conns.n > (size_t)s->cfg->max_conns) {
        atomic_fetch_add(&s->conns_rejected, 1);
        sc_warn("too many RESP connections (%zu); refusing one", s->conns.n);
        conn_close(c);
        return;
    }
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    snprintf(c->ss.addr, sizeof c->ss.addr, "?");
    if (uv_tcp_getpeername(&c->base.tcp, (struct sockaddr *)&peer, &plen) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (peer.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&peer, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
        } else if (peer.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&peer, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&peer)->sin6_port);
        }
        snprintf(c->ss.addr, sizeof c->ss.addr, "%s:%d", ip, port);
    }
    uv_tcp_nodelay(&c->base.tcp, 1);
    update_reading(c);
}

/* ---------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------- */

int sc_resp_start(sc_resp **out, uv_loop_t *loop, const sc_config *cfg, sc_cache *cache,
                  const sc_auth *auth, char *err, size_t errlen)
{
    *out = NULL;
    sc_resp *s = SC_NEW(sc_resp);
    sc_conns_init(&s->conns, loop, s, conn_release, resp_free);
    s->cfg = cfg;
    s->cache = cache;
    s->auth = auth;
    s->started = time(NULL);
    s->memo = sc_memo_create(MEMO_SLOTS, MEMO_MAX_REPLY + MEMO_MAX_KEY, MEMO_BYTES);
    /* The pool has workers + 1 threads (semcached_main.c); leave the HTTP
     * side at least one. */
    s->max_batches = cfg->workers > 1 ? (size_t)cfg->workers : 1;
    s->lim.max_args = SC_RESP_MAX_ARGS;
    s->lim.max_bulk = (size_t)cfg->max_body;
    s->lim.max_inline = SC_RESP_MAX_INLINE;
    s->lim.max_total = (size_t)cfg->max_body + (1u << 20);

    s->conns.listener.data = s;
    int rc = sc_listen_tcp(loop, &s->conns.listener, cfg->bind, cfg->resp_port, on_connection,
                           "RESP", &s->port, err, errlen);
    if (rc) {
        resp_free(s);
        return rc;
    }
    *out = s;
    return SC_OK;
}

void sc_resp_count_overloads(sc_resp *r, atomic_ullong *counter)
{
    r->overloaded = counter;
}

int sc_resp_port(const sc_resp *r)
{
    return r->port;
}
size_t sc_resp_conns(const sc_resp *r)
{
    return r->conns.n;
}

static void on_stop_deadline(uv_timer_t *t)
{
    conn *c = t->data;
    sc_warn("stopping: a RESP client did not read its replies within %d ms; closing it", STOP_DRAIN_MS);
    conn_close(c);
}

void sc_resp_stop(sc_resp *s, void (*done)(void *arg), void *arg)
{
    for (sc_conn *b = s->conns.head; b; b = b->next) {
        conn *c = (conn *)b;
        if (!c->busy && c->out_queued == 0 && c->mid_command) {
            /* A command still arriving: read the rest, run what arrived
             * whole (process), then close; bounded like a drain. */
            c->draining = 1;
            uv_timer_start(&c->base.timer, on_stop_deadline, STOP_DRAIN_MS, 0);
        } else if (!c->busy && c->out_queued == 0) {
            conn_close(c);
        } else {
            /* Replies still to deliver: wait for them, but not for a client
             * that never reads (closing stops processing, so the stall
             * timer of fill_queue is not running: the timer is free). */
            c->closing = 1;
            uv_timer_start(&c->base.timer, on_stop_deadline, STOP_DRAIN_MS, 0);
        }
    }
    sc_conns_stop(&s->conns, done, arg);
}
