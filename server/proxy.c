/* The transparent caching proxy: POST /v1/chat/completions and
 * /v1/completions (ARCHITECTURE section 2), and uncached pass-through of
 * every other /v1/ path.
 *
 * Flow of a cacheable request (all on the loop thread except the lookup
 * and the write-back, which run in the thread pool):
 *   parse + validate (400) -> namespace (auth) -> fingerprint + prompt ->
 *   lookup job (exact, then semantic) -> hit: serve the entry (JSON, or
 *   replayed as SSE) -> miss: join the in-flight call for the same key if
 *   there is one (single-flight), else call the upstream through route/,
 *   relay the answer as it arrives, and store it once it completed with a
 *   2xx (streams: ended with [DONE]).
 * A client that goes away cancels its upstream call unless other clients
 * wait on the same call. */
#include "server/api.h"
#include "server/auth.h"
#include "server/cache.h"
#include "server/fingerprint.h"
#include "server/learn.h"
#include "server/memo.h"
#include "server/shadow.h"
#include "server/openai_fmt.h"
#include "server/stats.h"
#include "route/route.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/pair.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct flight flight;
typedef struct preq preq;

/* One client request through the proxy. */
struct preq {
    sc_server *srv;
    sc_http_req *req;            /* NULL once finished */
    int kind;                    /* SC_OAI_CHAT / SC_OAI_COMPLETION */
    char *ns;
    uint64_t fp;
    char *prompt;
    size_t prompt_len;
    char *model;
    int stream, include_usage;
    int no_cache, no_store, bypass;
    int overloaded;              /* the lookup skipped the semantic layer (queue wait) */
    double threshold;            /* < 0: configured */
    double max_error;            /* X-Semcache-Max-Error-Rate, < 0: not given */
    long long ttl;               /* 0: default */
    uint64_t start_ns;
    uint8_t key[16];
    char *memo_key;              /* exact-hit memo key, NULL when not memoisable */
    size_t memo_klen;
    uint64_t memo_gen;           /* cache generation before the lookup */
    sc_cache_result res;         /* lookup result (vec reused on write-back) */
    flight *fl;                  /* the call this request leads or waits on */
    const char *upstream;        /* for the access log; valid during on_up_done */
    char *body;                  /* waiters: the request, in case they must go alone */
    size_t body_len;
    preq *next_waiter;
};

/* One upstream call, shared by the leader and its waiters. */
struct flight {
    sc_server *srv;
    preq *leader;                /* NULL once the leader's client is gone */
    preq *waiters;
    sc_route_call *call;
    uint8_t key[16];
    int registered;              /* in the single-flight table */
    /* answer */
    int status;
    char *content_type;
    int streaming;               /* relaying SSE to the leader */
    sc_buf body;                 /* non-streamed answer */
    sc_oai_stream sse;           /* streamed answer being assembled */
    sc_buf relay;
    const char *upstream;        /* the upstream that answered (route's storage), NULL before */
    /* Set once the call finished and its answer is being written back:
     * the body owned by the store job, valid until the job's done() frees
     * this flight. Identical requests that missed meanwhile (the entry is
     * not in LMDB yet) are served from it instead of calling upstream. */
    const char *answer;
    size_t answer_len;
    flight *next;                /* table chain */
};

#define FLIGHT_BUCKETS 1024
static flight *flights[FLIGHT_BUCKETS];

static void preq_free(preq *p)
{
    free(p->memo_key);
    sc_cache_result_clear(&p->res);
    free(p->ns);
    free(p->prompt);
    free(p->model);
    free(p->body);
    free(p);
}

static double elapsed_s(const preq *p) { return (double)(sc_http_now_ns() - p->start_ns) / 1e9; }

/* ---------------------------------------------------------------------
 * Single-flight table (loop thread only)
 * ------------------------------------------------------------------- */

static size_t bucket_of(const uint8_t key[16]) { return ((size_t)key[0] << 8 | key[1]) % FLIGHT_BUCKETS; }

static flight *flight_find(const uint8_t key[16])
{
    for (flight *f = flights[bucket_of(key)]; f; f = f->next)
        if (memcmp(f->key, key, 16) == 0) return f;
    return NULL;
}

static void flight_unregister(flight *f)
{
    if (!f->registered) return;
    flight **pp = &flights[bucket_of(f->key)];
    while (*pp && *pp != f) pp = &(*pp)->next;
    if (*pp) *pp = f->next;
    f->registered = 0;
}

static void flight_free(flight *f)
{
    flight_unregister(f);
    free(f->content_type);
    sc_buf_free(&f->body);
    sc_buf_free(&f->relay);
    sc_oai_stream_free(&f->sse);
    free(f);
}

/* ---------------------------------------------------------------------
 * Answering
 * ------------------------------------------------------------------- */

static void record_outcome(preq *p, int outcome, long long pt, long long ct, double usd)
{
    sc_stats_outcome(p->srv->stats, p->ns, outcome, elapsed_s(p), pt, ct, usd);
    if (p->req)
        snprintf(p->req->note, sizeof p->req->note, "ns=%s outcome=%s similarity=%.4f confidence=%.4f tokens=%lld usd=%.6f",
                 p->ns, sc_outcome_name(outcome), (double)p->res.similarity, p->res.confidence, pt + ct, usd);
    if (p->req && p->upstream && *p->upstream) {
        size_t n = strlen(p->req->note);
        snprintf(p->req->note + n, sizeof p->req->note - n, " upstream=%s", p->upstream);
    }
}

static void cache_headers(char *h, size_t cap, const char *outcome, const preq *p)
{
    if (p->res.outcome != SC_CACHE_MISS)
        snprintf(h, cap, "X-Semcache: %s\r\nX-Semcache-Similarity: %.4f\r\nX-Semcache-Confidence: %.4f\r\n"
                         "X-Semcache-Entry: %llu\r\n",
                 outcome, (double)p->res.similarity, p->res.confidence, (unsigned long long)p->res.id);
    else
        snprintf(h, cap, "X-Semcache: %s\r\n", outcome);
}

/* Appends the decision's request id (a verdict names it: POST
 * /cache/feedback) to headers of capacity cap. */
static void request_header(char *h, size_t cap, uint64_t rid)
{
    if (!rid) return;
    char id[SC_LEARN_RID_LEN + 1];
    sc_learn_rid_format(rid, id);
    size_t n = strlen(h);
    snprintf(h + n, cap - n, "X-Semcache-Request: %s\r\n", id);
}

/* The headers of an answer from upstream: X-Semcache (miss or bypass) and
 * X-Semcache-Upstream naming the upstream that answered, after any
 * fallbacks. */
static void upstream_headers(char *h, size_t cap, const preq *p, const char *upstream)
{
    cache_headers(h, cap, p->bypass ? "bypass" : "miss", p);
    if (p->overloaded) {
        size_t n = strlen(h);
        snprintf(h + n, cap - n, "X-Semcache-Overload: 1\r\n");
    }
    if (upstream && *upstream) {
        size_t n = strlen(h);
        int k = snprintf(h + n, cap - n, "X-Semcache-Upstream: %s\r\n", upstream);
        if (k < 0 || (size_t)k >= cap - n) h[n] = '\0';   /* left out rather than cut mid-line */
    }
}

/* Serves a complete body (from the cache or a finished upstream call) as
 * JSON or replayed as SSE, as the request asked. */
static void serve_body(preq *p, int status, const char *body, size_t len, const char *headers)
{
    if (p->stream && status / 100 == 2) {
        sc_buf sse;
        sc_buf_init(&sse, len * 2 + 65536);
        if (sc_oai_sse_from_body(p->kind, body, len, p->include_usage, &sse) == SC_OK) {
            sc_http_respond(p->req, status, "text/event-stream", headers, sse.data, sse.len);
        } else {
            sc_http_error(p->req, 502, "server_error", "bad_entry", "cached answer could not be replayed as a stream");
        }
        sc_buf_free(&sse);
    } else {
        sc_http_respond(p->req, status, "application/json", headers, body, len);
    }
    p->req = NULL;
}

/* ---------------------------------------------------------------------
 * The exact-hit memo: identical request bytes in the same namespace get
 * the same answer without parsing, fingerprinting or reading LMDB (see
 * memo.h for when a memoised answer is trusted). The memoised value is a
 * memo_val header, then the extra headers, then the body exactly as the
 * client was sent it (JSON, or SSE for stream requests).
 * ------------------------------------------------------------------- */

typedef struct memo_val {
    uint32_t headers_len, body_len, prompt_tokens, completion_tokens;
    double usd;
    int stream;
} memo_val;

static void serve_body(preq *p, int status, const char *body, size_t len, const char *headers);

static void memo_remember(preq *p, const char *body, size_t len, const char *headers, double usd)
{
    sc_buf v;
    sc_buf_init(&v, 1u << 20);
    memo_val h = {(uint32_t)strlen(headers), 0, p->res.rec.prompt_tokens, p->res.rec.completion_tokens, usd,
                  p->stream};
    sc_buf_append(&v, &h, sizeof h);
    sc_buf_append(&v, headers, h.headers_len);
    if (p->stream) {
        size_t before = v.len;
        if (sc_oai_sse_from_body(p->kind, body, len, p->include_usage, &v)) {
            sc_buf_free(&v);
            return;
        }
        h.body_len = (uint32_t)(v.len - before);
    } else if (sc_buf_append(&v, body, len) == 0) {
        h.body_len = (uint32_t)len;
    }
    if (h.body_len && v.len == sizeof h + h.headers_len + h.body_len) {
        memcpy(v.data, &h, sizeof h);
        sc_memo_put(p->srv->memo, p->memo_key, p->memo_klen, p->memo_gen, v.data, v.len, p->res.id,
                    p->res.rec.expires, (int64_t)time(NULL));
    }
    sc_buf_free(&v);
}

/* Answers from the memo; 1 when the request was finished. */
static int memo_answer(sc_server *srv, sc_http_req *req, const char *ns, const char *key, size_t klen)
{
    sc_memo_hit hit;
    if (!sc_memo_get(srv->memo, key, klen, sc_cache_generation(srv->cache), (int64_t)time(NULL), &hit)) return 0;
    memo_val h;
    memcpy(&h, hit.val, sizeof h);
    const char *headers = hit.val + sizeof h;
    char hbuf[600];
    size_t hl = h.headers_len < 511 ? h.headers_len : 511;
    memcpy(hbuf, headers, hl);
    hbuf[hl] = '\0';
    sc_cache_note_exact_hit(srv->cache, hit.id, hit.touch);
    request_header(hbuf, sizeof hbuf, sc_cache_note_decision(srv->cache, ns, hit.id));
    sc_stats_outcome(srv->stats, ns, SC_OUT_EXACT, (double)(sc_http_now_ns() - req->start_ns_) / 1e9, h.prompt_tokens,
                     h.completion_tokens, h.usd);
    snprintf(req->note, sizeof req->note, "ns=%s outcome=hit-exact similarity=1 confidence=1 tokens=%u usd=%.6f memo=1",
             ns, h.prompt_tokens + h.completion_tokens, h.usd);
    sc_http_respond(req, 200, h.stream ? "text/event-stream" : "application/json", hbuf,
                    headers + h.headers_len, h.body_len);
    return 1;
}

static void serve_hit(preq *p)
{
    sc_record *r = &p->res.rec;
    char headers[512];
    cache_headers(headers, sizeof headers, p->res.outcome == SC_CACHE_HIT_EXACT ? "hit-exact" : "hit-semantic", p);
    int json = r->content_type && strncmp(r->content_type, "application/json", 16) == 0;
    size_t len;
    char *body = json ? NULL
                      : sc_oai_body_from_text(p->kind, p->model, r->response, r->response_len, r->prompt_tokens,
                                              r->completion_tokens, &len);
    double usd = sc_route_cost(p->srv->route, *r->model ? r->model : p->model, r->prompt_tokens, r->completion_tokens);
    record_outcome(p, p->res.outcome == SC_CACHE_HIT_EXACT ? SC_OUT_EXACT : SC_OUT_SEMANTIC, r->prompt_tokens,
                   r->completion_tokens, usd);
    const char *out = json ? r->response : body;
    size_t out_len = json ? r->response_len : len;
    /* The memo keeps the headers without the request id: each answer from
     * it is a decision of its own (memo_answer). */
    if (p->memo_key && p->res.outcome == SC_CACHE_HIT_EXACT) memo_remember(p, out, out_len, headers, usd);
    char with_id[600];
    snprintf(with_id, sizeof with_id, "%s", headers);
    request_header(with_id, sizeof with_id, p->res.rid);
    serve_body(p, 200, out, out_len, with_id);
    free(body);
    preq_free(p);
}

/* ---------------------------------------------------------------------
 * Write-back
 * ------------------------------------------------------------------- */

typedef struct store_job {
    sc_record rec;
    char *body;
    float *vec;
    char *ns, *prompt, *model;
    flight *fl;                  /* unregistered once stored */
    uint64_t cand, phash;        /* the candidate the lookup refused (0: none) */
    double score;
    int droppable;               /* its lookup found an empty partition: no vector yet */
    int dropped;                 /* overloaded: not stored (store_work) */
} store_job;

/* A miss check: the upstream answered a miss anyway, so the candidate the
 * lookup refused is compared with the fresh answer (learn.h), at no cost. */
static void miss_check(sc_cache *cache, const store_job *s)
{
    sc_record cand = {0};
    if (sc_cache_get(cache, s->cand, &cand)) return;   /* gone since */
    size_t al, bl;
    char *a = sc_cache_answer_text(&cand, &al), *b = sc_cache_answer_text(&s->rec, &bl);
    if (a && b) {
        int agree = sc_cache_answers_agree(cache, a, al, b, bl);
        sc_learn_observe(sc_cache_learn(cache), s->ns, s->cand, s->phash, s->score, agree, SC_LEARN_MISS);
    }
    free(a);
    free(b);
    sc_record_clear(&cand);
}

static void store_work(sc_job *j)
{
    store_job *s = j->data;
    /* A write-back that has to embed its prompt because its lookup found
     * an empty partition, and that waited past --max-queue-ms for a
     * worker, is dropped, as an overloaded lookup's answer is never
     * stored: nobody waits for it, and embedding is what the workers are
     * short of (counted: /stats writebacks_dropped). A no-cache refresh,
     * which asked for its answer to be stored, is always stored. */
    if (s->droppable && sc_job_waited_too_long(j)) {
        s->dropped = 1;
        atomic_fetch_add(&j->srv->writebacks_dropped, 1);
        return;
    }
    /* The client has its answer: embedding the prompt keeps to this core. */
    sc_pair_background(1);
    j->rc = sc_cache_put(j->srv->cache, &s->rec, s->vec);
    if (s->cand) miss_check(j->srv->cache, s);
    sc_pair_background(0);
}

static void store_done(sc_job *j)
{
    store_job *s = j->data;
    if (s->dropped) sc_debug("write-back dropped: it waited over --max-queue-ms");
    else if (j->rc) sc_warn("write-back failed: %s", sc_strerror(j->rc));
    if (s->fl) flight_free(s->fl);
    free(s->body);
    free(s->vec);
    free(s->ns);
    free(s->prompt);
    free(s->model);
    free(s);
}

/* Stores a finished answer (takes body); frees the flight afterwards. */
static void write_back(preq *p, flight *f, char *body, size_t len)
{
    sc_route_usage u = {0};
    sc_route_usage_from_json(body, len, &u);
    store_job *s = SC_NEW(store_job);
    s->body = body;
    s->ns = sc_strdup(p->ns);
    s->prompt = sc_strndup(p->prompt, p->prompt_len);
    s->model = sc_strdup(*u.model ? u.model : p->model);
    s->rec.ns = s->ns;
    s->rec.fp = p->fp;
    s->rec.prompt = s->prompt;
    s->rec.prompt_len = p->prompt_len;
    s->rec.response = body;
    s->rec.response_len = len;
    s->rec.content_type = "application/json";
    s->rec.model = s->model;
    s->rec.prompt_tokens = u.found && u.prompt_tokens > 0 ? (uint32_t)u.prompt_tokens : 0;
    s->rec.completion_tokens = u.found && u.completion_tokens > 0 ? (uint32_t)u.completion_tokens : 0;
    if (p->ttl > 0) s->rec.expires = sc_cache_expires_in(p->ttl);
    s->vec = p->res.vec;   /* computed by the lookup; NULL -> embedded in put */
    p->res.vec = NULL;
    s->droppable = !s->vec && !p->no_cache;
    s->fl = f;
    /* Only under an error budget: that is what the evidence is for. */
    if (p->res.outcome == SC_CACHE_MISS && p->res.id && !p->res.vetoed && p->res.max_error > 0) {
        s->cand = p->res.id;
        s->phash = p->res.phash;
        s->score = p->res.confidence;
    }
    sc_job_submit(p->srv, NULL, store_work, store_done, s);
}

/* ---------------------------------------------------------------------
 * The upstream call
 * ------------------------------------------------------------------- */

/* Sends an upstream failure: sc_http_error's body, plus X-Semcache (every
 * answer carries it) and Retry-After when the upstream asked for a wait
 * (retry_after_ms >= 0 on a 429 or 503; route.h). Finishes req. */
static void send_failure(sc_http_req *req, int status, const char *code, const char *msg, const char *outcome,
                         long long retry_after_ms)
{
    char headers[128];
    int n = snprintf(headers, sizeof headers, "X-Semcache: %s\r\n", outcome);
    if (retry_after_ms >= 0 && (status == 429 || status == 503))
        snprintf(headers + n, sizeof headers - (size_t)n, "Retry-After: %lld\r\n", (retry_after_ms + 999) / 1000);
    json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type",
                          status == 504 ? "timeout_error" : "upstream_error", "code", code);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s) sc_http_respond(req, status, "application/json", headers, s, strlen(s));
    else sc_http_error(req, status, "upstream_error", code, "%s", msg);
    free(s);
}

static void fail_request(preq *p, int status, const char *code, const char *msg, long long retry_after_ms)
{
    record_outcome(p, SC_OUT_ERROR, 0, 0, 0);
    if (p->req) {
        send_failure(p->req, status, code, msg, p->bypass ? "bypass" : "miss", retry_after_ms);
        p->req = NULL;
    }
}

static void on_up_headers(void *ctx, int status, const char *ctype, const sc_route_header *h, size_t nh)
{
    (void)h;
    (void)nh;
    flight *f = ctx;
    f->status = status;
    f->content_type = sc_strdup(ctype ? ctype : "application/json");
    f->upstream = sc_route_call_upstream(f->call);
    preq *p = f->leader;
    if (status / 100 == 2 && strncmp(f->content_type, "text/event-stream", 17) == 0) {
        f->streaming = 1;
        if (p && p->req) {
            char headers[512];
            upstream_headers(headers, sizeof headers, p, f->upstream);
            sc_http_stream_begin(p->req, 200, "text/event-stream", headers);
        }
    }
}

static void on_up_done(void *ctx, const sc_route_result *r);

/* Relays a streamed answer event by event. The reader fails only past
 * max-upstream-body (an event that does not fit, or a full relay buffer),
 * which route/ enforces on the whole answer too, so such a stream is
 * never relayed whole: it ends here as an upstream failure (the whole
 * events before it, then the in-band error event of on_up_done), rather
 * than with bytes silently missing. */
static void on_up_data(void *ctx, const char *d, size_t n)
{
    flight *f = ctx;
    if (!f->streaming) {
        if (sc_buf_append(&f->body, d, n)) f->status = -1;   /* route bounds it too */
        return;
    }
    sc_buf_reset(&f->relay);
    int rc = sc_oai_stream_feed(&f->sse, d, n, &f->relay);
    preq *p = f->leader;
    /* Cancelled before the write: if the write closes the client, its
     * on_client_abort sees no call to abandon and leaves the flight to
     * on_up_done below. */
    if (rc) {
        sc_route_cancel(f->call);
        f->call = NULL;
    }
    if (p && p->req && f->relay.len && sc_http_stream_write(p->req, f->relay.data, f->relay.len))
        sc_debug("client went away mid-stream");
    if (!rc) return;   /* f may be gone: a closed client may have abandoned the call */
    char msg[160];
    snprintf(msg, sizeof msg, "an SSE event larger than max-upstream-body (%lld bytes)",
             f->srv->cfg->max_upstream_body);
    sc_route_result res = {.err = rc, .status = f->status, .headers_sent = 1, .message = msg,
                           .upstream = f->upstream ? f->upstream : "", .model = "", .retry_after_ms = -1,
                           .first_byte_ms = -1, .cost_usd = -1};
    on_up_done(f, &res);
}

/* Ends a stream that broke after it started: one event in OpenAI's error
 * format ({"error":{"message","type","code"}}, which the SDKs raise), no
 * [DONE]. code: upstream_too_large past max-upstream-body, otherwise
 * stream_truncated. */
static void stream_error(sc_http_req *req, const sc_route_result *r)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "upstream stream ended early: %s",
             !r->err ? "no [DONE]" : r->message && *r->message ? r->message : sc_strerror(r->err));
    json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type", "upstream_error", "code",
                          r->err == SC_ETOOBIG ? "upstream_too_large" : "stream_truncated");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    sc_buf ev;
    sc_buf_init(&ev, 4096);
    if (s && !sc_buf_printf(&ev, "data: %s\n\n", s)) sc_http_stream_write(req, ev.data, ev.len);
    sc_buf_free(&ev);
    free(s);
}

static int err_status(const sc_route_result *r) { return sc_route_http_status(r); }

static void after_lookup(preq *p, const char *body, size_t body_len);

/* The leader's stream ended well but cannot be shared (its assembled body
 * is unstorable, e.g. tool calls): the waiters go upstream themselves, the
 * first as a new leader, the others joining its call. */
static void restart_waiters(flight *f)
{
    preq *w = f->waiters;
    f->waiters = NULL;
    flight_unregister(f);
    while (w) {
        preq *next = w->next_waiter;
        char *body = w->body;
        w->body = NULL;
        w->next_waiter = NULL;
        w->fl = NULL;
        after_lookup(w, body, w->body_len);   /* frees w if its client left */
        free(body);
        w = next;
    }
}

/* Finishes every waiter from the leader's outcome. */
static void finish_waiters(flight *f, int status, const char *body, size_t len, const char *ctype)
{
    preq *w = f->waiters;
    f->waiters = NULL;
    while (w) {
        preq *next = w->next_waiter;
        if (w->req) {
            char headers[128];
            snprintf(headers, sizeof headers, "X-Semcache: %s\r\nX-Semcache-Coalesced: 1\r\n", w->bypass ? "bypass" : "miss");
            if (body && status / 100 == 2) {
                record_outcome(w, SC_OUT_MISS, 0, 0, 0);
                serve_body(w, status, body, len, headers);
            } else if (body) {
                record_outcome(w, SC_OUT_ERROR, 0, 0, 0);
                sc_http_respond(w->req, status, ctype ? ctype : "application/json", headers, body, len);
                w->req = NULL;
            } else {
                fail_request(w, 502, "upstream_failed", "the shared upstream call failed", -1);
            }
        }
        preq_free(w);
        w = next;
    }
}

static void on_up_done(void *ctx, const sc_route_result *r)
{
    flight *f = ctx;
    f->call = NULL;
    preq *p = f->leader;
    char *store_body = NULL;
    size_t store_len = 0;
    int ok = r->err == 0 && f->status / 100 == 2;

    if (p) p->upstream = r->upstream;
    if (f->streaming) {
        if (ok && f->sse.done) store_body = sc_oai_stream_body(&f->sse, &store_len);
        /* Before the stream ends: the access log reads the note then. */
        if (p) record_outcome(p, ok && f->sse.done ? (p->bypass ? SC_OUT_BYPASS : SC_OUT_MISS) : SC_OUT_ERROR,
                              r->usage.prompt_tokens, r->usage.completion_tokens, r->cost_usd);
        if (p && p->req) {
            /* The stream broke after it started: tell the client in-band. */
            if (!ok || !f->sse.done) stream_error(p->req, r);
            /* The write may have closed the client (output bound), and
             * on_client_abort then finished the request already. */
            if (p->req) sc_http_stream_end(p->req);
            p->req = NULL;
        }
        if (store_body) finish_waiters(f, 200, store_body, store_len, "application/json");
        else if (ok && f->sse.done) restart_waiters(f);
        else finish_waiters(f, 502, NULL, 0, NULL);
    } else if (r->headers_sent && f->status > 0) {
        /* A complete answer: 2xx, or an upstream error relayed as is. */
        if (p && p->req) {
            char headers[512];
            upstream_headers(headers, sizeof headers, p, r->upstream);
            record_outcome(p, ok ? (p->bypass ? SC_OUT_BYPASS : SC_OUT_MISS) : SC_OUT_ERROR, r->usage.prompt_tokens,
                           r->usage.completion_tokens, r->cost_usd);
            if (ok) {
                serve_body(p, f->status, f->body.data ? f->body.data : "", f->body.len, headers);
            } else {
                sc_http_respond(p->req, f->status, f->content_type, headers, f->body.data ? f->body.data : "",
                                f->body.len);
                p->req = NULL;
            }
        }
        finish_waiters(f, f->status, f->body.data ? f->body.data : "", f->body.len, f->content_type);
        if (ok) store_body = sc_buf_steal(&f->body, &store_len);
    } else {
        /* Every target failed before anything was relayed. */
        char msg[1024];
        snprintf(msg, sizeof msg, "upstream failed: %s", r->message ? r->message : sc_strerror(r->err));
        if (p)
            fail_request(p, err_status(r), r->err == SC_ETIMEOUT ? "upstream_timeout" : "upstream_failed", msg,
                         r->retry_after_ms);
        finish_waiters(f, 0, NULL, 0, NULL);
    }

    /* Write back. The flight stays registered until the entry is stored
     * (store_done frees it), so an identical request whose lookup ran
     * before the entry was in LMDB is served the same answer instead of
     * calling upstream again (see after_lookup). */
    if (store_body && p && !p->no_store && !p->bypass) {
        f->answer = store_body;
        f->answer_len = store_len;
        write_back(p, f, store_body, store_len);
        f = NULL;
    } else {
        flight_unregister(f);
        free(store_body);
    }
    if (f) flight_free(f);
    if (p) preq_free(p);
}

/* 1 when a client other than p still waits for the flight's answer. */
static int wanted_by_others(const flight *f, const preq *p)
{
    if (f->leader && f->leader != p && f->leader->req) return 1;
    for (const preq *w = f->waiters; w; w = w->next_waiter)
        if (w != p && w->req) return 1;
    return 0;
}

static void on_client_abort(sc_http_req *req)
{
    preq *p = req->user;
    flight *f = p->fl;
    if (!f) return;   /* still in the lookup job: its done() sees aborted */
    /* Nobody else wants the answer (none queued, or all of them left):
     * stop the upstream transfer. */
    int abandon = f->call && !wanted_by_others(f, p);
    if (abandon && f->leader == p) record_outcome(p, SC_OUT_ERROR, 0, 0, 0);   /* before the access log runs */
    /* Finish this request now; a waiter stays queued, a leader keeps its
     * place while others wait. */
    sc_http_stream_end(p->req);
    p->req = NULL;
    if (!abandon) return;
    sc_route_cancel(f->call);
    f->call = NULL;
    if (f->leader != p) record_outcome(f->leader, SC_OUT_ERROR, 0, 0, 0);   /* left earlier, uncounted */
    for (preq *w = f->waiters, *next; w; w = next) {
        next = w->next_waiter;
        preq_free(w);
    }
    f->waiters = NULL;
    preq_free(f->leader);
    flight_free(f);
}

/* Client headers that address the upstream account (not the cache): they
 * are forwarded as sent. Authorization never is (route/ sets the key). */
static const char *const forwarded[] = {"openai-organization", "openai-project", "openai-beta"};

static size_t forward_headers(const sc_http_req *req, sc_route_header *out)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        const char *v = req ? sc_http_header(req, forwarded[i]) : NULL;
        if (v) out[n++] = (sc_route_header){forwarded[i], v};
    }
    return n;
}

static void start_upstream(preq *p, const char *body, size_t body_len)
{
    flight *f = SC_NEW(flight);
    f->srv = p->srv;
    f->leader = p;
    memcpy(f->key, p->key, 16);
    sc_buf_init(&f->body, (size_t)p->srv->cfg->max_upstream_body);
    sc_buf_init(&f->relay, (size_t)p->srv->cfg->max_upstream_body);
    sc_oai_stream_init(&f->sse, p->kind, !p->include_usage, (size_t)p->srv->cfg->max_upstream_body);
    p->fl = f;
    if (!p->bypass && !p->no_store) {
        size_t b = bucket_of(f->key);
        f->next = flights[b];
        flights[b] = f;
        f->registered = 1;
    }
    /* Ask for usage on streams so the stored entry knows its tokens; the
     * usage-only chunk is not relayed unless the client asked for it. */
    char *send = NULL;
    size_t send_len = body_len;
    if (p->stream && !p->include_usage) {
        json_t *o = json_loadb(body, body_len, 0, NULL);
        if (o) {
            json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
            send = json_dumps(o, JSON_COMPACT);
            send_len = strlen(send);
            json_decref(o);
        }
    }
    sc_route_header fwd[sizeof forwarded / sizeof forwarded[0]];
    sc_route_req rr = {
        .method = "POST", .path = p->kind == SC_OAI_CHAT ? "/v1/chat/completions" : "/v1/completions",
        .body = send ? send : body, .body_len = send_len, .content_type = "application/json",
        .model = p->model, .stream = p->stream, .want_json = 1, .headers = fwd,
        .nheaders = forward_headers(p->req, fwd),
    };
    static const sc_route_callbacks cb = {on_up_headers, on_up_data, on_up_done};
    int rc = sc_route_request(p->srv->route, &rr, &cb, f, &f->call);
    free(send);
    if (rc) {
        fail_request(p, 500, "route_error", "could not start the upstream call", -1);
        flight_free(f);
        preq_free(p);
    }
}

/* ---------------------------------------------------------------------
 * Lookup
 * ------------------------------------------------------------------- */

typedef struct lookup_ctx {
    preq *p;
    char *body;                  /* the original request body, for the upstream */
    size_t body_len;
} lookup_ctx;

static void lookup_work(sc_job *j)
{
    lookup_ctx *l = j->data;
    preq *p = l->p;
    /* Looks again at the exact layer: an entry written back since the loop
     * thread's check (a finishing identical call) is an exact hit. */
    int flags = 0;
    if (sc_job_overloaded(j)) {
        /* Overload: the exact layer only, then upstream; the answer is not
         * written back (storing embeds, which is what is short). */
        flags = SC_LOOKUP_EXACT_ONLY;
        p->overloaded = 1;
    }
    sc_cache_lookup_opts o = {.threshold = p->threshold, .flags = flags, .max_error = p->max_error};
    j->rc = sc_cache_lookup_ex(j->srv->cache, p->ns, p->fp, p->prompt, p->prompt_len, &o, &p->res);
    if (p->overloaded && p->res.outcome == SC_CACHE_MISS) p->no_store = 1;
}

static void after_lookup(preq *p, const char *body, size_t body_len)
{
    if (!p->req) {   /* the client left during the lookup */
        preq_free(p);
        return;
    }
    if (p->res.outcome != SC_CACHE_MISS) {
        sc_shadow *sh = NULL;
        if (p->res.outcome == SC_CACHE_HIT_SEMANTIC && p->kind == SC_OAI_CHAT)
            sh = sc_shadow_prepare(p->srv, p->ns, p->res.id, p->res.phash, p->res.confidence, &p->res.rec, body,
                                   body_len);
        serve_hit(p);        /* the client is answered first */
        sc_shadow_start(sh);
        return;
    }
    flight *f = p->bypass || p->no_store ? NULL : flight_find(p->key);
    if (f && f->answer) {
        if (!p->no_cache) {   /* finished; its entry is being stored */
            record_outcome(p, SC_OUT_MISS, 0, 0, 0);
            serve_body(p, 200, f->answer, f->answer_len, "X-Semcache: miss\r\nX-Semcache-Coalesced: 1\r\n");
            preq_free(p);
            return;
        }
        f = NULL;
    }
    if (f) {
        p->fl = f;
        p->body = sc_strndup(body, body_len);
        p->body_len = body_len;
        p->next_waiter = f->waiters;
        f->waiters = p;
        return;
    }
    start_upstream(p, body, body_len);
}

static void lookup_done(sc_job *j)
{
    lookup_ctx *l = j->data;
    preq *p = l->p;
    if (p->req && p->req->aborted) {
        sc_http_stream_end(p->req);
        p->req = NULL;
    }
    if (j->rc && p->req) {
        sc_warn("cache lookup failed (%s); forwarding", sc_strerror(j->rc));
        sc_cache_result_clear(&p->res);
    }
    after_lookup(p, l->body, l->body_len);
    free(l->body);
    free(l);
}

/* ---------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------- */

/* A number header from 0 to max: *out is left alone when absent; -1 after
 * answering 400 when it is not such a number. */
static int header_number(sc_http_req *req, const char *name, double max, double *out)
{
    char lname[64];
    size_t i = 0;
    for (; name[i] && i < sizeof lname - 1; i++) lname[i] = (char)tolower((unsigned char)name[i]);
    lname[i] = '\0';
    const char *t = sc_http_header(req, lname);
    if (!t) return 0;
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (errno || end == t || *end || !(v >= 0 && v <= max)) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_header",
                      "%s must be a number from 0 to %g, got '%.32s'", name, max, t);
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses Cache-Control and the X-Semcache-* request headers. */
static int read_controls(preq *p, sc_http_req *req)
{
    const char *cc = sc_http_header(req, "cache-control");
    if (cc) {
        if (strcasestr(cc, "no-cache")) p->no_cache = 1;
        if (strcasestr(cc, "no-store")) p->no_store = 1;
    }
    if (header_number(req, "X-Semcache-Threshold", 1, &p->threshold) ||
        header_number(req, "X-Semcache-Max-Error-Rate", 0.5, &p->max_error))
        return -1;
    const char *ttl = sc_http_header(req, "x-semcache-ttl");
    if (ttl) {
        char *end;
        errno = 0;
        long long v = strtoll(ttl, &end, 10);
        if (errno || end == ttl || *end || v < 0 || v > 100LL * 365 * 86400) {
            sc_http_error(req, 400, "invalid_request_error", "invalid_header",
                          "X-Semcache-TTL must be a whole number of seconds >= 0, got '%.32s'", ttl);
            return -1;
        }
        p->ttl = v;
    }
    return 0;
}

static void passthrough(sc_server *srv, sc_http_req *req);

void sc_proxy_handle(sc_server *srv, sc_http_req *req)
{
    int kind;
    if (!strcmp(req->path, "/v1/chat/completions")) kind = SC_OAI_CHAT;
    else if (!strcmp(req->path, "/v1/completions")) kind = SC_OAI_COMPLETION;
    else {
        passthrough(srv, req);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        sc_http_error(req, 405, "invalid_request_error", "method_not_allowed", "method %s not allowed on %s (use POST)",
                      req->method, req->path);
        return;
    }
    const char *ns = sc_server_namespace(srv, req, NULL, 0);
    if (!ns) return;
    /* Identical bytes answered before: no parse, no LMDB. Requests with
     * Cache-Control (no-cache must not be served from it) or X-Semcache-*
     * controls (validated on the full path) skip the memo. */
    char *memo_key = NULL;
    size_t memo_klen = 0;
    uint64_t memo_gen = 0;
    if (srv->memo && !sc_http_header(req, "cache-control") && !sc_http_header(req, "x-semcache-threshold") &&
        !sc_http_header(req, "x-semcache-ttl") && !sc_http_header(req, "x-semcache-max-error-rate")) {
        size_t nl = strlen(ns);
        memo_klen = nl + 2 + req->body_len;
        memo_key = sc_malloc(memo_klen);
        memcpy(memo_key, ns, nl + 1);
        memo_key[nl + 1] = (char)('0' + kind);
        memcpy(memo_key + nl + 2, req->body, req->body_len);
        memo_gen = sc_cache_generation(srv->cache);
        if (memo_answer(srv, req, ns, memo_key, memo_klen)) {
            free(memo_key);
            return;
        }
    }
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) {
        free(memo_key);
        sc_http_error(req, 400, "invalid_request_error", "invalid_json",
                      "request body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return;
    }
    preq *p = SC_NEW(preq);
    p->memo_key = memo_key;
    p->memo_klen = memo_klen;
    p->memo_gen = memo_gen;
    p->srv = srv;
    p->req = req;
    p->kind = kind;
    p->threshold = -1;
    p->max_error = -1;
    p->start_ns = sc_http_now_ns();
    p->ns = sc_strdup(ns);
    if (read_controls(p, req)) goto done;
    char err[256];
    int rc = sc_fp_request(kind == SC_OAI_CHAT ? SC_FP_CHAT : SC_FP_COMPLETION, body, &p->fp, &p->prompt,
                           &p->prompt_len, err, sizeof err);
    if (rc == SC_EINVAL) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_request", "%s", err);
        goto done;
    }
    p->bypass = rc == SC_EUNSUPPORTED || (p->no_cache && p->no_store);
    json_t *model = json_object_get(body, "model");
    p->model = sc_strdup(json_is_string(model) ? json_string_value(model) : "");
    p->stream = json_is_true(json_object_get(body, "stream"));
    p->include_usage = json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    if (!p->prompt) p->prompt = sc_strdup("");
    req->user = p;
    req->on_abort = on_client_abort;
    json_decref(body);
    if (!p->bypass) sc_cache_exact_key(p->ns, p->fp, p->prompt, p->prompt_len, p->key);
    if (p->bypass || p->no_cache) {
        after_lookup(p, req->body, req->body_len);
        return;
    }
    /* The exact layer is one LMDB read: answer exact hits right here. */
    if (sc_cache_lookup_exact(srv->cache, p->ns, p->fp, p->prompt, p->prompt_len, &p->res)) {
        serve_hit(p);
        return;
    }
    lookup_ctx *l = SC_NEW(lookup_ctx);
    l->p = p;
    l->body = sc_strndup(req->body, req->body_len);
    l->body_len = req->body_len;
    sc_job_submit(srv, req, lookup_work, lookup_done, l);
    return;
done:
    json_decref(body);
    preq_free(p);
}

/* ---------------------------------------------------------------------
 * Pass-through of other /v1/ paths (uncached)
 * ------------------------------------------------------------------- */

typedef struct pass {
    sc_server *srv;
    char *ns;                    /* for the statistics and the access log */
    uint64_t start_ns;
    sc_http_req *req;
    sc_route_call *call;
    int status, streaming;
    char *ctype;
    sc_buf body;
} pass;

static void pass_headers(void *ctx, int status, const char *ctype, const sc_route_header *h, size_t nh)
{
    (void)h;
    (void)nh;
    pass *ps = ctx;
    ps->status = status;
    ps->ctype = sc_strdup(ctype ? ctype : "application/json");
    if (strncmp(ps->ctype, "text/event-stream", 17) == 0 && ps->req) {
        ps->streaming = 1;
        sc_http_stream_begin(ps->req, status, ps->ctype, "X-Semcache: bypass\r\n");
    }
}

static void pass_data(void *ctx, const char *d, size_t n)
{
    pass *ps = ctx;
    if (ps->streaming) {
        if (ps->req) sc_http_stream_write(ps->req, d, n);
    } else {
        sc_buf_append(&ps->body, d, n);
    }
}

static void pass_done(void *ctx, const sc_route_result *r)
{
    pass *ps = ctx;
    /* Counted as a bypass (what X-Semcache says), with its cost. */
    int outcome = r->err == 0 ? SC_OUT_BYPASS : SC_OUT_ERROR;
    sc_stats_outcome(ps->srv->stats, ps->ns, outcome, (double)(sc_http_now_ns() - ps->start_ns) / 1e9, 0, 0,
                     r->cost_usd);
    if (ps->req)
        snprintf(ps->req->note, sizeof ps->req->note, "ns=%s outcome=%s upstream=%s", ps->ns,
                 sc_outcome_name(outcome), r->upstream ? r->upstream : "");
    if (ps->req) {
        ps->req->user = NULL;
        ps->req->on_abort = NULL;
        if (ps->streaming) {
            sc_http_stream_end(ps->req);
        } else if (r->headers_sent && ps->status > 0) {
            sc_http_respond(ps->req, ps->status, ps->ctype, "X-Semcache: bypass\r\n",
                            ps->body.data ? ps->body.data : "", ps->body.len);
        } else {
            char msg[1024];
            snprintf(msg, sizeof msg, "upstream failed: %s", r->message ? r->message : sc_strerror(r->err));
            send_failure(ps->req, err_status(r), "upstream_failed", msg, "bypass", r->retry_after_ms);
        }
    }
    free(ps->ctype);
    free(ps->ns);
    sc_buf_free(&ps->body);
    free(ps);
}

static void pass_abort(sc_http_req *req)
{
    pass *ps = req->user;
    if (!ps) return;
    if (ps->call) sc_route_cancel(ps->call);
    sc_http_stream_end(req);
    free(ps->ctype);
    free(ps->ns);
    sc_buf_free(&ps->body);
    free(ps);
}

static void passthrough(sc_server *srv, sc_http_req *req)
{
    const char *ns = sc_server_namespace(srv, req, NULL, 0);
    if (!ns) return;
    pass *ps = SC_NEW(pass);
    ps->srv = srv;
    ps->ns = sc_strdup(ns);
    ps->start_ns = sc_http_now_ns();
    ps->req = req;
    sc_buf_init(&ps->body, (size_t)srv->cfg->max_upstream_body);
    char path[2048];
    if (*req->query) snprintf(path, sizeof path, "%s?%s", req->path, req->query);
    else snprintf(path, sizeof path, "%s", req->path);
    const char *ct = sc_http_header(req, "content-type");
    sc_route_header fwd[sizeof forwarded / sizeof forwarded[0]];
    sc_route_req rr = {
        .method = req->method, .path = path, .body = req->body_len ? req->body : NULL,
        .body_len = req->body_len, .content_type = ct, .model = NULL, .stream = 0,
        .headers = fwd, .nheaders = forward_headers(req, fwd),
    };
    json_t *o = req->body_len ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
    json_t *model = json_object_get(o, "model");
    char *m = json_is_string(model) ? sc_strdup(json_string_value(model)) : sc_strdup("");
    rr.model = m;
    json_decref(o);
    static const sc_route_callbacks cb = {pass_headers, pass_data, pass_done};
    req->user = ps;
    req->on_abort = pass_abort;
    int rc = sc_route_request(srv->route, &rr, &cb, ps, &ps->call);
    free(m);
    if (rc) {
        req->user = NULL;
        sc_http_error(req, 502, "upstream_error", "route_error", "could not start the upstream call");
        sc_buf_free(&ps->body);
        free(ps->ns);
        free(ps);
    }
}
