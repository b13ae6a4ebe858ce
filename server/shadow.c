/* Shadow checks: see shadow.h. The counters are the process's (one
 * server per process); the loop thread owns the spend of the day. */
#include "server/shadow.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "route/route.h"
#include "server/cache.h"
#include "server/learn.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong started, compared, wrong, failed, skipped_budget;
static double usd_total, usd_today;   /* loop thread */
static long long today = -1;          /* UTC day of usd_today */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static struct sc_shadow *inflight;    /* loop thread */

typedef struct sc_shadow {
    struct sc_shadow *prev, *next;    /* calls in flight (sc_shadow_shutdown) */
    sc_server *srv;
    char *ns;
    uint64_t id, phash;
    double score;
    char *served;                     /* the answer text served */
    size_t served_len;
    int status;
    sc_buf body;
    char *fresh;                      /* the upstream's answer text */
    size_t fresh_len;
    char *request;                    /* the body to send (until started) */
} shadow;

static double draw(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void roll_day(void)
{
    long long d = (long long)time(NULL) / 86400;
    if (d != today) {
        today = d;
        usd_today = 0;
    }
}

static void shadow_free(shadow *s)
{
    free(s->ns);
    free(s->served);
    free(s->fresh);
    free(s->request);
    sc_buf_free(&s->body);
    free(s);
}

static void compare_work(sc_job *j)
{
    shadow *s = j->data;
    sc_cache *c = j->srv->cache;
    int agree = sc_cache_answers_agree(c, s->served, s->served_len, s->fresh, s->fresh_len);
    sc_learn_observe(sc_cache_learn(c), s->ns, s->id, s->phash, s->score, agree, SC_LEARN_SHADOW);
    atomic_fetch_add(&compared, 1);
    if (!agree) atomic_fetch_add(&wrong, 1);
}

static void compare_done(sc_job *j) { shadow_free(j->data); }

static void on_headers(void *ctx, int status, const char *ctype, const sc_route_header *h, size_t nh)
{
    (void)ctype;
    (void)h;
    (void)nh;
    ((shadow *)ctx)->status = status;
}

static void on_data(void *ctx, const char *p, size_t n)
{
    shadow *s = ctx;
    sc_buf_append(&s->body, p, n);   /* bounded by the buffer's limit: past it the answer is cut, and fails below */
}

static void unlink_call(shadow *s)
{
    if (s->prev) s->prev->next = s->next;
    else inflight = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void on_done(void *ctx, const sc_route_result *r)
{
    shadow *s = ctx;
    unlink_call(s);
    roll_day();
    if (r->cost_usd > 0) {
        usd_total += r->cost_usd;
        usd_today += r->cost_usd;
    }
    sc_record rec = {.response = s->body.data, .response_len = s->body.len, .content_type = "application/json"};
    if (r->err || s->status / 100 != 2 || !s->body.data ||
        !(s->fresh = sc_cache_answer_text(&rec, &s->fresh_len))) {
        atomic_fetch_add(&failed, 1);
        shadow_free(s);
        return;
    }
    sc_job_submit(s->srv, NULL, compare_work, compare_done, s);
}

sc_shadow *sc_shadow_prepare(sc_server *srv, const char *ns, uint64_t id, uint64_t phash, double score,
                             const sc_record *served, const char *body, size_t len)
{
    double rate = srv->cfg->shadow_rate;
    if (!(rate > 0) || !srv->route || draw() >= rate) return NULL;
    roll_day();
    if (usd_today >= srv->cfg->shadow_budget_usd) {
        atomic_fetch_add(&skipped_budget, 1);
        return NULL;
    }
    /* Always a plain JSON answer: a stream is asked for without it. */
    json_error_t je;
    json_t *req = json_loadb(body, len, 0, &je);
    if (!req) return NULL;
    json_object_set_new(req, "stream", json_false());
    json_object_del(req, "stream_options");
    char *out = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!out) return NULL;
    shadow *s = SC_NEW(shadow);
    s->srv = srv;
    s->ns = sc_strdup(ns);
    s->id = id;
    s->phash = phash;
    s->score = score;
    s->served = sc_cache_answer_text(served, &s->served_len);
    if (!s->served) {
        free(out);
        shadow_free(s);
        return NULL;
    }
    s->request = out;
    sc_buf_init(&s->body, (size_t)srv->cfg->max_upstream_body);
    return s;
}

void sc_shadow_start(sc_shadow *s)
{
    if (!s) return;
    sc_route_req rr = {.method = "POST", .path = "/v1/chat/completions", .body = s->request,
                       .body_len = strlen(s->request), .want_json = 1};
    static const sc_route_callbacks cb = {on_headers, on_data, on_done};
    int rc = sc_route_request(s->srv->route, &rr, &cb, s, NULL);
    free(s->request);
    s->request = NULL;
    if (rc) {
        shadow_free(s);
        return;
    }
    atomic_fetch_add(&started, 1);
    s->next = inflight;
    if (inflight) inflight->prev = s;
    inflight = s;
}

void sc_shadow_shutdown(void)
{
    while (inflight) {
        shadow *s = inflight;
        unlink_call(s);
        shadow_free(s);
    }
}

void sc_shadow_stats_get(sc_shadow_stats *st)
{
    st->started = atomic_load(&started);
    st->compared = atomic_load(&compared);
    st->wrong = atomic_load(&wrong);
    st->failed = atomic_load(&failed);
    st->skipped_budget = atomic_load(&skipped_budget);
    roll_day();
    st->usd_total = usd_total;
    st->usd_today = usd_today;
}
