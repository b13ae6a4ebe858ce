/* The ring of recent semantic decisions (recent.h). */
#include "server/recent.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sc_recent {
    pthread_mutex_t mu;
    uint64_t seq;                    /* items ever recorded */
    sc_recent_item ring[SC_RECENT_CAP];
};

sc_recent *sc_recent_create(void)
{
    sc_recent *r = SC_NEW(sc_recent);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void sc_recent_destroy(sc_recent *r)
{
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void sc_recent_add(sc_recent *r, const char *ns, uint64_t candidate, float similarity, float score,
                   float threshold, int served)
{
    if (!r) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sc_recent_item it = {.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                         .candidate = candidate, .similarity = similarity, .score = score,
                         .threshold = threshold, .served = served != 0};
    size_t n = ns ? strnlen(ns, SC_RECENT_NS_MAX) : 0;
    memcpy(it.ns, ns, n);
    it.ns[n] = '\0';
    pthread_mutex_lock(&r->mu);
    it.seq = ++r->seq;
    r->ring[(it.seq - 1) % SC_RECENT_CAP] = it;
    pthread_mutex_unlock(&r->mu);
}

size_t sc_recent_get(sc_recent *r, const char *ns, uint64_t after, sc_recent_item *out, size_t max)
{
    if (!r || !out) return 0;
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    uint64_t oldest = r->seq > SC_RECENT_CAP ? r->seq - SC_RECENT_CAP + 1 : 1;
    if (after + 1 > oldest) oldest = after + 1;
    for (uint64_t s = r->seq; s >= oldest && s > 0 && n < max; s--) {
        const sc_recent_item *it = &r->ring[(s - 1) % SC_RECENT_CAP];
        if (ns && strcmp(it->ns, ns) != 0) continue;
        out[n++] = *it;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}
