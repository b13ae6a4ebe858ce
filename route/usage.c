/* Token usage from upstream answers: the "usage" object of a JSON answer
 * and the final usage chunk of an SSE stream (OpenAI sends it when the
 * request had stream_options.include_usage), plus the `data: [DONE]`
 * terminator that tells a complete stream from a cut one. Pure code (bytes
 * in, structs out), any thread; the SSE scanner belongs to its user. */
#include "route.h"

#include "common/err.h"

#include <jansson.h>
#include <string.h>

static long long int_field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* Reads usage and model from a parsed answer; 1 when usage was found. */
static int take_usage(json_t *root, sc_route_usage *u)
{
    if (!json_is_object(root)) return 0;
    json_t *m = json_object_get(root, "model");
    if (json_is_string(m) && !u->model[0]) {
        const char *s = json_string_value(m);
        size_t n = strlen(s);
        if (n >= sizeof u->model) n = sizeof u->model - 1;
        memcpy(u->model, s, n);
        u->model[n] = '\0';
    }
    json_t *us = json_object_get(root, "usage");
    if (!json_is_object(us)) return 0;
    u->found = 1;
    u->prompt_tokens = int_field(us, "prompt_tokens");
    u->completion_tokens = int_field(us, "completion_tokens");
    u->total_tokens = int_field(us, "total_tokens");
    if (!u->total_tokens) u->total_tokens = u->prompt_tokens + u->completion_tokens;
    return 1;
}

int sc_route_usage_from_json(const char *body, size_t len, sc_route_usage *u)
{
    memset(u, 0, sizeof *u);
    json_error_t e;
    json_t *root = json_loadb(body, len, 0, &e);
    if (!root) return SC_EPROTO;
    int found = take_usage(root, u);
    json_decref(root);
    return found ? SC_OK : SC_ENOTFOUND;
}

void sc_route_sse_init(sc_route_sse *s, size_t max_line)
{
    memset(s, 0, sizeof *s);
    sc_buf_init(&s->line, max_line);
}

void sc_route_sse_free(sc_route_sse *s)
{
    sc_buf_free(&s->line);
}

static void on_line(sc_route_sse *s, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r') n--;
    if (n < 5 || memcmp(p, "data:", 5) != 0) return;
    p += 5;
    n -= 5;
    if (n && *p == ' ') { p++; n--; }
    s->events++;
    if (n == 6 && memcmp(p, "[DONE]", 6) == 0) {
        s->done = 1;
        return;
    }
    /* Only chunks that can carry usage, the model (the first) or an error
     * are parsed; the content chunks in between are skipped cheaply. */
    int want = s->events == 1 || memmem(p, n, "\"usage\"", 7) || memmem(p, n, "\"error\"", 7);
    if (!want) return;
    json_error_t e;
    json_t *root = json_loadb(p, n, 0, &e);
    if (!root) return;
    if (json_is_object(json_object_get(root, "error"))) s->error = 1;
    sc_route_usage u = s->usage;
    if (take_usage(root, &u)) s->usage = u;
    else memcpy(s->usage.model, u.model, sizeof u.model);
    json_decref(root);
}

int sc_route_sse_feed(sc_route_sse *s, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) return sc_buf_append(&s->line, p, n);
        size_t k = (size_t)(nl - p);
        if (s->line.len) {
            int rc = sc_buf_append(&s->line, p, k);
            if (rc) return rc;
            on_line(s, s->line.data, s->line.len);
            sc_buf_reset(&s->line);
        } else {
            on_line(s, p, k);
        }
        p += k + 1;
        n -= k + 1;
    }
    return SC_OK;
}
