/* semcache-cli: the command-line client of semcached.
 *
 * get/set/del/flush/stats talk RESP through libsemcache; import streams a
 * JSONL file as pipelined SEM.SET commands over a few connections (64 in
 * flight on each, so the server's writer can group-commit puts of several
 * worker threads), with a progress bar (rate, ETA) on a terminal; embed asks the HTTP port
 * (POST /cache/embed) through a tiny HTTP/1.1 client. Human-readable
 * output by default, --json for machines. Exit codes are documented in
 * usage() and in the README. */
#include "semcache.h"
#include "client/cli_http.h"
#include "client/cli_json.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_MISS = 1, EXIT_USAGE = 2, EXIT_SERVER = 3, EXIT_REJECTED = 4 };

#define WINDOW 64 /* commands in flight per connection */
#define MAX_CONNS 16
#define MAX_LINE ((size_t)256 << 20)

typedef struct opts {
    const char *host;
    int port;
    int http_port;
    const char *ns;
    const char *key;
    int timeout_ms;
    double threshold;
    long long ttl;
    int json;
    int quiet;
    int conns;
} opts;

static void usage(FILE *f)
{
    fputs("Usage: semcache-cli [options] COMMAND [ARGS]\n"
          "\n"
          "Client of semcached, the semantic response cache (RESP port, default 6380).\n"
          "\n"
          "Commands:\n"
          "  get PROMPT            print the cached response of PROMPT (or of a close prompt)\n"
          "  set PROMPT RESPONSE   store RESPONSE for PROMPT; prints the new entry id\n"
          "  del ID                delete entry ID of the namespace\n"
          "  flush                 delete every entry of the namespace; prints how many\n"
          "  stats                 server statistics\n"
          "  embed TEXT...         print the embeddings the cache computes for TEXT (HTTP port)\n"
          "  import FILE.jsonl     store every line "
          "{\"prompt\",\"response\",\"namespace\"?,\"ttl\"?}\n"
          "                        (FILE '-' reads stdin); a progress bar on a terminal\n"
          "\n"
          "Options:\n"
          "  -h, --host HOST       server address (default 127.0.0.1, env SEMCACHE_HOST)\n"
          "  -p, --port N          RESP port (default 6380, env SEMCACHE_PORT)\n"
          "      --http-port N     HTTP port, for embed (default 8080, env SEMCACHE_HTTP_PORT)\n"
          "  -n, --namespace NS    namespace (default 'default', env SEMCACHE_NAMESPACE)\n"
          "  -a, --key KEY         API key when the server has api-key entries (env SEMCACHE_KEY)\n"
          "  -t, --timeout MS      network timeout per wait (default 5000)\n"
          "      --threshold X     get: similarity threshold in [0,1] (default: the server's)\n"
          "      --ttl SECONDS     set: expire the entry after SECONDS\n"
          "      --json            machine-readable JSON output\n"
          "  -q, --quiet           import: no progress bar\n"
          "      --connections N   import: parallel connections (default 4; lines with the same\n"
          "                        prompt share one, so the last one in the file wins)\n"
          "      --help            this text\n"
          "\n"
          "Exit codes:\n"
          "  0  success\n"
          "  1  get: miss; del: no such entry\n"
          "  2  usage error (bad option or argument, unreadable file)\n"
          "  3  connection failure or an error reported by the server\n"
          "  4  import finished, but some lines were rejected\n",
          f);
}

__attribute__((format(printf, 1, 2))) static int die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("semcache-cli: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    return EXIT_USAGE;
}

static int server_error(const char *what, semcache *c, int rc)
{
    const char *msg = c && *semcache_last_error(c) ? semcache_last_error(c) : semcache_strerror(rc);
    fprintf(stderr, "semcache-cli: %s: %s\n", what, msg);
    return EXIT_SERVER;
}

static void put_json(sc_buf *b)
{
    fwrite(b->data ? b->data : "", 1, b->len, stdout);
    fputc('\n', stdout);
    sc_buf_free(b);
}

static int connect_to(const opts *o, semcache **c)
{
    errno = 0;
    int rc = semcache_connect(c, o->host, o->port, o->timeout_ms);
    if (rc) {
        fprintf(stderr, "semcache-cli: cannot connect to %s:%d: %s\n", o->host, o->port,
                rc == SEMCACHE_EIO && errno ? strerror(errno) : semcache_strerror(rc));
        return EXIT_SERVER;
    }
    if (o->key && *o->key && (rc = semcache_auth(*c, o->key))) {
        int ex = server_error("AUTH", *c, rc);
        semcache_close(*c);
        *c = NULL;
        return ex;
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------------
 * get / set / del / flush / stats
 * ------------------------------------------------------------------- */

static int cmd_get(const opts *o, semcache *c, int argc, char **argv)
{
    if (argc != 1) return die_usage("%s", "get takes one PROMPT");
    semcache_hit hit;
    int rc = semcache_get(c, o->ns, argv[0], SEMCACHE_NTS, o->threshold, &hit);
    if (rc == SEMCACHE_ENOTFOUND) {
        if (o->json)
            puts("{\"hit\":false}");
        else
            fputs("(miss)\n", stderr);
        return EXIT_MISS;
    }
    if (rc) return server_error("get", c, rc);
    if (o->json) {
        sc_buf b;
        sc_buf_init(&b, (size_t)1 << 31);
        sc_buf_puts(&b, "{\"hit\":true,\"response\":");
        sc_cli_json_str(&b, hit.response, hit.response_len);
        sc_buf_printf(&b, ",\"similarity\":%.6f,\"id\":%llu}", hit.similarity,
                      (unsigned long long)hit.id);
        put_json(&b);
    } else {
        fwrite(hit.response, 1, hit.response_len, stdout);
        fputc('\n', stdout);
    }
    semcache_hit_clear(&hit);
    return EXIT_OK;
}

static int cmd_set(const opts *o, semcache *c, int argc, char **argv)
{
    if (argc != 2) return die_usage("%s", "set takes PROMPT and RESPONSE");
    uint64_t id;
    int rc = semcache_set(c, o->ns, argv[0], SEMCACHE_NTS, argv[1], SEMCACHE_NTS, o->ttl, &id);
    if (rc) return server_error("set", c, rc);
    if (o->json)
        printf("{\"id\":%llu}\n", (unsigned long long)id);
    else
        printf("%llu\n", (unsigned long long)id);
    return EXIT_OK;
}

static int cmd_del(const opts *o, semcache *c, int argc, char **argv)
{
    if (argc != 1) return die_usage("%s", "del takes one ID");
    char *end;
    errno = 0;
    unsigned long long id = strtoull(argv[0], &end, 10);
    if (errno || end == argv[0] || *end || argv[0][0] == '-')
        return die_usage("bad ID '%s'", argv[0]);
    int rc = semcache_del(c, o->ns, id);
    if (rc && rc != SEMCACHE_ENOTFOUND) return server_error("del", c, rc);
    if (o->json)
        printf("{\"deleted\":%s}\n", rc ? "false" : "true");
    else if (rc)
        fprintf(stderr, "no entry %llu in namespace %s\n", id, o->ns);
    else
        puts("deleted");
    return rc ? EXIT_MISS : EXIT_OK;
}

static int cmd_flush(const opts *o, semcache *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) return die_usage("%s", "flush takes no arguments (the namespace is -n NS)");
    uint64_t n;
    int rc = semcache_flush(c, o->ns, &n);
    if (rc) return server_error("flush", c, rc);
    if (o->json)
        printf("{\"flushed\":%llu}\n", (unsigned long long)n);
    else
        printf("%llu\n", (unsigned long long)n);
    return EXIT_OK;
}

static int is_number(const char *s)
{
    if (!*s) return 0;
    char *end;
    double v = strtod(s, &end);
    return *end == '\0' && isfinite(v) && s[0] != '+' && s[0] != '.' && strncmp(s, "-.", 2);
}

static int cmd_stats(const opts *o, semcache *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) return die_usage("%s", "stats takes no arguments");
    semcache_stat *st;
    size_t n;
    int rc = semcache_stats(c, &st, &n);
    if (rc) return server_error("stats", c, rc);
    if (o->json) {
        sc_buf b;
        sc_buf_init(&b, (size_t)1 << 24);
        sc_buf_puts(&b, "{");
        for (size_t i = 0; i < n; i++) {
            if (i) sc_buf_puts(&b, ",");
            sc_cli_json_str(&b, st[i].name, strlen(st[i].name));
            sc_buf_puts(&b, ":");
            if (is_number(st[i].value))
                sc_buf_puts(&b, st[i].value);
            else
                sc_cli_json_str(&b, st[i].value, strlen(st[i].value));
        }
        sc_buf_puts(&b, "}");
        put_json(&b);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%-18s %s\n", st[i].name, st[i].value);
    }
    free(st);
    return EXIT_OK;
}

/* ---------------------------------------------------------------------
 * import
 * ------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One import connection: its commands in flight, by line number. */
typedef struct import_conn {
    semcache *c;
    size_t line[WINDOW]; /* ring */
    size_t head, inflight;
} import_conn;

typedef struct import_state {
    const opts *o;
    import_conn conn[MAX_CONNS];
    int nconn;
    size_t lines, stored, rejected, shown_errors;
    double t0, last_draw;
    long long total_bytes; /* -1 when unknown (a pipe) */
    long long done_bytes;
    int bar;
} import_state;

static void reject(import_state *st, size_t line, const char *msg)
{
    st->rejected++;
    if (st->shown_errors++ < 20) {
        if (st->bar) fputs("\r\033[K", stderr);
        fprintf(stderr, "semcache-cli: line %zu rejected: %s\n", line, msg);
    } else if (st->shown_errors == 21) {
        fputs("semcache-cli: (further rejected lines are counted, not shown)\n", stderr);
    }
}

/* Reads the reply of the oldest command in flight on connection k. */
static int read_one(import_state *st, int k)
{
    import_conn *ic = &st->conn[k];
    semcache_reply *r;
    int rc = semcache_read_reply(ic->c, &r);
    if (rc) return rc;
    size_t line = ic->line[ic->head];
    ic->head = (ic->head + 1) % WINDOW;
    ic->inflight--;
    if (r->type == SEMCACHE_REPLY_INTEGER)
        st->stored++;
    else
        reject(st, line, r->type == SEMCACHE_REPLY_ERROR ? r->str : "unexpected reply");
    semcache_reply_free(r);
    return SC_OK;
}

static void fmt_time(char *b, size_t n, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(b, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(b, n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(import_state *st, int final)
{
    double t = now_s();
    if (!final && t - st->last_draw < 0.1) return;
    st->last_draw = t;
    double el = t - st->t0, rate = el > 0 ? (double)st->lines / el : 0;
    char eta[32], elapsed[32];
    fmt_time(elapsed, sizeof elapsed, el);
    if (st->total_bytes > 0) {
        double f = (double)st->done_bytes / (double)st->total_bytes;
        if (f > 1) f = 1;
        double bps = el > 0 ? (double)st->done_bytes / el : 0;
        fmt_time(eta, sizeof eta, bps > 0 ? (double)(st->total_bytes - st->done_bytes) / bps : NAN);
        char bar[31];
        int filled = (int)(f * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[K[%s] %3.0f%%  %zu lines  %.0f lines/s  %zu rejected  ETA %s", bar,
                f * 100, st->lines, rate, st->rejected, final ? "0:00" : eta);
    } else {
        fprintf(stderr, "\r\033[K%zu lines  %.0f lines/s  %zu rejected  %s elapsed", st->lines,
                rate, st->rejected, elapsed);
    }
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

/* Hash of the namespace and the prompt as the server normalises it
 * (trimmed, runs of white space collapsed, ASCII lower-cased). */
static uint64_t prompt_hash(const char *ns, const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *q = ns; *q; q++)
        h = (h ^ (unsigned char)*q) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    int space = 0, any = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f') {
            space = any;
            continue;
        }
        if (space) h = (h ^ ' ') * 1099511628211ull;
        space = 0;
        any = 1;
        if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
        h = (h ^ ch) * 1099511628211ull;
    }
    return h;
}

static int cmd_import(const opts *o, int argc, char **argv)
{
    if (argc != 1) return die_usage("%s", "import takes one FILE.jsonl ('-' for stdin)");
    FILE *f = strcmp(argv[0], "-") == 0 ? stdin : fopen(argv[0], "rb");
    if (!f) {
        fprintf(stderr, "semcache-cli: cannot open '%s': %s\n", argv[0], strerror(errno));
        return EXIT_USAGE;
    }
    import_state st = {.o = o, .total_bytes = -1};
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) st.total_bytes = (long long)sb.st_size;
    st.bar = !o->quiet && isatty(2);
    st.nconn = o->conns;
    int ex = EXIT_OK;
    for (int k = 0; k < st.nconn && !ex; k++)
        ex = connect_to(o, &st.conn[k].c);
    if (ex) {
        for (int k = 0; k < st.nconn; k++)
            semcache_close(st.conn[k].c);
        if (f != stdin) fclose(f);
        return ex;
    }
    st.t0 = now_s();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = SC_OK, bad_conn = 0;
    char ttl[24];
    while ((n = getline(&line, &cap, f)) >= 0) {
        st.lines++;
        st.done_bytes += n;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t sp = 0;
        while (sp < len && (line[sp] == ' ' || line[sp] == '\t'))
            sp++;
        if (sp == len) { /* blank lines are skipped, not rejected */
            st.lines--;
            continue;
        }
        if (len > MAX_LINE) {
            reject(&st, st.lines, "line too long");
            continue;
        }
        sc_cli_entry e;
        char err[256];
        if (sc_cli_parse_entry(line, len, &e, err, sizeof err)) {
            reject(&st, st.lines, err);
            if (st.bar) draw(&st, 0);
            continue;
        }
        const char *ns = e.ns ? e.ns : o->ns;
        long long t = e.ttl ? e.ttl : o->ttl;
        snprintf(ttl, sizeof ttl, "%lld", t);
        const char *args[] = {"SEM.SET", ns, e.prompt, e.response, "EX", ttl};
        size_t lens[] = {7, strlen(ns), e.prompt_len, e.response_len, 2, strlen(ttl)};
        /* The same (namespace, prompt) always goes to the same connection,
         * so a later line for a prompt wins, as in the file. */
        int k = (int)(prompt_hash(ns, e.prompt, e.prompt_len) % (uint64_t)st.nconn);
        import_conn *ic = &st.conn[k];
        rc = semcache_append(ic->c, t > 0 ? 6 : 4, args, lens);
        sc_cli_entry_clear(&e);
        if (rc == SEMCACHE_ETOOBIG) {
            reject(&st, st.lines, "entry too large");
            rc = SC_OK;
            continue;
        }
        if (rc) {
            bad_conn = k;
            break;
        }
        ic->line[(ic->head + ic->inflight) % WINDOW] = st.lines;
        ic->inflight++;
        if (ic->inflight == WINDOW && (rc = read_one(&st, k))) {
            bad_conn = k;
            break;
        }
        if (st.bar) draw(&st, 0);
    }
    for (int k = 0; k < st.nconn && !rc; k++)
        while (!rc && st.conn[k].inflight > 0)
            if ((rc = read_one(&st, k))) bad_conn = k;
    free(line);
    int read_err = ferror(f);
    if (f != stdin) fclose(f);
    if (st.bar) draw(&st, 1);
    double el = now_s() - st.t0;
    if (rc) {
        ex = server_error("import", st.conn[bad_conn].c, rc);
        fprintf(stderr, "semcache-cli: import stopped at line %zu (%zu stored, %zu rejected)\n",
                st.lines, st.stored, st.rejected);
    }
    for (int k = 0; k < st.nconn; k++)
        semcache_close(st.conn[k].c);
    if (rc) return ex;
    if (read_err) {
        fprintf(stderr, "semcache-cli: error reading '%s'\n", argv[0]);
        return EXIT_USAGE;
    }
    if (o->json)
        printf("{\"lines\":%zu,\"stored\":%zu,\"rejected\":%zu,\"seconds\":%.3f}\n", st.lines,
               st.stored, st.rejected, el);
    else
        printf("imported %zu lines: %zu stored, %zu rejected in %.2f s (%.0f lines/s)\n", st.lines,
               st.stored, st.rejected, el, el > 0 ? (double)st.lines / el : 0.0);
    return st.rejected ? EXIT_REJECTED : EXIT_OK;
}

/* ---------------------------------------------------------------------
 * embed (HTTP)
 * ------------------------------------------------------------------- */

static int http_post(const opts *o, const char *path, const char *body, size_t blen, int *status,
                     sc_buf *resp)
{
    char port[16];
    snprintf(port, sizeof port, "%d", o->http_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(o->host, port, &hints, &ai)) return SC_EINVAL;
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {.tv_sec = o->timeout_ms / 1000,
                             .tv_usec = (o->timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen)) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) return SC_EIO;
    sc_buf req;
    sc_buf_init(&req, (size_t)1 << 31);
    sc_buf_printf(&req,
                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n",
                  path, o->host, o->http_port, blen);
    if (o->key && *o->key) sc_buf_printf(&req, "Authorization: Bearer %s\r\n", o->key);
    sc_buf_puts(&req, "\r\n");
    sc_buf_append(&req, body, blen);
    size_t off = 0;
    int rc = SC_OK;
    while (off < req.len) {
        ssize_t w = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            rc = (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? SC_ETIMEOUT : SC_EIO;
            break;
        }
        off += (size_t)w;
    }
    sc_buf_free(&req);
    sc_buf raw;
    sc_buf_init(&raw, (size_t)1 << 30);
    char tmp[65536];
    while (!rc) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = (errno == EAGAIN || errno == EWOULDBLOCK) ? SC_ETIMEOUT : SC_EIO;
            break;
        }
        if (sc_buf_append(&raw, tmp, (size_t)r)) rc = SC_ETOOBIG;
    }
    close(fd);
    if (!rc) rc = sc_cli_http_response(raw.data ? raw.data : "", raw.len, status, resp);
    sc_buf_free(&raw);
    return rc;
}

static void print_row(void *arg, size_t row, const double *v, size_t n)
{
    (void)arg;
    (void)row;
    for (size_t i = 0; i < n; i++)
        printf(i ? " %.6g" : "%.6g", v[i]);
    putchar('\n');
}

static int cmd_embed(const opts *o, int argc, char **argv)
{
    if (argc < 1) return die_usage("%s", "embed takes one or more TEXTs");
    sc_buf body;
    sc_buf_init(&body, (size_t)1 << 30);
    sc_buf_puts(&body, "{\"input\":[");
    for (int i = 0; i < argc; i++) {
        if (i) sc_buf_puts(&body, ",");
        sc_cli_json_str(&body, argv[i], strlen(argv[i]));
    }
    sc_buf_puts(&body, "]}");
    int status = 0;
    sc_buf resp;
    sc_buf_init(&resp, (size_t)1 << 30);
    int rc = http_post(o, "/cache/embed", body.data, body.len, &status, &resp);
    sc_buf_free(&body);
    int ex = EXIT_OK;
    if (rc) {
        fprintf(stderr, "semcache-cli: embed via http://%s:%d/cache/embed: %s\n", o->host,
                o->http_port, semcache_strerror(rc));
        ex = EXIT_SERVER;
    } else if (status != 200) {
        fprintf(stderr, "semcache-cli: embed: HTTP %d: %.*s\n", status,
                (int)(resp.len > 500 ? 500 : resp.len), resp.data ? resp.data : "");
        ex = EXIT_SERVER;
    } else if (o->json) {
        fwrite(resp.data ? resp.data : "", 1, resp.len, stdout);
        if (!resp.len || resp.data[resp.len - 1] != '\n') putchar('\n');
    } else if (sc_cli_embeddings(resp.data ? resp.data : "", resp.len, print_row, NULL) < 0) {
        fprintf(stderr, "semcache-cli: embed: unexpected answer\n");
        ex = EXIT_SERVER;
    }
    sc_buf_free(&resp);
    return ex;
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {.host = "127.0.0.1",
              .port = 6380,
              .http_port = 8080,
              .ns = "default",
              .timeout_ms = 5000,
              .threshold = -1,
              .conns = 4};
    const char *env;
    long long v;
    if ((env = getenv("SEMCACHE_HOST")) && *env) o.host = env;
    if ((env = getenv("SEMCACHE_PORT")) && *env && !parse_int(env, 1, 65535, &v)) o.port = (int)v;
    if ((env = getenv("SEMCACHE_HTTP_PORT")) && *env && !parse_int(env, 1, 65535, &v))
        o.http_port = (int)v;
    if ((env = getenv("SEMCACHE_NAMESPACE")) && *env) o.ns = env;
    if ((env = getenv("SEMCACHE_KEY")) && *env) o.key = env;

    enum { O_HTTP = 256, O_THRESHOLD, O_TTL, O_JSON, O_HELP, O_CONNS };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"http-port", required_argument, NULL, O_HTTP},
        {"namespace", required_argument, NULL, 'n'},
        {"key", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'},
        {"threshold", required_argument, NULL, O_THRESHOLD},
        {"ttl", required_argument, NULL, O_TTL},
        {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, O_HELP},
        {"connections", required_argument, NULL, O_CONNS},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:n:a:t:q", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o.host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 1, 65535, &v))
                return die_usage("bad value '%s' for --port", optarg);
            o.port = (int)v;
            break;
        case O_HTTP:
            if (parse_int(optarg, 1, 65535, &v))
                return die_usage("bad value '%s' for --http-port", optarg);
            o.http_port = (int)v;
            break;
        case 'n':
            o.ns = optarg;
            break;
        case 'a':
            o.key = optarg;
            break;
        case 't':
            if (parse_int(optarg, 0, 3600000, &v))
                return die_usage("bad value '%s' for --timeout", optarg);
            o.timeout_ms = (int)v;
            break;
        case O_THRESHOLD: {
            char *end;
            double t = strtod(optarg, &end);
            if (end == optarg || *end || !(t >= 0 && t <= 1))
                return die_usage("bad value '%s' for --threshold (want 0..1)", optarg);
            o.threshold = t;
            break;
        }
        case O_TTL:
            if (parse_int(optarg, 0, 10000000000LL, &v))
                return die_usage("bad value '%s' for --ttl", optarg);
            o.ttl = v;
            break;
        case O_JSON:
            o.json = 1;
            break;
        case O_CONNS:
            if (parse_int(optarg, 1, MAX_CONNS, &v))
                return die_usage("bad value '%s' for --connections (1-16)", optarg);
            o.conns = (int)v;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case O_HELP:
            usage(stdout);
            return EXIT_OK;
        default:
            if (optopt && optopt < 256) {
                char opt[3] = {'-', (char)optopt, 0};
                return die_usage("bad or incomplete option '%s'", opt);
            }
            return die_usage("bad or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "import")) return cmd_import(&o, nargs, args);
    if (!strcmp(cmd, "embed")) return cmd_embed(&o, nargs, args);
    int (*fn)(const opts *, semcache *, int, char **) = NULL;
    if (!strcmp(cmd, "get"))
        fn = cmd_get;
    else if (!strcmp(cmd, "set"))
        fn = cmd_set;
    else if (!strcmp(cmd, "del"))
        fn = cmd_del;
    else if (!strcmp(cmd, "flush"))
        fn = cmd_flush;
    else if (!strcmp(cmd, "stats"))
        fn = cmd_stats;
    else
        return die_usage("unknown command '%s'", cmd);
    semcache *c;
    int ex = connect_to(&o, &c);
    if (ex) return ex;
    ex = fn(&o, c, nargs, args);
    semcache_close(c);
    return ex;
}
