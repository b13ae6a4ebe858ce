/* The upstream routing proxy: sends a request to an OpenAI-compatible
 * upstream with libcurl's multi interface driven by a libuv loop, and relays
 * the answer back through callbacks.
 *
 * Upstreams and routes come from the config. `upstream-def NAME URL KEY_ENV
 * [MAX_CONCURRENT]` names an upstream (KEY_ENV is the environment variable
 * holding its API key, `-` for none; MAX_CONCURRENT 0 or absent = no limit).
 * `route PATTERN UP[:MODEL],UP[:MODEL],...` sends models matching the glob
 * PATTERN to the listed targets in order (first is primary, the rest are
 * fallbacks); `:MODEL` rewrites the body's "model" for that target. The
 * first matching route wins. An implicit upstream "default" (`upstream`, key
 * from `upstream-key` or the variable named by `upstream-key-env`) always
 * exists unless an upstream-def is named "default", and an implicit last
 * route `* default` catches every model no route matched (model unchanged).
 *
 * Per call: each target gets 1 + `retries` attempts for retryable failures
 * (connect errors, timeouts, 408, 429, 5xx, a 2xx body that is not valid
 * JSON or is cut short) with exponential backoff and full jitter (base
 * 100 ms, cap 2 s); a `Retry-After` of up to 10 s is waited out, a longer one
 * moves straight to the next target. Then the call falls back to the next
 * target. Nothing reaches the caller until an attempt is known good:
 *   - a 2xx `text/event-stream` answer is committed when its headers
 *     arrive and then relayed chunk by chunk as it arrives (a failure after
 *     that cannot be retried and ends the call with an error);
 *   - any other answer (JSON) is buffered whole (bounded by
 *     `max-upstream-body`), checked, then delivered in one on_data;
 *   - a non-retryable error status (400, 401, 404, ...) is relayed as the
 *     upstream sent it (on_done then has err = SC_EUPSTREAM).
 * The Authorization header is always set here from the upstream's key;
 * the caller's Authorization, Host, Content-Length, Connection,
 * Transfer-Encoding, Accept-Encoding and Expect headers are never forwarded.
 *
 * Timeouts: `connect-timeout-ms`; `first-byte-timeout-ms` from the start of
 * an attempt (including a wait for a concurrency slot) to the first response
 * byte; `upstream-idle-timeout-ms` between two reads after that.
 *
 * Concurrency: an upstream with MAX_CONCURRENT > 0 runs at most that many
 * transfers; further calls QUEUE (FIFO) for a slot, and a call that waits
 * longer than first-byte-timeout-ms fails that attempt with a timeout (then
 * retries / falls back as usual).
 *
 * Circuit breaker per upstream: closed -> open after `breaker-failures`
 * consecutive failed attempts -> after `breaker-cooldown-ms` exactly one
 * call goes through as a half-open probe -> closed when it succeeds, open
 * again (new cooldown) when it fails. A call skips an open upstream (and a
 * half-open one whose probe is in flight) and goes to its next target.
 * Failures are the retryable ones above; 4xx other than 408/429 count as
 * success (the upstream is alive).
 *
 * Threads: one sc_route per libuv loop; every function here (except the
 * pure helpers at the end, which any thread may call) must be called on
 * that loop's thread, and every callback runs on it. Breakers and stats are
 * per sc_route. */
#ifndef SC_ROUTE_H
#define SC_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/buf.h"
#include "common/config.h"

typedef struct sc_route sc_route;
typedef struct sc_route_call sc_route_call;

/* Largest Retry-After waited out before retrying the same upstream. */
#define SC_ROUTE_RETRY_AFTER_CAP_MS 10000
/* Bounds on the response headers of one upstream answer. */
#define SC_ROUTE_MAX_HEADERS 100
#define SC_ROUTE_MAX_HEADER_BYTES 65536

typedef struct sc_route_header {
    const char *name;
    const char *value;
} sc_route_header;

/* One request to route. Everything is copied by sc_route_request(), so the
 * caller may free it as soon as that returns. */
typedef struct sc_route_req {
    const char *method;        /* "POST" (default when NULL), "GET", ... */
    const char *path;          /* "/v1/chat/completions", query allowed */
    const char *body;          /* may be NULL for GET */
    size_t body_len;
    const char *content_type;  /* NULL: "application/json" when there is a body */
    const char *model;         /* route key; NULL: read "model" from the JSON body */
    int stream;                /* the client asked for SSE (sets Accept) */
    int want_json;             /* a non-streamed 2xx answer must be JSON (by its
                                * Content-Type and its content); anything else
                                * (an HTML page from a gateway) is a failed
                                * attempt: retried, then the next target */
    const sc_route_header *headers; /* extra headers to forward (filtered as above) */
    size_t nheaders;
} sc_route_req;

/* Token usage reported by the upstream (OpenAI "usage" object). */
typedef struct sc_route_usage {
    int found;                 /* 1 when a usage object was seen */
    long long prompt_tokens;
    long long completion_tokens;
    long long total_tokens;
    char model[128];           /* "model" of the answer ("" when absent) */
} sc_route_usage;

/* How a call ended. Valid only during on_done. */
typedef struct sc_route_result {
    int err;                   /* 0: a complete 2xx answer was delivered.
                                * SC_EUPSTREAM: an upstream error status was
                                *   relayed (headers_sent) or every target
                                *   failed (not headers_sent);
                                * SC_ETIMEOUT: the last failure was a timeout;
                                * SC_EPROTO: bad/truncated answer;
                                * SC_ETOOBIG: answer over max-upstream-body;
                                * SC_EBUSY: every target's breaker was open. */
    int status;                /* HTTP status of the last attempt, 0 if none */
    int headers_sent;          /* on_headers ran for this call */
    const char *message;       /* what was tried and how each attempt ended */
    const char *upstream;      /* upstream of the last attempt ("" if none) */
    const char *model;         /* model sent to it (after any rewrite) */
    int attempts;              /* HTTP attempts started */
    int fallbacks;             /* times the call moved to a next target */
    long long retry_after_ms;  /* last Retry-After seen, -1 when none */
    double total_ms;           /* call start to end */
    double first_byte_ms;      /* call start to first byte delivered, -1 if none */
    size_t bytes;              /* body bytes delivered */
    sc_route_usage usage;      /* parsed from the JSON body or the SSE stream */
    double cost_usd;           /* from usage and the price table; -1 unknown */
} sc_route_result;

typedef struct sc_route_callbacks {
    /* The committed attempt's status, content type and response headers
     * (hop-by-hop headers and Content-Length removed). Runs at most once. */
    void (*on_headers)(void *ctx, int status, const char *content_type,
                       const sc_route_header *headers, size_t nheaders);
    /* Body bytes in order; p is valid only during the call. */
    void (*on_data)(void *ctx, const char *p, size_t n);
    /* Runs exactly once unless the call was cancelled; the handle is freed
     * when it returns. */
    void (*on_done)(void *ctx, const sc_route_result *res);
} sc_route_callbacks;

/* Creates the router on loop from cfg (cfg is read here and not kept).
 * Validates upstream-def, route and price directives; on error returns
 * SC_EINVAL with a message naming the directive in err. Also calls
 * curl_global_init() once (do this before starting other threads). */
int sc_route_create(uv_loop_t *loop, const sc_config *cfg, sc_route **out, char *err, size_t errlen);

/* Cancels every call (no callbacks) and starts closing the handles; the
 * memory is released by the loop, so run it (uv_run) until it returns
 * afterwards. */
void sc_route_destroy(sc_route *r);

/* Starts a call. Returns 0 and sets *handle (may be NULL if the caller
 * never cancels); callbacks never run before this returns. SC_EINVAL for a
 * bad request (no path) - then no callback runs. Upstream trouble is never a
 * return value: it arrives in on_done. */
int sc_route_request(sc_route *r, const sc_route_req *req, const sc_route_callbacks *cb,
                     void *ctx, sc_route_call **handle);

/* Aborts a call (client gone): the transfer stops, the slot is freed, no
 * callback runs afterwards. Allowed from inside on_headers/on_data of the
 * same call; not after on_done. */
void sc_route_cancel(sc_route_call *call);

/* The name of the upstream of the call's current attempt ("" before the
 * first): in on_headers and on_data, the upstream whose answer is being
 * relayed, after any retries and fallbacks (what on_done reports as
 * res->upstream). The string lives as long as the router; the call may
 * not be passed once on_done ran (the handle is freed). */
const char *sc_route_call_upstream(const sc_route_call *call);

/* The status to answer the client with when on_done ran without
 * headers_sent: 504 for a timeout, 429 when the last upstream answer was
 * 429 (send res->retry_after_ms as Retry-After when >= 0), 503 when every
 * breaker was open, 502 otherwise. Returns res->status when headers_sent. */
int sc_route_http_status(const sc_route_result *res);

/* Number of calls started and not yet finished or cancelled. */
size_t sc_route_active(const sc_route *r);

/* ---- stats ---------------------------------------------------------- */

enum sc_route_breaker { SC_ROUTE_CLOSED, SC_ROUTE_OPEN, SC_ROUTE_HALF_OPEN };

typedef struct sc_route_stats {
    const char *name;          /* valid while the router lives */
    const char *url;
    uint64_t calls;            /* attempts started */
    uint64_t ok;               /* attempts that ended well (incl. relayed 4xx) */
    uint64_t err_connect;      /* connect / DNS / TLS / reset */
    uint64_t err_timeout;      /* connect, first-byte, idle or queue timeout */
    uint64_t err_429;
    uint64_t err_5xx;          /* and 408 */
    uint64_t err_4xx;          /* relayed client errors (not failures) */
    uint64_t err_proto;        /* invalid JSON, truncated answer */
    uint64_t err_toobig;
    uint64_t retries;          /* attempts that were a retry on this upstream */
    uint64_t fallbacks;        /* calls that left this upstream for the next target */
    uint64_t skipped_open;     /* calls that skipped it because of its breaker */
    uint64_t breaker_opens;
    int breaker;               /* enum sc_route_breaker */
    int in_flight;
    int queued;
    double latency_ms_sum;     /* over attempts that ended (any outcome) */
    uint64_t latency_count;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    double cost_usd;
} sc_route_stats;

/* "closed", "open" or "half-open"; static storage. */
const char *sc_route_breaker_name(int breaker);

size_t sc_route_upstream_count(const sc_route *r);
/* Fills st for upstream i (< sc_route_upstream_count). */
int sc_route_upstream_stats(const sc_route *r, size_t i, sc_route_stats *st);
/* Appends a JSON array of every upstream's stats to out. */
int sc_route_stats_json(const sc_route *r, sc_buf *out);
/* Appends Prometheus text (semcached_upstream_* series) to out. */
int sc_route_metrics(const sc_route *r, sc_buf *out);

/* ---- cost and usage (pure; any thread) -------------------------------- */

/* USD for a call: r's `price` directives first, then the built-in table
 * (route/price.c). A model matches exactly or as a dated/suffixed variant
 * ("gpt-4o-mini-2024-07-18" -> "gpt-4o-mini", longest prefix wins). Returns
 * -1 when the model has no price. r may be NULL (built-in table only). */
double sc_route_cost(const sc_route *r, const char *model, long long prompt_tokens,
                     long long completion_tokens);
/* Looks up a model's prices (USD per million tokens); 0 or SC_ENOTFOUND. */
int sc_route_price(const sc_route *r, const char *model, double *in_per_m, double *out_per_m);

/* Reads "usage" and "model" from a JSON answer. 0 when usage was found,
 * SC_ENOTFOUND when the JSON has none, SC_EPROTO when it is not JSON. */
int sc_route_usage_from_json(const char *body, size_t len, sc_route_usage *u);

/* Incremental SSE scanner: feed the raw stream in any pieces; it finds the
 * final usage chunk and the `data: [DONE]` terminator. */
typedef struct sc_route_sse {
    sc_buf line;               /* partial line, bounded by max_line */
    int done;                  /* saw data: [DONE] */
    int error;                 /* saw an event carrying an "error" object */
    long long events;          /* data events seen */
    sc_route_usage usage;
} sc_route_sse;

void sc_route_sse_init(sc_route_sse *s, size_t max_line);
/* 0, or SC_ETOOBIG when one line exceeds max_line. */
int sc_route_sse_feed(sc_route_sse *s, const char *p, size_t n);
void sc_route_sse_free(sc_route_sse *s);

#endif
