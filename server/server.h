/* The semcached process: the parts it owns and the HTTP router.
 *
 * sc_server holds the configuration, the libuv loop, the listeners and
 * the cache's components. It is created by semcached_main.c and lives for
 * the whole process. Request handlers (api.c, proxy.c) run on the loop
 * thread and hand slow work to the libuv thread pool. */
#ifndef SC_SERVER_H
#define SC_SERVER_H

#include "common/config.h"
#include "server/http.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

struct sc_cache;
struct sc_auth;
struct sc_route;
struct sc_stats;
struct sc_resp;
struct sc_memo;

typedef struct sc_server {
    sc_config *cfg;
    uv_loop_t *loop;
    sc_http_server *http;
    struct sc_cache *cache;
    struct sc_auth *auth;
    struct sc_route *route;
    struct sc_stats *stats;
    struct sc_resp *resp;
    struct sc_memo *memo;         /* exact-hit answers of the HTTP proxy */
    FILE *access_log;
    uint64_t started_ns;
    int stopping;
    atomic_ullong http_requests;
    atomic_ullong http_errors;
    atomic_ullong overloaded;     /* lookups that skipped the semantic layer (queue wait) */
    atomic_ullong writebacks_dropped; /* write-backs that had to embed, dropped (queue wait) */
} sc_server;

/* Work handed to the thread pool for one HTTP request: work() runs on a
 * worker thread (may block), done() on the loop thread and must finish the
 * request. The job is freed after done(); data is the caller's. */
typedef struct sc_job sc_job;
typedef void (*sc_job_fn)(sc_job *job);
struct sc_job {
    uv_work_t work_req;
    sc_server *srv;
    sc_http_req *req;
    sc_job_fn work, done;
    void *data;
    int rc;
    uint64_t submit_ns;        /* when it was queued (sc_http_now_ns) */
};
void sc_job_submit(sc_server *srv, sc_http_req *req, sc_job_fn work, sc_job_fn done, void *data);

/* Overload: 1 when the job waited for a worker longer than --max-queue-ms
 * (call from work()). Such a lookup skips the semantic layer: embedding is
 * what the workers are short of. Counted in /stats (`overloaded`). */
int sc_job_overloaded(sc_job *job);
/* The same test without counting: the job waited over --max-queue-ms. */
int sc_job_waited_too_long(const sc_job *job);

/* Sends a JSON value (takes the reference) with status. */
void sc_server_json(sc_http_req *req, int status, json_t *o, const char *extra_headers);

/* The request's namespace: from its API key when auth is on (after the
 * role check), else X-Semcache-Namespace, else "default". Returns NULL
 * after answering the request with 401/403/400 itself. need_admin asks
 * for an admin key (admin endpoints). */
const char *sc_server_namespace(sc_server *srv, sc_http_req *req, const char *requested,
                                int need_admin);
/* The same, also telling the caller's role (enum sc_role of auth.h;
 * SC_ROLE_ADMIN when auth is off: everything is open then). */
const char *sc_server_namespace_role(sc_server *srv, sc_http_req *req, const char *requested,
                                     int need_admin, int *role);

/* 1 when s is a valid namespace name: 1-128 of [A-Za-z0-9_.:-]. */
int sc_server_valid_ns(const char *s);

/* The HTTP router: the sc_http_handler of the listener (ctx = sc_server). */
void sc_server_handle(void *ctx, sc_http_req *req);

#endif
