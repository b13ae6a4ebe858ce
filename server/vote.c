/* Answer-aware hit decisions (see vote.h). */
#include "server/vote.h"
#include "common/hash.h"

#include <math.h>

const sc_vote_params sc_vote_default_params = {.tau = 0.10, .agree = 0.4, .conflict = 0.3,
                                             .alone = 0.4, .alone_pow = 8};

int sc_vote(const sc_vote_cand *c, size_t n, const sc_vote_params *p, double *conf)
{
    if (n == 0) return -1;
    if (n > SC_VOTE_MAX) n = SC_VOTE_MAX;
    double top = c[0].cos;
    for (size_t i = 1; i < n; i++)
        if (c[i].cos > top) top = c[i].cos;
    double total = 0, w[SC_VOTE_MAX];
    for (size_t i = 0; i < n; i++) total += (w[i] = exp(((double)c[i].cos - top) / p->tau));
    int best = -1;
    double best_conf = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        /* i represents its group if no earlier candidate of the group has a
         * higher (or equal) cosine */
        int rep = 1;
        for (size_t j = 0; j < n && rep; j++)
            if (j != i && c[j].answer == c[i].answer && (c[j].cos > c[i].cos || (c[j].cos == c[i].cos && j < i)))
                rep = 0;
        if (!rep) continue;
        double mass = 0, agree = 0;
        for (size_t j = 0; j < n; j++) {
            if (c[j].answer != c[i].answer) continue;
            mass += w[j];
            if (j != i) agree += exp(((double)c[j].cos - c[i].cos) / p->tau);
        }
        /* float rounding can put a cosine a little past 1, where (1 - cos)
         * would turn negative and the confidence exceed 1 */
        double cos = c[i].cos > 1 ? 1.0 : c[i].cos;
        double share = mass / total;
        double v = cos + p->agree * (1 - cos) * (agree < 1 ? agree : 1) - p->conflict * (1 - share);
        if (p->alone > 0) v += p->alone * (1 - cos) * pow(share, p->alone_pow);
        if (v > best_conf) {
            best_conf = v;
            best = (int)i;
        }
    }
    *conf = best_conf;
    return best;
}

void sc_vote_merge_same(sc_vote_cand *c, const float *const *vecs, uint32_t dim, size_t n, float same)
{
    if (n > SC_VOTE_MAX) n = SC_VOTE_MAX;
    for (int changed = 1; changed;) { /* until no pair merges: transitive */
        changed = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                if (c[i].answer == c[j].answer || !vecs[i] || !vecs[j]) continue;
                float d = 0;
                for (uint32_t k = 0; k < dim; k++) d += vecs[i][k] * vecs[j][k];
                if (d >= same) {
                    uint64_t from = c[j].answer, to = c[i].answer;
                    for (size_t k = 0; k < n; k++)
                        if (c[k].answer == from) c[k].answer = to;
                    changed = 1;
                }
            }
    }
}

uint64_t sc_vote_answer_key(const char *text, size_t len)
{
    sc_hasher h;
    sc_hasher_init(&h, 0x766f7465);
    size_t i = 0;
    while (i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
        size_t s = i;
        while (i < len && !(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
        if (i > s) sc_hasher_add(&h, text + s, i - s); /* length-prefixed: words stay apart */
    }
    return sc_hasher_final(&h);
}
