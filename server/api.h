/* HTTP handlers, one function per endpoint (loop thread). Each finishes
 * its request, now or from a job's done() callback. */
#ifndef SC_API_H
#define SC_API_H

#include "server/server.h"

#define SC_VERSION "0.1.0"

/* api_cache.c: the cache admin API (contract section 4). */
void sc_api_store(sc_server *srv, sc_http_req *req);
void sc_api_lookup(sc_server *srv, sc_http_req *req);
void sc_api_flush(sc_server *srv, sc_http_req *req);
void sc_api_import(sc_server *srv, sc_http_req *req);
void sc_api_embed(sc_server *srv, sc_http_req *req);
/* POST /cache/search {"prompt", "namespace"?, "k"?}: the k entries of a
 * namespace nearest to prompt, every partition (model) included: the
 * dashboard's entry browser. A user key searches its own namespace. */
void sc_api_search(sc_server *srv, sc_http_req *req);
/* GET or DELETE /cache/entries/{id}; rest is what follows the prefix. */
void sc_api_entry(sc_server *srv, sc_http_req *req, const char *rest);
/* POST /cache/feedback {"request","correct"}: a verdict on a served hit
 * (learn.h); api_feedback.c. */
void sc_api_feedback(sc_server *srv, sc_http_req *req);
/* An entry's learned state as the entry API shows it. */
struct sc_learn_entry;
json_t *sc_api_learned_json(const struct sc_learn_entry *le);

/* metrics.c */
void sc_api_stats(sc_server *srv, sc_http_req *req);
/* The object GET /stats answers (the dashboard's admin view embeds it). */
json_t *sc_api_stats_object(sc_server *srv);
void sc_api_metrics(sc_server *srv, sc_http_req *req);

/* proxy.c: POST /v1/chat/completions, /v1/completions; other /v1/ paths
 * are passed through uncached. */
void sc_proxy_handle(sc_server *srv, sc_http_req *req);

#endif
