/* GET /stats (JSON) and GET /metrics (Prometheus text): the request
 * statistics, the cache's store/index counters and every upstream's
 * calls, errors, retries, fallbacks and breaker state. */
#include "server/api.h"
#include "server/shared.h"
#include "server/cache.h"
#include "server/learn.h"
#include "server/shadow.h"
#include "server/stats.h"
#include "route/route.h"
#include "common/alloc.h"
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

json_t *sc_api_stats_object(sc_server *srv)
{
    json_t *o = json_object();
    sc_stats_json(srv->stats, o);
    sc_cache_stats cs;
    sc_cache_stats_get(srv->cache, &cs);
    json_object_set_new(o, "cache",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:i,s:f,s:s}",
                                  "entries", (json_int_t)cs.entries, "bytes", (json_int_t)cs.bytes,
                                  "disk_bytes", (json_int_t)cs.disk_bytes, "lookups", (json_int_t)cs.lookups,
                                  "hits_exact", (json_int_t)cs.hits_exact, "hits_semantic",
                                  (json_int_t)cs.hits_semantic, "misses", (json_int_t)cs.misses,
                                  "evicted", (json_int_t)cs.evicted, "expired", (json_int_t)cs.expired,
                                  "corrupt_skipped", (json_int_t)cs.corrupt_skipped, "index_vectors",
                                  (json_int_t)cs.index_vectors, "index_partitions",
                                  (json_int_t)cs.index_partitions, "index_ann_partitions",
                                  (json_int_t)cs.index_ann_partitions, "embedder", sc_cache_embedder_id(srv->cache),
                                  "dim", (int)sc_cache_dim(srv->cache), "threshold",
                                  sc_cache_threshold(srv->cache), "scorer", sc_cache_scorer(srv->cache)));
    sc_buf b;
    sc_buf_init(&b, 1 << 20);
    if (sc_route_stats_json(srv->route, &b) == 0 && b.data) {
        json_t *ups = json_loadb(b.data, b.len, 0, NULL);
        if (ups) json_object_set_new(o, "upstreams", ups);
    }
    sc_buf_free(&b);
    json_object_set_new(o, "connections", json_integer((json_int_t)sc_http_server_conns(srv->http)));
    json_object_set_new(o, "overloaded", json_integer((json_int_t)atomic_load(&srv->overloaded)));
    json_object_set_new(o, "writebacks_dropped", json_integer((json_int_t)atomic_load(&srv->writebacks_dropped)));
    sc_learn *l = sc_cache_learn(srv->cache);
    sc_learn_totals lt;
    sc_learn_totals_get(l, &lt);
    sc_shadow_stats sh;
    sc_shadow_stats_get(&sh);
    json_object_set_new(o, "learn",
                        json_pack("{s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "max_error_rate", srv->cfg->max_error_rate,
                                  "verdicts_good", (json_int_t)lt.verdicts_good, "verdicts_bad",
                                  (json_int_t)lt.verdicts_bad, "miss_checks", (json_int_t)lt.miss_checks,
                                  "miss_wrong", (json_int_t)lt.miss_wrong, "entries_off",
                                  (json_int_t)lt.entries_off, "blocked_prompts", (json_int_t)lt.blocked_prompts,
                                  "namespaces", sc_learn_json(l, sc_cache_threshold(srv->cache))));
    json_object_set_new(o, "shadow",
                        json_pack("{s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "rate", srv->cfg->shadow_rate,
                                  "budget_usd_per_day", srv->cfg->shadow_budget_usd, "started", (json_int_t)sh.started,
                                  "compared", (json_int_t)sh.compared, "wrong", (json_int_t)sh.wrong, "failed",
                                  (json_int_t)sh.failed, "skipped_budget", (json_int_t)sh.skipped_budget, "usd_total",
                                  sh.usd_total, "usd_today", sh.usd_today));
    return o;
}

void sc_api_stats(sc_server *srv, sc_http_req *req)
{
    if (!sc_server_namespace(srv, req, NULL, 1)) return;
    sc_server_json(req, 200, sc_api_stats_object(srv), NULL);
}

void sc_api_metrics(sc_server *srv, sc_http_req *req)
{
    if (!sc_server_namespace(srv, req, NULL, 1)) return;
    sc_buf b;
    sc_buf_init(&b, 8 << 20);
    int rc = sc_stats_metrics(srv->stats, &b);
    sc_cache_stats cs;
    sc_cache_stats_get(srv->cache, &cs);
    if (!rc)
        rc = sc_buf_printf(&b,
                           "# HELP semcached_entries Entries in the cache.\n# TYPE semcached_entries gauge\n"
                           "semcached_entries %llu\n"
                           "# HELP semcached_entry_bytes Bytes of cached records.\n# TYPE semcached_entry_bytes gauge\n"
                           "semcached_entry_bytes %llu\n"
                           "# HELP semcached_disk_bytes Size of the LMDB data file.\n# TYPE semcached_disk_bytes gauge\n"
                           "semcached_disk_bytes %llu\n"
                           "# HELP semcached_evicted_total Entries evicted by the caps.\n# TYPE semcached_evicted_total counter\n"
                           "semcached_evicted_total %llu\n"
                           "# HELP semcached_expired_total Entries removed by their TTL.\n# TYPE semcached_expired_total counter\n"
                           "semcached_expired_total %llu\n"
                           "# HELP semcached_index_vectors Vectors in the in-memory index.\n# TYPE semcached_index_vectors gauge\n"
                           "semcached_index_vectors %llu\n"
                           "# HELP semcached_index_partitions Index partitions (namespace x context), a conversation's later turns each one of their own.\n# TYPE semcached_index_partitions gauge\n"
                           "semcached_index_partitions %llu\n"
                           "# HELP semcached_index_ann_partitions Index partitions searched through an IVF (the ANN path).\n# TYPE semcached_index_ann_partitions gauge\n"
                           "semcached_index_ann_partitions %llu\n"
                           "# HELP semcached_connections Open HTTP connections.\n# TYPE semcached_connections gauge\n"
                           "semcached_connections %zu\n"
                           "# HELP semcached_overloaded_total Lookups that skipped the semantic layer after waiting over --max-queue-ms.\n"
                           "# TYPE semcached_overloaded_total counter\nsemcached_overloaded_total %llu\n"
                           "# HELP semcached_writebacks_dropped_total Misses not stored: their prompt still had to be embedded and the write-back waited over --max-queue-ms.\n"
                           "# TYPE semcached_writebacks_dropped_total counter\nsemcached_writebacks_dropped_total %llu\n",
                           (unsigned long long)cs.entries, (unsigned long long)cs.bytes,
                           (unsigned long long)cs.disk_bytes, (unsigned long long)cs.evicted,
                           (unsigned long long)cs.expired, (unsigned long long)cs.index_vectors,
                           (unsigned long long)cs.index_partitions, (unsigned long long)cs.index_ann_partitions,
                           sc_http_server_conns(srv->http), (unsigned long long)atomic_load(&srv->overloaded),
                           (unsigned long long)atomic_load(&srv->writebacks_dropped));
    sc_shared_stats cl;
    if (!rc && sc_cache_cluster(srv->cache, &cl))
        rc = sc_buf_printf(&b,
                           "# HELP semcached_cluster_up Multi-node mode: 1 when the last Redis Cluster call succeeded.\n"
                           "# TYPE semcached_cluster_up gauge\nsemcached_cluster_up %d\n"
                           "# HELP semcached_cluster_events_total Change-feed events: published by this node, applied from others, entries copied in full copies.\n"
                           "# TYPE semcached_cluster_events_total counter\n"
                           "semcached_cluster_events_total{kind=\"published\"} %llu\n"
                           "semcached_cluster_events_total{kind=\"applied\"} %llu\n"
                           "semcached_cluster_events_total{kind=\"copied\"} %llu\n"
                           "# HELP semcached_cluster_errors_total Redis Cluster calls that failed (after retries).\n"
                           "# TYPE semcached_cluster_errors_total counter\nsemcached_cluster_errors_total %llu\n"
                           "# HELP semcached_cluster_feed_lag_seconds Publish-to-apply time of the last event from another node.\n"
                           "# TYPE semcached_cluster_feed_lag_seconds gauge\nsemcached_cluster_feed_lag_seconds %.4f\n",
                           cl.up, (unsigned long long)cl.published, (unsigned long long)cl.applied,
                           (unsigned long long)cl.copied, (unsigned long long)cl.errors, cl.lag_ms_last / 1e3);
    sc_learn_totals lt;
    sc_learn_totals_get(sc_cache_learn(srv->cache), &lt);
    sc_shadow_stats sh;
    sc_shadow_stats_get(&sh);
    if (!rc)
        rc = sc_buf_printf(&b,
                           "# HELP semcached_feedback_total Verdicts on served hits (POST /cache/feedback, SEM.FEEDBACK).\n"
                           "# TYPE semcached_feedback_total counter\n"
                           "semcached_feedback_total{verdict=\"good\"} %llu\nsemcached_feedback_total{verdict=\"bad\"} %llu\n"
                           "# HELP semcached_checks_total Answers checked against the upstream: shadow checks of hits and free checks of misses' candidates.\n"
                           "# TYPE semcached_checks_total counter\n"
                           "semcached_checks_total{source=\"shadow\",result=\"agree\"} %llu\n"
                           "semcached_checks_total{source=\"shadow\",result=\"disagree\"} %llu\n"
                           "semcached_checks_total{source=\"miss\",result=\"agree\"} %llu\n"
                           "semcached_checks_total{source=\"miss\",result=\"disagree\"} %llu\n"
                           "# HELP semcached_shadow_usd_total Spent on shadow checks (apart from the cache's own spend).\n"
                           "# TYPE semcached_shadow_usd_total counter\nsemcached_shadow_usd_total %.6f\n"
                           "# HELP semcached_shadow_skipped_total Shadow checks not made: the day's --shadow-budget-usd was spent.\n"
                           "# TYPE semcached_shadow_skipped_total counter\nsemcached_shadow_skipped_total %llu\n"
                           "# HELP semcached_entries_semantic_off Entries taken out of semantic serving by what was learned.\n"
                           "# TYPE semcached_entries_semantic_off gauge\nsemcached_entries_semantic_off %llu\n"
                           "# HELP semcached_blocked_prompts (entry, prompt) pairs that were judged wrong and are not served again.\n"
                           "# TYPE semcached_blocked_prompts gauge\nsemcached_blocked_prompts %llu\n",
                           (unsigned long long)lt.verdicts_good, (unsigned long long)lt.verdicts_bad,
                           (unsigned long long)(lt.shadow_checks - lt.shadow_wrong), (unsigned long long)lt.shadow_wrong,
                           (unsigned long long)(lt.miss_checks - lt.miss_wrong), (unsigned long long)lt.miss_wrong,
                           sh.usd_total, (unsigned long long)sh.skipped_budget, (unsigned long long)lt.entries_off,
                           (unsigned long long)lt.blocked_prompts);
    if (!rc) rc = sc_route_metrics(srv->route, &b);
    if (rc) {
        sc_buf_free(&b);
        sc_http_error(req, 500, "server_error", "metrics_too_large", "metrics output too large");
        return;
    }
    sc_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data ? b.data : "", b.len);
    sc_buf_free(&b);
}
