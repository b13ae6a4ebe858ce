/* The HTTP/1.1 listener: libuv sockets, llhttp parsing, hard limits.
 *
 * One request at a time per connection; pipelined requests wait in a
 * bounded buffer and are parsed after the previous response went out.
 * Limits: total request-head bytes (431), body bytes (413, checked against
 * Content-Length before the body is read), header count (431), malformed
 * HTTP (400, then close). A connection idle (or stalled mid-request) for
 * idle_timeout_ms is closed; a request being handled is never timed out
 * here (the handler owns its deadline).
 *
 * Ownership: the server owns every sc_http_req. The handler receives one
 * per complete request and must finish it exactly once with
 * sc_http_respond(), sc_http_error() or sc_http_stream_end(), now or later
 * from the loop thread; after that the request is freed. If the client goes
 * away first, req->aborted is set and req->on_abort (if any) runs; the
 * handler must still finish the request (writes then do nothing). A
 * client that half-closed (FIN) after its request is still answered; one
 * that then resets the connection has gone away (noticed within 250 ms,
 * or at the next write). on_abort never runs from inside
 * sc_http_respond()/sc_http_stream_end() of the same request, but may run
 * from inside sc_http_stream_begin()/_write() (the output bound closes the
 * connection): the caller must allow for its on_abort having finished the
 * request when the call returns.
 * Threads: everything here runs on the loop thread only. */
#ifndef SC_HTTP_H
#define SC_HTTP_H

#include "common/config.h"

#include <stddef.h>
#include <uv.h>

typedef struct sc_http_server sc_http_server;
typedef struct sc_http_req sc_http_req;

#define SC_HTTP_MAX_HEADERS 100

struct sc_http_req {
    const char *method;          /* "GET", "POST", ... */
    char *path;                  /* URL path without the query */
    char *query;                 /* after '?', or "" */
    char *body;                  /* NUL-terminated; body_len bytes */
    size_t body_len;
    size_t nheaders;
    char *hname[SC_HTTP_MAX_HEADERS];  /* lower-cased */
    char *hvalue[SC_HTTP_MAX_HEADERS];
    int aborted;                 /* client went away */
    void *user;                  /* the handler's */
    void (*on_abort)(sc_http_req *req);
    char note[256];              /* handler's words for the access log */
    /* private */
    struct conn *conn_;
    int streaming_;
    int unframed_;               /* HTTP/1.0 stream: no chunks, ends with close */
    int done_;
    int status_;
    uint64_t start_ns_;
};

typedef void (*sc_http_handler)(void *ctx, sc_http_req *req);

/* Binds cfg->bind:cfg->port (0 = any free port) and starts accepting. */
int sc_http_server_start(sc_http_server **out, uv_loop_t *loop, const sc_config *cfg,
                         sc_http_handler handler, void *ctx, char *err, size_t errlen);
/* The bound port. */
int sc_http_server_port(const sc_http_server *s);
/* Stops accepting, lets in-flight requests finish, closes every connection,
 * then calls done(arg) and frees the server. */
void sc_http_server_stop(sc_http_server *s, void (*done)(void *arg), void *arg);
/* Connections open now. */
size_t sc_http_server_conns(const sc_http_server *s);

/* Called for every finished request (stats, access log), loop thread. */
typedef void (*sc_http_finish_fn)(void *ctx, const sc_http_req *req, int status, double seconds);
void sc_http_server_on_finish(sc_http_server *s, sc_http_finish_fn fn);

/* Case-insensitive header lookup (name in lower case); NULL when absent. */
const char *sc_http_header(const sc_http_req *req, const char *lname);

/* Sends a whole response. extra_headers: "Name: value\r\n" lines or NULL. */
void sc_http_respond(sc_http_req *req, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len);
/* Sends {"error":{"message","type","code"}} with status. */
void sc_http_error(sc_http_req *req, int status, const char *type, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same with extra header lines ("Name: value\r\n"...). */
void sc_http_error_headers(sc_http_req *req, int status, const char *headers, const char *type,
                           const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Streaming (chunked transfer encoding). */
void sc_http_stream_begin(sc_http_req *req, int status, const char *content_type,
                          const char *extra_headers);
/* Returns SC_ECLOSED when the client is gone. */
int sc_http_stream_write(sc_http_req *req, const char *data, size_t len);
void sc_http_stream_end(sc_http_req *req);

/* Reason phrase for a status code. */
const char *sc_http_reason(int status);
/* Monotonic nanoseconds (for latency measurements). */
uint64_t sc_http_now_ns(void);

#endif
