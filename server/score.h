/* Scores on a threshold scale: score = 1 - (1 - cosine)^gamma.
 *
 * One mapping shared by the hit decision (cache.h: semcache-embed reports
 * its similarity and confidence on it, SC_EMBED_SCORE_GAMMA) and the error
 * budget (learn.h: its grid is laid in the cosine a score was made from).
 * Monotone on [0, 1] with 0 and 1 fixed; a cosine at or below 0 (and NaN)
 * is its own score, and gamma <= 1 means no scale (the score is the
 * cosine). Pure; any thread. */
#ifndef SC_SCORE_H
#define SC_SCORE_H

#include <math.h>

static inline double sc_score_of_cos(double cosine, double gamma)
{
    if (!(gamma > 1) || !(cosine > 0)) return cosine;
    if (cosine >= 1) return 1;
    return 1 - pow(1 - cosine, gamma);
}

/* The inverse: the cosine a score was made from. */
static inline double sc_score_to_cos(double score, double gamma)
{
    if (!(gamma > 1) || !(score > 0)) return score;
    if (score >= 1) return 1;
    return 1 - pow(1 - score, 1 / gamma);
}

#endif
