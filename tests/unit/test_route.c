/* Unit tests for route/: the price table and usage parsers (pure), and the
 * router itself driven on a real libuv loop with real libcurl against the
 * Node mock upstream (tests/integration/mock_upstream.js, two instances on
 * ephemeral ports, started once and reset before each test). Faults are
 * injected with the mock's x-mock-fault header or its /_mock/plan queue. */
#include "tap.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "route/route.h"
#include "route/route_int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------
 * The mock upstreams
 * ------------------------------------------------------------------- */

typedef struct mock {
    pid_t pid;
    int port;
    char url[64];
} mock;

static mock mocks[2];

static void stop_mocks(void)
{
    for (int i = 0; i < 2; i++)
        if (mocks[i].pid > 0) {
            kill(mocks[i].pid, SIGTERM);
            waitpid(mocks[i].pid, NULL, 0);
            mocks[i].pid = 0;
        }
}

static int start_mock(mock *m, const char *name)
{
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan mock if the runner crashes */
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execlp("node", "node", "tests/integration/mock_upstream.js", "--port", "0", "--name", name, (char *)NULL);
        execl("/usr/bin/node", "node", "tests/integration/mock_upstream.js", "--port", "0", "--name", name,
              (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char line[128];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        ssize_t k = read(fd[0], line + n, 1);
        if (k <= 0) break;
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    close(fd[0]);
    m->pid = pid;
    if (sscanf(line, "listening %d", &m->port) != 1) return -1;
    snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
    return 0;
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    sc_buf_append(ud, p, s * n);
    return s * n;
}

/* A blocking control request to a mock (tests only). */
static int ctl(const mock *m, const char *method, const char *path, const char *body, sc_buf *out)
{
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", m->url, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    sc_buf tmp;
    sc_buf_init(&tmp, 1 << 20);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out ? out : &tmp);
    CURLcode cc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    sc_buf_free(&tmp);
    return cc == CURLE_OK ? 0 : -1;
}

static int mocks_up(void)
{
    static int state; /* 0 untried, 1 up, -1 failed */
    if (state) return state > 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    state = -1;
    if (start_mock(&mocks[0], "A") || start_mock(&mocks[1], "B")) return 0;
    atexit(stop_mocks);
    state = 1;
    return 1;
}

static void reset_mocks(void)
{
    for (int i = 0; i < 2; i++) ctl(&mocks[i], "POST", "/_mock/reset", "", NULL);
}

static void plan(const mock *m, const char *json)
{
    ctl(m, "POST", "/_mock/plan", json, NULL);
}

/* Parsed GET /_mock/calls; json_decref() it. */
static json_t *calls(const mock *m)
{
    sc_buf b;
    sc_buf_init(&b, 1 << 22);
    ctl(m, "GET", "/_mock/calls", NULL, &b);
    json_error_t e;
    json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, &e);
    sc_buf_free(&b);
    return j;
}

static long long total_calls(const mock *m)
{
    json_t *j = calls(m);
    long long n = json_integer_value(json_object_get(j, "total"));
    json_decref(j);
    return n;
}

/* ---------------------------------------------------------------------
 * Driving calls on a loop
 * ------------------------------------------------------------------- */

typedef struct outcome {
    int headers, done, status, err, headers_sent, attempts, fallbacks, nchunks;
    char ctype[64], upstream[32], hdr_upstream[32], message[2048];
    sc_buf data;
    double total_ms, first_byte_ms, cost;
    sc_route_usage usage;
    uint64_t t_first_chunk, t_done;
    sc_route_call *h;
    int cancel_after;        /* cancel in on_data after this many chunks */
    int cancelled;
    int late_callback;       /* a callback after cancel */
    struct outcome *victim;  /* cancelled from this call's first on_data */
} outcome;

static void o_headers(void *ctx, int status, const char *ct, const sc_route_header *h, size_t n)
{
    outcome *o = ctx;
    if (o->cancelled) o->late_callback = 1;
    o->headers++;
    o->status = status;
    snprintf(o->ctype, sizeof o->ctype, "%s", ct);
    snprintf(o->hdr_upstream, sizeof o->hdr_upstream, "%s", sc_route_call_upstream(o->h));
    (void)h;
    (void)n;
}

static void o_data(void *ctx, const char *p, size_t n)
{
    outcome *o = ctx;
    if (o->cancelled) o->late_callback = 1;
    if (!o->nchunks) o->t_first_chunk = uv_hrtime();
    o->nchunks++;
    sc_buf_append(&o->data, p, n);
    if (o->victim && o->nchunks == 1 && o->victim->h) {
        o->victim->cancelled = 1;
        sc_route_cancel(o->victim->h);
    }
    if (o->cancel_after && o->nchunks == o->cancel_after) {
        o->cancelled = 1;
        sc_route_cancel(o->h);
    }
}

static void o_done(void *ctx, const sc_route_result *r)
{
    outcome *o = ctx;
    if (o->cancelled) o->late_callback = 1;
    o->done++;
    o->t_done = uv_hrtime();
    o->err = r->err;
    o->status = r->status;
    o->headers_sent = r->headers_sent;
    o->attempts = r->attempts;
    o->fallbacks = r->fallbacks;
    o->total_ms = r->total_ms;
    o->first_byte_ms = r->first_byte_ms;
    o->cost = r->cost_usd;
    o->usage = r->usage;
    snprintf(o->upstream, sizeof o->upstream, "%s", r->upstream);
    snprintf(o->message, sizeof o->message, "%s", r->message);
}

static const sc_route_callbacks cbs = {o_headers, o_data, o_done};

static void guard_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *flag or ms pass. */
static void run_until(uv_loop_t *loop, const int *flag, int ms)
{
    uv_timer_t guard;
    int fired = 0;
    uv_timer_init(loop, &guard);
    guard.data = &fired;
    uv_timer_start(&guard, guard_cb, (uint64_t)ms, 0);
    while (!fired && !(flag && *flag)) uv_run(loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

typedef struct env {
    uv_loop_t loop;
    sc_config cfg;
    sc_route *r;
} env;

/* Config: NULL-terminated name, value pairs on top of the defaults. */
static int env_open(env *e, const char *const *kv)
{
    if (!mocks_up()) return -1;
    reset_mocks();
    uv_loop_init(&e->loop);
    sc_config_defaults(&e->cfg);
    char err[256];
    sc_config_set(&e->cfg, "upstream", mocks[0].url, err, sizeof err);
    sc_config_set(&e->cfg, "upstream-key", "sk-default", err, sizeof err);
    for (; kv && kv[0]; kv += 2)
        if (sc_config_set(&e->cfg, kv[0], kv[1], err, sizeof err)) {
            fprintf(stderr, "config: %s\n", err);
            return -1;
        }
    if (sc_route_create(&e->loop, &e->cfg, &e->r, err, sizeof err)) {
        fprintf(stderr, "route: %s\n", err);
        return -1;
    }
    return 0;
}

static void env_close(env *e)
{
    sc_route_destroy(e->r);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&e->loop), 0);
    sc_config_free(&e->cfg);
}

static const char *chat_body(const char *model, const char *msg, int stream)
{
    static char b[4096];
    snprintf(b, sizeof b,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]%s}", model, msg,
             stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "");
    return b;
}

/* Starts one chat call; fault is an x-mock-fault value or NULL. */
static int call(env *e, outcome *o, const char *model, const char *msg, int stream, const char *fault)
{
    memset(o, 0, sizeof *o);
    sc_buf_init(&o->data, 1 << 22);
    sc_route_header h[2] = {{"x-mock-fault", fault ? fault : ""}, {"Authorization", "Bearer client-key"}};
    const char *body = chat_body(model, msg, stream);
    sc_route_req req = {.method = "POST", .path = "/v1/chat/completions", .body = body,
                        .body_len = strlen(body), .stream = stream, .headers = h, .nheaders = 2};
    if (!fault) {
        req.headers = h + 1;
        req.nheaders = 1;
    }
    return sc_route_request(e->r, &req, &cbs, o, &o->h);
}

static void call_wait(env *e, outcome *o, const char *model, const char *msg, int stream, const char *fault,
                      int ms)
{
    if (call(e, o, model, msg, stream, fault) == 0) run_until(&e->loop, &o->done, ms);
}

static void sleep_loop(env *e, int ms)
{
    run_until(&e->loop, NULL, ms);
}

/* ---------------------------------------------------------------------
 * Pure parts
 * ------------------------------------------------------------------- */

SC_TEST(route_cost_table)
{
    double c = sc_route_cost(NULL, "gpt-4o-mini", 1000000, 1000000);
    CHECK(fabs(c - 0.75) < 1e-9);
    c = sc_route_cost(NULL, "gpt-4o-mini-2024-07-18", 1000, 500);
    CHECK(fabs(c - (1000 * 0.15 + 500 * 0.60) / 1e6) < 1e-12);
    c = sc_route_cost(NULL, "gpt-4o-2024-08-06", 1000000, 0);
    CHECK(fabs(c - 2.50) < 1e-9);
    CHECK(fabs(sc_route_cost(NULL, "openai/gpt-4.1", 0, 1000000) - 8.0) < 1e-9);
    CHECK(sc_route_cost(NULL, "no-such-model", 10, 10) < 0);
    CHECK(sc_route_cost(NULL, "gpt-4omni", 10, 10) < 0);
    double in, out;
    CHECK_OK(sc_route_price(NULL, "gpt-3.5-turbo-0125", &in, &out));
    CHECK(fabs(in - 0.5) < 1e-9 && fabs(out - 1.5) < 1e-9);

    /* A price directive overrides the built-in row and adds new models. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    sc_config cfg;
    sc_config_defaults(&cfg);
    char err[256];
    sc_config_set(&cfg, "price", "gpt-4o-mini 1 2", err, sizeof err);
    sc_config_set(&cfg, "price", "my-llm 10 20", err, sizeof err);
    sc_route *r;
    REQUIRE(sc_route_create(&loop, &cfg, &r, err, sizeof err) == 0);
    CHECK(fabs(sc_route_cost(r, "gpt-4o-mini", 1000000, 1000000) - 3.0) < 1e-9);
    CHECK(fabs(sc_route_cost(r, "my-llm-v2", 1000000, 0) - 10.0) < 1e-9);
    CHECK(fabs(sc_route_cost(r, "gpt-4o", 1000000, 0) - 2.5) < 1e-9);
    sc_route_destroy(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sc_config_free(&cfg);
}

SC_TEST(route_usage_parsers)
{
    sc_route_usage u;
    const char *j = "{\"model\":\"gpt-4o-mini-2024-07-18\",\"usage\":{\"prompt_tokens\":12,"
                    "\"completion_tokens\":7,\"total_tokens\":19}}";
    CHECK_OK(sc_route_usage_from_json(j, strlen(j), &u));
    CHECK(u.found);
    CHECK_EQ_INT(u.prompt_tokens, 12);
    CHECK_EQ_INT(u.completion_tokens, 7);
    CHECK(strcmp(u.model, "gpt-4o-mini-2024-07-18") == 0);
    CHECK_EQ_INT(sc_route_usage_from_json("{\"a\":1}", 7, &u), SC_ENOTFOUND);
    CHECK_EQ_INT(sc_route_usage_from_json("{\"a\":", 5, &u), SC_EPROTO);

    const char *sse =
        "data: {\"id\":\"x\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
        "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\r\n\r\n"
        "data: [DONE]\n\n";
    /* Fed one byte at a time and whole: same result. */
    for (int mode = 0; mode < 2; mode++) {
        sc_route_sse s;
        sc_route_sse_init(&s, 4096);
        if (mode == 0)
            for (size_t i = 0; i < strlen(sse); i++) CHECK_OK(sc_route_sse_feed(&s, sse + i, 1));
        else
            CHECK_OK(sc_route_sse_feed(&s, sse, strlen(sse)));
        CHECK(s.done);
        CHECK(s.usage.found);
        CHECK_EQ_INT(s.usage.prompt_tokens, 3);
        CHECK_EQ_INT(s.usage.completion_tokens, 4);
        CHECK_EQ_INT(s.usage.total_tokens, 7);
        CHECK(strcmp(s.usage.model, "gpt-4o") == 0);
        CHECK_EQ_INT(s.events, 3);
        sc_route_sse_free(&s);
    }
    sc_route_sse s;
    sc_route_sse_init(&s, 16);
    CHECK_EQ_INT(sc_route_sse_feed(&s, "data: 0123456789abcdef", 22), SC_ETOOBIG);
    sc_route_sse_free(&s);
}

/* Retry-After values an upstream may send. "1e300" and "inf" used to be
 * converted to a long long as they were (undefined behaviour; found while
 * writing fuzz_route_parse): anything past a day is now a day. */
SC_TEST(route_retry_after_values)
{
    const long long day = 86400000;
    CHECK_EQ_INT(sc_route__parse_retry_after("2", 0), 2000);
    CHECK_EQ_INT(sc_route__parse_retry_after(" 2.5", 0), 2500);
    CHECK_EQ_INT(sc_route__parse_retry_after("1500", 1), 1500);
    CHECK_EQ_INT(sc_route__parse_retry_after("0", 0), 0);
    CHECK_EQ_INT(sc_route__parse_retry_after("1e300", 0), day);
    CHECK_EQ_INT(sc_route__parse_retry_after("inf", 1), day);
    CHECK_EQ_INT(sc_route__parse_retry_after("90000000", 1), day);
    CHECK_EQ_INT(sc_route__parse_retry_after("nan", 0), -1);
    CHECK_EQ_INT(sc_route__parse_retry_after("-5", 0), -1);
    CHECK_EQ_INT(sc_route__parse_retry_after("soon", 0), -1);
    CHECK_EQ_INT(sc_route__parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0), 0);   /* past */
    long long later = sc_route__parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", 0);
    CHECK_EQ_INT(later, day);
    /* Year 2^31 - 1: its milliseconds overflowed a long long (a reviewer
     * found it; UBSan in make asan reports it). */
    CHECK_EQ_INT(sc_route__parse_retry_after("Wed, 21 Oct 2147483647 07:28:00 GMT", 0), day);
}

SC_TEST(route_config_errors)
{
    const char *bad[][2] = {
        {"upstream-def", "A"},
        {"upstream-def", "A ftp://x -"},
        {"upstream-def", "A http://x - -3"},
        {"route", "* nosuch"},
        {"route", "gpt-*"},
        {"price", "gpt-4o one 2"},
    };
    for (size_t i = 0; i < SC_COUNTOF(bad); i++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        sc_config cfg;
        sc_config_defaults(&cfg);
        char err[256] = "";
        sc_config_set(&cfg, bad[i][0], bad[i][1], err, sizeof err);
        sc_route *r = NULL;
        CHECK_EQ_INT(sc_route_create(&loop, &cfg, &r, err, sizeof err), SC_EINVAL);
        CHECK(strstr(err, bad[i][0]) != NULL);
        CHECK_EQ_INT(uv_loop_close(&loop), 0);
        sc_config_free(&cfg);
    }
}

/* ---------------------------------------------------------------------
 * Against the mock
 * ------------------------------------------------------------------- */

SC_TEST(route_ok_default_upstream)
{
    env e;
    REQUIRE(env_open(&e, NULL) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "hello world", 0, NULL, 5000);
    CHECK_EQ_INT(o.done, 1);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.status, 200);
    CHECK_EQ_INT(o.headers, 1);
    CHECK_EQ_INT(o.attempts, 1);
    CHECK(strstr(o.ctype, "application/json") != NULL);
    CHECK(o.data.data && strstr(o.data.data, "echo: hello world") != NULL);
    CHECK(strcmp(o.upstream, "default") == 0);
    CHECK(o.usage.found && o.usage.prompt_tokens > 0 && o.usage.completion_tokens > 0);
    CHECK(o.cost > 0);
    CHECK(o.first_byte_ms >= 0 && o.first_byte_ms <= o.total_ms);
    /* The key is route's, never the client's. */
    json_t *j = calls(&mocks[0]);
    json_t *h = json_object_get(json_object_get(j, "last_request"), "headers");
    CHECK(strcmp(json_string_value(json_object_get(h, "authorization")), "Bearer sk-default") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(json_object_get(j, "last_request"), "body"),
                                                   "model")), "gpt-4o-mini") == 0);
    json_decref(j);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_retry_429)
{
    const char *kv[] = {"retries", "2", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    plan(&mocks[0], "[\"429\"]");
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "retry me", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.status, 200);
    CHECK_EQ_INT(o.attempts, 2);
    CHECK_EQ_INT(total_calls(&mocks[0]), 2);
    CHECK(strstr(o.message, "HTTP 429") != NULL);
    sc_route_stats st;
    CHECK_OK(sc_route_upstream_stats(e.r, 0, &st));
    CHECK_EQ_INT(st.err_429, 1);
    CHECK_EQ_INT(st.retries, 1);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_retry_after)
{
    const char *kv[] = {"retries", "1", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    plan(&mocks[0], "[\"429:1\"]");
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "wait for it", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.attempts, 2);
    CHECK(o.total_ms >= 1000);
    CHECK(o.total_ms < 3000);
    sc_buf_free(&o.data);
    env_close(&e);
}

static char defs[2][128];

static const char *const *two_upstreams(const char *route, const char *retries)
{
    static const char *kv[16];
    snprintf(defs[0], sizeof defs[0], "A %s SC_TEST_KEY_A", mocks[0].url);
    snprintf(defs[1], sizeof defs[1], "B %s/v1 - 0", mocks[1].url);
    setenv("SC_TEST_KEY_A", "sk-a", 1);
    const char *v[] = {"upstream-def", defs[0], "upstream-def", defs[1], "route", route, "retries", retries,
                       "breaker-failures", "100", NULL};
    memcpy(kv, v, sizeof v);
    return kv;
}

SC_TEST(route_fallback_on_500)
{
    REQUIRE(mocks_up());
    env e;
    REQUIRE(env_open(&e, two_upstreams("gpt-* A,B:gpt-4o", "0")) == 0);
    plan(&mocks[0], "[\"500\"]");
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "fall back", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.status, 200);
    CHECK(strcmp(o.upstream, "B") == 0);
    CHECK(strcmp(o.hdr_upstream, "B") == 0);   /* known when the headers are relayed */
    CHECK_EQ_INT(o.attempts, 2);
    CHECK_EQ_INT(o.fallbacks, 1);
    CHECK_EQ_INT(total_calls(&mocks[0]), 1);
    CHECK_EQ_INT(total_calls(&mocks[1]), 1);
    /* A got its key from the environment; B has none; B saw the rewritten model. */
    json_t *ja = calls(&mocks[0]), *jb = calls(&mocks[1]);
    json_t *la = json_object_get(ja, "last_request"), *lb = json_object_get(jb, "last_request");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(la, "headers"), "authorization")),
                 "Bearer sk-a") == 0);
    CHECK(json_object_get(json_object_get(lb, "headers"), "authorization") == NULL);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(lb, "body"), "model")), "gpt-4o") == 0);
    CHECK(strcmp(json_string_value(json_object_get(lb, "path")), "/v1/chat/completions") == 0);
    json_decref(ja);
    json_decref(jb);
    /* A model no route matches goes to the implicit default (mock A here). */
    sc_buf_free(&o.data);
    call_wait(&e, &o, "claude-x", "default route", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK(strcmp(o.upstream, "default") == 0);
    CHECK(strcmp(o.hdr_upstream, "default") == 0);
    sc_buf_free(&o.data);
    /* A stream commits at its headers: they name the fallback that serves it. */
    plan(&mocks[0], "[\"500\"]");
    call_wait(&e, &o, "gpt-4o-mini", "fall back streaming", 1, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK(strncmp(o.ctype, "text/event-stream", 17) == 0);
    CHECK(strcmp(o.hdr_upstream, "B") == 0);
    CHECK(strcmp(o.upstream, "B") == 0);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_all_targets_fail)
{
    REQUIRE(mocks_up());
    env e;
    REQUIRE(env_open(&e, two_upstreams("* A,B", "1")) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "doomed", 0, "503", 8000);
    CHECK_EQ_INT(o.done, 1);
    CHECK_EQ_INT(o.err, SC_EUPSTREAM);
    CHECK_EQ_INT(o.status, 503);
    CHECK_EQ_INT(o.headers, 0);
    CHECK_EQ_INT(o.headers_sent, 0);
    CHECK_EQ_INT(o.data.len, 0);
    CHECK_EQ_INT(o.attempts, 4);
    CHECK(strstr(o.message, "A: HTTP 503") != NULL);
    CHECK(strstr(o.message, "B: HTTP 503") != NULL);
    CHECK_EQ_INT(total_calls(&mocks[0]), 2);
    CHECK_EQ_INT(total_calls(&mocks[1]), 2);
    sc_route_result res = {.err = o.err, .status = o.status};
    CHECK_EQ_INT(sc_route_http_status(&res), 502);
    res.status = 429;
    CHECK_EQ_INT(sc_route_http_status(&res), 429);
    res.err = SC_ETIMEOUT;
    CHECK_EQ_INT(sc_route_http_status(&res), 504);
    res.err = SC_EBUSY;
    res.status = 0;
    CHECK_EQ_INT(sc_route_http_status(&res), 503);
    res.headers_sent = 1;
    res.status = 400;
    CHECK_EQ_INT(sc_route_http_status(&res), 400);
    CHECK(strcmp(sc_route_breaker_name(SC_ROUTE_HALF_OPEN), "half-open") == 0);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_breaker_open_and_recover)
{
    REQUIRE(mocks_up());
    const char *kv[] = {"retries", "0", "breaker-failures", "2", "breaker-cooldown-ms", "800", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    plan(&mocks[0], "[\"500\", \"500\"]");
    outcome o;
    for (int i = 0; i < 2; i++) {
        call_wait(&e, &o, "gpt-4o-mini", "fail", 0, NULL, 5000);
        CHECK_EQ_INT(o.err, SC_EUPSTREAM);
        sc_buf_free(&o.data);
    }
    sc_route_stats st;
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK_EQ_INT(st.breaker, SC_ROUTE_OPEN);
    CHECK_EQ_INT(st.breaker_opens, 1);
    /* Open: nothing reaches the upstream. */
    for (int i = 0; i < 3; i++) {
        call_wait(&e, &o, "gpt-4o-mini", "skipped", 0, NULL, 5000);
        CHECK_EQ_INT(o.err, SC_EBUSY);
        CHECK_EQ_INT(o.attempts, 0);
        CHECK(strstr(o.message, "breaker open") != NULL);
        sc_buf_free(&o.data);
    }
    CHECK_EQ_INT(total_calls(&mocks[0]), 2);
    /* After the cooldown a failing probe opens it again... */
    sleep_loop(&e, 850);
    plan(&mocks[0], "[\"500\"]");
    call_wait(&e, &o, "gpt-4o-mini", "probe 1", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, SC_EUPSTREAM);
    CHECK_EQ_INT(o.attempts, 1);
    sc_buf_free(&o.data);
    call_wait(&e, &o, "gpt-4o-mini", "skipped again", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, SC_EBUSY);
    sc_buf_free(&o.data);
    CHECK_EQ_INT(total_calls(&mocks[0]), 3);
    /* ...and a good probe closes it. */
    sleep_loop(&e, 850);
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK_EQ_INT(st.breaker, SC_ROUTE_HALF_OPEN);
    call_wait(&e, &o, "gpt-4o-mini", "probe 2", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    sc_buf_free(&o.data);
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK_EQ_INT(st.breaker, SC_ROUTE_CLOSED);
    call_wait(&e, &o, "gpt-4o-mini", "normal", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    sc_buf_free(&o.data);
    CHECK_EQ_INT(total_calls(&mocks[0]), 5);
    env_close(&e);
}

SC_TEST(route_breaker_skips_to_fallback)
{
    REQUIRE(mocks_up());
    env e;
    const char *const *kv = two_upstreams("* A,B", "0");
    REQUIRE(env_open(&e, kv) == 0);
    char err[256];
    sc_route_destroy(e.r);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    sc_config_set(&e.cfg, "breaker-failures", "1", err, sizeof err);
    REQUIRE(sc_route_create(&e.loop, &e.cfg, &e.r, err, sizeof err) == 0);
    plan(&mocks[0], "[\"500\"]");
    outcome o;
    call_wait(&e, &o, "m", "one", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK(strcmp(o.upstream, "B") == 0);
    sc_buf_free(&o.data);
    call_wait(&e, &o, "m", "two", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK(strcmp(o.upstream, "B") == 0);
    CHECK_EQ_INT(o.attempts, 1);
    CHECK(strstr(o.message, "A: skipped, breaker open") != NULL);
    CHECK_EQ_INT(total_calls(&mocks[0]), 1);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_first_byte_timeout)
{
    const char *kv[] = {"retries", "0", "first-byte-timeout-ms", "300", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "hang", 0, "hang", 5000);
    CHECK_EQ_INT(o.done, 1);
    CHECK_EQ_INT(o.err, SC_ETIMEOUT);
    CHECK_EQ_INT(o.headers, 0);
    CHECK(o.total_ms >= 290 && o.total_ms < 2000);
    CHECK(strstr(o.message, "first byte") != NULL);
    sc_buf_free(&o.data);
    /* slow:MS under the limit is fine. */
    call_wait(&e, &o, "gpt-4o-mini", "slow", 0, "slow:100", 5000);
    CHECK_EQ_INT(o.err, 0);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_stream_relay)
{
    env e;
    REQUIRE(env_open(&e, NULL) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "one two three", 1, "slowstream:60", 8000);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.status, 200);
    CHECK(strstr(o.ctype, "text/event-stream") != NULL);
    CHECK(o.nchunks >= 4);
    /* Incremental: the first chunk came well before the end. */
    CHECK(o.t_first_chunk && (double)(o.t_done - o.t_first_chunk) / 1e6 > 200);
    CHECK(o.data.data && strstr(o.data.data, "chat.completion.chunk") != NULL);
    CHECK(o.data.len > 14 && memcmp(o.data.data + o.data.len - 14, "data: [DONE]\n\n", 14) == 0);
    CHECK(o.usage.found && o.usage.completion_tokens > 0);
    CHECK(o.cost > 0);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_stream_truncated_is_error)
{
    const char *kv[] = {"retries", "2", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "a b c d e f g", 1, "truncate", 5000);
    CHECK_EQ_INT(o.done, 1);
    CHECK_EQ_INT(o.headers_sent, 1);
    CHECK(o.err != 0);
    CHECK_EQ_INT(o.err, SC_EPROTO);
    CHECK_EQ_INT(o.attempts, 1); /* committed: no retry */
    CHECK(o.data.len > 0);
    CHECK(!o.data.data || !strstr(o.data.data, "[DONE]"));
    sc_buf_free(&o.data);
    /* Non-streamed truncation is caught before delivery and retried. */
    plan(&mocks[0], "[\"truncate\"]");
    call_wait(&e, &o, "gpt-4o-mini", "whole", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.attempts, 2);
    sc_buf_free(&o.data);
    /* So is a 200 that is not JSON. */
    plan(&mocks[0], "[\"badjson\"]");
    call_wait(&e, &o, "gpt-4o-mini", "json", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK_EQ_INT(o.attempts, 2);
    CHECK(strstr(o.message, "invalid JSON") != NULL);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_cancel_mid_stream)
{
    env e;
    REQUIRE(env_open(&e, NULL) == 0);
    outcome o;
    REQUIRE(call(&e, &o, "gpt-4o-mini", "one two three four five", 1, "slowstream:100") == 0);
    o.cancel_after = 2;
    run_until(&e.loop, &o.cancelled, 5000);
    CHECK(o.cancelled);
    sleep_loop(&e, 400);
    CHECK_EQ_INT(o.done, 0);
    CHECK_EQ_INT(o.late_callback, 0);
    CHECK_EQ_INT(o.nchunks, 2);
    CHECK_EQ_INT(sc_route_active(e.r), 0);
    sc_route_stats st;
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    sc_buf_free(&o.data);
    /* Cancel before anything happened, and while queued behind a hang. */
    REQUIRE(call(&e, &o, "gpt-4o-mini", "never", 0, "slow:200") == 0);
    sc_route_cancel(o.h);
    sleep_loop(&e, 300);
    CHECK_EQ_INT(o.done, 0);
    sc_buf_free(&o.data);
    /* The router still works afterwards. */
    call_wait(&e, &o, "gpt-4o-mini", "after", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_relays_client_errors)
{
    const char *kv[] = {"retries", "2", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "bad", 0, "status:400", 5000);
    CHECK_EQ_INT(o.err, SC_EUPSTREAM);
    CHECK_EQ_INT(o.status, 400);
    CHECK_EQ_INT(o.headers_sent, 1);
    CHECK_EQ_INT(o.attempts, 1);
    CHECK(o.data.data && strstr(o.data.data, "\"error\"") != NULL);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_body_too_big)
{
    const char *kv[] = {"retries", "0", "max-upstream-body", "1024", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    char msg[1500];
    memset(msg, 'x', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", msg, 0, NULL, 5000);
    CHECK_EQ_INT(o.err, SC_ETOOBIG);
    CHECK_EQ_INT(o.headers, 0);
    CHECK(strstr(o.message, "max-upstream-body") != NULL);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_connect_error_and_queue)
{
    REQUIRE(mocks_up());
    /* C: a port nobody listens on (connect refused) -> fallback to A, which
     * runs one request at a time: the second call queues. */
    static char defc[128], defa[128];
    snprintf(defc, sizeof defc, "C http://127.0.0.1:1 -");
    snprintf(defa, sizeof defa, "A %s - 1", mocks[0].url);
    const char *kv[] = {"upstream-def", defc, "upstream-def", defa, "route", "* C,A", "retries", "0", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    outcome o1, o2;
    REQUIRE(call(&e, &o1, "m", "first", 0, "slow:300") == 0);
    REQUIRE(call(&e, &o2, "m", "second", 0, "slow:300") == 0);
    run_until(&e.loop, &o1.done, 5000);
    run_until(&e.loop, &o2.done, 5000);
    CHECK_EQ_INT(o1.err, 0);
    CHECK_EQ_INT(o2.err, 0);
    CHECK(strstr(o1.message, "C: connection failed") != NULL);
    CHECK(strcmp(o1.upstream, "A") == 0);
    double later = o1.total_ms > o2.total_ms ? o1.total_ms : o2.total_ms;
    CHECK(later >= 580); /* serialised: 2 x 300 ms */
    sc_route_stats st;
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK(strcmp(st.name, "C") == 0);
    CHECK_EQ_INT(st.err_connect, 2);
    CHECK_EQ_INT(st.fallbacks, 2);
    sc_buf m;
    sc_buf_init(&m, 1 << 20);
    CHECK_OK(sc_route_metrics(e.r, &m));
    CHECK(strstr(m.data, "semcached_upstream_errors_total{upstream=\"C\",kind=\"connect\"} 2") != NULL);
    CHECK(strstr(m.data, "semcached_upstream_calls_total{upstream=\"A\"} 2") != NULL);
    sc_buf_reset(&m);
    CHECK_OK(sc_route_stats_json(e.r, &m));
    json_error_t je;
    json_t *j = json_loadb(m.data, m.len, 0, &je);
    CHECK(json_is_array(j) && json_array_size(j) == 3);
    json_decref(j);
    sc_buf_free(&m);
    sc_buf_free(&o1.data);
    sc_buf_free(&o2.data);
    env_close(&e);
}

SC_TEST(route_idle_timeout_mid_stream)
{
    const char *kv[] = {"retries", "2", "upstream-idle-timeout-ms", "150", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "a b c d", 1, "slowstream:400", 5000);
    CHECK_EQ_INT(o.done, 1);
    CHECK_EQ_INT(o.headers_sent, 1);
    CHECK_EQ_INT(o.err, SC_ETIMEOUT);
    CHECK_EQ_INT(o.attempts, 1);
    CHECK(o.total_ms < 1000);
    CHECK(strstr(o.message, "no data for 150 ms") != NULL);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_retry_after_over_cap_falls_back)
{
    REQUIRE(mocks_up());
    env e;
    REQUIRE(env_open(&e, two_upstreams("* A,B", "2")) == 0);
    plan(&mocks[0], "[\"429:60\"]");
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "busy", 0, NULL, 5000);
    CHECK_EQ_INT(o.err, 0);
    CHECK(strcmp(o.upstream, "B") == 0);
    CHECK(o.total_ms < 1000);
    CHECK(strstr(o.message, "over the cap") != NULL);
    sc_buf_free(&o.data);
    env_close(&e);
}

SC_TEST(route_message_example)
{
    REQUIRE(mocks_up());
    env e;
    REQUIRE(env_open(&e, two_upstreams("* A,B", "1")) == 0);
    outcome o;
    call_wait(&e, &o, "gpt-4o-mini", "doomed", 0, "500", 5000);
    CHECK(strstr(o.message, "A: HTTP 500; A: HTTP 500; B: HTTP 500; B: HTTP 500") != NULL);
    sc_buf_free(&o.data);
    env_close(&e);
}

/* Every commented-out directive of semcached.conf.sample parses, and the
 * routing example builds a router. */
SC_TEST(route_sample_config)
{
    FILE *f = fopen("semcached.conf.sample", "r");
    REQUIRE(f != NULL);
    sc_config cfg;
    sc_config_defaults(&cfg);
    char line[1024], err[512];
    int lineno = 0, set = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strncmp(line, "# ", 2) != 0 || line[2] < 'a' || line[2] > 'z') continue;
        char *s = line + 2, *hash = strchr(s, '#');
        if (hash) *hash = '\0';
        s[strcspn(s, "\r\n")] = '\0';
        char *sp = strchr(s, ' ');
        if (!sp) continue;
        *sp++ = '\0';
        while (*sp == ' ') sp++;
        size_t n = strlen(sp);
        while (n && sp[n - 1] == ' ') sp[--n] = '\0';
        int rc = sc_config_set(&cfg, s, sp, err, sizeof err);
        if (rc == SC_ENOTFOUND) continue;
        if (rc) sc_test_fail(__FILE__, __LINE__, "sample line %d: %s", lineno, err);
        set++;
    }
    fclose(f);
    CHECK(set >= 15);
    CHECK_EQ_INT(cfg.upstream_defs.n, 3);
    CHECK_EQ_INT(cfg.routes.n, 3);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sc_route *r = NULL;
    int rc = sc_route_create(&loop, &cfg, &r, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "%s", err);
    if (r) {
        CHECK_EQ_INT(sc_route_upstream_count(r), 4);
        sc_route_destroy(r);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sc_config_free(&cfg);
}

SC_TEST(route_cancel_other_and_queued)
{
    REQUIRE(mocks_up());
    static char defa[128];
    snprintf(defa, sizeof defa, "A %s - 1", mocks[0].url);
    const char *kv[] = {"upstream-def", defa, "route", "* A", NULL};
    env e;
    REQUIRE(env_open(&e, kv) == 0);
    /* Call 1 streams; call 2 runs on the default upstream; call 3 queues
     * behind call 1 on A. Call 1's first chunk cancels call 2 (from inside
     * a curl callback of another call) and we cancel call 3 in the queue. */
    outcome o1, o2, o3;
    REQUIRE(call(&e, &o1, "gpt-x", "a b c", 1, "slowstream:50") == 0);
    REQUIRE(call(&e, &o3, "gpt-x", "queued", 0, NULL) == 0);
    REQUIRE(call(&e, &o2, "other-model", "victim", 1, "slowstream:50") == 0);
    /* call 2 must go to the default upstream (mock A too, different rule). */
    o1.victim = &o2;
    run_until(&e.loop, &o2.cancelled, 5000);
    CHECK(o2.cancelled);
    sc_route_stats st;
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK(strcmp(st.name, "A") == 0);
    CHECK_EQ_INT(st.queued, 1);
    o3.cancelled = 1;
    sc_route_cancel(o3.h);
    run_until(&e.loop, &o1.done, 5000);
    CHECK_EQ_INT(o1.err, 0);
    sleep_loop(&e, 100);
    CHECK_EQ_INT(o2.done + o3.done, 0);
    CHECK_EQ_INT(o2.late_callback + o3.late_callback, 0);
    CHECK_EQ_INT(sc_route_active(e.r), 0);
    sc_route_upstream_stats(e.r, 0, &st);
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.in_flight, 0);
    sc_buf_free(&o1.data);
    sc_buf_free(&o2.data);
    sc_buf_free(&o3.data);
    env_close(&e);
}

SC_TEST(route_many_concurrent)
{
    env e;
    REQUIRE(env_open(&e, NULL) == 0);
    enum { N = 100 };
    static outcome o[N];
    int done = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            char msg[32];
            snprintf(msg, sizeof msg, "msg %d", i);
            REQUIRE(call(&e, &o[i], "gpt-4o-mini", msg, i % 2, NULL) == 0);
        }
        for (int i = 0; i < N; i++) run_until(&e.loop, &o[i].done, 10000);
        for (int i = 0; i < N; i++) {
            char want[32];
            snprintf(want, sizeof want, "msg %d", i);
            if (i % 2) snprintf(want, sizeof want, "data: [DONE]");
            done += o[i].done == 1 && o[i].err == 0 && o[i].data.data && strstr(o[i].data.data, want);
            sc_buf_free(&o[i].data);
        }
    }
    CHECK_EQ_INT(done, 2 * N);
    CHECK_EQ_INT(total_calls(&mocks[0]), 2 * N);
    CHECK_EQ_INT(sc_route_active(e.r), 0);
    env_close(&e);
}
