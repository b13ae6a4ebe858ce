/* Request statistics of the running server: requests by endpoint and
 * status, cache outcomes and latency histograms, and per-namespace hit
 * rates and savings. Rendered as JSON (/stats) and Prometheus text
 * (/metrics). Loop thread only (every front end runs there). */
#ifndef SC_STATS_H
#define SC_STATS_H

#include "common/buf.h"

#include <jansson.h>
#include <stdint.h>

typedef struct sc_stats sc_stats;

enum sc_outcome { SC_OUT_MISS = 0, SC_OUT_EXACT = 1, SC_OUT_SEMANTIC = 2, SC_OUT_BYPASS = 3,
                  SC_OUT_ERROR = 4, SC_OUT_COUNT };

sc_stats *sc_stats_create(void);
void sc_stats_destroy(sc_stats *s);

/* One finished HTTP request. */
void sc_stats_request(sc_stats *s, const char *path, int status);

/* One cache decision in namespace ns, with its latency; hits carry the
 * tokens and dollars they saved, misses what the upstream call cost. */
void sc_stats_outcome(sc_stats *s, const char *ns, int outcome, double seconds,
                      long long prompt_tokens, long long completion_tokens, double usd);

void sc_stats_json(const sc_stats *s, json_t *out);
/* What a user key may see: the keys of sc_stats_json's outcomes, hit_rate,
 * saved, upstream_spent_usd and namespaces, for namespace ns alone. */
void sc_stats_ns_json(const sc_stats *s, const char *ns, json_t *out);
/* The hit and miss latency histograms as JSON: "le" (upper bounds, s),
 * "hit"/"miss" (counts per bucket, one more than "le": the last is
 * above the last bound), counts and sums. */
json_t *sc_stats_latency_json(const sc_stats *s);
int sc_stats_metrics(const sc_stats *s, sc_buf *out);

const char *sc_outcome_name(int outcome);

#endif
