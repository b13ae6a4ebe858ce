/* What the cache learns from its mistakes: verdicts, shadow checks, free
 * checks on misses, and the error budget.
 *
 * Evidence. Each observation is (namespace, entry, score, right or wrong),
 * where score is what the hit decision compares with the threshold (the
 * vote's score with semcache-embed). It comes from:
 *   - a verdict on a served hit (POST /cache/feedback, SEM.FEEDBACK);
 *   - a shadow check: a served semantic hit also sent upstream in the
 *     background (--shadow-rate) and the two answers compared;
 *   - a miss check: the proxy sends a miss upstream anyway, so the best
 *     candidate it refused is compared with the fresh answer, at no cost.
 *
 * What it changes, per entry (from served hits judged wrong: verdicts and
 * shadow checks):
 *   - a hit judged wrong never repeats: that (entry, prompt) pair is blocked
 *     for semantic serving (up to SC_LEARN_BLOCK_MAX prompts per entry);
 *   - the entry's own threshold rises above the score s it was wrong at,
 *     by SC_LEARN_RAISE or, close to 1, SC_LEARN_RAISE_SHARE of the rest
 *     (1 - s): scores near 1 are compressed (semcache-embed's scale, cache.h),
 *     so one wrong verdict never puts an entry out of reach of all but
 *     identical prompts;
 *   - an entry served and judged wrong SC_LEARN_QUARANTINE_BAD times, and
 *     more often wrong than right, is taken out of semantic serving (still
 *     exact-servable).
 * Miss checks only calibrate the namespace (below): raising an entry on a
 * refused candidate's mistake cost 1.7 points of hit rate and no error in
 * the replay benchmark (BENCHMARKS.md, Error budget).
 * and per namespace, with an error budget B (--max-error-rate, per
 * namespace --namespace-max-error-rate, per request
 * X-Semcache-Max-Error-Rate): the namespace's threshold is the lowest t on
 * a grid of SC_LEARN_BINS points over [0, 1], uniform in the cosine the
 * score was made from (sc_learn_set_scale), whose estimated share of wrong
 * answers among the semantic hits it would serve stays under B at 95 %
 * confidence (sc_learn_threshold states the estimator). Entries then apply
 * their own raises on top. Without enough evidence the configured threshold
 * is used.
 *
 * Decisions: every served hit gets a request id (16 hex digits) for a
 * verdict to name. The last SC_LEARN_DECISIONS are remembered in memory
 * (ids from before a restart are unknown); each takes one verdict.
 *
 * Persistence (the store's learn DBI, store.h): an entry's state is written
 * when it changes and removed with the entry; a namespace's calibration
 * every SC_LEARN_NS_FLUSH observations and at close. A crash loses at most
 * the namespace counts since the last write. A namespace's calibration
 * counts cosine bins, so it reads the same before and after semcache-embed's
 * score scale (cache.h); an entry's raise from before it (a cosine) is
 * dropped on load (entry records version 1), its counts, blocks and
 * quarantine kept.
 *
 * Threads: every function is thread-safe. sc_learn_verdict, _observe and
 * _close write to the store and block on its writer: worker threads only.
 * sc_learn_forget only touches memory (it runs in the store's removal
 * callback, on the writer thread). */
#ifndef SC_LEARN_H
#define SC_LEARN_H

#include "common/config.h"
#include "storage/store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sc_learn sc_learn;

#define SC_LEARN_BINS 50            /* score grid: steps of 0.02 in the cosine (sc_learn_set_scale) */
#define SC_LEARN_DECISIONS 65536    /* decisions remembered for verdicts */
#define SC_LEARN_BLOCK_MAX 64       /* blocked prompts per entry */
#define SC_LEARN_QUARANTINE_BAD 3
#define SC_LEARN_RAISE 0.01
#define SC_LEARN_RAISE_SHARE 0.2
#define SC_LEARN_NS_FLUSH 64
#define SC_LEARN_BAND_MIN 60        /* observations the monotone bound wants */
#define SC_LEARN_MAX_NS 1024        /* namespaces with calibration state */
#define SC_LEARN_NO_SEMANTIC 2.0    /* a threshold no score reaches */
#define SC_LEARN_RID_LEN 16         /* hex digits of a request id */

enum sc_learn_source { SC_LEARN_VERDICT, SC_LEARN_SHADOW, SC_LEARN_MISS };

/* Opens the learned state kept in store (which must outlive it). cfg gives
 * the budgets (max-error-rate, namespace-max-error-rate). */
int sc_learn_open(sc_learn **out, sc_store *store, const sc_config *cfg);
/* Scores are 1 - (1 - cosine)^gamma (semcache-embed's scale, cache.h;
 * gamma 1, the default: the score is what is binned): the grid is laid
 * in the cosine. Call before the first lookup. */
void sc_learn_set_scale(sc_learn *l, double gamma);
/* Writes the namespaces' calibration and frees. */
void sc_learn_close(sc_learn *l);

/* The error budget for a lookup in ns: req_budget when >= 0 (a request
 * header), else the namespace's, else the global one. 0 = none. */
double sc_learn_budget(sc_learn *l, const char *ns, double req_budget);

/* The namespace's threshold under budget (> 0): the lowest grid point t
 * whose upper 95 % confidence bound of the share of wrong answers among
 * the answers served (the semantic hits scoring >= t and the exact hits,
 * right by construction) is <= budget. Two bounds, the smaller is used:
 * the observations in [t, 1], each weighted by the lookups seen in its bin
 * over the observations in that bin (shadow checks sample hits, miss
 * checks nearly every miss: the weights undo that), Wilson's bound at the
 * weighted sample's effective size; and, since the share of wrong
 * candidates is assumed not to grow with the score, Wilson's bound on the
 * band of bins from t up holding SC_LEARN_BAND_MIN observations. Either is
 * scaled by the semantic hits' share of the answers. fallback (the
 * configured threshold, *learned 0) stands until the namespace has the
 * observations it takes to show the budget with no error at all
 * (1.645^2 (1 - B) / B: 133 for 2 %, 51 for 5 %), and then until the
 * evidence clears a looser t or shows fallback breaks the budget (its lower
 * bound over it: then the lowest cleared t above, or SC_LEARN_NO_SEMANTIC).
 * Assumes observations at a score are like the lookups at that score. */
double sc_learn_threshold(sc_learn *l, const char *ns, double budget, double fallback, int *learned);

/* Counts a candidate of a semantic lookup in ns scoring score (whether or
 * not it was served): the weights of the estimator. */
void sc_learn_seen(sc_learn *l, const char *ns, double score);

/* May entry id be served semantically for a prompt (phash: the prompt's
 * exact-key hash) at score under threshold? Returns 0 and sets *eff (the
 * entry's threshold, >= threshold), or why not: */
enum { SC_LEARN_OK = 0, SC_LEARN_OFF = 1, SC_LEARN_BLOCKED = 2 };
int sc_learn_gate(sc_learn *l, uint64_t id, uint64_t phash, double threshold, double *eff);

/* Remembers a served hit; returns its request id (never 0). */
uint64_t sc_learn_decision(sc_learn *l, const char *ns, uint64_t id, uint64_t phash, double score, int semantic);
void sc_learn_rid_format(uint64_t rid, char out[SC_LEARN_RID_LEN + 1]);
/* 0 and *rid on 16 hex digits; SC_EINVAL otherwise. */
int sc_learn_rid_parse(const char *s, size_t len, uint64_t *rid);

typedef struct sc_learn_entry {
    uint32_t good, bad;   /* served hits judged right / wrong (verdicts, shadow checks) */
    uint32_t miss_good, miss_bad;   /* miss checks with it as the refused candidate */
    double threshold;     /* its own threshold raise (0: none) */
    int off;              /* out of semantic serving */
    uint32_t blocked;     /* prompts it may not serve */
} sc_learn_entry;

/* A verdict on decision rid. only_ns: the caller's namespace (a user key),
 * NULL for an admin. Returns SC_ENOTFOUND (unknown or forgotten id),
 * SC_EFORBIDDEN (another namespace's decision), SC_EEXISTS (already judged), or
 * SC_OK with the entry's state after it in *out (and its id in *entry). */
int sc_learn_verdict(sc_learn *l, uint64_t rid, int correct, const char *only_ns, uint64_t *entry,
                     sc_learn_entry *out);

/* An observation from a shadow or miss check on entry id (phash: the
 * prompt, blocked when wrong; 0 = none). */
void sc_learn_observe(sc_learn *l, const char *ns, uint64_t id, uint64_t phash, double score, int correct,
                      int source);

/* The state of entry id: 1 if it has any, 0 (and zeros) if not. */
int sc_learn_entry_get(sc_learn *l, uint64_t id, sc_learn_entry *out);
/* The entry was removed from the store: drop its state (memory only). */
void sc_learn_forget(sc_learn *l, uint64_t id);

/* The namespace's learned state for /stats: budget, threshold in use,
 * evidence and verdict counts, entries out of semantic serving. NULL when
 * the namespace has none. fallback: the configured threshold. */
json_t *sc_learn_ns_json(sc_learn *l, const char *ns, double fallback);

/* Every namespace's, keyed by name. */
json_t *sc_learn_json(sc_learn *l, double fallback);

typedef struct sc_learn_totals {
    uint64_t verdicts_good, verdicts_bad;
    uint64_t shadow_checks, shadow_wrong;
    uint64_t miss_checks, miss_wrong;
    uint64_t entries_off, blocked_prompts;
} sc_learn_totals;
void sc_learn_totals_get(sc_learn *l, sc_learn_totals *t);

#endif
