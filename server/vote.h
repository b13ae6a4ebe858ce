/* Answer-aware hit decisions: the top-k candidates of a lookup vote with
 * their answers.
 *
 * Candidates that share an answer (the same answer text) form a group. A
 * group's representative is its candidate with the highest cosine; its
 * confidence is
 *
 *   conf(G) = cos_rep + agree * (1 - cos_rep) * min(1, sum_{i in G, i != rep} e^((cos_i - cos_rep) / tau))
 *                     + alone * (1 - cos_rep) * share(G)^alone_pow
 *                     - conflict * (1 - share(G))
 *
 * where share(G) = sum_{i in G} e^(cos_i / tau) / sum_all e^(cos_i / tau).
 * So other phrasings of the same answer near the query can raise the
 * confidence (never past 1), and close candidates with other answers lower
 * it. A winner with no other answer anywhere near it (share close to 1:
 * with tau 0.10 every rival at least ~0.3 below) is unambiguous and gets
 * up to alone * (1 - cos_rep) more: a lone candidate scores
 * cos + alone * (1 - cos), so the default threshold (the cosine 0.82)
 * serves it from the cosine 0.70, while a crowd of other answers close to
 * the query still needs the full 0.82. What the cosine cannot tell apart
 * there (look-alikes: "turn on" / "turn off") is the verifier's
 * cross-check's job (cache.h). With --top-k 1 the cache turns the
 * bonus off: one candidate says nothing about its neighbours. The group
 * with the highest confidence wins. The defaults (vote.c: tau 0.10, agree 0.4, conflict 0.3)
 * were tuned by tools/train/tune.py on the dev splits only (banking77 train
 * hold-out, CLINC150 val; BENCHMARKS.md, Quality) for the current
 * semcache-embed-v1 (alone 0.4, alone_pow 8: see "Unambiguous winners"
 * there): other phrasings of the winner's answer close by raise
 * its score by up to 40 % of its distance to 1, and a winner with close
 * rivals loses up to 0.3. (With the first model an agreement bonus always
 * cost more precision than it gained; the retrained model's same-intent
 * neighbours are reliable enough for it to pay.)
 * Pure; any thread. */
#ifndef SC_VOTE_H
#define SC_VOTE_H

#include <stddef.h>
#include <stdint.h>

#define SC_VOTE_MAX 64

typedef struct sc_vote_cand {
    float cos;          /* cosine to the query */
    uint64_t answer;    /* hash of the answer text (equal answers, equal hashes) */
} sc_vote_cand;

typedef struct sc_vote_params {
    double tau, agree, conflict;
    double alone, alone_pow;   /* the bonus of an unambiguous winner (0: none) */
} sc_vote_params;

/* The tuned defaults. */
extern const sc_vote_params sc_vote_default_params;

/* Picks the winning group among n (<= SC_VOTE_MAX) candidates. Returns the
 * index of its representative and sets *conf; -1 (conf -inf) when n is 0
 * or no cosine is a number. */
int sc_vote(const sc_vote_cand *c, size_t n, const sc_vote_params *p, double *conf);

/* Candidates whose cached prompts are the same question (cosine between
 * their stored vectors >= same) count as one answer, whatever their answer
 * texts say: two LLM answers to "how do I reset my password" and "how can
 * I reset my password" differ in wording, not in what they answer. Merges
 * answer keys in place (transitively); vecs[i] is candidate i's unit
 * vector of dim floats. */
#define SC_VOTE_SAME_QUESTION 0.95f
void sc_vote_merge_same(sc_vote_cand *c, const float *const *vecs, uint32_t dim, size_t n, float same);

/* The answer key of an answer text: white space runs collapsed, trimmed. */
uint64_t sc_vote_answer_key(const char *text, size_t len);

#endif
