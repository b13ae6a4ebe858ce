/* Unit tests for the answer vote (server/vote.c): without the bonus of an
 * unambiguous winner a lone candidate keeps its cosine, with it a winner
 * far from every other answer gains and one with a close rival does not;
 * agreeing candidates raise the confidence (never past 1),
 * close candidates with other answers lower it, two agreeing candidates can
 * outvote a slightly closer one, and answer keys ignore white space. */
#include "tap.h"
#include "server/vote.h"

#include <math.h>
#include <string.h>

/* The behaviour is tested with every term switched on; the server's tuned
 * defaults (vote.c: an agreement bonus and a strong conflict term) are
 * checked on their own below. */
static const sc_vote_params test_params = {.tau = 0.02, .agree = 0.3, .conflict = 0.1};
#define P (&test_params)
#define KEY(s) sc_vote_answer_key(s, strlen(s))

static double vote(const sc_vote_cand *c, size_t n, int *w)
{
    double conf = NAN;
    *w = sc_vote(c, n, P, &conf);
    return conf;
}

SC_TEST(vote_empty)
{
    double conf = 12345;
    CHECK_EQ_INT(sc_vote(NULL, 0, P, &conf), -1);
    sc_vote_cand c = {0.9f, 1};
    CHECK_EQ_INT(sc_vote(&c, 0, P, &conf), -1);
}

SC_TEST(vote_lone_candidate_keeps_cosine)
{
    static const float cs[] = {0.0f, 0.3f, 0.5f, 0.8312f, 0.95f, 0.999f, 1.0f, -0.2f};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        sc_vote_cand c = {cs[i], 42};
        int w;
        double conf = vote(&c, 1, &w);
        CHECK_EQ_INT(w, 0);
        CHECK(fabs(conf - (double)cs[i]) < 1e-12);
    }
    /* the same with custom parameters */
    sc_vote_params p = {.tau = 0.05, .agree = 0.9, .conflict = 0.5};
    sc_vote_cand c = {0.7f, 1};
    double conf;
    CHECK_EQ_INT(sc_vote(&c, 1, &p, &conf), 0);
    CHECK(fabs(conf - 0.7) < 1e-7);
}

SC_TEST(vote_agreement_raises_confidence)
{
    /* one candidate, then more phrasings of the same answer close to it */
    sc_vote_cand c[4] = {{0.86f, 7}, {0.85f, 7}, {0.84f, 7}, {0.80f, 7}};
    int w;
    double prev = vote(c, 1, &w);
    CHECK(fabs(prev - 0.86) < 1e-6);
    for (size_t n = 2; n <= 4; n++) {
        double conf = vote(c, n, &w);
        CHECK_EQ_INT(w, 0); /* the representative is the closest one */
        CHECK(conf > 0.86);
        CHECK(conf >= prev);
        CHECK(conf <= 1.0);
        prev = conf;
    }
    /* a far-away phrasing barely counts; a near one counts a lot */
    sc_vote_cand far[2] = {{0.86f, 7}, {0.60f, 7}}, near[2] = {{0.86f, 7}, {0.859f, 7}};
    double cf = vote(far, 2, &w), cn = vote(near, 2, &w);
    CHECK(cf > 0.86 && cf < 0.8601);
    CHECK(cn > cf);
    /* the order of the candidates does not matter */
    sc_vote_cand r[4] = {{0.80f, 7}, {0.84f, 7}, {0.85f, 7}, {0.86f, 7}};
    double cr = vote(r, 4, &w);
    CHECK_EQ_INT(w, 3);
    CHECK(fabs(cr - prev) < 1e-12);
}

SC_TEST(vote_confidence_never_above_one)
{
    /* many identical and near-identical candidates of one answer, the
     * strongest parameters, cosines up to (and a float ulp past) 1 */
    sc_vote_params strong = {.tau = 0.01, .agree = 1.0, .conflict = 0.1};
    const sc_vote_params *ps[] = {P, &strong};
    static const float tops[] = {0.5f, 0.9f, 0.99f, 0.999999f, 1.0f, 1.0000001f, 1.00001f};
    for (size_t k = 0; k < 2; k++)
        for (size_t t = 0; t < sizeof tops / sizeof tops[0]; t++) {
            sc_vote_cand c[SC_VOTE_MAX];
            for (size_t i = 0; i < SC_VOTE_MAX; i++) c[i] = (sc_vote_cand){tops[t] - 1e-4f * (float)(i % 3), 3};
            double conf;
            int w = sc_vote(c, SC_VOTE_MAX, ps[k], &conf);
            CHECK(w >= 0);
            if (!(conf <= 1.0)) sc_test_fail(__FILE__, __LINE__, "top %.9g params %zu: conf %.17g > 1",
                                             (double)tops[t], k, conf);
        }
}

SC_TEST(vote_conflict_lowers_confidence)
{
    int w;
    sc_vote_cand alone[1] = {{0.88f, 1}};
    double base = vote(alone, 1, &w);
    /* a close candidate with another answer lowers it */
    sc_vote_cand two[2] = {{0.88f, 1}, {0.875f, 2}};
    double c2 = vote(two, 2, &w);
    CHECK_EQ_INT(w, 0);
    CHECK(c2 < base);
    CHECK(c2 > base - P->conflict);
    /* the closer the rival, the lower; a far rival hardly matters */
    sc_vote_cand tie[2] = {{0.88f, 1}, {0.88f, 2}};
    sc_vote_cand far[2] = {{0.88f, 1}, {0.60f, 2}};
    double ct = vote(tie, 2, &w), cf = vote(far, 2, &w);
    CHECK_EQ_INT(w, 0);
    CHECK(ct < c2);
    CHECK(fabs(ct - (0.88 - P->conflict * 0.5)) < 1e-6); /* share 1/2 */
    CHECK(cf < base && cf > base - 1e-4);
    /* more rivals, lower still */
    sc_vote_cand three[3] = {{0.88f, 1}, {0.875f, 2}, {0.875f, 3}};
    CHECK(vote(three, 3, &w) < c2);
    CHECK_EQ_INT(w, 0);
}

SC_TEST(vote_two_outvote_a_closer_one)
{
    /* answer A at 0.90 alone; answer B twice at 0.895: B wins, and its
     * representative (index 1, the first of the two) is returned */
    sc_vote_cand c[3] = {{0.90f, 0xA}, {0.895f, 0xB}, {0.895f, 0xB}};
    int w;
    double conf = vote(c, 3, &w);
    CHECK_EQ_INT(w, 1);
    CHECK(c[w].answer == 0xB);
    CHECK(conf > 0 && conf <= 1.0);
    /* the formula of vote.h, worked by hand */
    double tau = P->tau, wa = 1, wb = exp((0.895 - 0.90) / tau), tot = wa + 2 * wb;
    double conf_b = 0.895 + P->agree * (1 - 0.895) * 1 - P->conflict * (1 - 2 * wb / tot);
    double conf_a = 0.90 - P->conflict * (1 - wa / tot);
    CHECK(conf_b > conf_a);
    CHECK(fabs(conf - conf_b) < 1e-6);
    /* in another order the same group and confidence win */
    sc_vote_cand d[3] = {{0.895f, 0xB}, {0.90f, 0xA}, {0.895f, 0xB}};
    double conf2 = vote(d, 3, &w);
    CHECK_EQ_INT(w, 0);
    CHECK(fabs(conf2 - conf) < 1e-12);
    /* but a far-behind pair does not outvote a clearly closer one */
    sc_vote_cand e[3] = {{0.95f, 0xA}, {0.85f, 0xB}, {0.85f, 0xB}};
    vote(e, 3, &w);
    CHECK_EQ_INT(w, 0);
}

SC_TEST(vote_only_first_max_candidates)
{
    /* past SC_VOTE_MAX the rest is ignored (no overflow of the weights) */
    sc_vote_cand c[SC_VOTE_MAX + 8];
    for (size_t i = 0; i < SC_VOTE_MAX + 8; i++) c[i] = (sc_vote_cand){0.5f, i};
    c[SC_VOTE_MAX + 3] = (sc_vote_cand){0.99f, 999};
    double conf;
    int w = sc_vote(c, SC_VOTE_MAX + 8, P, &conf);
    CHECK(w >= 0 && w < SC_VOTE_MAX);
}

SC_TEST(vote_answer_key)
{
    uint64_t k = KEY("Reset it from the settings page.");
    CHECK(KEY("Reset it from the settings page.") == k);
    CHECK(KEY("  Reset it\tfrom  the\n settings page.  ") == k);
    CHECK(KEY("Reset\r\nit from the settings\t\tpage.\n") == k);
    CHECK(KEY("Reset it from the settings page") != k);
    CHECK(KEY("reset it from the settings page.") != k);
    CHECK(KEY("Resetit from the settings page.") != k);
    /* word boundaries count: "ab c" is not "a bc" */
    CHECK(KEY("ab c") != KEY("a bc"));
    CHECK(KEY("abc") != KEY("ab c"));
    /* different texts, different keys; empty and blank agree */
    CHECK(KEY("yes") != KEY("no"));
    CHECK(KEY("") == KEY("   \t\n"));
    CHECK(KEY("") != KEY("x"));
    /* only len bytes count, embedded NULs included */
    CHECK(sc_vote_answer_key("yes please", 3) == KEY("yes"));
    CHECK(sc_vote_answer_key("a\0b", 3) != sc_vote_answer_key("a\0c", 3));
}

SC_TEST(vote_unambiguous_winner_bonus)
{
    sc_vote_params p = {.tau = 0.10, .agree = 0.4, .conflict = 0.3, .alone = 0.4, .alone_pow = 8};
    double conf;
    /* a lone candidate: cos + alone * (1 - cos), never past 1 */
    static const float cs[] = {0.0f, 0.5f, 0.7f, 0.82f, 1.0f, -0.2f};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        sc_vote_cand c = {cs[i], 42};
        CHECK_EQ_INT(sc_vote(&c, 1, &p, &conf), 0);
        CHECK(fabs(conf - (cs[i] + 0.4 * (1 - (double)cs[i]))) < 1e-6);
        CHECK(conf <= 1.0);
    }
    /* so the cosine 0.70 alone reaches the threshold 0.82 */
    sc_vote_cand lone = {0.70f, 1};
    CHECK_EQ_INT(sc_vote(&lone, 1, &p, &conf), 0);
    CHECK(conf >= 0.82 - 1e-6);
    /* other answers far below (0.4 under, weight e^-4) take a little:
     * share 0.968, three quarters of the bonus ... */
    sc_vote_cand far[3] = {{0.70f, 1}, {0.30f, 2}, {0.28f, 3}};
    double far_conf;
    CHECK_EQ_INT(sc_vote(far, 3, &p, &far_conf), 0);
    CHECK(far_conf > 0.77 && far_conf < conf);
    /* ... a close rival answer takes the bonus away, and the conflict
     * term takes more: the crowd needs the full threshold */
    sc_vote_cand close[2] = {{0.70f, 1}, {0.66f, 2}};
    CHECK_EQ_INT(sc_vote(close, 2, &p, &conf), 0);
    CHECK(conf < 0.70);
    /* the bonus grows with the distance to the nearest rival */
    double prev = -1;
    for (int k = 0; k <= 6; k++) {
        sc_vote_cand c2[2] = {{0.80f, 1}, {0.80f - 0.05f * (float)k, 2}};
        CHECK_EQ_INT(sc_vote(c2, 2, &p, &conf), 0);
        CHECK(conf > prev);
        prev = conf;
    }
    /* agreement and the bonus together stay at or below 1 */
    sc_vote_cand same[3] = {{0.99f, 5}, {0.99f, 5}, {0.98f, 5}};
    CHECK_EQ_INT(sc_vote(same, 3, &p, &conf), 0);
    CHECK(conf <= 1.0 && conf > 0.99);
}

SC_TEST(vote_default_params)
{
    /* as tuned on the dev splits (tools/train/tune.py, BENCHMARKS.md): a
     * lone candidate gains alone * (1 - cos), a tie with another answer
     * costs half the conflict weight and gets a share^pow of the bonus,
     * two agreeing candidates beat one rival */
    const sc_vote_params *d = &sc_vote_default_params;
    CHECK(d->tau > 0 && d->conflict > 0 && d->agree >= 0);
    CHECK(d->alone > 0 && d->agree + d->alone <= 1); /* never past 1 */
    sc_vote_cand alone = {0.9f, 1}, tie[2] = {{0.9f, 1}, {0.9f, 2}};
    double conf;
    CHECK_EQ_INT(sc_vote(&alone, 1, d, &conf), 0);
    CHECK(fabs(conf - (0.9 + d->alone * 0.1)) < 1e-6);
    CHECK(sc_vote(tie, 2, d, &conf) >= 0);
    CHECK(fabs(conf - (0.9 - d->conflict * 0.5 + d->alone * 0.1 * pow(0.5, d->alone_pow))) < 1e-6);
    sc_vote_cand two[3] = {{0.90f, 1}, {0.895f, 2}, {0.893f, 2}};
    CHECK_EQ_INT(sc_vote(two, 3, d, &conf), 1);
}

SC_TEST(vote_same_question_merges_answers)
{
    /* two cached phrasings of one question with differently worded answers
     * (as LLM answers are) are one group; another question is not */
    float a[4] = {1, 0, 0, 0}, b[4] = {0.99f, 0.141f, 0, 0}, o[4] = {0.8f, 0, 0.6f, 0};
    const float *vecs[3] = {a, b, o};
    sc_vote_cand c[3] = {{0.95f, 1}, {0.94f, 2}, {0.93f, 3}};
    sc_vote_merge_same(c, vecs, 4, 3, SC_VOTE_SAME_QUESTION);
    CHECK(c[0].answer == c[1].answer);
    CHECK(c[2].answer != c[0].answer);
    double merged, apart;
    CHECK_EQ_INT(sc_vote(c, 3, &sc_vote_default_params, &merged), 0);
    sc_vote_cand d[3] = {{0.95f, 1}, {0.94f, 2}, {0.93f, 3}};
    CHECK_EQ_INT(sc_vote(d, 3, &sc_vote_default_params, &apart), 0);
    CHECK(merged > apart); /* the paraphrase no longer counts against the winner */
    /* transitive: a~b, b~c merges all three even if a and c are further apart */
    float x[2] = {1, 0}, y[2] = {0.97f, 0.2431f}, z[2] = {0.8796f, 0.4757f};
    const float *v2[3] = {x, y, z};
    sc_vote_cand t[3] = {{0.9f, 7}, {0.9f, 8}, {0.9f, 9}};
    sc_vote_merge_same(t, v2, 2, 3, SC_VOTE_SAME_QUESTION);
    CHECK(t[0].answer == t[1].answer && t[1].answer == t[2].answer);
    /* a missing vector merges nothing */
    const float *v3[2] = {x, NULL};
    sc_vote_cand u[2] = {{0.9f, 1}, {0.9f, 2}};
    sc_vote_merge_same(u, v3, 2, 2, SC_VOTE_SAME_QUESTION);
    CHECK(u[0].answer != u[1].answer);
}
