/* The HTTP/1.1 listener (see http.h for the contract).
 *
 * Each connection owns an llhttp parser. Bytes read go into conn->in; the
 * parser runs over them and pauses at the end of every message, so a
 * pipelined second request stays in the buffer until the first response
 * was queued. The request being parsed accumulates its head and body in
 * bounded buffers; the limits turn into 431/413/400 answers followed by a
 * close. A connection with a request in the handler's hands is kept alive
 * (refcount) even if its socket closes, until the handler finishes. */
#include "server/http.h"
#include "server/listen.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"

#include <ctype.h>
#include <jansson.h>
#include <llhttp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IN_MAX (1u << 20)        /* bytes of pipelined input held at most */
#define OUT_MAX (64u << 20)      /* bytes queued for a slow reader at most */
#define EOF_PROBE_MS 250         /* a half-closed client waiting for its answer is checked this often */
#define IDLE_GRACE_MS 50         /* see on_timeout */
#define STOP_GRACE_MS 5000       /* a stopping server waits this long (at most) for a request still arriving */

struct sc_http_server {
    sc_conns conns;              /* the listener and the open connections */
    const sc_config *cfg;
    sc_http_handler handler;
    void *ctx;
    sc_http_finish_fn on_finish;
    llhttp_settings_t settings;
    int port;
};

typedef struct conn {
    sc_conn base;                /* first: handles, refcount, list links */
    sc_http_server *srv;
    llhttp_t parser;
    sc_buf in;                   /* unparsed input */
    /* the request being parsed */
    sc_http_req *req;
    sc_buf url;
    sc_buf hfield, hvalue;
    size_t head_bytes;
    int in_value;
    int err_status;              /* 431/413 decided in a callback */
    int expect_continue;
    /* state */
    sc_http_req *busy;           /* handed to the handler, not finished */
    int processing;
    int closing;                 /* close once the output is flushed */
    int eof;                     /* peer half-closed */
    size_t out_queued;           /* each write holds a reference, as does busy */
    int idle_grace;              /* the idle timer fired once with output queued */
} conn;
_Static_assert(offsetof(conn, base) == 0, "sc_conn must come first (see listen.h)");

typedef struct wreq {
    uv_write_t w;
    conn *c;
    size_t len;
    char data[];
} wreq;

static void process(conn *c);
static void conn_close(conn *c);

uint64_t sc_http_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *sc_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* ---------------------------------------------------------------------
 * Connection lifetime
 * ------------------------------------------------------------------- */

static void req_free(sc_http_req *r)
{
    if (!r) return;
    free(r->path);
    free(r->query);
    free(r->body);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->hname[i]);
        free(r->hvalue[i]);
    }
    free(r);
}

/* Frees a connection whose last reference went (sc_conns calls it). */
static void conn_release(sc_conn *base)
{
    conn *c = (conn *)base;
    req_free(c->req);   /* a request cut short by an error or a close */
    sc_buf_free(&c->in);
    sc_buf_free(&c->url);
    sc_buf_free(&c->hfield);
    sc_buf_free(&c->hvalue);
    free(c);
}

/* Closes the socket; a request being handled learns it through on_abort
 * (the handles' close callbacks come later, so c outlives this call). */
static void conn_close(conn *c)
{
    if (c->base.closed) return;
    sc_conn_close(&c->base);
    if (c->busy && !c->busy->aborted) {
        c->busy->aborted = 1;
        if (c->busy->on_abort) c->busy->on_abort(c->busy);
    }
}

/* Closes a connection whose answers are all written without losing them
 * to a reset (sc_conn_linger, listen.h): a bad request with more bytes
 * behind it still gets its 400, a "Connection: close" request with more
 * pipelined behind it its answer, and so does a request that was still
 * arriving when the server began to stop. The linger is bounded
 * (SC_CONN_LINGER_MS), so a stop still ends. A half-closed client has
 * nothing left to send: it closes at once. */
static void conn_linger(conn *c)
{
    if (c->eof) conn_close(c);
    else sc_conn_linger(&c->base, SC_CONN_LINGER_MS);
}

/* 1 when the peer of a half-closed connection has reset it (or the socket
 * failed). Reading stopped at the FIN, so a reset that follows is not
 * reported by a read: only the socket's state shows it (POLLHUP once both
 * directions are shut, which our side never does while it answers;
 * POLLERR for a pending error). poll() with no wait: never blocks. */
static int peer_gone(conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->base.tcp, &fd) != 0) return 0;
    struct pollfd p = {.fd = fd, .events = 0, .revents = 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

static void on_timeout(uv_timer_t *t);
static void arm_idle_timer(conn *c);

/* While a request is in progress the timer is off, except on a
 * half-closed connection, where it repeats every EOF_PROBE_MS to notice a
 * reset: that client is gone (on_abort runs), whereas a plain half-close
 * is still answered (HTTP allows it). */
static void start_eof_probe(conn *c)
{
    if (!c->base.closed) uv_timer_start(&c->base.timer, on_timeout, EOF_PROBE_MS, EOF_PROBE_MS);
}

static void on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->busy) {
        if (c->eof && peer_gone(c)) {
            sc_debug("half-closed client reset the connection");
            conn_close(c);
        }
        return;
    }
    if (c->out_queued > 0 && !c->srv->conns.stopping && sc_conn_peer_progress(&c->base)) {
        /* The client is reading a long answer (inside one big write, where
         * no write completes to say so): not idle. */
        arm_idle_timer(c);
        return;
    }
    if (c->out_queued > 0 && !c->idle_grace) {
        /* libuv runs due timers before polling for I/O: after the loop
         * thread stalled (a loaded machine), this timer can fire while the
         * completions of writes that did progress are still waiting to be
         * delivered. Let them run before calling the reader idle. */
        c->idle_grace = 1;
        uv_timer_start(&c->base.timer, on_timeout, IDLE_GRACE_MS, 0);
        return;
    }
    sc_debug("closing idle connection");
    c->closing = 1;
    if (c->out_queued == 0) conn_linger(c);
    else conn_close(c);   /* a reader that stalled: nothing would be read */
}

/* A stopping server gives a connection at most STOP_GRACE_MS of silence
 * (to finish sending its request or to read its answers), so a stop ends. */
static void arm_idle_timer(conn *c)
{
    if (c->base.lingering) return;   /* the timer is the linger's */
    c->idle_grace = 0;
    uint64_t ms = (uint64_t)c->srv->cfg->idle_timeout_ms;
    if (c->srv->conns.stopping && ms > STOP_GRACE_MS) ms = STOP_GRACE_MS;
    if (!c->base.closed) uv_timer_start(&c->base.timer, on_timeout, ms, 0);
}

/* ---------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    wreq *wr = (wreq *)w;
    conn *c = wr->c;
    c->out_queued -= wr->len;
    free(wr);
    if (status < 0) {
        conn_close(c);
    } else if (c->closing && c->out_queued == 0 && !c->busy) {
        /* Not while a request is still being answered (a stream between
         * two writes): finish() closes once it is done. */
        conn_linger(c);
    } else if (!c->busy) {
        /* Progress: the idle timeout counts from the last write, so a
         * client reading a long answer steadily is not cut off. */
        arm_idle_timer(c);
    }
    sc_conn_unref(&c->base);
}

/* Queues bytes; returns SC_ECLOSED when the connection is gone. */
static int send_bytes(conn *c, const char *a, size_t alen, const char *b, size_t blen,
                      const char *tail, size_t tlen)
{
    if (c->base.closed) return SC_ECLOSED;
    size_t len = alen + blen + tlen;
    if (c->out_queued + len > OUT_MAX) {
        sc_warn("client reads too slowly (%zu bytes queued); closing", c->out_queued);
        conn_close(c);
        return SC_ECLOSED;
    }
    wreq *wr = sc_malloc(sizeof *wr + len);
    wr->c = c;
    wr->len = len;
    memcpy(wr->data, a, alen);
    if (blen) memcpy(wr->data + alen, b, blen);
    if (tlen) memcpy(wr->data + alen + blen, tail, tlen);
    uv_buf_t buf = uv_buf_init(wr->data, (unsigned)len);
    /* Output starts queueing: what the peer took so far is the baseline
     * of the idle timer's progress check. */
    if (c->out_queued == 0) (void)sc_conn_peer_progress(&c->base);
    sc_conn_ref(&c->base);
    c->out_queued += len;
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->base.tcp, &buf, 1, on_written);
    if (rc < 0) {
        c->out_queued -= len;
        sc_conn_unref(&c->base);
        free(wr);
        conn_close(c);
        return SC_ECLOSED;
    }
    c->base.sent += len;
    return SC_OK;
}

/* keep_alive: 0 closes after this response; otherwise the seconds an idle
 * connection is kept, announced in Keep-Alive: timeout=N so that pooling
 * clients drop it before the server does (no reuse racing the close). */
static int format_head(char *head, size_t cap, int status, const char *ctype, const char *extra,
                       long long clen, int keep_alive)
{
    int n;
    char conn_hdr[64];
    if (keep_alive > 0) snprintf(conn_hdr, sizeof conn_hdr, "keep-alive\r\nKeep-Alive: timeout=%d", keep_alive);
    else snprintf(conn_hdr, sizeof conn_hdr, "close");
    if (clen == -2)   /* HTTP/1.0 stream: the body ends when the connection closes */
        n = snprintf(head, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-cache\r\nConnection: close\r\n%s\r\n",
                     status, sc_http_reason(status), ctype, extra ? extra : "");
    else if (clen >= 0)
        n = snprintf(head, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
                     "Connection: %s\r\n%s\r\n",
                     status, sc_http_reason(status), ctype, clen,
                     conn_hdr, extra ? extra : "");
    else
        n = snprintf(head, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                     "Cache-Control: no-cache\r\nConnection: %s\r\n%s\r\n",
                     status, sc_http_reason(status), ctype,
                     conn_hdr, extra ? extra : "");
    return n;
}

/* Called when a request is finished: frees it, resumes parsing. */
static void finish(sc_http_req *req)
{
    conn *c = req->conn_;
    sc_assert(!req->done_);
    req->done_ = 1;
    if (c->srv->on_finish)
        c->srv->on_finish(c->srv->ctx, req, req->status_, (double)(sc_http_now_ns() - req->start_ns_) / 1e9);
    if (c->busy == req) c->busy = NULL;
    req_free(req);
    if (!c->base.closed) {
        /* Half-closed: still answer the requests the client sent in full
         * (pipelined behind this one), then close. */
        if (c->srv->conns.stopping || (c->eof && c->in.len == 0)) c->closing = 1;
        if (c->closing) {
            if (c->out_queued == 0) conn_linger(c);
            else arm_idle_timer(c);   /* a reader that stalls is still closed */
        } else {
            arm_idle_timer(c);
            if (!c->processing) {
                process(c);
                if (c->eof && !c->busy && !c->base.closed && !c->closing) {   /* only a partial request left */
                    c->closing = 1;
                    if (c->out_queued == 0) conn_linger(c);
                }
            }
        }
    }
    sc_conn_unref(&c->base);
}

/* 0: close after this response; else the idle timeout in whole seconds. */
static int keep_alive_for(sc_http_req *req)
{
    conn *c = req->conn_;
    if (c->closing || (c->eof && c->in.len == 0) || c->srv->conns.stopping || !llhttp_should_keep_alive(&c->parser))
        return 0;
    long long s = c->srv->cfg->idle_timeout_ms / 1000;
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

void sc_http_respond(sc_http_req *req, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len)
{
    conn *c = req->conn_;
    req->status_ = status;
    /* Finished here: a close while sending (output bound) must not run
     * on_abort, whose handler would finish the request a second time. */
    req->on_abort = NULL;
    if (!req->aborted) {
        int ka = keep_alive_for(req);
        if (!ka) c->closing = 1;
        char head[8192];
        int n = format_head(head, sizeof head, status, content_type ? content_type : "application/json",
                            extra_headers, (long long)len, ka);
        if (n < 0 || (size_t)n >= sizeof head) {
            n = format_head(head, sizeof head, 500, "application/json", NULL, 0, 0);
            c->closing = 1;
            len = 0;
        }
        send_bytes(c, head, (size_t)n, body, len, NULL, 0);
    }
    finish(req);
}

static void error_v(sc_http_req *req, int status, const char *headers, const char *type, const char *code,
                    const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type", type, "code", code);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) s = sc_strdup("{\"error\":{\"message\":\"error\",\"type\":\"server_error\",\"code\":\"internal\"}}");
    sc_http_respond(req, status, "application/json", headers, s, strlen(s));
    free(s);
}

void sc_http_error(sc_http_req *req, int status, const char *type, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(req, status, NULL, type, code, fmt, ap);
    va_end(ap);
}

void sc_http_error_headers(sc_http_req *req, int status, const char *headers, const char *type,
                           const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(req, status, headers, type, code, fmt, ap);
    va_end(ap);
}

void sc_http_stream_begin(sc_http_req *req, int status, const char *content_type,
                          const char *extra_headers)
{
    conn *c = req->conn_;
    req->streaming_ = 1;
    req->status_ = status;
    if (req->aborted) return;
    int ka = keep_alive_for(req);
    /* Chunked encoding is HTTP/1.1 only (RFC 9112 6.1): an HTTP/1.0
     * client gets the bytes as they are and the close ends the body. */
    req->unframed_ = llhttp_get_http_major(&c->parser) == 1 && llhttp_get_http_minor(&c->parser) == 0;
    if (req->unframed_) ka = 0;
    if (!ka) c->closing = 1;
    long long framing = req->unframed_ ? -2 : -1;
    char head[8192];
    int n = format_head(head, sizeof head, status, content_type, extra_headers, framing, ka);
    if (n < 0 || (size_t)n >= sizeof head) n = format_head(head, sizeof head, status, content_type, NULL, framing, 0);
    send_bytes(c, head, (size_t)n, NULL, 0, NULL, 0);
}

int sc_http_stream_write(sc_http_req *req, const char *data, size_t len)
{
    if (req->aborted || req->conn_->base.closed) return SC_ECLOSED;
    if (len == 0) return SC_OK;
    if (req->unframed_) return send_bytes(req->conn_, data, len, NULL, 0, NULL, 0);
    char size[32];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    return send_bytes(req->conn_, size, (size_t)n, data, len, "\r\n", 2);
}

void sc_http_stream_end(sc_http_req *req)
{
    req->on_abort = NULL;   /* finished here (see sc_http_respond) */
    if (!req->aborted && !req->conn_->base.closed && !req->unframed_) send_bytes(req->conn_, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
    finish(req);
}

const char *sc_http_header(const sc_http_req *req, const char *lname)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcmp(req->hname[i], lname) == 0) return req->hvalue[i];
    return NULL;
}

/* ---------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------- */

static conn *conn_of(llhttp_t *p) { return p->data; }

static int add_head_bytes(conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > (size_t)c->srv->cfg->max_header) {
        c->err_status = 431;
        return HPE_USER;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    conn *c = conn_of(p);
    req_free(c->req);
    c->req = sc_calloc(1, sizeof *c->req);
    c->req->conn_ = c;
    c->req->start_ns_ = sc_http_now_ns();
    sc_buf_reset(&c->url);
    sc_buf_reset(&c->hfield);
    sc_buf_reset(&c->hvalue);
    c->head_bytes = 0;
    c->in_value = 0;
    c->expect_continue = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn *c = conn_of(p);
    if (add_head_bytes(c, len)) return HPE_USER;
    return sc_buf_append(&c->url, at, len) ? HPE_USER : 0;
}

static int flush_header(conn *c)
{
    sc_http_req *r = c->req;
    if (!c->in_value) return 0;
    c->in_value = 0;
    if (r->nheaders >= SC_HTTP_MAX_HEADERS) {
        c->err_status = 431;
        return HPE_USER;
    }
    char *name = sc_buf_steal(&c->hfield, NULL);
    for (char *q = name; *q; q++) *q = (char)tolower((unsigned char)*q);
    r->hname[r->nheaders] = name;
    r->hvalue[r->nheaders] = sc_buf_steal(&c->hvalue, NULL);
    r->nheaders++;
    sc_buf_init(&c->hfield, (size_t)c->srv->cfg->max_header);
    sc_buf_init(&c->hvalue, (size_t)c->srv->cfg->max_header);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn *c = conn_of(p);
    if (add_head_bytes(c, len)) return HPE_USER;
    if (c->in_value && flush_header(c)) return HPE_USER;
    return sc_buf_append(&c->hfield, at, len) ? HPE_USER : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn *c = conn_of(p);
    if (add_head_bytes(c, len)) return HPE_USER;
    c->in_value = 1;
    return sc_buf_append(&c->hvalue, at, len) ? HPE_USER : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    conn *c = conn_of(p);
    c->in_value = 1;
    return flush_header(c);
}

static int on_headers_complete(llhttp_t *p)
{
    conn *c = conn_of(p);
    sc_http_req *r = c->req;
    if (flush_header(c)) return HPE_USER;
    /* No protocol upgrades here: ignore "Upgrade" (RFC 9110 7.8) so the
     * bytes after this request are parsed as HTTP/1.1 again. */
    if (p->method != HTTP_CONNECT) p->upgrade = 0;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)c->srv->cfg->max_body) {
        c->err_status = 413;
        return HPE_USER;
    }
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    const char *url = c->url.data ? c->url.data : "/";
    const char *q = strchr(url, '?');
    r->path = q ? sc_strndup(url, (size_t)(q - url)) : sc_strdup(url);
    r->query = sc_strdup(q ? q + 1 : "");
    const char *expect = sc_http_header(r, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) c->expect_continue = 1;
    if (c->expect_continue)
        send_bytes(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, NULL, 0, NULL, 0);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn *c = conn_of(p);
    sc_http_req *r = c->req;
    if (r->body_len + len > (size_t)c->srv->cfg->max_body) {
        c->err_status = 413;
        return HPE_USER;
    }
    r->body = sc_realloc(r->body, r->body_len + len + 1);
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn *c = conn_of(p);
    if (!c->req->body) c->req->body = sc_strdup("");
    return HPE_PAUSED;
}

/* Sends an error decided by the parser layer and closes afterwards. */
static void reject(conn *c, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s,s:s,s:i}}", "error", "message", msg, "type", "invalid_request_error",
                          "code", status);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char head[512];
    int n = format_head(head, sizeof head, status, "application/json", NULL, (long long)strlen(body), 0);
    c->closing = 1;
    send_bytes(c, head, (size_t)n, body, strlen(body), NULL, 0);
    free(body);
    sc_buf_reset(&c->in);
}

/* Runs the parser over buffered input; dispatches complete requests. */
static void process(conn *c)
{
    c->processing = 1;
    while (!c->base.closed && !c->closing && !c->busy && c->in.len > 0) {
        llhttp_errno_t e = llhttp_execute(&c->parser, c->in.data, c->in.len);
        if (e == HPE_OK) {
            sc_buf_reset(&c->in);   /* all consumed, request incomplete */
            break;
        }
        if (e == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = pos ? (size_t)(pos - c->in.data) : c->in.len;
            sc_buf_consume(&c->in, used);
            llhttp_resume(&c->parser);
            sc_http_req *r = c->req;
            c->req = NULL;
            c->busy = r;
            sc_conn_ref(&c->base);
            if (c->eof) start_eof_probe(c);   /* a pipelined request behind the FIN */
            else uv_timer_stop(&c->base.timer);
            c->srv->handler(c->srv->ctx, r);
            continue;
        }
        if (c->err_status == 431)
            reject(c, 431, "request headers too large (limit %lld bytes, %d headers)",
                   c->srv->cfg->max_header, SC_HTTP_MAX_HEADERS);
        else if (c->err_status == 413)
            reject(c, 413, "request body too large (limit %lld bytes)", c->srv->cfg->max_body);
        else
            reject(c, 400, "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
        break;
    }
    c->processing = 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (nread < 0) {
        if (nread == UV_EOF && (c->busy || c->out_queued)) {
            c->eof = 1;          /* half-closed: answer, then close */
            uv_read_stop(st);
            /* Answers still queued: on_written closes once they are out. */
            if (!c->busy) c->closing = 1;
            else start_eof_probe(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0) return;
    if (c->closing) return;
    if (sc_buf_append(&c->in, buf->base, (size_t)nread)) {
        if (c->busy) {
            /* Too much pipelined input behind a request in progress. */
            c->closing = 1;
            uv_read_stop(st);
        } else {
            reject(c, 431, "too much pipelined input (limit %u bytes)", IN_MAX);
        }
        return;
    }
    if (!c->busy) process(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
    sc_http_server *s = ls->data;
    if (status < 0) {
        sc_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    conn *c = sc_calloc(1, sizeof *c);
    c->srv = s;
    sc_conn_add(&s->conns, &c->base);
    sc_buf_init(&c->in, IN_MAX);
    sc_buf_init(&c->url, (size_t)s->cfg->max_header);
    sc_buf_init(&c->hfield, (size_t)s->cfg->max_header);
    sc_buf_init(&c->hvalue, (size_t)s->cfg->max_header);
    if (uv_accept(ls, (uv_stream_t *)&c->base.tcp) < 0) {
        conn_close(c);
        return;
    }
    if (s->conns.stopping || s->conns.n > (size_t)s->cfg->max_conns) {
        sc_warn("too many connections (%zu); refusing one", s->conns.n);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->base.tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    arm_idle_timer(c);
    uv_read_start((uv_stream_t *)&c->base.tcp, sc_listen_alloc, on_read);
}

/* ---------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------- */

int sc_http_server_start(sc_http_server **out, uv_loop_t *loop, const sc_config *cfg,
                         sc_http_handler handler, void *ctx, char *err, size_t errlen)
{
    sc_http_server *s = sc_calloc(1, sizeof *s);
    sc_conns_init(&s->conns, loop, s, conn_release, free);
    s->cfg = cfg;
    s->handler = handler;
    s->ctx = ctx;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;

    s->conns.listener.data = s;
    int rc = sc_listen_tcp(loop, &s->conns.listener, cfg->bind, cfg->port, on_connection, "HTTP", &s->port, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return SC_OK;
}

int sc_http_server_port(const sc_http_server *s) { return s->port; }
void sc_http_server_on_finish(sc_http_server *s, sc_http_finish_fn fn) { s->on_finish = fn; }
size_t sc_http_server_conns(const sc_http_server *s) { return s->conns.n; }

void sc_http_server_stop(sc_http_server *s, void (*done)(void *arg), void *arg)
{
    sc_conns_stop(&s->conns, done, arg);   /* first: arm_idle_timer sees the stop */
    for (sc_conn *b = s->conns.head; b; b = b->next) {
        conn *c = (conn *)b;
        if (c->busy || c->out_queued) {
            /* In flight or answers still queued: they go out first; finish()
             * or on_written closes then. */
            c->closing = 1;
        } else if (c->req) {
            /* A request still arriving: read the rest, answer it with
             * "Connection: close" (keep_alive_for), then close. Silence
             * longer than STOP_GRACE_MS closes it. */
            arm_idle_timer(c);
        } else {
            conn_close(c);
        }
    }
}
