/* Request statistics (see stats.h). Plain counters: every update and read
 * happens on the loop thread. */
#include "server/stats.h"
#include "common/alloc.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

#define NS_MAX 4096
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,   0.5,   1,      2.5,   5,     10,   30};
#define NB (sizeof buckets / sizeof buckets[0])

enum { EP_CHAT, EP_COMPLETIONS, EP_V1_OTHER, EP_CACHE, EP_STATS, EP_HEALTH, EP_UI, EP_OTHER, EP_COUNT };
static const char *const ep_names[EP_COUNT] = {"/v1/chat/completions", "/v1/completions", "/v1/other",
                                               "/cache", "/stats", "/healthz", "/ui", "other"};
static const int codes[] = {200, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 502, 503, 504, 507};
#define NC (sizeof codes / sizeof codes[0])

typedef struct hist {
    uint64_t count[NB + 1];
    double sum;
    uint64_t n;
} hist;

typedef struct ns_stats {
    char *name;
    uint64_t outcomes[SC_OUT_COUNT];
    long long saved_prompt_tokens, saved_completion_tokens;
    double saved_usd, spent_usd;
} ns_stats;

struct sc_stats {
    uint64_t req[EP_COUNT][NC + 1];
    uint64_t outcomes[SC_OUT_COUNT];
    hist lat_hit, lat_miss;
    long long saved_prompt_tokens, saved_completion_tokens;
    double saved_usd, spent_usd;
    ns_stats *ns;
    size_t nns;
};

static const char *const outcome_names[SC_OUT_COUNT] = {"miss", "hit-exact", "hit-semantic", "bypass", "error"};

const char *sc_outcome_name(int o) { return o >= 0 && o < SC_OUT_COUNT ? outcome_names[o] : "unknown"; }

sc_stats *sc_stats_create(void) { return SC_NEW(sc_stats); }

void sc_stats_destroy(sc_stats *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nns; i++) free(s->ns[i].name);
    free(s->ns);
    free(s);
}

static int endpoint_of(const char *p)
{
    if (!strcmp(p, "/v1/chat/completions")) return EP_CHAT;
    if (!strcmp(p, "/v1/completions")) return EP_COMPLETIONS;
    if (!strncmp(p, "/v1/", 4)) return EP_V1_OTHER;
    if (!strncmp(p, "/cache/", 7)) return EP_CACHE;
    if (!strcmp(p, "/stats") || !strcmp(p, "/metrics")) return EP_STATS;
    if (!strcmp(p, "/healthz")) return EP_HEALTH;
    if (!strcmp(p, "/ui") || !strncmp(p, "/ui/", 4)) return EP_UI;
    return EP_OTHER;
}

void sc_stats_request(sc_stats *s, const char *path, int status)
{
    size_t c = NC;
    for (size_t i = 0; i < NC; i++)
        if (codes[i] == status) c = i;
    s->req[endpoint_of(path ? path : "")][c]++;
}

static ns_stats *ns_get(sc_stats *s, const char *ns)
{
    for (size_t i = 0; i < s->nns; i++)
        if (!strcmp(s->ns[i].name, ns)) return &s->ns[i];
    if (s->nns >= NS_MAX) {
        ns = "_other";
        for (size_t i = 0; i < s->nns; i++)
            if (!strcmp(s->ns[i].name, ns)) return &s->ns[i];
    }
    s->ns = sc_realloc(s->ns, (s->nns + 1) * sizeof *s->ns);
    ns_stats *n = &s->ns[s->nns++];
    memset(n, 0, sizeof *n);
    n->name = sc_strdup(ns);
    return n;
}

static void hist_add(hist *h, double v)
{
    size_t b = 0;
    while (b < NB && v > buckets[b]) b++;
    h->count[b]++;
    h->sum += v;
    h->n++;
}

void sc_stats_outcome(sc_stats *s, const char *ns, int outcome, double seconds,
                      long long prompt_tokens, long long completion_tokens, double usd)
{
    if (outcome < 0 || outcome >= SC_OUT_COUNT) return;
    ns_stats *n = ns_get(s, ns ? ns : "default");
    s->outcomes[outcome]++;
    n->outcomes[outcome]++;
    int hit = outcome == SC_OUT_EXACT || outcome == SC_OUT_SEMANTIC;
    hist_add(hit ? &s->lat_hit : &s->lat_miss, seconds);
    if (hit) {
        s->saved_prompt_tokens += prompt_tokens;
        s->saved_completion_tokens += completion_tokens;
        n->saved_prompt_tokens += prompt_tokens;
        n->saved_completion_tokens += completion_tokens;
        if (usd > 0) {
            s->saved_usd += usd;
            n->saved_usd += usd;
        }
    } else if (usd > 0) {
        s->spent_usd += usd;
        n->spent_usd += usd;
    }
}

static double hit_rate(const uint64_t *o)
{
    uint64_t hits = o[SC_OUT_EXACT] + o[SC_OUT_SEMANTIC];
    uint64_t all = hits + o[SC_OUT_MISS];
    return all ? (double)hits / (double)all : 0.0;
}

static json_t *outcomes_json(const uint64_t *o)
{
    json_t *j = json_object();
    for (int i = 0; i < SC_OUT_COUNT; i++) json_object_set_new(j, outcome_names[i], json_integer((json_int_t)o[i]));
    return j;
}

static json_t *ns_json(const ns_stats *n)
{
    return json_pack("{s:o,s:f,s:I,s:I,s:f,s:f}", "outcomes", outcomes_json(n->outcomes), "hit_rate",
                     hit_rate(n->outcomes), "saved_prompt_tokens", (json_int_t)n->saved_prompt_tokens,
                     "saved_completion_tokens", (json_int_t)n->saved_completion_tokens, "saved_usd",
                     n->saved_usd, "upstream_spent_usd", n->spent_usd);
}

/* /stats' top-level totals: outcomes, hit_rate, saved, upstream_spent_usd. */
static void totals_json(json_t *out, const uint64_t *outcomes, long long prompt_tokens,
                        long long completion_tokens, double saved_usd, double spent_usd)
{
    json_object_set_new(out, "outcomes", outcomes_json(outcomes));
    json_object_set_new(out, "hit_rate", json_real(hit_rate(outcomes)));
    json_object_set_new(out, "saved", json_pack("{s:I,s:I,s:f}", "prompt_tokens", (json_int_t)prompt_tokens,
                                                "completion_tokens", (json_int_t)completion_tokens, "usd",
                                                saved_usd));
    json_object_set_new(out, "upstream_spent_usd", json_real(spent_usd));
}

void sc_stats_ns_json(const sc_stats *s, const char *ns, json_t *out)
{
    ns_stats zero = {.name = (char *)ns};
    const ns_stats *n = &zero;
    for (size_t i = 0; i < s->nns; i++)
        if (!strcmp(s->ns[i].name, ns)) n = &s->ns[i];
    totals_json(out, n->outcomes, n->saved_prompt_tokens, n->saved_completion_tokens, n->saved_usd, n->spent_usd);
    json_t *nss = json_object();
    json_object_set_new(nss, ns, ns_json(n));
    json_object_set_new(out, "namespaces", nss);
}

static json_t *hist_json(const hist *h)
{
    json_t *a = json_array();
    for (size_t b = 0; b <= NB; b++) json_array_append_new(a, json_integer((json_int_t)h->count[b]));
    return a;
}

json_t *sc_stats_latency_json(const sc_stats *s)
{
    json_t *le = json_array();
    for (size_t b = 0; b < NB; b++) json_array_append_new(le, json_real(buckets[b]));
    return json_pack("{s:o,s:o,s:o,s:I,s:I,s:f,s:f}", "le", le, "hit", hist_json(&s->lat_hit), "miss",
                     hist_json(&s->lat_miss), "hit_count", (json_int_t)s->lat_hit.n, "miss_count",
                     (json_int_t)s->lat_miss.n, "hit_sum_s", s->lat_hit.sum, "miss_sum_s", s->lat_miss.sum);
}

void sc_stats_json(const sc_stats *s, json_t *out)
{
    json_t *req = json_object();
    for (int e = 0; e < EP_COUNT; e++) {
        json_t *by = json_object();
        for (size_t c = 0; c <= NC; c++) {
            if (!s->req[e][c]) continue;
            char code[16];
            snprintf(code, sizeof code, "%s", c < NC ? "" : "other");
            if (c < NC) snprintf(code, sizeof code, "%d", codes[c]);
            json_object_set_new(by, code, json_integer((json_int_t)s->req[e][c]));
        }
        if (json_object_size(by)) json_object_set_new(req, ep_names[e], by);
        else json_decref(by);
    }
    json_object_set_new(out, "requests", req);
    totals_json(out, s->outcomes, s->saved_prompt_tokens, s->saved_completion_tokens, s->saved_usd, s->spent_usd);
    json_t *nss = json_object();
    for (size_t i = 0; i < s->nns; i++) json_object_set_new(nss, s->ns[i].name, ns_json(&s->ns[i]));
    json_object_set_new(out, "namespaces", nss);
    json_t *lat = json_object();
    json_object_set_new(lat, "hit_mean_ms", json_real(s->lat_hit.n ? s->lat_hit.sum / (double)s->lat_hit.n * 1e3 : 0));
    json_object_set_new(lat, "miss_mean_ms", json_real(s->lat_miss.n ? s->lat_miss.sum / (double)s->lat_miss.n * 1e3 : 0));
    json_object_set_new(out, "latency", lat);
}

static int hist_metrics(sc_buf *out, const char *kind, const hist *h)
{
    uint64_t cum = 0;
    int rc = 0;
    for (size_t b = 0; b < NB && !rc; b++) {
        cum += h->count[b];
        rc = sc_buf_printf(out, "semcached_request_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n", kind,
                           buckets[b], (unsigned long long)cum);
    }
    cum += h->count[NB];
    if (!rc) rc = sc_buf_printf(out, "semcached_request_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n", kind,
                                (unsigned long long)cum);
    if (!rc) rc = sc_buf_printf(out, "semcached_request_duration_seconds_sum{kind=\"%s\"} %.6f\n", kind, h->sum);
    if (!rc) rc = sc_buf_printf(out, "semcached_request_duration_seconds_count{kind=\"%s\"} %llu\n", kind,
                                (unsigned long long)h->n);
    return rc;
}

/* Prometheus label values: escape backslash, quote and newline. */
static int put_label(sc_buf *out, const char *v)
{
    int rc = 0;
    for (; *v && !rc; v++) {
        if (*v == '\\' || *v == '"') rc = sc_buf_printf(out, "\\%c", *v);
        else if (*v == '\n') rc = sc_buf_puts(out, "\\n");
        else rc = sc_buf_append(out, v, 1);
    }
    return rc;
}

int sc_stats_metrics(const sc_stats *s, sc_buf *out)
{
    int rc = sc_buf_puts(out, "# HELP semcached_http_requests_total HTTP requests by endpoint and status.\n"
                              "# TYPE semcached_http_requests_total counter\n");
    for (int e = 0; e < EP_COUNT && !rc; e++)
        for (size_t c = 0; c <= NC && !rc; c++) {
            if (!s->req[e][c]) continue;
            if (c < NC)
                rc = sc_buf_printf(out, "semcached_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                                   ep_names[e], codes[c], (unsigned long long)s->req[e][c]);
            else
                rc = sc_buf_printf(out, "semcached_http_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n",
                                   ep_names[e], (unsigned long long)s->req[e][c]);
        }
    if (!rc) rc = sc_buf_puts(out, "# HELP semcached_cache_requests_total Cache decisions by outcome.\n"
                                   "# TYPE semcached_cache_requests_total counter\n");
    for (int o = 0; o < SC_OUT_COUNT && !rc; o++)
        rc = sc_buf_printf(out, "semcached_cache_requests_total{outcome=\"%s\"} %llu\n", outcome_names[o],
                           (unsigned long long)s->outcomes[o]);
    if (!rc) rc = sc_buf_puts(out, "# HELP semcached_request_duration_seconds Latency of cache hits and misses.\n"
                                   "# TYPE semcached_request_duration_seconds histogram\n");
    if (!rc) rc = hist_metrics(out, "hit", &s->lat_hit);
    if (!rc) rc = hist_metrics(out, "miss", &s->lat_miss);
    if (!rc) rc = sc_buf_printf(out,
                                "# HELP semcached_saved_tokens_total Tokens not sent upstream thanks to hits.\n"
                                "# TYPE semcached_saved_tokens_total counter\n"
                                "semcached_saved_tokens_total{kind=\"prompt\"} %lld\n"
                                "semcached_saved_tokens_total{kind=\"completion\"} %lld\n"
                                "# HELP semcached_saved_usd_total Dollars not spent upstream thanks to hits.\n"
                                "# TYPE semcached_saved_usd_total counter\n"
                                "semcached_saved_usd_total %.6f\n"
                                "# HELP semcached_upstream_spent_usd_total Dollars spent on upstream answers.\n"
                                "# TYPE semcached_upstream_spent_usd_total counter\n"
                                "semcached_upstream_spent_usd_total %.6f\n",
                                s->saved_prompt_tokens, s->saved_completion_tokens, s->saved_usd, s->spent_usd);
    if (!rc) rc = sc_buf_puts(out, "# HELP semcached_namespace_requests_total Cache decisions by namespace.\n"
                                   "# TYPE semcached_namespace_requests_total counter\n");
    for (size_t i = 0; i < s->nns && !rc; i++)
        for (int o = 0; o < SC_OUT_COUNT && !rc; o++) {
            rc = sc_buf_puts(out, "semcached_namespace_requests_total{namespace=\"");
            if (!rc) rc = put_label(out, s->ns[i].name);
            if (!rc) rc = sc_buf_printf(out, "\",outcome=\"%s\"} %llu\n", outcome_names[o],
                                        (unsigned long long)s->ns[i].outcomes[o]);
        }
    return rc;
}
