/* The hit verifier: decides whether a cached answer is right for a new
 * prompt, beyond what the cosine of two sentence embeddings can tell.
 *
 * The semantic layer finds the nearest cached prompts by cosine; look-alike
 * prompts that need a different answer ("enable" vs "disable", "14 days"
 * vs "60 days", "miles to km" vs "km to miles") often score a higher cosine
 * than true paraphrases. The verifier extracts features of what differs
 * between the two prompts (verify_features.c): the cosine, word alignment,
 * the embedder's similarity of the differing words, numbers and units,
 * negation and opposite words, swapped order (anywhere, and around a
 * relation word), named things, question words, character 3-gram overlap,
 * length ratio. A logistic regression
 * plus small boosted trees, trained by tools/train_verify.c (weights in
 * verify_weights.h, one set per embedder), maps them to a calibrated
 * probability that the cached answer is correct, so `threshold 0.6` means
 * "serve only when the estimate is >= 60%" (BENCHMARKS.md (Quality) explains why
 * 0.6, not 0.95, is the useful default).
 *
 * Use from the cache pipeline (worker thread, after the fp32 re-score):
 *     double p;
 *     int i = sc_verify_best(v, q, qlen, qvec, cands, ncands, &p);
 *     serve cands[i] if i >= 0 && p >= threshold (X-Semcache-Confidence: p)
 * or score pairs one by one with sc_verify_score().
 * With `verify off` the pipeline compares the raw cosine instead.
 *
 * Threads: after sc_verify_create() returns, sc_verify_score() and
 * sc_verify_features() may be called from any number of threads at once
 * (the model is read-only; the embedder is thread-safe). Neither may run on
 * the libuv loop thread when the diff-word embedding is on (it calls
 * sc_embed()). */
#ifndef SC_VERIFY_H
#define SC_VERIFY_H

#include "embed/embed.h"

#include <stddef.h>

/* The feature vector, in order. X(ENUM, "name"). */
#define SC_VERIFY_FEATURES(X)                                              \
    X(COS, "cos")                     /* cosine of the prompt embeddings */ \
    X(COS_SQ, "cos_sq")                                                     \
    X(WORD_JACC, "word_jaccard")      /* content-word stems */              \
    X(ALL_JACC, "all_word_jaccard")   /* every word, stop words too */      \
    X(DIFF_LOG, "diff_words_log")     /* log1p(#unaligned content words) */ \
    X(DIFF_FRAC, "diff_words_frac")                                         \
    X(SUBST, "substitution")          /* words on both sides differ */      \
    X(DIFF_DISSIM, "diff_words_dissim") /* 1 - cos(embed(a-only), embed(b-only)) */ \
    X(NUM_MISMATCH, "number_mismatch")                                      \
    X(NUM_ONESIDED, "number_one_sided")                                     \
    X(UNIT_MISMATCH, "unit_mismatch")                                       \
    X(NEG_MISMATCH, "negation_mismatch")                                    \
    X(OPPOSITE, "opposite_pair")                                            \
    X(SWAP, "swapped_order")                                                \
    X(NAME_MISMATCH, "named_mismatch")                                      \
    X(NAME_ONESIDED, "named_one_sided")                                     \
    X(WH_MISMATCH, "question_word_mismatch")                                \
    X(CHAR3_JACC, "char3_jaccard")                                          \
    X(LEN_RATIO, "length_ratio")                                            \
    X(COS_X_DIFF, "cos_x_diff_frac")                                       \
    X(SWAP_REL, "swapped_around_relation") /* "A to B" vs "B to A" */

enum sc_verify_feature {
#define SC_VF_ENUM_(e, n) SC_VF_##e,
    SC_VERIFY_FEATURES(SC_VF_ENUM_)
#undef SC_VF_ENUM_
    SC_VF_COUNT
};

/* Name of feature i ("cos"); static storage. */
const char *sc_verify_feature_name(int i);

/* A regression tree of depth 3 (complete): node i tests
 * x[feat[i]] > thr[i] and goes to child 2i+2 if so, else 2i+1; nodes 7..14
 * are the leaves leaf[0..7]. */
typedef struct sc_verify_tree {
    signed char feat[7];
    float thr[7];
    float leaf[8];
} sc_verify_tree;

/* A trained model (verify_weights.h holds one per embedder). The score is
 * sigmoid(bias + sum w[i] * x[i] + sum of the trees' leaves): a logistic
 * regression, optionally boosted by small trees fitted to its residuals
 * (they catch interactions, e.g. a high cosine with no differing word).
 * Standardisation and the Platt calibration are folded in by the trainer. */
typedef struct sc_verify_model {
    const char *embedder;        /* embedder family: "hash", "use-lite" */
    int diff_embed;              /* model uses DIFF_DISSIM (one sc_embed call) */
    double bias;
    double w[SC_VF_COUNT];
    int ntrees;
    const sc_verify_tree *trees;
    const char *trained_on;      /* provenance, for logs and docs */
} sc_verify_model;

/* Bounds of the text examined: longer prompts are cut (for features only). */
#define SC_VERIFY_MAX_BYTES 2048
#define SC_VERIFY_MAX_TOKENS 160
/* At most this many differing words per side are embedded. */
#define SC_VERIFY_MAX_DIFF_WORDS 8

/* Computes the feature vector of the pair (a, b). cosine is the embedding
 * cosine of the two prompts. emb may be NULL: DIFF_DISSIM is then 0;
 * otherwise the differing words of both sides are embedded in one
 * sc_embed() call. Pure apart from that call; any thread. */
int sc_verify_features(const char *a, size_t alen, const char *b, size_t blen, float cosine,
                       sc_embedder *emb, float out[SC_VF_COUNT]);

/* The built-in word lists, for the trainer's synthetic look-alikes: the
 * opposite of a lower-case word (NULL if none; static storage), and the
 * i-th named word (NULL past the end). */
const char *sc_verify_opposite_of(const char *word);
const char *sc_verify_named_word(size_t i);

/* 1 when x shows a difference that changes the answer whatever the
 * wording around it: a unit, an opposite word ("turn on" / "turn off"), a
 * named thing, the two sides of a relation swapped ("miles to km" /
 * "km to miles"), or a negation on one side when it is all that differs
 * (every content word aligned: "Why is the app asking for my location?" /
 * "Why isn't ..."). The learned probability weighs these against a high
 * cosine and lets some close look-alikes through; the cache's cross-check
 * also refuses a pair with one unless the probability is high
 * (server/cache.h, SC_VERIFY_VETO_DECISIVE). Numbers, and a negation
 * among other differing words, are left to the probability: on the dev
 * sets they cost FAQ hits and caught no look-alike more (BENCHMARKS.md,
 * "Decisive differences"). */
int sc_verify_decisive(const float x[SC_VF_COUNT]);

/* Probability of model m for a feature vector. */
double sc_verify_model_score(const sc_verify_model *m, const float x[SC_VF_COUNT]);

typedef struct sc_verify sc_verify;

typedef struct sc_verify_opts {
    int diff_embed;              /* -1: as trained; 0: never embed differing
                                    words (faster, DIFF_DISSIM = 0) */
    const sc_verify_model *model; /* NULL: the built-in one for the embedder */
} sc_verify_opts;

/* Creates a verifier for the embedder emb (which must outlive it), with the
 * built-in weights of its family (sc_embedder_id() before the '/').
 * Returns SC_ENOTFOUND when no weights were trained for that embedder
 * (e.g. remote): the caller then uses the raw cosine. opts may be NULL. */
int sc_verify_create(sc_verify **out, sc_embedder *emb, const sc_verify_opts *opts);
void sc_verify_destroy(sc_verify *v);

/* Estimated probability in [0,1] that the answer cached for prompt cand is
 * right for prompt query. qvec/cvec are the prompts' embeddings (unit
 * length, sc_embedder_dim() floats; may be NULL), cosine their dot
 * product as the index computed it. Never fails: on an internal error
 * (e.g. the diff-word embedding failed) it scores without that feature. */
double sc_verify_score(sc_verify *v, const char *query, size_t qlen, const float *qvec,
                       const char *cand, size_t clen, const float *cvec, float cosine);
/* The same, and *decisive = sc_verify_decisive() of the pair's features
 * (0 when they could not be computed). */
double sc_verify_score_ex(sc_verify *v, const char *query, size_t qlen, const float *qvec, const char *cand,
                          size_t clen, const float *cvec, float cosine, int *decisive);

/* One candidate of sc_verify_best(): the cached prompt, its embedding
 * (may be NULL) and its cosine to the query. */
typedef struct sc_verify_cand {
    const char *text;
    size_t len;
    const float *vec;
    float cosine;
} sc_verify_cand;

/* Scores the n candidates of a lookup and returns the index of the one
 * with the highest probability (first on ties), writing that probability
 * to *prob; -1 when n is 0. The caller serves it when *prob >= threshold. */
int sc_verify_best(sc_verify *v, const char *query, size_t qlen, const float *qvec,
                   const sc_verify_cand *c, size_t n, double *prob);

/* The model in use (for logs: trained_on). */
const sc_verify_model *sc_verify_model_get(const sc_verify *v);

/* The built-in model of an embedder family, or NULL. */
const sc_verify_model *sc_verify_builtin(const char *embedder_family);

#endif
