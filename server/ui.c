/* GET /ui (the dashboard's files) and GET /ui/data (its snapshot); see
 * ui.h. Loop thread only: everything read here is a counter or a copy. */
#include "server/ui.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/cache.h"
#include "server/recent.h"
#include "server/stats.h"
#include "common/hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UI_RECENT_MAX 200

/* The page may load its own script and style and talk to its own origin,
 * nothing else; it may not be framed (clickjacking an admin's delete). */
#define UI_HEADERS                                                                                    \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "            \
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "            \
    "form-action 'none'\r\n"                                                                          \
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"

static const char *asset_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (dot && !strcmp(dot, ".css")) return "text/css; charset=utf-8";
    return "text/html; charset=utf-8";
}

static void serve_asset(sc_http_req *req, const char *name)
{
    const sc_ui_asset *a = sc_ui_assets;
    while (a->name && strcmp(a->name, name) != 0) a++;
    if (!a->name) {
        sc_http_error(req, 404, "invalid_request_error", "not_found", "no such dashboard file: %.64s", name);
        return;
    }
    /* The files change only with the binary: their hash is the ETag. */
    char etag[24];
    snprintf(etag, sizeof etag, "\"%016llx\"", (unsigned long long)sc_hash64(a->data, a->len, 0));
    char hdr[512];
    snprintf(hdr, sizeof hdr, UI_HEADERS "Cache-Control: no-cache\r\nETag: %s\r\n", etag);
    const char *inm = sc_http_header(req, "if-none-match");
    if (inm && !strcmp(inm, etag)) {
        sc_http_respond(req, 304, asset_type(name), hdr, "", 0);
        return;
    }
    sc_http_respond(req, 200, asset_type(name), hdr, (const char *)a->data, a->len);
}

/* ?after=N (the last decision the page has seen); 0 when absent or bad. */
static uint64_t query_after(const char *q)
{
    for (const char *p = q; p && *p;) {
        if (!strncmp(p, "after=", 6)) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p + 6, &end, 10);
            return errno || (*end && *end != '&') ? 0 : (uint64_t)v;
        }
        p = strchr(p, '&');
        if (p) p++;
    }
    return 0;
}

static json_t *recent_json(sc_cache *c, const char *ns, uint64_t after)
{
    static sc_recent_item items[UI_RECENT_MAX];   /* loop thread only */
    size_t n = sc_recent_get(sc_cache_recent(c), ns, after, items, UI_RECENT_MAX);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const sc_recent_item *it = &items[i];
        json_t *o = json_pack("{s:I,s:I,s:s,s:f,s:f,s:f,s:b}", "seq", (json_int_t)it->seq, "time_ms",
                              (json_int_t)it->time_ms, "namespace", it->ns, "similarity",
                              (double)it->similarity, "score", (double)it->score, "threshold",
                              (double)it->threshold, "served", it->served);
        if (!o) continue;   /* a namespace cut inside a UTF-8 sequence cannot be */
        json_object_set_new(o, "candidate", it->candidate ? json_integer((json_int_t)it->candidate) : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

static void serve_data(sc_server *srv, sc_http_req *req)
{
    int role;
    const char *ns = sc_server_namespace_role(srv, req, NULL, 0, &role);
    if (!ns) return;
    int admin = role == SC_ROLE_ADMIN;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *o = json_object();
    json_object_set_new(o, "role", json_string(!sc_auth_enabled(srv->auth) ? "open" : admin ? "admin" : "user"));
    json_object_set_new(o, "namespace", admin ? json_null() : json_string(ns));
    json_object_set_new(o, "version", json_string(SC_VERSION));
    /* Changes when the server restarts: the page then forgets its history
     * (the recent decisions' sequence numbers start again at 1). */
    json_object_set_new(o, "epoch", json_integer((json_int_t)(srv->started_ns / 1000000)));
    json_object_set_new(o, "time_ms", json_integer((json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
    json_object_set_new(o, "uptime_s", json_real((double)(sc_http_now_ns() - srv->started_ns) / 1e9));
    json_object_set_new(o, "threshold", json_real(sc_cache_threshold(srv->cache)));
    json_object_set_new(o, "scorer", json_string(sc_cache_scorer(srv->cache)));
    json_object_set_new(o, "embedder", json_string(sc_cache_embedder_id(srv->cache)));
    json_t *st;
    if (admin) {
        st = sc_api_stats_object(srv);   /* exactly what /stats answers */
        json_object_set_new(o, "latency", sc_stats_latency_json(srv->stats));
    } else {
        st = json_object();
        sc_stats_ns_json(srv->stats, ns, st);
    }
    json_object_set_new(o, "stats", st);
    json_object_set_new(o, "recent", recent_json(srv->cache, admin ? NULL : ns, query_after(req->query)));
    sc_server_json(req, 200, o, "Cache-Control: no-store\r\n");
}

void sc_api_ui(sc_server *srv, sc_http_req *req, const char *path)
{
    if (strcmp(req->method, "GET") != 0) {
        sc_http_error(req, 405, "invalid_request_error", "method_not_allowed",
                      "method %s not allowed on %s (use GET)", req->method, req->path);
        return;
    }
    if (!strcmp(path, "/ui") || !strcmp(path, "/ui/")) serve_asset(req, "index.html");
    else if (!strcmp(path, "/ui/data")) serve_data(srv, req);
    else serve_asset(req, path + 4);
}
