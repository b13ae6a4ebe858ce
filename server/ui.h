/* The dashboard (GET /ui): a page served by semcached itself, and the one
 * JSON snapshot it polls (GET /ui/data).
 *
 * The page's files (server/ui/index.html, app.js, app.css) are compiled
 * into the binary (scripts/embed_assets.sh writes them as C arrays), so
 * nothing is fetched from elsewhere and nothing but the binary is
 * installed. The files themselves are public; every number they show comes
 * from /ui/data and the cache API, with the caller's key:
 *   - auth off or an admin key: everything /stats has, the latency
 *     histograms, every namespace's recent semantic decisions;
 *   - a user key: its own namespace's counters and recent decisions only
 *     (no upstreams, no other namespace, no latency of others' traffic).
 * Admin actions (open, delete, flush) go through /cache/entries/{id} and
 * /cache/flush, which need an admin key as always. */
#ifndef SC_UI_H
#define SC_UI_H

#include "server/server.h"

#include <stddef.h>

typedef struct sc_ui_asset {
    const char *name;          /* "index.html", "app.js", "app.css" */
    const unsigned char *data;
    size_t len;
} sc_ui_asset;

/* Defined in the generated ui_assets.c; ends with a {NULL} entry. */
extern const sc_ui_asset sc_ui_assets[];

/* GET /ui, /ui/ and /ui/{asset}; GET /ui/data. path is the request path. */
void sc_api_ui(sc_server *srv, sc_http_req *req, const char *path);

#endif
