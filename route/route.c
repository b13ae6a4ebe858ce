/* The router: upstream and route tables built from the config, the libcurl
 * multi handle driven by libuv (socket and timer callbacks), and the state
 * machine of one call (pick target -> maybe queue for a slot -> transfer ->
 * classify -> retry, fall back, relay or finish), with the circuit breakers
 * and per-upstream stats. See route.h for the behaviour it promises.
 *
 * Callback discipline: libcurl forbids curl_multi_* calls from inside its
 * own callbacks. User callbacks that run from inside a curl callback (the
 * streamed on_headers/on_data) set call->in_cb; sc_route_cancel() then only
 * marks the call and the curl callback returns an abort value, so libcurl
 * ends the transfer and check_multi() cleans up. New calls never start
 * synchronously: sc_route_request() arms the call's timer with 0 ms. */
#include "route.h"
#include "route_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <time.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 2000
#define ERR_BODY_MAX 65536   /* kept of an error answer; the rest is dropped */
#define MSG_MAX 2048         /* the "what was tried" message */

/* ---------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------- */

typedef struct upstream {
    char *name;
    char *url;                 /* origin, no trailing '/' */
    char *key;                 /* "" = send no Authorization */
    int max_conc;              /* 0 = unlimited */
    int in_flight;
    sc_route_call *qhead, *qtail;
    int queued;
    int breaker;               /* enum sc_route_breaker */
    int fails;                 /* consecutive failed attempts */
    uint64_t opened_at;        /* uv_now() when it last opened */
    int probe_busy;            /* half-open: the probe is in flight */
    sc_route_stats st;
} upstream;

typedef struct target {
    size_t up;
    char *model;               /* NULL: pass the model through */
} target;

typedef struct rule {
    char *pattern;
    target *t;
    size_t nt;
} rule;

typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    sc_route *r;
    struct sock *prev, *next;
} sock;

struct sc_route {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    upstream *ups;
    size_t nups;
    rule *rules;
    size_t nrules;
    sc_route__price *prices;
    size_t nprices;
    long long connect_ms, fb_ms, idle_ms, max_body, retries, brk_n, brk_cool;
    sc_route_call *calls;      /* every live call */
    size_t ncalls;
    sock *socks;
    uint64_t rng;
    int destroying;
    int in_curl;               /* inside curl_multi_socket_action() */
};

enum cstate { ST_START, ST_QUEUED, ST_RUNNING, ST_FINISH, ST_DEAD };
enum kind { K_OK, K_RETRY, K_RELAY, K_FAIL };

struct sc_route_call {
    sc_route *r;
    sc_route_callbacks cb;
    void *ctx;
    sc_route_call *prev, *next;    /* r->calls */
    sc_route_call *qprev, *qnext;  /* up->qhead queue */
    /* the request, copied */
    char *method, *path, *ctype, *model, *body;
    size_t body_len;
    int want_json;
    int stream;
    char **hdrs;                   /* "Name: value" */
    size_t nhdrs;
    /* routing */
    rule *rule;
    size_t ti;                     /* current target */
    int tries;                     /* attempts made on the current target */
    char *tbody;                   /* body for the current target (may be body) */
    size_t tbody_len;
    const char *tmodel;
    size_t prepared_ti;            /* target tbody was made for, or SIZE_MAX */
    int state;
    uv_timer_t timer;
    /* current attempt */
    upstream *up;
    int probe;
    CURL *easy;
    struct curl_slist *slist;
    char errbuf[CURL_ERROR_SIZE];
    int status, hdr_done, sse, got_first, timed_out;
    size_t nhdr_lines;
    sc_buf hraw;                   /* header lines of the final block, '\0'-separated */
    sc_buf rbody;                  /* buffered answer */
    sc_route_sse scan;
    size_t recv;
    int fail_err;                  /* failure decided inside a curl callback */
    char fail_msg[200];
    char resp_ctype[128];
    /* the call */
    int committed, in_cb, cancelled;
    int attempts, fallbacks;
    long long retry_after_ms;
    uint64_t t0, t_attempt;
    double first_byte_ms;
    size_t delivered;
    int last_err, last_status;
    const char *last_up;
    sc_route_usage usage;
    sc_buf msg;
};

static void start_target(sc_route_call *c);
static void check_multi(sc_route *r);
static void pump_queue(upstream *up);
static void cancel_now(sc_route_call *c);

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------- */

static double ms_since(uint64_t t_ns)
{
    return (double)(uv_hrtime() - t_ns) / 1e6;
}

static uint64_t rnd(sc_route *r)
{
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void note(sc_route_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(sc_route_call *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->msg.len) sc_buf_puts(&c->msg, "; ");
    if (sc_buf_puts(&c->msg, line) != SC_OK && c->msg.len + 4 <= c->msg.max)
        sc_buf_puts(&c->msg, "...");
}

static upstream *find_up(sc_route *r, const char *name, size_t *idx)
{
    for (size_t i = 0; i < r->nups; i++)
        if (strcmp(r->ups[i].name, name) == 0) {
            if (idx) *idx = i;
            return &r->ups[i];
        }
    return NULL;
}

static int valid_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return 0;
    return 1;
}

static int split_ws(char *s, char **tok, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == max) return max + 1;
        tok[n++] = t;
    }
    return n;
}

/* ---------------------------------------------------------------------
 * Config: upstreams, routes, prices
 * ------------------------------------------------------------------- */

static void add_up(sc_route *r, const char *name, const char *url, const char *key, int max_conc)
{
    r->ups = sc_realloc(r->ups, (r->nups + 1) * sizeof *r->ups);
    upstream *u = &r->ups[r->nups++];
    memset(u, 0, sizeof *u);
    u->name = sc_strdup(name);
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    u->url = sc_strndup(url, n);
    u->key = sc_strdup(key ? key : "");
    u->max_conc = max_conc;
}

static int parse_upstream_def(sc_route *r, const char *val, char *err, size_t errlen)
{
    char *s = sc_strdup(val), *tok[5];
    int n = split_ws(s, tok, 4), rc = SC_EINVAL;
    long conc = 0;
    if (n < 3 || n > 4) {
        set_err(err, errlen, "upstream-def \"%s\": want NAME URL KEY_ENV [MAX_CONCURRENT]", val);
    } else if (!valid_name(tok[0])) {
        set_err(err, errlen, "upstream-def \"%s\": name must be letters, digits, '-', '_' or '.'", val);
    } else if (find_up(r, tok[0], NULL)) {
        set_err(err, errlen, "upstream-def \"%s\": upstream %s defined twice", val, tok[0]);
    } else if (strncmp(tok[1], "http://", 7) != 0 && strncmp(tok[1], "https://", 8) != 0) {
        set_err(err, errlen, "upstream-def \"%s\": URL must start with http:// or https://", val);
    } else {
        char *end = NULL;
        if (n == 4) conc = strtol(tok[3], &end, 10);
        if (n == 4 && (*end || conc < 0 || conc > 100000)) {
            set_err(err, errlen, "upstream-def \"%s\": MAX_CONCURRENT must be 0..100000", val);
        } else {
            const char *key = "";
            if (strcmp(tok[2], "-") != 0) {
                key = getenv(tok[2]);
                if (!key) {
                    sc_warn("upstream %s: environment variable %s is not set; no API key sent", tok[0], tok[2]);
                    key = "";
                }
            }
            add_up(r, tok[0], tok[1], key, (int)conc);
            rc = SC_OK;
        }
    }
    free(s);
    return rc;
}

static int parse_route(sc_route *r, const char *val, char *err, size_t errlen)
{
    char *s = sc_strdup(val);
    char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    char *pat = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    int rc = SC_EINVAL;
    if (!*p || p == pat) {
        set_err(err, errlen, "route \"%s\": want MODEL_PATTERN UPSTREAM[:MODEL],...", val);
        free(s);
        return rc;
    }
    *p++ = '\0';
    rule ru = {.pattern = sc_strdup(pat)};
    for (char *save = NULL, *t = strtok_r(p, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t tl = strlen(t);
        while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) t[--tl] = '\0';
        if (!tl) continue;
        char *colon = strchr(t, ':');
        if (colon) *colon = '\0';
        size_t idx;
        if (!find_up(r, t, &idx)) {
            set_err(err, errlen, "route \"%s\": unknown upstream \"%s\" (define it with upstream-def)", val, t);
            goto fail;
        }
        if (colon && (!colon[1] || strchr(colon + 1, ' '))) {
            set_err(err, errlen, "route \"%s\": bad model after \"%s:\"", val, t);
            goto fail;
        }
        ru.t = sc_realloc(ru.t, (ru.nt + 1) * sizeof *ru.t);
        ru.t[ru.nt++] = (target){idx, colon ? sc_strdup(colon + 1) : NULL};
    }
    if (!ru.nt) {
        set_err(err, errlen, "route \"%s\": no upstream listed", val);
        goto fail;
    }
    r->rules = sc_realloc(r->rules, (r->nrules + 1) * sizeof *r->rules);
    r->rules[r->nrules++] = ru;
    free(s);
    return SC_OK;
fail:
    for (size_t i = 0; i < ru.nt; i++) free(ru.t[i].model);
    free(ru.t);
    free(ru.pattern);
    free(s);
    return rc;
}

const sc_route__price *sc_route__overrides(const sc_route *r, size_t *n)
{
    *n = r ? r->nprices : 0;
    return r ? r->prices : NULL;
}

/* ---------------------------------------------------------------------
 * libcurl <-> libuv
 * ------------------------------------------------------------------- */

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_close(sc_route *r, sock *k)
{
    if (k->prev) k->prev->next = k->next;
    else r->socks = k->next;
    if (k->next) k->next->prev = k->prev;
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock *k = h->data;
    sc_route *r = k->r;
    int flags = 0, running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    r->in_curl = 1;
    curl_multi_socket_action(r->multi, k->fd, flags, &running);
    r->in_curl = 0;
    check_multi(r);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    sc_route *r = userp;
    sock *k = sockp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            curl_multi_assign(r->multi, s, NULL);
            sock_close(r, k);
        }
        return 0;
    }
    if (!k) {
        k = SC_NEW(sock);
        k->fd = s;
        k->r = r;
        int rc = uv_poll_init_socket(r->loop, &k->poll, s);
        if (rc) {
            sc_error("route: uv_poll_init_socket(%d): %s", (int)s, uv_strerror(rc));
            free(k);
            return -1;
        }
        k->poll.data = k;
        k->next = r->socks;
        if (r->socks) r->socks->prev = k;
        r->socks = k;
        curl_multi_assign(r->multi, s, k);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&k->poll, ev, on_poll);
    return 0;
}

static void on_route_timer(uv_timer_t *t)
{
    sc_route *r = t->data;
    int running;
    r->in_curl = 1;
    curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    r->in_curl = 0;
    check_multi(r);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    sc_route *r = userp;
    (void)m;
    if (r->destroying) return 0;
    if (timeout_ms < 0) uv_timer_stop(&r->timer);
    else uv_timer_start(&r->timer, on_route_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---------------------------------------------------------------------
 * Breakers
 * ------------------------------------------------------------------- */

static int breaker_allow(sc_route *r, upstream *u, int *probe)
{
    *probe = 0;
    switch (u->breaker) {
    case SC_ROUTE_CLOSED:
        return 1;
    case SC_ROUTE_OPEN:
        if (uv_now(r->loop) - u->opened_at < (uint64_t)r->brk_cool) return 0;
        u->breaker = SC_ROUTE_HALF_OPEN;
        sc_info("route: upstream %s half-open, sending a probe", u->name);
        /* fall through */
    default:
        if (u->probe_busy) return 0;
        u->probe_busy = 1;
        *probe = 1;
        return 1;
    }
}

static void release_probe(sc_route_call *c)
{
    if (c->probe && c->up) c->up->probe_busy = 0;
    c->probe = 0;
}

static void breaker_result(sc_route_call *c, int ok)
{
    sc_route *r = c->r;
    upstream *u = c->up;
    release_probe(c);
    if (ok) {
        u->fails = 0;
        if (u->breaker != SC_ROUTE_CLOSED) sc_info("route: upstream %s breaker closed", u->name);
        u->breaker = SC_ROUTE_CLOSED;
        return;
    }
    u->fails++;
    if (u->breaker == SC_ROUTE_HALF_OPEN || (u->breaker == SC_ROUTE_CLOSED && u->fails >= r->brk_n)) {
        u->breaker = SC_ROUTE_OPEN;
        u->opened_at = uv_now(r->loop);
        u->st.breaker_opens++;
        sc_warn("route: upstream %s breaker open after %d consecutive failures", u->name, u->fails);
    } else if (u->breaker == SC_ROUTE_OPEN) {
        u->opened_at = uv_now(r->loop);
    }
}

/* ---------------------------------------------------------------------
 * Call lifetime
 * ------------------------------------------------------------------- */

static void on_call_closed(uv_handle_t *h)
{
    sc_route_call *c = h->data;
    free(c);
}

static void queue_unlink(sc_route_call *c)
{
    upstream *u = c->up;
    if (c->qprev) c->qprev->qnext = c->qnext;
    else u->qhead = c->qnext;
    if (c->qnext) c->qnext->qprev = c->qprev;
    else u->qtail = c->qprev;
    c->qprev = c->qnext = NULL;
    u->queued--;
}

static void free_attempt(sc_route_call *c)
{
    if (c->easy) {
        curl_multi_remove_handle(c->r->multi, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    curl_slist_free_all(c->slist);
    c->slist = NULL;
}

/* Frees everything of a call that is not running; the struct itself goes
 * when its timer handle has closed. */
static void destroy_call(sc_route_call *c)
{
    sc_route *r = c->r;
    free_attempt(c);
    if (c->prev) c->prev->next = c->next;
    else r->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    r->ncalls--;
    free(c->method);
    free(c->path);
    free(c->ctype);
    free(c->model);
    if (c->tbody != c->body) free(c->tbody);
    free(c->body);
    for (size_t i = 0; i < c->nhdrs; i++) free(c->hdrs[i]);
    free(c->hdrs);
    sc_buf_free(&c->hraw);
    sc_buf_free(&c->rbody);
    sc_route_sse_free(&c->scan);
    sc_buf_free(&c->msg);
    c->state = ST_DEAD;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_call_closed);
}

static void finish(sc_route_call *c)
{
    sc_route *r = c->r;
    sc_route_result res;
    memset(&res, 0, sizeof res);
    res.err = c->last_err;
    res.status = c->last_status;
    res.headers_sent = c->committed;
    res.message = c->msg.data ? c->msg.data : "";
    res.upstream = c->last_up ? c->last_up : "";
    res.model = c->tmodel ? c->tmodel : (c->model ? c->model : "");
    res.attempts = c->attempts;
    res.fallbacks = c->fallbacks;
    res.retry_after_ms = c->retry_after_ms;
    res.total_ms = ms_since(c->t0);
    res.first_byte_ms = c->first_byte_ms;
    res.bytes = c->delivered;
    res.usage = c->usage;
    res.cost_usd = -1;
    if (c->usage.found) {
        const char *m = c->usage.model[0] ? c->usage.model : res.model;
        res.cost_usd = sc_route_cost(r, m, c->usage.prompt_tokens, c->usage.completion_tokens);
        if (res.cost_usd < 0 && m != res.model)
            res.cost_usd = sc_route_cost(r, res.model, c->usage.prompt_tokens, c->usage.completion_tokens);
    }
    if (c->up) {
        c->up->st.prompt_tokens += (uint64_t)(c->usage.prompt_tokens > 0 ? c->usage.prompt_tokens : 0);
        c->up->st.completion_tokens += (uint64_t)(c->usage.completion_tokens > 0 ? c->usage.completion_tokens : 0);
        if (res.cost_usd > 0) c->up->st.cost_usd += res.cost_usd;
    }
    if (!c->cancelled && c->cb.on_done) {
        c->in_cb = 1;
        c->cb.on_done(c->ctx, &res);
        c->in_cb = 0;
    }
    destroy_call(c);
}

static void on_call_timer(uv_timer_t *t);

/* ---------------------------------------------------------------------
 * One attempt: build and start the transfer
 * ------------------------------------------------------------------- */

/* Makes the body for target ti: the original, or with "model" rewritten. */
static void prepare_body(sc_route_call *c)
{
    if (c->prepared_ti == c->ti) return;
    c->prepared_ti = c->ti;
    if (c->tbody != c->body) free(c->tbody);
    c->tbody = c->body;
    c->tbody_len = c->body_len;
    target *t = &c->rule->t[c->ti];
    c->tmodel = t->model ? t->model : c->model;
    if (!t->model || !c->body_len) return;
    json_error_t e;
    json_t *root = json_loadb(c->body, c->body_len, 0, &e);
    if (json_is_object(root)) {
        json_object_set_new(root, "model", json_string(t->model));
        char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) {
            c->tbody = s;
            c->tbody_len = strlen(s);
        }
    }
    json_decref(root);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud);
static size_t on_write(char *p, size_t size, size_t nmemb, void *ud);

static void launch(sc_route_call *c)
{
    sc_route *r = c->r;
    upstream *u = c->up;
    c->status = c->hdr_done = c->sse = c->got_first = c->timed_out = 0;
    c->nhdr_lines = 0;
    c->recv = 0;
    c->fail_err = 0;
    c->fail_msg[0] = c->errbuf[0] = c->resp_ctype[0] = '\0';
    sc_buf_reset(&c->hraw);
    sc_buf_reset(&c->rbody);
    sc_route_sse_free(&c->scan);
    sc_route_sse_init(&c->scan, (size_t)r->max_body);
    c->retry_after_ms = -1;
    c->last_up = u->name;

    CURL *e = curl_easy_init();
    if (!e) sc_panic("curl_easy_init failed");
    c->easy = e;
    sc_buf url;
    sc_buf_init(&url, 8192);
    const char *path = c->path;
    size_t ul = strlen(u->url);
    /* "https://host/v1" + "/v1/chat/completions": do not double the /v1. */
    if (ul >= 3 && strcmp(u->url + ul - 3, "/v1") == 0 && strncmp(path, "/v1/", 4) == 0) path += 3;
    sc_buf_printf(&url, "%s%s", u->url, path);
    curl_easy_setopt(e, CURLOPT_URL, url.data ? url.data : "");
    sc_buf_free(&url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_ms);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "semcached/0.1");
    if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->tbody_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->tbody ? c->tbody : "");
    } else if (strcmp(c->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
        if (c->tbody_len) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->tbody_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->tbody);
        }
    }
    char line[1024];
    struct curl_slist *sl = NULL;
    if (u->key[0]) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", u->key);
        sl = curl_slist_append(sl, line);
    }
    if (c->body_len || c->ctype) {
        snprintf(line, sizeof line, "Content-Type: %s", c->ctype ? c->ctype : "application/json");
        sl = curl_slist_append(sl, line);
    }
    sl = curl_slist_append(sl, c->stream ? "Accept: text/event-stream" : "Accept: application/json");
    sl = curl_slist_append(sl, "Expect:");
    for (size_t i = 0; i < c->nhdrs; i++) sl = curl_slist_append(sl, c->hdrs[i]);
    c->slist = sl;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);

    if (c->tries) u->st.retries++;
    u->st.calls++;
    u->in_flight++;
    c->attempts++;
    c->state = ST_RUNNING;
    c->t_attempt = uv_hrtime();
    uv_timer_start(&c->timer, on_call_timer, (uint64_t)r->fb_ms, 0);
    CURLMcode mc = curl_multi_add_handle(r->multi, e);
    if (mc != CURLM_OK) sc_panic("curl_multi_add_handle: %s", curl_multi_strerror(mc));
}

/* Picks the next usable target from c->ti on and starts (or queues) an
 * attempt; finishes the call when none is left. */
static void start_target(sc_route_call *c)
{
    sc_route *r = c->r;
    while (c->ti < c->rule->nt) {
        upstream *u = &r->ups[c->rule->t[c->ti].up];
        int probe;
        if (!breaker_allow(r, u, &probe)) {
            u->st.skipped_open++;
            note(c, "%s: skipped, breaker open", u->name);
            c->ti++;
            c->tries = 0;
            continue;
        }
        prepare_body(c);
        c->up = u;
        c->probe = probe;
        if (u->max_conc && u->in_flight >= u->max_conc) {
            c->state = ST_QUEUED;
            c->qprev = u->qtail;
            c->qnext = NULL;
            if (u->qtail) u->qtail->qnext = c;
            else u->qhead = c;
            u->qtail = c;
            u->queued++;
            uv_timer_start(&c->timer, on_call_timer, (uint64_t)r->fb_ms, 0);
            return;
        }
        launch(c);
        return;
    }
    if (!c->attempts) {
        c->last_err = c->rule->nt ? SC_EBUSY : SC_ENOTFOUND;
        note(c, "no upstream available");
    }
    finish(c);
}

static void pump_queue(upstream *u)
{
    if (u->qhead && u->qhead->r->destroying) return;
    while (u->qhead && (!u->max_conc || u->in_flight < u->max_conc)) {
        sc_route_call *c = u->qhead;
        queue_unlink(c);
        launch(c);
    }
}

/* ---------------------------------------------------------------------
 * Transfer callbacks (inside libcurl: no curl_multi_* here)
 * ------------------------------------------------------------------- */

static void attempt_fail_in_cb(sc_route_call *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void attempt_fail_in_cb(sc_route_call *c, int err, const char *fmt, ...)
{
    c->fail_err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
    va_end(ap);
}

static void first_byte(sc_route_call *c)
{
    if (c->got_first) return;
    c->got_first = 1;
}

static void rearm_idle(sc_route_call *c)
{
    uv_timer_start(&c->timer, on_call_timer, (uint64_t)c->r->idle_ms, 0);
}

long long sc_route__parse_retry_after(const char *v, int ms)
{
    const long long day = 86400000;
    while (*v == ' ') v++;
    char *end;
    double x = strtod(v, &end);
    if (end != v && x >= 0) {
        /* "1e300" or "inf" would not fit a long long (converting it is
         * undefined); anything past a day is "too long" all the same. */
        double d = ms ? x : x * 1000.0;
        return d < (double)day ? (long long)d : day;
    }
    if (end != v) return -1;   /* negative, or "nan" */
    time_t t = curl_getdate(v, NULL);
    if (t < 0) return -1;
    /* In seconds first: curl takes years up to 2^31, whose milliseconds
     * would overflow. */
    long long s = (long long)t - (long long)time(NULL);
    return s <= 0 ? 0 : s >= day / 1000 ? day : s * 1000;
}

/* Commits a streamed attempt: the caller sees its headers from now on. */
static void deliver_headers(sc_route_call *c);

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    sc_route_call *c = ud;
    size_t n = size * nmemb;
    if (c->cancelled) return 0;
    if (!c->got_first) {
        first_byte(c);
        rearm_idle(c);
    }
    size_t l = n;
    while (l && (p[l - 1] == '\n' || p[l - 1] == '\r')) l--;
    if (l >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new header block (after 1xx, or the first). */
        sc_buf_reset(&c->hraw);
        c->nhdr_lines = 0;
        const char *sp = memchr(p, ' ', l);
        c->status = sp ? atoi(sp + 1) : 0;
        c->hdr_done = 0;
        return n;
    }
    if (l == 0) {
        if (c->status >= 100 && c->status < 200) return n;
        if (c->hdr_done) return n; /* trailers */
        c->hdr_done = 1;
        c->sse = c->status >= 200 && c->status < 300 &&
                 strncasecmp(c->resp_ctype, "text/event-stream", 17) == 0;
        if (c->sse) {
            c->in_cb = 1;
            deliver_headers(c);
            c->in_cb = 0;
            if (c->cancelled) return 0;
        }
        return n;
    }
    if (c->hdr_done) return n;
    if (++c->nhdr_lines > SC_ROUTE_MAX_HEADERS || sc_buf_append(&c->hraw, p, l) || sc_buf_append(&c->hraw, "", 1)) {
        attempt_fail_in_cb(c, SC_ETOOBIG, "%s: response headers too large", c->up->name);
        return 0;
    }
    const char *colon = memchr(p, ':', l);
    if (colon) {
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < p + l && (*v == ' ' || *v == '\t')) v++;
        size_t vl = (size_t)(p + l - v);
        char val[128];
        if (vl >= sizeof val) vl = sizeof val - 1;
        memcpy(val, v, vl);
        val[vl] = '\0';
        if (nl == 12 && strncasecmp(p, "content-type", 12) == 0) memcpy(c->resp_ctype, val, vl + 1);
        else if (nl == 11 && strncasecmp(p, "retry-after", 11) == 0) c->retry_after_ms = sc_route__parse_retry_after(val, 0);
        else if (nl == 14 && strncasecmp(p, "retry-after-ms", 14) == 0) c->retry_after_ms = sc_route__parse_retry_after(val, 1);
    }
    return n;
}

static int hop_by_hop(const char *name)
{
    static const char *const drop[] = {"connection", "keep-alive", "transfer-encoding", "content-length",
                                       "te", "trailer", "upgrade", "proxy-authenticate", "proxy-connection"};
    for (size_t i = 0; i < SC_COUNTOF(drop); i++)
        if (strcasecmp(name, drop[i]) == 0) return 1;
    return 0;
}

static void deliver_headers(sc_route_call *c)
{
    sc_route_header hs[SC_ROUTE_MAX_HEADERS];
    size_t nh = 0;
    char *p = c->hraw.data, *end = p ? p + c->hraw.len : NULL;
    while (p && p < end) {
        size_t l = strlen(p);
        char *colon = strchr(p, ':');
        if (colon && nh < SC_COUNTOF(hs)) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            if (!hop_by_hop(p)) hs[nh++] = (sc_route_header){p, v};
        }
        p += l + 1;
    }
    c->committed = 1;
    c->first_byte_ms = ms_since(c->t0);
    c->last_status = c->status;
    if (c->cb.on_headers)
        c->cb.on_headers(c->ctx, c->status, c->resp_ctype[0] ? c->resp_ctype : "application/octet-stream", hs, nh);
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    sc_route_call *c = ud;
    size_t n = size * nmemb;
    if (c->cancelled) return 0;
    first_byte(c);
    rearm_idle(c);
    c->recv += n;
    if (c->recv > (size_t)c->r->max_body) {
        attempt_fail_in_cb(c, SC_ETOOBIG, "%s: answer larger than max-upstream-body (%lld bytes)",
                           c->up->name, c->r->max_body);
        return 0;
    }
    if (c->committed) {
        if (sc_route_sse_feed(&c->scan, p, n) != SC_OK) {
            attempt_fail_in_cb(c, SC_ETOOBIG, "%s: SSE line too long", c->up->name);
            return 0;
        }
        c->delivered += n;
        if (c->cb.on_data) {
            c->in_cb = 1;
            c->cb.on_data(c->ctx, p, n);
            c->in_cb = 0;
        }
        return c->cancelled ? 0 : n;
    }
    if (c->status >= 200 && c->status < 300) {
        if (sc_buf_append(&c->rbody, p, n) != SC_OK) {
            attempt_fail_in_cb(c, SC_ETOOBIG, "%s: answer larger than max-upstream-body", c->up->name);
            return 0;
        }
    } else if (c->rbody.len < ERR_BODY_MAX) {
        size_t k = ERR_BODY_MAX - c->rbody.len;
        sc_buf_append(&c->rbody, p, n < k ? n : k);
    }
    return n;
}

/* ---------------------------------------------------------------------
 * One attempt: classify its end and decide what comes next
 * ------------------------------------------------------------------- */

static int retryable_status(int s)
{
    return s == 408 || s == 429 || s >= 500;
}

/* Delivers a buffered answer (2xx or relayed error) and finishes. */
static void deliver_buffered(sc_route_call *c)
{
    c->in_cb = 1;
    deliver_headers(c);
    c->in_cb = 0;
    if (!c->cancelled && c->rbody.len && c->cb.on_data) {
        c->delivered += c->rbody.len;
        c->in_cb = 1;
        c->cb.on_data(c->ctx, c->rbody.data, c->rbody.len);
        c->in_cb = 0;
    }
    if (c->cancelled) {
        destroy_call(c);
        return;
    }
    finish(c);
}

/* Leaves the current target for the next one (a fallback when one is left). */
static void move_on(sc_route_call *c)
{
    c->ti++;
    c->tries = 0;
    if (c->ti < c->rule->nt) {
        c->up->st.fallbacks++;
        c->fallbacks++;
    }
    start_target(c);
}

static void attempt_end(sc_route_call *c, CURLcode cc)
{
    sc_route *r = c->r;
    upstream *u = c->up;
    free_attempt(c);
    uv_timer_stop(&c->timer);
    u->in_flight--;
    double lat = ms_since(c->t_attempt);
    u->st.latency_ms_sum += lat;
    u->st.latency_count++;
    if (c->cancelled) {
        release_probe(c);
        pump_queue(u);
        destroy_call(c);
        return;
    }
    c->last_status = c->status;
    int kind, err = 0;
    char what[300];
    what[0] = '\0';
    if (c->fail_err) {
        err = c->fail_err;
        snprintf(what, sizeof what, "%s", c->fail_msg);
        u->st.err_toobig++;
        kind = c->committed ? K_FAIL : K_RETRY;
    } else if (c->timed_out || cc == CURLE_OPERATION_TIMEDOUT) {
        err = SC_ETIMEOUT;
        u->st.err_timeout++;
        if (c->timed_out == 2)
            snprintf(what, sizeof what, "%s: no data for %lld ms", u->name, r->idle_ms);
        else if (c->timed_out == 1)
            snprintf(what, sizeof what, "%s: no first byte within %lld ms", u->name, r->fb_ms);
        else
            snprintf(what, sizeof what, "%s: timed out (%s)", u->name, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        kind = c->committed ? K_FAIL : K_RETRY;
    } else if (cc != CURLE_OK) {
        const char *m = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
        if (c->committed || c->hdr_done) {
            err = SC_EPROTO;
            u->st.err_proto++;
            snprintf(what, sizeof what, "%s: answer cut short (%s)", u->name, m);
        } else {
            err = SC_EUPSTREAM;
            u->st.err_connect++;
            snprintf(what, sizeof what, "%s: connection failed (%s)", u->name, m);
        }
        kind = c->committed ? K_FAIL : K_RETRY;
    } else if (c->committed) {
        if (c->scan.done && !c->scan.error) {
            kind = K_OK;
            snprintf(what, sizeof what, "%s: HTTP %d stream", u->name, c->status);
        } else {
            err = c->scan.error ? SC_EUPSTREAM : SC_EPROTO;
            u->st.err_proto++;
            snprintf(what, sizeof what, "%s: %s", u->name,
                     c->scan.error ? "error event in the stream" : "stream ended without data: [DONE]");
            kind = K_FAIL;
        }
        c->usage = c->scan.usage;
    } else if (c->status >= 200 && c->status < 300) {
        kind = K_OK;
        if (c->want_json && !strcasestr(c->resp_ctype, "json")) {
            err = SC_EPROTO;
            u->st.err_proto++;
            snprintf(what, sizeof what, "%s: HTTP %d that is not JSON (Content-Type: %.60s)", u->name, c->status,
                     c->resp_ctype[0] ? c->resp_ctype : "none");
            kind = K_RETRY;
        } else if (strcasestr(c->resp_ctype, "json")) {
            int rc = sc_route_usage_from_json(c->rbody.data ? c->rbody.data : "", c->rbody.len, &c->usage);
            if (rc == SC_EPROTO) {
                err = SC_EPROTO;
                u->st.err_proto++;
                snprintf(what, sizeof what, "%s: HTTP %d with invalid JSON", u->name, c->status);
                kind = K_RETRY;
            }
        }
        if (kind == K_OK) snprintf(what, sizeof what, "%s: HTTP %d", u->name, c->status);
    } else if (retryable_status(c->status)) {
        err = c->status == 408 ? SC_ETIMEOUT : SC_EUPSTREAM;
        if (c->status == 429) u->st.err_429++;
        else u->st.err_5xx++;
        snprintf(what, sizeof what, "%s: HTTP %d", u->name, c->status);
        kind = K_RETRY;
    } else if (c->status >= 300) {
        err = SC_EUPSTREAM;
        u->st.err_4xx++;
        snprintf(what, sizeof what, "%s: HTTP %d (relayed)", u->name, c->status);
        kind = K_RELAY;
    } else {
        err = SC_EPROTO;
        u->st.err_proto++;
        snprintf(what, sizeof what, "%s: no HTTP status", u->name);
        kind = K_RETRY;
    }
    note(c, "%s", what);
    c->last_err = err;
    int ok = kind == K_OK || kind == K_RELAY;
    if (ok) u->st.ok++;
    breaker_result(c, ok);
    pump_queue(u);

    switch (kind) {
    case K_OK:
    case K_RELAY:
        if (c->committed) finish(c);
        else deliver_buffered(c);
        return;
    case K_FAIL:
        finish(c);
        return;
    default:
        break;
    }
    /* Retry the same target, or fall back to the next one. */
    c->tries++;
    long long ra = c->retry_after_ms;
    int next = c->tries > r->retries || (ra > SC_ROUTE_RETRY_AFTER_CAP_MS);
    if (!next) {
        long long cap = BACKOFF_BASE_MS << (c->tries - 1 < 10 ? c->tries - 1 : 10);
        if (cap > BACKOFF_CAP_MS) cap = BACKOFF_CAP_MS;
        long long d = (long long)(rnd(r) % (uint64_t)(cap + 1));
        if (ra > d) d = ra;
        c->state = ST_START;
        uv_timer_start(&c->timer, on_call_timer, (uint64_t)d, 0);
        return;
    }
    if (ra > SC_ROUTE_RETRY_AFTER_CAP_MS) note(c, "%s: Retry-After %lld ms is over the cap", u->name, ra);
    move_on(c);
}

static void check_multi(sc_route *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        sc_route_call *c = (sc_route_call *)(void *)priv;
        sc_assert(c && c->easy == e);
        attempt_end(c, cc);
    }
}

static void on_call_timer(uv_timer_t *t)
{
    sc_route_call *c = t->data;
    if (c->cancelled) {
        cancel_now(c);
        return;
    }
    switch (c->state) {
    case ST_START:
        start_target(c);
        break;
    case ST_QUEUED: {
        upstream *u = c->up;
        queue_unlink(c);
        release_probe(c);
        u->st.err_timeout++;
        note(c, "%s: no free slot (max %d concurrent) within %lld ms", u->name, u->max_conc, c->r->fb_ms);
        c->last_err = SC_ETIMEOUT;
        move_on(c);
        break;
    }
    case ST_RUNNING:
        c->timed_out = c->got_first ? 2 : 1;
        attempt_end(c, CURLE_OPERATION_TIMEDOUT);
        break;
    case ST_FINISH:
        finish(c);
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------- */

/* Frees the route and what its config parse allocated. */
static void route_free(sc_route *r)
{
    for (size_t i = 0; i < r->nups; i++) {
        free(r->ups[i].name);
        free(r->ups[i].url);
        free(r->ups[i].key);
    }
    for (size_t i = 0; i < r->nrules; i++) {
        for (size_t j = 0; j < r->rules[i].nt; j++) free(r->rules[i].t[j].model);
        free(r->rules[i].t);
        free(r->rules[i].pattern);
    }
    for (size_t i = 0; i < r->nprices; i++) free((char *)r->prices[i].model);
    free(r->prices);
    free(r->rules);
    free(r->ups);
    free(r);
}

int sc_route_create(uv_loop_t *loop, const sc_config *cfg, sc_route **out, char *err, size_t errlen)
{
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            set_err(err, errlen, "curl_global_init failed");
            return SC_EIO;
        }
        curl_ready = 1;
    }
    sc_route *r = SC_NEW(sc_route);
    r->loop = loop;
    r->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
    r->fb_ms = cfg->first_byte_timeout_ms > 0 ? cfg->first_byte_timeout_ms : 120000;
    r->idle_ms = cfg->upstream_idle_timeout_ms > 0 ? cfg->upstream_idle_timeout_ms : 60000;
    r->max_body = cfg->max_upstream_body > 0 ? cfg->max_upstream_body : (16 << 20);
    r->retries = cfg->retries >= 0 ? cfg->retries : 0;
    r->brk_n = cfg->breaker_failures > 0 ? cfg->breaker_failures : 5;
    r->brk_cool = cfg->breaker_cooldown_ms > 0 ? cfg->breaker_cooldown_ms : 10000;
    r->rng = uv_hrtime() | 1;
    int rc = SC_OK;
    for (size_t i = 0; i < cfg->upstream_defs.n && !rc; i++)
        rc = parse_upstream_def(r, cfg->upstream_defs.items[i], err, errlen);
    if (!rc && !find_up(r, "default", NULL) && cfg->upstream && cfg->upstream[0]) {
        if (strncmp(cfg->upstream, "http://", 7) != 0 && strncmp(cfg->upstream, "https://", 8) != 0) {
            set_err(err, errlen, "upstream \"%s\": URL must start with http:// or https://", cfg->upstream);
            rc = SC_EINVAL;
        } else {
            const char *key = cfg->upstream_key && cfg->upstream_key[0] ? cfg->upstream_key : NULL;
            if (!key && cfg->upstream_key_env && cfg->upstream_key_env[0]) key = getenv(cfg->upstream_key_env);
            add_up(r, "default", cfg->upstream, key, 0);
        }
    }
    for (size_t i = 0; i < cfg->routes.n && !rc; i++) rc = parse_route(r, cfg->routes.items[i], err, errlen);
    if (!rc) {
        size_t idx;
        if (find_up(r, "default", &idx)) {
            rule ru = {.pattern = sc_strdup("*"), .t = sc_calloc(1, sizeof(target)), .nt = 1};
            ru.t[0].up = idx;
            r->rules = sc_realloc(r->rules, (r->nrules + 1) * sizeof *r->rules);
            r->rules[r->nrules++] = ru;
        }
    }
    for (size_t i = 0; i < cfg->prices.n && !rc; i++) {
        char model[128];
        double in, o;
        if (sc_route__parse_price(cfg->prices.items[i], model, sizeof model, &in, &o) != SC_OK) {
            set_err(err, errlen, "price \"%s\": want MODEL USD_PER_M_INPUT USD_PER_M_OUTPUT", cfg->prices.items[i]);
            rc = SC_EINVAL;
            break;
        }
        r->prices = sc_realloc(r->prices, (r->nprices + 1) * sizeof *r->prices);
        r->prices[r->nprices++] = (sc_route__price){sc_strdup(model), in, o};
    }
    if (rc) {
        r->multi = NULL;
        route_free(r);   /* nothing was registered with the loop yet */
        return rc;
    }
    r->multi = curl_multi_init();
    if (!r->multi) sc_panic("curl_multi_init failed");
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    *out = r;
    return SC_OK;
}

static void on_route_closed(uv_handle_t *h) { route_free(h->data); }

void sc_route_destroy(sc_route *r)
{
    if (!r) return;
    r->destroying = 1;
    while (r->calls) {
        sc_route_call *c = r->calls;
        c->in_cb = 0;
        sc_route_cancel(c);
    }
    r->destroying = 1;
    curl_multi_cleanup(r->multi);
    r->multi = NULL;
    while (r->socks) sock_close(r, r->socks);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_route_closed);
}

int sc_route_request(sc_route *r, const sc_route_req *req, const sc_route_callbacks *cb,
                     void *ctx, sc_route_call **handle)
{
    if (handle) *handle = NULL;
    if (!r || !req || !req->path || req->path[0] != '/' || !cb || r->destroying) return SC_EINVAL;
    sc_route_call *c = SC_NEW(sc_route_call);
    c->r = r;
    c->cb = *cb;
    c->ctx = ctx;
    c->method = sc_strdup(req->method ? req->method : "POST");
    c->path = sc_strdup(req->path);
    c->ctype = req->content_type ? sc_strdup(req->content_type) : NULL;
    if (req->body_len) c->body = sc_strndup(req->body, req->body_len);
    c->body_len = req->body_len;
    c->tbody = c->body;
    c->tbody_len = c->body_len;
    c->stream = req->stream;
    c->want_json = req->want_json;
    c->prepared_ti = (size_t)-1;
    c->first_byte_ms = -1;
    c->retry_after_ms = -1;
    c->t0 = uv_hrtime();
    sc_buf_init(&c->hraw, SC_ROUTE_MAX_HEADER_BYTES);
    sc_buf_init(&c->rbody, (size_t)r->max_body);
    sc_buf_init(&c->msg, MSG_MAX);
    sc_route_sse_init(&c->scan, (size_t)r->max_body);
    if (req->model) {
        c->model = sc_strdup(req->model);
    } else if (c->body_len) {
        json_error_t e;
        json_t *root = json_loadb(c->body, c->body_len, 0, &e);
        json_t *m = json_object_get(root, "model");
        if (json_is_string(m)) c->model = sc_strdup(json_string_value(m));
        json_decref(root);
    }
    if (!c->model) c->model = sc_strdup("");
    c->tmodel = c->model;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *n = req->headers[i].name, *v = req->headers[i].value;
        static const char *const drop[] = {"authorization", "host", "content-length", "connection",
                                           "transfer-encoding", "accept-encoding", "expect", "keep-alive",
                                           "te", "upgrade", "content-type", "accept", "proxy-authorization",
                                           "proxy-connection", "cookie"};
        int skip = !n || !v || strchr(n, '\r') || strchr(n, '\n') || strchr(v, '\r') || strchr(v, '\n') ||
                   strncasecmp(n, "x-semcache", 10) == 0;
        for (size_t j = 0; !skip && j < SC_COUNTOF(drop); j++) skip = strcasecmp(n, drop[j]) == 0;
        if (skip) continue;
        size_t l = strlen(n) + strlen(v) + 3;
        char *h = sc_malloc(l);
        snprintf(h, l, "%s: %s", n, v);
        c->hdrs = sc_realloc(c->hdrs, (c->nhdrs + 1) * sizeof *c->hdrs);
        c->hdrs[c->nhdrs++] = h;
    }
    static rule none = {"", NULL, 0};
    c->rule = &none;
    for (size_t i = 0; i < r->nrules; i++)
        if (fnmatch(r->rules[i].pattern, c->model, 0) == 0) {
            c->rule = &r->rules[i];
            break;
        }
    if (!c->rule->nt) note(c, "no route for model \"%s\"", c->model);
    uv_timer_init(r->loop, &c->timer);
    c->timer.data = c;
    c->next = r->calls;
    if (r->calls) r->calls->prev = c;
    r->calls = c;
    r->ncalls++;
    c->state = ST_START;
    uv_timer_start(&c->timer, on_call_timer, 0, 0);
    if (handle) *handle = c;
    return SC_OK;
}

void sc_route_cancel(sc_route_call *c)
{
    if (!c || c->state == ST_DEAD || c->cancelled) return;
    c->cancelled = 1;
    if (c->in_cb) return; /* the running callback aborts; cleanup follows */
    if (c->state == ST_RUNNING && c->r->in_curl) {
        /* Called from another call's curl callback: libcurl forbids
         * removing a handle now, so finish the cancel on the next turn. */
        uv_timer_start(&c->timer, on_call_timer, 0, 0);
        return;
    }
    cancel_now(c);
}

const char *sc_route_call_upstream(const sc_route_call *c)
{
    return c && c->last_up ? c->last_up : "";
}

static void cancel_now(sc_route_call *c)
{
    switch (c->state) {
    case ST_RUNNING: {
        upstream *u = c->up;
        free_attempt(c);
        u->in_flight--;
        release_probe(c);
        pump_queue(u);
        break;
    }
    case ST_QUEUED:
        queue_unlink(c);
        release_probe(c);
        break;
    default:
        break;
    }
    destroy_call(c);
}

int sc_route_http_status(const sc_route_result *res)
{
    if (res->headers_sent) return res->status;
    if (res->err == SC_ETIMEOUT) return 504;
    if (res->status == 429) return 429;
    if (res->err == SC_EBUSY) return 503;
    return 502;
}

size_t sc_route_active(const sc_route *r)
{
    return r ? r->ncalls : 0;
}

/* ---------------------------------------------------------------------
 * Stats
 * ------------------------------------------------------------------- */

size_t sc_route_upstream_count(const sc_route *r)
{
    return r->nups;
}

int sc_route_upstream_stats(const sc_route *r, size_t i, sc_route_stats *st)
{
    if (i >= r->nups) return SC_ENOTFOUND;
    const upstream *u = &r->ups[i];
    *st = u->st;
    st->name = u->name;
    st->url = u->url;
    st->breaker = u->breaker;
    /* An open breaker whose cooldown passed reads as half-open. */
    if (u->breaker == SC_ROUTE_OPEN && uv_now(r->loop) - u->opened_at >= (uint64_t)r->brk_cool)
        st->breaker = SC_ROUTE_HALF_OPEN;
    st->in_flight = u->in_flight;
    st->queued = u->queued;
    return SC_OK;
}

const char *sc_route_breaker_name(int b)
{
    return b == SC_ROUTE_OPEN ? "open" : b == SC_ROUTE_HALF_OPEN ? "half-open" : "closed";
}

int sc_route_stats_json(const sc_route *r, sc_buf *out)
{
    int rc = sc_buf_puts(out, "[");
    for (size_t i = 0; i < r->nups && !rc; i++) {
        sc_route_stats s;
        sc_route_upstream_stats(r, i, &s);
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                              " s:s, s:i, s:i, s:f, s:I, s:I, s:f}",
                              "name", s.name, "url", s.url, "calls", (json_int_t)s.calls, "ok", (json_int_t)s.ok,
                              "err_connect", (json_int_t)s.err_connect, "err_timeout", (json_int_t)s.err_timeout,
                              "err_429", (json_int_t)s.err_429, "err_5xx", (json_int_t)s.err_5xx,
                              "err_4xx", (json_int_t)s.err_4xx, "err_proto", (json_int_t)s.err_proto,
                              "err_toobig", (json_int_t)s.err_toobig, "retries", (json_int_t)s.retries,
                              "fallbacks", (json_int_t)s.fallbacks, "skipped_open", (json_int_t)s.skipped_open,
                              "breaker_opens", (json_int_t)s.breaker_opens, "breaker", sc_route_breaker_name(s.breaker),
                              "in_flight", s.in_flight, "queued", s.queued,
                              "latency_ms_avg", s.latency_count ? s.latency_ms_sum / (double)s.latency_count : 0.0,
                              "prompt_tokens", (json_int_t)s.prompt_tokens,
                              "completion_tokens", (json_int_t)s.completion_tokens, "cost_usd", s.cost_usd);
        char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!txt) return SC_ENOMEM;
        if (i) rc = sc_buf_puts(out, ",");
        if (!rc) rc = sc_buf_puts(out, txt);
        free(txt);
    }
    return rc ? rc : sc_buf_puts(out, "]");
}

int sc_route_metrics(const sc_route *r, sc_buf *out)
{
    int rc = 0;
#define MHDR(nm, type, help)                                                                          \
    rc = rc ? rc : sc_buf_printf(out, "# HELP semcached_upstream_" nm " " help "\n# TYPE semcached_upstream_" nm " " type "\n")
#define MROW(nm, fmt, ...)                                                                          \
    for (size_t i = 0; i < r->nups && !rc; i++) {                                                    \
        sc_route_stats s;                                                                            \
        sc_route_upstream_stats(r, i, &s);                                                           \
        rc = sc_buf_printf(out, "semcached_upstream_" nm "{upstream=\"%s\"} " fmt "\n", s.name, __VA_ARGS__); \
    }
    MHDR("calls_total", "counter", "HTTP attempts started");
    MROW("calls_total", "%llu", (unsigned long long)s.calls);
    MHDR("ok_total", "counter", "attempts that ended well");
    MROW("ok_total", "%llu", (unsigned long long)s.ok);
    MHDR("errors_total", "counter", "failed attempts by kind");
    for (size_t i = 0; i < r->nups && !rc; i++) {
        sc_route_stats s;
        sc_route_upstream_stats(r, i, &s);
        rc = sc_buf_printf(out,
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"connect\"} %llu\n"
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"timeout\"} %llu\n"
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"429\"} %llu\n"
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"5xx\"} %llu\n"
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"4xx\"} %llu\n"
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"proto\"} %llu\n"
                           "semcached_upstream_errors_total{upstream=\"%s\",kind=\"toobig\"} %llu\n",
                           s.name, (unsigned long long)s.err_connect, s.name, (unsigned long long)s.err_timeout,
                           s.name, (unsigned long long)s.err_429, s.name, (unsigned long long)s.err_5xx, s.name,
                           (unsigned long long)s.err_4xx, s.name, (unsigned long long)s.err_proto, s.name,
                           (unsigned long long)s.err_toobig);
    }
    MHDR("retries_total", "counter", "attempts that were retries");
    MROW("retries_total", "%llu", (unsigned long long)s.retries);
    MHDR("fallbacks_total", "counter", "calls that fell back from this upstream");
    MROW("fallbacks_total", "%llu", (unsigned long long)s.fallbacks);
    MHDR("skipped_open_total", "counter", "calls that skipped this upstream (breaker open)");
    MROW("skipped_open_total", "%llu", (unsigned long long)s.skipped_open);
    MHDR("breaker_state", "gauge", "0 closed, 1 open, 2 half-open");
    MROW("breaker_state", "%d", s.breaker);
    MHDR("in_flight", "gauge", "transfers running");
    MROW("in_flight", "%d", s.in_flight);
    MHDR("queued", "gauge", "calls waiting for a slot");
    MROW("queued", "%d", s.queued);
    /* A summary without quantiles: rate(_sum) / rate(_count) is the mean. */
    MHDR("latency_seconds", "summary", "latency of attempts that ended (any outcome)");
    MROW("latency_seconds_sum", "%.6f", s.latency_ms_sum / 1e3);
    MROW("latency_seconds_count", "%llu", (unsigned long long)s.latency_count);
    MHDR("tokens_total", "counter", "tokens reported by the upstream");
    for (size_t i = 0; i < r->nups && !rc; i++) {
        sc_route_stats s;
        sc_route_upstream_stats(r, i, &s);
        rc = sc_buf_printf(out,
                           "semcached_upstream_tokens_total{upstream=\"%s\",kind=\"prompt\"} %llu\n"
                           "semcached_upstream_tokens_total{upstream=\"%s\",kind=\"completion\"} %llu\n",
                           s.name, (unsigned long long)s.prompt_tokens, s.name,
                           (unsigned long long)s.completion_tokens);
    }
    MHDR("cost_usd_total", "counter", "estimated spend from the price table, USD");
    MROW("cost_usd_total", "%.6f", s.cost_usd);
#undef MHDR
#undef MROW
    return rc;
}
