/* The HTTP router and the small endpoints: /healthz and JSON 404s.
 * Cache, proxy and admin endpoints are added by their own files. */
#include "server/server.h"
#include "common/alloc.h"
#include "common/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void respond_json(sc_http_req *req, int status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    sc_http_respond(req, status, "application/json", NULL, s, strlen(s));
    free(s);
}

static void handle_healthz(sc_server *srv, sc_http_req *req)
{
    double up = (double)(sc_http_now_ns() - srv->started_ns) / 1e9;
    respond_json(req, 200, json_pack("{s:s,s:f,s:s}", "status", "ok", "uptime_s", up,
                                     "version", "0.1.0"));
}

void sc_server_handle(void *ctx, sc_http_req *req)
{
    sc_server *srv = ctx;
    atomic_fetch_add(&srv->http_requests, 1);
    const char *m = req->method;
    if (!strcmp(req->path, "/healthz")) {
        if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
            sc_http_error(req, 405, "invalid_request_error", "method_not_allowed",
                          "method %s not allowed on %s (use GET)", m, req->path);
            return;
        }
        handle_healthz(srv, req);
        return;
    }
    atomic_fetch_add(&srv->http_errors, 1);
    sc_http_error(req, 404, "invalid_request_error", "not_found", "no such endpoint: %s %s", m,
                  req->path);
}
