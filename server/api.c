/* The HTTP router and what every handler shares: the thread-pool job
 * helper, JSON responses, the namespace/auth decision, and the small
 * endpoints (/healthz). The cache admin API is in api_cache.c, the OpenAI
 * proxy in proxy.c, /stats and /metrics in metrics.c. */
#include "server/server.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/cache.h"
#include "server/shared.h"
#include "server/ui.h"
#include "common/alloc.h"
#include "common/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------- */

static void job_work(uv_work_t *w)
{
    sc_job *j = w->data;
    j->work(j);
}

static void job_done(uv_work_t *w, int status)
{
    sc_job *j = w->data;
    if (status == UV_ECANCELED) j->rc = -1;
    j->done(j);
    free(j);
}

void sc_job_submit(sc_server *srv, sc_http_req *req, sc_job_fn work, sc_job_fn done, void *data)
{
    sc_job *j = SC_NEW(sc_job);
    j->srv = srv;
    j->req = req;
    j->work = work;
    j->done = done;
    j->data = data;
    j->submit_ns = sc_http_now_ns();
    j->work_req.data = j;
    int rc = uv_queue_work(srv->loop, &j->work_req, job_work, job_done);
    if (rc) {
        /* Cannot happen with a valid loop; answer rather than hang. */
        j->rc = -1;
        done(j);
        free(j);
    }
}

int sc_job_waited_too_long(const sc_job *j)
{
    long long bound = j->srv->cfg->max_queue_ms;
    return bound > 0 && sc_http_now_ns() - j->submit_ns >= (uint64_t)bound * 1000000ull;
}

int sc_job_overloaded(sc_job *j)
{
    if (!sc_job_waited_too_long(j)) return 0;
    atomic_fetch_add(&j->srv->overloaded, 1);
    return 1;
}

void sc_server_json(sc_http_req *req, int status, json_t *o, const char *extra_headers)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        sc_http_error(req, 500, "server_error", "internal", "could not encode the response");
        return;
    }
    sc_http_respond(req, status, "application/json", extra_headers, s, strlen(s));
    free(s);
}

int sc_server_valid_ns(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || ch == '.' || ch == ':';
        if (!ok || n >= 128) return 0;
    }
    return n > 0;
}

const char *sc_server_namespace(sc_server *srv, sc_http_req *req, const char *requested,
                                int need_admin)
{
    int role;
    return sc_server_namespace_role(srv, req, requested, need_admin, &role);
}

const char *sc_server_namespace_role(sc_server *srv, sc_http_req *req, const char *requested,
                                     int need_admin, int *role_out)
{
    const char *ns = NULL;
    *role_out = SC_ROLE_ADMIN;
    if (sc_auth_enabled(srv->auth)) {
        size_t klen = 0;
        const char *key = sc_auth_bearer(sc_http_header(req, "authorization"), &klen);
        if (!key) key = sc_auth_bearer(sc_http_header(req, "x-api-key"), &klen);
        const char *key_ns = NULL;
        int role = sc_auth_check(srv->auth, key, klen, &key_ns);
        if (role == SC_ROLE_NONE) {
            sc_http_error(req, 401, "authentication_error", "invalid_api_key",
                          key ? "invalid API key" : "missing API key (Authorization: Bearer KEY)");
            return NULL;
        }
        if (need_admin && role != SC_ROLE_ADMIN) {
            sc_http_error(req, 403, "permission_error", "admin_required",
                          "this endpoint needs an admin key");
            return NULL;
        }
        *role_out = role;
        /* A user key's namespace is fixed; an admin may name any. */
        ns = role == SC_ROLE_ADMIN && requested ? requested : key_ns;
    } else {
        ns = requested ? requested : sc_http_header(req, "x-semcache-namespace");
        if (!ns) ns = "default";
    }
    if (!sc_server_valid_ns(ns)) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_namespace",
                      "invalid namespace '%.64s': want 1-128 characters of A-Z a-z 0-9 _ - . :", ns);
        return NULL;
    }
    return ns;
}

/* ---------------------------------------------------------------------
 * Router
 * ------------------------------------------------------------------- */

static void handle_healthz(sc_server *srv, sc_http_req *req)
{
    double up = (double)(sc_http_now_ns() - srv->started_ns) / 1e9;
    json_t *o = json_pack("{s:s,s:f,s:s}", "status", srv->stopping ? "stopping" : "ok", "uptime_s", up, "version",
                          SC_VERSION);
    sc_shared_stats cs;
    /* Multi-node mode: the node answers either way (from its local copy);
     * "cluster" says whether stores can be made durable right now. */
    if (o && sc_cache_cluster(srv->cache, &cs)) json_object_set_new(o, "cluster", json_string(cs.up ? "up" : "down"));
    sc_server_json(req, 200, o, NULL);
}

static int method_is(sc_http_req *req, const char *want)
{
    if (strcmp(req->method, want) == 0) return 1;
    sc_http_error(req, 405, "invalid_request_error", "method_not_allowed",
                  "method %s not allowed on %s (use %s)", req->method, req->path, want);
    return 0;
}

void sc_server_handle(void *ctx, sc_http_req *req)
{
    sc_server *srv = ctx;
    const char *p = req->path;
    atomic_fetch_add(&srv->http_requests, 1);
    if (!strcmp(p, "/healthz")) {
        if (method_is(req, "GET")) handle_healthz(srv, req);
    } else if (!strncmp(p, "/v1/", 4)) {
        sc_proxy_handle(srv, req);
    } else if (!strcmp(p, "/cache/store")) {
        if (method_is(req, "POST")) sc_api_store(srv, req);
    } else if (!strcmp(p, "/cache/lookup")) {
        if (method_is(req, "POST")) sc_api_lookup(srv, req);
    } else if (!strcmp(p, "/cache/flush")) {
        if (method_is(req, "POST")) sc_api_flush(srv, req);
    } else if (!strcmp(p, "/cache/import")) {
        if (method_is(req, "POST")) sc_api_import(srv, req);
    } else if (!strcmp(p, "/cache/embed")) {
        if (method_is(req, "POST")) sc_api_embed(srv, req);
    } else if (!strcmp(p, "/cache/feedback")) {
        if (method_is(req, "POST")) sc_api_feedback(srv, req);
    } else if (!strcmp(p, "/cache/search")) {
        if (method_is(req, "POST")) sc_api_search(srv, req);
    } else if (!strcmp(p, "/ui") || !strncmp(p, "/ui/", 4)) {
        sc_api_ui(srv, req, p);
    } else if (!strncmp(p, "/cache/entries/", 15)) {
        sc_api_entry(srv, req, p + 15);
    } else if (!strcmp(p, "/stats")) {
        if (method_is(req, "GET")) sc_api_stats(srv, req);
    } else if (!strcmp(p, "/metrics")) {
        if (method_is(req, "GET")) sc_api_metrics(srv, req);
    } else {
        sc_http_error(req, 404, "invalid_request_error", "not_found", "no such endpoint: %s %s",
                      req->method, p);
    }
}
