/* Shadow checks: a share of semantic hits (--shadow-rate) is also sent to
 * the upstream, in the background, after the client was answered; the
 * fresh answer is compared with the one served (sc_cache_answers_agree)
 * and the result recorded like a verdict (learn.h, SC_LEARN_SHADOW).
 *
 * Spend: each call's cost (usage x the price table) is counted apart from
 * the cache's own accounting, in /stats "shadow" and
 * semcached_shadow_usd_total. Once a UTC day's spend reaches
 * --shadow-budget-usd no more checks start that day (counted as skipped).
 * A call of unknown price counts nothing. A streamed request is checked
 * with "stream": false. A failed call records nothing.
 *
 * Threads: sc_shadow_maybe on the loop thread; the comparison runs on a
 * worker. */
#ifndef SC_SHADOW_H
#define SC_SHADOW_H

#include "server/server.h"
#include "storage/record.h"

#include <stddef.h>
#include <stdint.h>

/* A shadow check of a semantic hit on entry id (served: the record
 * served; body: the client's request), drawn against cfg->shadow_rate:
 * prepare copies what it needs (NULL when not drawn, or the day's budget
 * is spent), start sends it once the client was answered (NULL: nothing). */
typedef struct sc_shadow sc_shadow;
sc_shadow *sc_shadow_prepare(sc_server *srv, const char *ns, uint64_t id, uint64_t phash, double score,
                             const sc_record *served, const char *body, size_t len);
void sc_shadow_start(sc_shadow *s);

/* Frees the checks still in flight once the router was destroyed (its
 * calls are cancelled without callbacks). */
void sc_shadow_shutdown(void);

typedef struct sc_shadow_stats {
    uint64_t started, compared, wrong, failed, skipped_budget;
    double usd_total, usd_today;
} sc_shadow_stats;
void sc_shadow_stats_get(sc_shadow_stats *st);

#endif
