/* libsemcache: the blocking RESP2 client (see include/semcache.h).
 *
 * A handle owns one non-blocking TCP socket; every wait goes through
 * poll() with the handle's timeout, so a dead server costs at most
 * timeout_ms per call. Commands are encoded as multibulk arrays into an
 * output buffer (so pipelined commands leave in one write); replies are
 * read into an input buffer and parsed by semcache_reply_parse(), which
 * first checks that a whole reply is present (cheap: a bulk string's body
 * is skipped by its length), then builds the reply tree in one pass.
 *
 * Depends on common/ only (err, buf, alloc, log): no libuv, no LMDB. */
#include "semcache.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The public codes are the server's own. */
_Static_assert(SEMCACHE_ENOMEM == SC_ENOMEM, "code");
_Static_assert(SEMCACHE_EINVAL == SC_EINVAL, "code");
_Static_assert(SEMCACHE_ENOTFOUND == SC_ENOTFOUND, "code");
_Static_assert(SEMCACHE_ETOOBIG == SC_ETOOBIG, "code");
_Static_assert(SEMCACHE_EIO == SC_EIO, "code");
_Static_assert(SEMCACHE_ETIMEOUT == SC_ETIMEOUT, "code");
_Static_assert(SEMCACHE_EAUTH == SC_EAUTH, "code");
_Static_assert(SEMCACHE_EFORBIDDEN == SC_EFORBIDDEN, "code");
_Static_assert(SEMCACHE_EPROTO == SC_EPROTO, "code");
_Static_assert(SEMCACHE_ECLOSED == SC_ECLOSED, "code");

#define MAX_BULK (512ull << 20)
#define MAX_LINE (1u << 20) /* status / error / integer lines */
#define MAX_ELEMS (1u << 20)
#define MAX_DEPTH 16
#define MAX_REPLY (1ull << 30)    /* bytes buffered for one reply */
#define MAX_OUT ((size_t)1 << 31) /* bytes of queued commands */
#define READ_CHUNK 65536

struct semcache {
    int fd;
    int timeout_ms;
    sc_buf out; /* encoded commands not yet sent */
    char *in;   /* received bytes: in[ioff..ilen) unparsed */
    size_t ilen, ioff, icap;
    size_t pending; /* replies still to read */
    char err[512];
};

const char *semcache_strerror(int code)
{
    return sc_strerror(code);
}

const char *semcache_last_error(const semcache *c)
{
    return c ? c->err : "";
}

__attribute__((format(printf, 3, 4))) static int set_err(semcache *c, int code, const char *fmt,
                                                         ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

/* A failure that leaves the stream out of step: close the socket. */
static int broken(semcache *c, int code)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->pending = 0;
    sc_buf_reset(&c->out);
    c->ilen = c->ioff = 0;
    return code;
}

/* ---------------------------------------------------------------------
 * Reply parsing (pure)
 * ------------------------------------------------------------------- */

void semcache_reply_free(semcache_reply *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        semcache_reply_free(r->elem[i]);
    free(r->elem);
    free(r->str);
    free(r);
}

/* Finds the "\r\n" ending the line that starts at pos. Returns 1 with
 * *eol at the '\r', 0 when incomplete, or a negative code. */
static int find_eol(const char *d, size_t n, size_t pos, size_t *eol)
{
    size_t lim = n - pos < MAX_LINE ? n - pos : MAX_LINE;
    const char *nl = memchr(d + pos, '\n', lim);
    if (!nl) return lim == MAX_LINE ? SC_ETOOBIG : 0;
    size_t e = (size_t)(nl - d);
    if (e == pos || d[e - 1] != '\r') return SC_EPROTO;
    *eol = e - 1;
    return 1;
}

static int parse_ll(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20) return SC_EPROTO;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        if (++i == n) return SC_EPROTO;
    }
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return SC_EPROTO;
        if (v > (ULLONG_MAX - 9) / 10) return SC_EPROTO;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > (unsigned long long)LLONG_MAX + (unsigned long long)neg) return SC_EPROTO;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return SC_OK;
}

/* Walks one reply at pos. With out == NULL it only checks completeness;
 * otherwise it builds the tree (the input is known to be complete).
 * Returns 1 with *end past the reply, 0 when incomplete, or a code. */
static int walk(const char *d, size_t n, size_t pos, int depth, size_t *end, semcache_reply **out)
{
    if (pos >= n) return 0;
    if (depth > MAX_DEPTH) return SC_ETOOBIG;
    char t = d[pos];
    size_t eol;
    int rc = find_eol(d, n, pos + 1, &eol);
    if (rc <= 0) return rc;
    const char *line = d + pos + 1;
    size_t llen = eol - (pos + 1);
    long long v = 0;
    semcache_reply *r = NULL;
    switch (t) {
    case '+':
    case '-':
        if (out) {
            r = SC_NEW(semcache_reply);
            r->type = t == '+' ? SEMCACHE_REPLY_STATUS : SEMCACHE_REPLY_ERROR;
            r->str = sc_strndup(line, llen);
            r->len = llen;
        }
        *end = eol + 2;
        break;
    case ':':
        if (parse_ll(line, llen, &v)) return SC_EPROTO;
        if (out) {
            r = SC_NEW(semcache_reply);
            r->type = SEMCACHE_REPLY_INTEGER;
            r->integer = v;
        }
        *end = eol + 2;
        break;
    case '$': {
        if (parse_ll(line, llen, &v) || v < -1) return SC_EPROTO;
        if ((unsigned long long)v > MAX_BULK && v != -1) return SC_ETOOBIG;
        if (v == -1) {
            if (out) {
                r = SC_NEW(semcache_reply);
                r->type = SEMCACHE_REPLY_NIL;
            }
            *end = eol + 2;
            break;
        }
        size_t body = eol + 2, blen = (size_t)v;
        if (n - body < blen + 2) return 0;
        if (d[body + blen] != '\r' || d[body + blen + 1] != '\n') return SC_EPROTO;
        if (out) {
            r = SC_NEW(semcache_reply);
            r->type = SEMCACHE_REPLY_STRING;
            r->str = sc_malloc(blen + 1);
            memcpy(r->str, d + body, blen);
            r->str[blen] = '\0';
            r->len = blen;
        }
        *end = body + blen + 2;
        break;
    }
    case '*': {
        if (parse_ll(line, llen, &v) || v < -1) return SC_EPROTO;
        if (v > (long long)MAX_ELEMS) return SC_ETOOBIG;
        if (out) {
            r = SC_NEW(semcache_reply);
            r->type = v == -1 ? SEMCACHE_REPLY_NIL : SEMCACHE_REPLY_ARRAY;
            if (v > 0) r->elem = sc_calloc((size_t)v, sizeof *r->elem);
        }
        size_t p = eol + 2;
        for (long long i = 0; i < v; i++) {
            size_t e;
            rc = walk(d, n, p, depth + 1, &e, out ? &r->elem[i] : NULL);
            if (rc <= 0) {
                semcache_reply_free(r);
                return rc;
            }
            if (r) r->n++;
            p = e;
        }
        *end = p;
        break;
    }
    default:
        return SC_EPROTO;
    }
    if (out) *out = r;
    return 1;
}

int semcache_reply_parse(const char *buf, size_t len, size_t *used, semcache_reply **out)
{
    *out = NULL;
    *used = 0;
    size_t end;
    int rc = walk(buf, len, 0, 0, &end, NULL);
    if (rc <= 0) return rc;
    rc = walk(buf, len, 0, 0, &end, out);
    if (rc < 0) return rc; /* cannot happen: the scan succeeded */
    *used = end;
    return SC_OK;
}

/* ---------------------------------------------------------------------
 * Connection and raw I/O
 * ------------------------------------------------------------------- */

static int wait_fd(semcache *c, short ev)
{
    struct pollfd pfd = {.fd = c->fd, .events = ev};
    for (;;) {
        int r = poll(&pfd, 1, c->timeout_ms > 0 ? c->timeout_ms : -1);
        if (r > 0) return SC_OK;
        if (r == 0)
            return set_err(c, SC_ETIMEOUT, "no answer from the server within %d ms", c->timeout_ms);
        if (errno != EINTR) return set_err(c, SC_EIO, "poll: %s", strerror(errno));
    }
}

int semcache_connect(semcache **out, const char *host, int port, int timeout_ms)
{
    *out = NULL;
    if (!host || port <= 0 || port > 65535 || timeout_ms < 0) return SC_EINVAL;
    semcache *c = SC_NEW(semcache);
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    sc_buf_init(&c->out, MAX_OUT);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, portstr, &hints, &ai);
    if (g) {
        free(c);
        return SC_EINVAL;
    }
    int rc = SC_EIO;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        c->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = SC_OK;
        } else if (errno == EINPROGRESS) {
            rc = wait_fd(c, POLLOUT);
            if (rc == SC_OK) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                rc = soerr ? SC_EIO : SC_OK;
                if (soerr) errno = soerr;
            }
        }
        if (rc == SC_OK) break;
        int e = errno;
        close(fd);
        errno = e;
        c->fd = -1;
    }
    int saved = errno;
    freeaddrinfo(ai);
    if (rc) {
        sc_buf_free(&c->out);
        free(c);
        errno = saved;
        return rc;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = c;
    return SC_OK;
}

void semcache_close(semcache *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    sc_buf_free(&c->out);
    free(c->in);
    free(c);
}

static int flush_out(semcache *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c, POLLOUT);
            if (rc) return broken(c, rc);
            continue;
        }
        set_err(c, SC_EIO, "send: %s", w < 0 ? strerror(errno) : "connection closed");
        return broken(c, SC_EIO);
    }
    sc_buf_reset(&c->out);
    return SC_OK;
}

/* Reads at least one more byte into c->in. */
static int read_more(semcache *c)
{
    if (c->ioff > 0 && (c->ioff == c->ilen || c->ioff > c->icap / 2)) {
        memmove(c->in, c->in + c->ioff, c->ilen - c->ioff);
        c->ilen -= c->ioff;
        c->ioff = 0;
    }
    if (c->ilen - c->ioff > MAX_REPLY) {
        set_err(c, SC_ETOOBIG, "reply larger than %llu bytes", (unsigned long long)MAX_REPLY);
        return broken(c, SC_ETOOBIG);
    }
    if (c->icap - c->ilen < READ_CHUNK) {
        c->icap = c->icap ? c->icap * 2 : READ_CHUNK * 2;
        c->in = sc_realloc(c->in, c->icap);
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, 0);
        if (r > 0) {
            c->ilen += (size_t)r;
            return SC_OK;
        }
        if (r == 0) {
            set_err(c, SC_EIO, "connection closed by the server");
            return broken(c, SC_EIO);
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c, POLLIN);
            if (rc) return broken(c, rc);
            continue;
        }
        set_err(c, SC_EIO, "recv: %s", strerror(errno));
        return broken(c, SC_EIO);
    }
}

/* ---------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------- */

int semcache_append(semcache *c, int argc, const char *const *argv, const size_t *lens)
{
    if (!c || argc <= 0 || !argv) return SC_EINVAL;
    if (c->fd < 0)
        return set_err(c, SC_ECLOSED, "the connection was closed after an earlier error");
    size_t mark = c->out.len;
    int rc = sc_buf_printf(&c->out, "*%d\r\n", argc);
    for (int i = 0; i < argc && !rc; i++) {
        if (!argv[i]) {
            rc = SC_EINVAL;
            break;
        }
        size_t n = lens && lens[i] != SEMCACHE_NTS ? lens[i] : strlen(argv[i]);
        rc = sc_buf_printf(&c->out, "$%zu\r\n", n);
        if (!rc) rc = sc_buf_append(&c->out, argv[i], n);
        if (!rc) rc = sc_buf_append(&c->out, "\r\n", 2);
    }
    if (rc) {
        c->out.len = mark; /* drop the half-encoded command */
        if (c->out.data) c->out.data[mark] = '\0';
        return set_err(c, rc, rc == SC_EINVAL ? "NULL argument" : "command too large");
    }
    c->pending++;
    return SC_OK;
}

size_t semcache_pending(const semcache *c)
{
    return c ? c->pending : 0;
}

int semcache_read_reply(semcache *c, semcache_reply **out)
{
    *out = NULL;
    if (!c) return SC_EINVAL;
    if (c->fd < 0)
        return set_err(c, SC_ECLOSED, "the connection was closed after an earlier error");
    if (c->pending == 0) return set_err(c, SC_EINVAL, "no command is waiting for a reply");
    if (c->out.len) {
        int rc = flush_out(c);
        if (rc) return rc;
    }
    for (;;) {
        size_t used;
        int rc = semcache_reply_parse(c->in ? c->in + c->ioff : "", c->ilen - c->ioff, &used, out);
        if (rc) {
            set_err(c, rc, "malformed reply from the server (%s)", sc_strerror(rc));
            return broken(c, rc == SC_ETOOBIG ? SC_ETOOBIG : SC_EPROTO);
        }
        if (*out) {
            c->ioff += used;
            c->pending--;
            return SC_OK;
        }
        rc = read_more(c);
        if (rc) return rc;
    }
}

int semcache_command(semcache *c, int argc, const char *const *argv, const size_t *lens,
                     semcache_reply **out)
{
    *out = NULL;
    int rc = semcache_append(c, argc, argv, lens);
    if (rc) return rc;
    /* Read the replies of earlier appended commands first; drop them. */
    while (c->pending > 1) {
        semcache_reply *r;
        rc = semcache_read_reply(c, &r);
        if (rc) return rc;
        semcache_reply_free(r);
    }
    return semcache_read_reply(c, out);
}

/* Maps an error reply to a code and keeps its text. */
static int reply_error(semcache *c, const semcache_reply *r)
{
    const char *s = r->str;
    int code = SC_EINVAL;
    if (!strncmp(s, "NOAUTH", 6) || !strncmp(s, "WRONGPASS", 9))
        code = SC_EAUTH;
    else if (!strncmp(s, "NOPERM", 6))
        code = SC_EFORBIDDEN;
    else if (!strncmp(s, "IOERR", 5))
        code = SC_EIO;
    return set_err(c, code, "%s", s);
}

static int unexpected(semcache *c, const semcache_reply *r, const char *what)
{
    return set_err(c, SC_EPROTO, "unexpected reply type %d to %s", r ? r->type : 0, what);
}

/* Runs a command; returns its reply or an error for error replies. */
static int run(semcache *c, int argc, const char *const *argv, const size_t *lens,
               semcache_reply **out)
{
    int rc = semcache_command(c, argc, argv, lens, out);
    if (rc) return rc;
    if ((*out)->type == SEMCACHE_REPLY_ERROR) {
        rc = reply_error(c, *out);
        semcache_reply_free(*out);
        *out = NULL;
        return rc;
    }
    return SC_OK;
}

static size_t len_of(const char *s, size_t n)
{
    return n == SEMCACHE_NTS ? strlen(s) : n;
}

int semcache_auth(semcache *c, const char *key)
{
    if (!c || !key) return SC_EINVAL;
    const char *argv[] = {"AUTH", key};
    semcache_reply *r;
    int rc = run(c, 2, argv, NULL, &r);
    semcache_reply_free(r);
    return rc;
}

int semcache_set(semcache *c, const char *ns, const char *prompt, size_t prompt_len,
                 const char *response, size_t response_len, long long ttl_s, uint64_t *id)
{
    if (!c || !prompt || !response || ttl_s < 0) return SC_EINVAL;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", ttl_s);
    const char *argv[] = {"SEM.SET", ns ? ns : "default", prompt, response, "EX", ttl};
    size_t lens[] = {7, strlen(argv[1]), len_of(prompt, prompt_len), len_of(response, response_len),
                     2, strlen(ttl)};
    semcache_reply *r;
    int rc = run(c, ttl_s > 0 ? 6 : 4, argv, lens, &r);
    if (rc) return rc;
    if (r->type != SEMCACHE_REPLY_INTEGER || r->integer < 0)
        rc = unexpected(c, r, "SEM.SET");
    else if (id)
        *id = (uint64_t)r->integer;
    semcache_reply_free(r);
    return rc;
}

void semcache_hit_clear(semcache_hit *hit)
{
    if (!hit) return;
    free(hit->response);
    memset(hit, 0, sizeof *hit);
}

int semcache_get(semcache *c, const char *ns, const char *prompt, size_t prompt_len,
                 double threshold, semcache_hit *hit)
{
    if (hit) memset(hit, 0, sizeof *hit);
    if (!c || !prompt || !hit || threshold > 1 || threshold != threshold) return SC_EINVAL;
    char th[32];
    snprintf(th, sizeof th, "%.17g", threshold);
    const char *argv[] = {"SEM.GET", ns ? ns : "default", prompt, "THRESHOLD", th};
    size_t lens[] = {7, strlen(argv[1]), len_of(prompt, prompt_len), 9, strlen(th)};
    semcache_reply *r;
    int rc = run(c, threshold >= 0 ? 5 : 3, argv, lens, &r);
    if (rc) return rc;
    if (r->type == SEMCACHE_REPLY_NIL) {
        rc = set_err(c, SC_ENOTFOUND, "miss");
    } else if (r->type != SEMCACHE_REPLY_ARRAY || (r->n != 3 && r->n != 4) ||
               r->elem[0]->type != SEMCACHE_REPLY_STRING ||
               r->elem[1]->type != SEMCACHE_REPLY_STRING ||
               r->elem[2]->type != SEMCACHE_REPLY_INTEGER ||
               (r->n == 4 && (r->elem[3]->type != SEMCACHE_REPLY_STRING || r->elem[3]->len >= sizeof hit->request))) {
        rc = unexpected(c, r, "SEM.GET");
    } else {
        hit->response = r->elem[0]->str;
        hit->response_len = r->elem[0]->len;
        r->elem[0]->str = NULL;
        hit->similarity = strtod(r->elem[1]->str, NULL);
        hit->id = (uint64_t)r->elem[2]->integer;
        if (r->n == 4) memcpy(hit->request, r->elem[3]->str, r->elem[3]->len + 1);
    }
    semcache_reply_free(r);
    return rc;
}

int semcache_feedback(semcache *c, const char *ns, const char *request, int correct)
{
    if (!c || !request) return SC_EINVAL;
    const char *argv[] = {"SEM.FEEDBACK", ns ? ns : "default", request, correct ? "GOOD" : "BAD"};
    semcache_reply *r;
    int rc = semcache_command(c, 4, argv, NULL, &r);
    if (rc) return rc;
    if (r->type == SEMCACHE_REPLY_ERROR && strstr(r->str, "no served hit"))
        rc = set_err(c, SC_ENOTFOUND, "%s", r->str);
    else if (r->type == SEMCACHE_REPLY_ERROR)
        rc = reply_error(c, r);
    else if (r->type != SEMCACHE_REPLY_STATUS)
        rc = unexpected(c, r, "SEM.FEEDBACK");
    semcache_reply_free(r);
    return rc;
}

int semcache_del(semcache *c, const char *ns, uint64_t id)
{
    if (!c) return SC_EINVAL;
    char ids[24];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    const char *argv[] = {"SEM.DEL", ns ? ns : "default", ids};
    semcache_reply *r;
    int rc = run(c, 3, argv, NULL, &r);
    if (rc) return rc;
    if (r->type != SEMCACHE_REPLY_INTEGER)
        rc = unexpected(c, r, "SEM.DEL");
    else if (r->integer == 0)
        rc = set_err(c, SC_ENOTFOUND, "no entry %s in namespace %s", ids, argv[1]);
    semcache_reply_free(r);
    return rc;
}

int semcache_flush(semcache *c, const char *ns, uint64_t *count)
{
    if (!c) return SC_EINVAL;
    const char *argv[] = {"SEM.FLUSH", ns ? ns : "default"};
    semcache_reply *r;
    int rc = run(c, 2, argv, NULL, &r);
    if (rc) return rc;
    if (r->type != SEMCACHE_REPLY_INTEGER || r->integer < 0)
        rc = unexpected(c, r, "SEM.FLUSH");
    else if (count)
        *count = (uint64_t)r->integer;
    semcache_reply_free(r);
    return rc;
}

int semcache_stats(semcache *c, semcache_stat **stats, size_t *n)
{
    *stats = NULL;
    *n = 0;
    if (!c) return SC_EINVAL;
    const char *argv[] = {"SEM.STATS"};
    semcache_reply *r;
    int rc = run(c, 1, argv, NULL, &r);
    if (rc) return rc;
    if (r->type != SEMCACHE_REPLY_ARRAY || r->n % 2) {
        rc = unexpected(c, r, "SEM.STATS");
        semcache_reply_free(r);
        return rc;
    }
    /* One block: the array, then the strings. */
    size_t k = r->n / 2, bytes = k * sizeof(semcache_stat);
    char(*num)[24] = sc_calloc(r->n ? r->n : 1, sizeof *num);
    for (size_t i = 0; i < r->n; i++) {
        semcache_reply *e = r->elem[i];
        if (e->type == SEMCACHE_REPLY_INTEGER) {
            snprintf(num[i], sizeof num[0], "%lld", e->integer);
            bytes += strlen(num[i]) + 1;
        } else if (e->type == SEMCACHE_REPLY_STRING || e->type == SEMCACHE_REPLY_STATUS) {
            bytes += e->len + 1;
        } else {
            rc = unexpected(c, e, "SEM.STATS element");
            free(num);
            semcache_reply_free(r);
            return rc;
        }
    }
    semcache_stat *st = sc_malloc(bytes ? bytes : 1);
    char *p = (char *)(st + k);
    for (size_t i = 0; i < r->n; i++) {
        semcache_reply *e = r->elem[i];
        const char *s = e->type == SEMCACHE_REPLY_INTEGER ? num[i] : e->str;
        size_t l = strlen(s);
        memcpy(p, s, l + 1);
        if (i % 2 == 0)
            st[i / 2].name = p;
        else
            st[i / 2].value = p;
        p += l + 1;
    }
    free(num);
    semcache_reply_free(r);
    *stats = st;
    *n = k;
    return SC_OK;
}
