/* The cache pipeline: exact layer, semantic layer, write-back.
 *
 * sc_cache owns the embedder, the LMDB store, the in-memory index and the
 * verifier, and implements the lookup and store steps of the request flow
 * (ARCHITECTURE section 2) for every front end: the OpenAI proxy, the
 * admin API and the RESP listener.
 *
 * Keys: a partition is (namespace, fingerprint). fp 0 is the "plain"
 * partition used by RESP SEM.* and by /cache/store without a model; the
 * proxy computes fp from everything that changes the answer except the
 * last user message (sc_cache_fingerprint_* in fingerprint.h). The exact
 * key is a 128-bit hash of (ns, fp, normalised prompt); normalising trims,
 * collapses white space and lower-cases ASCII.
 *
 * Threads: sc_cache_open/close on the main thread before/after the loop
 * runs. Every other function except sc_cache_lookup_exact() and the pure
 * helpers blocks (embedding, LMDB writes) and must be called from a worker
 * thread (uv_queue_work), never from the loop thread; all are safe to call
 * concurrently. */
#ifndef SC_CACHE_H
#define SC_CACHE_H

#include "common/config.h"
#include "server/score.h"
#include "storage/record.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sc_cache sc_cache;

/* Default thresholds (threshold -1), tuned by bench_quality. */
#define SC_DEFAULT_THRESHOLD_VERIFIED 0.60
#define SC_DEFAULT_THRESHOLD_COSINE 0.90
#define SC_DEFAULT_THRESHOLD_EMBED 0.95
/* semcache-embed's scores on the product's threshold scale. The threshold
 * its dev splits chose is a cosine of 0.82, outside the 0.92-0.97 band
 * users of semantic caches set (its contrastive training spreads
 * paraphrases over lower cosines than USE-lite's). The similarity
 * and the confidence it reports, and the threshold they are compared
 * with, are therefore
 *
 *   score = 1 - (1 - cosine)^SC_EMBED_SCORE_GAMMA      (cosine in [0, 1])
 *
 * and the cosine itself below 0: monotone, so it decides exactly what the
 * cosine would at the matching threshold (0.95 here is the cosine 0.82),
 * 0 and 1 stay put (unrelated prompts keep low scores, the same prompt 1),
 * and the band 0.92-0.97 spans cosines 0.76-0.87. The answer vote and the
 * cross-check work on the cosines; the mapping applies to what they
 * decide. Other embedders report the cosine. Pure. */
#define SC_EMBED_SCORE_GAMMA 1.75
static inline double sc_cache_embed_score(double cosine) { return sc_score_of_cos(cosine, SC_EMBED_SCORE_GAMMA); }
/* semcache-embed with a trained verifier: the vote's winner is refused
 * when the verifier's probability that its answer is right is below
 * SC_VERIFY_VETO, or below SC_VERIFY_VETO_DECISIVE when the two prompts
 * show a decisive difference (sc_verify_decisive: a unit, an opposite
 * word, a named thing, a swapped relation, or a negation that is all
 * that differs). Tuned again on the dev sets
 * for the verifier trained on banking77 train (BENCHMARKS.md, Quality). */
#define SC_VERIFY_VETO 0.30
#define SC_VERIFY_VETO_DECISIVE 0.70
static inline int sc_cache_vetoes(double p, int decisive, double level, double decisive_level)
{
    return p < level || (decisive && p < decisive_level);
}

enum sc_cache_outcome { SC_CACHE_MISS = 0, SC_CACHE_HIT_EXACT = 1, SC_CACHE_HIT_SEMANTIC = 2 };

typedef struct sc_cache_result {
    int outcome;               /* enum sc_cache_outcome */
    uint64_t id;               /* entry served (hits) or best candidate (misses, 0 if none) */
    float similarity;          /* cosine of the candidate served (misses: of the winner, or
                                  the nearest; semcache-embed: sc_cache_embed_score of it);
                                  1 for exact hits */
    double confidence;         /* the score compared with the threshold: the vote's score
                                  (semcache-embed, sc_cache_embed_score of it; the verifier's
                                  probability when its cross-check refused the winner),
                                  use-lite's verifier estimate, or the cosine */
    sc_record rec;             /* the entry on hits; caller calls sc_record_clear() */
    float *vec;                /* the query's embedding (misses: reuse it in sc_cache_put);
                                  NULL when none was computed (exact hits, exact-only
                                  lookups, errors, or an empty partition) */
    uint32_t dim;
    uint64_t rid;              /* hits: the decision's request id (learn.h), for a verdict */
    uint64_t phash;            /* semantic lookups with a candidate: the prompt's hash */
    double threshold;          /* the threshold the candidate had to reach (budget, entry) */
    double max_error;          /* the error budget that applied (0: none) */
    int learned;               /* the threshold came from the budget's evidence */
    int refused;               /* the candidate was refused by what was learned (SC_LEARN_OFF/BLOCKED) */
    int vetoed;                /* the verifier's cross-check refused the candidate */
} sc_cache_result;

/* Opens every component from cfg and rebuilds the index from the store.
 * err names what failed and how to fix it. */
int sc_cache_open(sc_cache **out, const sc_config *cfg, char *err, size_t errlen);
void sc_cache_close(sc_cache *c);

enum {
    SC_LOOKUP_EXACT_ONLY = 1,  /* skip the semantic layer */
};

/* Looks prompt up in (ns, fp). threshold < 0 means the configured one.
 * flags: SC_LOOKUP_*. A candidate of the semantic layer whose prompt
 * normalises to the query's (stored since the exact layer looked) is an
 * exact hit. A partition with no live row is a miss without an embedding
 * (sc_index_rows): there, a failing embedder (remote, down) does not fail
 * the lookup; a prompt over SC_EMBED_MAX_BYTES is SC_ETOOBIG everywhere.
 * On return, res->vec holds the query's embedding when
 * one was computed (free() it, or pass it to sc_cache_put, which embeds
 * the prompt itself when given NULL). */
int sc_cache_lookup(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                    double threshold, int flags, sc_cache_result *res);

/* sc_cache_lookup with an error budget: max_error >= 0 is the request's
 * (X-Semcache-Max-Error-Rate), -1 the namespace's or the global one. An
 * explicit threshold (>= 0) wins over the budget; what was learned about
 * an entry (learn.h) applies either way. */
typedef struct sc_cache_lookup_opts {
    double threshold;          /* < 0: the budget's or the configured one */
    int flags;
    double max_error;          /* < 0: not set by the request */
} sc_cache_lookup_opts;
int sc_cache_lookup_ex(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                       const sc_cache_lookup_opts *o, sc_cache_result *res);

/* The learned state (verdicts, checks, budgets); lives as long as c. */
struct sc_learn *sc_cache_learn(sc_cache *c);
/* Multi-node mode (--redis-cluster): 1 and its state in *st; 0 on one node. */
struct sc_shared_stats;
int sc_cache_cluster(sc_cache *c, struct sc_shared_stats *st);
/* A decision for a hit served without a lookup (an exact-hit memo): its
 * request id. Any thread. */
uint64_t sc_cache_note_decision(sc_cache *c, const char *ns, uint64_t id);
/* Do two answers to the same question agree (a shadow or miss check)?
 * Equal after normalising; otherwise, when either is longer than a short
 * label (SC_ANSWER_LABEL_MAX bytes), the cosine of their embeddings is at
 * least SC_ANSWER_AGREE. Blocks (embeds): worker threads. */
#define SC_ANSWER_LABEL_MAX 64
#define SC_ANSWER_AGREE 0.85
int sc_cache_answers_agree(sc_cache *c, const char *a, size_t al, const char *b, size_t bl);

/* The prompt hash that blocks (entry, prompt) pairs: from the exact key,
 * so prompts that normalise alike share it. Pure. */
uint64_t sc_cache_prompt_hash(const char *ns, uint64_t fp, const char *prompt, size_t len);

/* The exact layer alone: one LMDB read, no embedding, so it MAY run on the
 * loop thread (a few microseconds). Returns 1 and fills res on a hit (and
 * counts it), 0 otherwise (counts nothing: the caller goes on with
 * sc_cache_lookup() on a worker thread, which looks again, since the entry
 * may land in between). */
int sc_cache_lookup_exact(sc_cache *c, const char *ns, uint64_t fp, const char *prompt, size_t len,
                          sc_cache_result *res);
/* For callers that memoise exact hits (the RESP fast path): a counter
 * bumped after every committed removal of an entry (delete, flush, expiry,
 * eviction, replacement under the same exact key) and every rewrite of one
 * in place (sc_store_update, e.g. re-embedding). Read it before the
 * lookup whose answer is memoised; trust the memo only while it is
 * unchanged. sc_cache_note_exact_hit() counts a hit served from such a
 * memo (lookups, hits_exact) and, if touch, queues the entry's touch
 * (a memo may touch once a second per entry: last_hit has one-second
 * resolution, and each touch costs the writer a record update). Both are
 * non-blocking; any thread. */
uint64_t sc_cache_generation(sc_cache *c);
void sc_cache_note_exact_hit(sc_cache *c, uint64_t id, int touch);
/* Releases what res holds. */
void sc_cache_result_clear(sc_cache_result *res);

/* Stores an entry: r->ns, fp, prompt, response, content_type, model,
 * expires (0 = default TTL), token counts. vec may be NULL (embedded
 * here). Sets r->id. */
int sc_cache_put(sc_cache *c, sc_record *r, const float *vec);

/* The `expires` (Unix seconds) for an entry that must live ttl seconds
 * from now: rounded up, so that it lives at least ttl seconds although
 * expiry is checked in whole seconds (expires <= now). Any thread. */
int64_t sc_cache_expires_in(long long ttl);

/* Stores n entries, embedding their prompts in batches (one sgemm per
 * batch). An entry that failed has id 0; returns the first error. */
int sc_cache_put_many(sc_cache *c, sc_record *const *recs, size_t n);

/* The vote's answer keys by entry id (server/akeys.h); NULL without the
 * answer vote. For tests. */
struct sc_akeys *sc_cache_akeys(sc_cache *c);

int sc_cache_del(sc_cache *c, const char *ns, uint64_t id);
int sc_cache_flush(sc_cache *c, const char *ns, uint64_t *count);
int sc_cache_get(sc_cache *c, uint64_t id, sc_record *r);

/* The exact key of a prompt in (ns, fp): also the single-flight key.
 * Pure; any thread. */
void sc_cache_exact_key(const char *ns, uint64_t fp, const char *prompt, size_t len, uint8_t key[16]);

/* The dashboard's entry browser: the k (at most SC_SEARCH_MAX_K) live
 * entries of namespace ns nearest to text by cosine, over every partition
 * of ns (the first SC_SEARCH_MAX_PARTS found; *parts says how many ns has),
 * best first (similarity: the cosine, semcache-embed's on its score scale).
 * Fills hits[i].rec (caller clears each) and *n. */
#define SC_SEARCH_MAX_K 50
#define SC_SEARCH_MAX_PARTS 256
typedef struct sc_cache_search_hit {
    uint64_t id;
    float similarity;
    sc_record rec;
} sc_cache_search_hit;
int sc_cache_search(sc_cache *c, const char *ns, const char *text, size_t len, size_t k,
                    sc_cache_search_hit *hits, size_t *n, size_t *parts);

/* The last semantic decisions (recent.h); any thread. */
struct sc_recent *sc_cache_recent(sc_cache *c);

/* Embeds texts with the cache's own embedder. */
int sc_cache_embed(sc_cache *c, const char *const *texts, const size_t *lens, size_t n, float *out);
uint32_t sc_cache_dim(const sc_cache *c);
const char *sc_cache_embedder_id(const sc_cache *c);
double sc_cache_threshold(const sc_cache *c);
/* How semantic candidates are scored: "verifier", "cosine+vote+check",
 * "cosine+check", "cosine+vote" or "cosine". */
const char *sc_cache_scorer(const sc_cache *c);
/* The exponent of the similarity scale (score.h): SC_EMBED_SCORE_GAMMA
 * with semcache-embed (sc_cache_embed_score), 1 where the similarity is
 * the cosine. */
double sc_cache_similarity_gamma(const sc_cache *c);

/* The answer text of an entry: the stored text for plain entries, the
 * first choice's message content for OpenAI JSON bodies. malloc'ed. */
char *sc_cache_answer_text(const sc_record *r, size_t *len);

typedef struct sc_cache_stats {
    uint64_t entries, bytes, disk_bytes;
    uint64_t lookups, hits_exact, hits_semantic, misses;
    uint64_t puts, evicted, expired, corrupt_skipped;
    uint64_t index_vectors, index_partitions;
    uint64_t index_ann_partitions;   /* searched through an IVF (the ANN path) */
} sc_cache_stats;
void sc_cache_stats_get(sc_cache *c, sc_cache_stats *st);

#endif
