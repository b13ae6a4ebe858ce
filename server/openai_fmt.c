/* OpenAI wire-format conversions: stream <-> body, text -> body. */
#include "server/openai_fmt.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *object_name(int kind, int chunk)
{
    if (kind == SC_OAI_CHAT) return chunk ? "chat.completion.chunk" : "chat.completion";
    return "text_completion";
}

char *sc_oai_body_from_text(int kind, const char *model, const char *text, size_t len,
                            uint32_t prompt_tokens, uint32_t completion_tokens, size_t *outlen)
{
    char id[64];
    static _Atomic unsigned long long seq;
    snprintf(id, sizeof id, "%s-semcache-%llx-%llu", kind == SC_OAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), ++seq);
    json_t *choice = kind == SC_OAI_CHAT
        ? json_pack("{s:i,s:{s:s,s:s%},s:s}", "index", 0, "message", "role", "assistant", "content",
                    text, len, "finish_reason", "stop")
        : json_pack("{s:i,s:s%,s:s}", "index", 0, "text", text, len, "finish_reason", "stop");
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:{s:i,s:i,s:i}}", "id", id, "object",
                          object_name(kind, 0), "created", (json_int_t)time(NULL), "model",
                          model ? model : "", "choices", choice, "usage", "prompt_tokens",
                          (int)prompt_tokens, "completion_tokens", (int)completion_tokens,
                          "total_tokens", (int)(prompt_tokens + completion_tokens));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *outlen = strlen(s);
    return s;
}

static int emit(sc_buf *out, json_t *chunk)
{
    char *s = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (!s) return SC_EINVAL;
    int rc = sc_buf_puts(out, "data: ");
    if (!rc) rc = sc_buf_puts(out, s);
    if (!rc) rc = sc_buf_puts(out, "\n\n");
    free(s);
    return rc;
}

/* tool_calls of a message as stream deltas (each with its index). */
static json_t *tool_call_deltas(json_t *calls)
{
    json_t *arr = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *d = json_deep_copy(c);
        json_object_set_new(d, "index", json_integer((json_int_t)i));
        json_array_append_new(arr, d);
    }
    return arr;
}

int sc_oai_sse_from_body(int kind, const char *body, size_t len, int include_usage, sc_buf *out)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return SC_EINVAL;
    }
    json_t *id = json_object_get(o, "id"), *model = json_object_get(o, "model");
    json_t *created = json_object_get(o, "created");
    json_t *choices = json_object_get(o, "choices");
    const char *obj = object_name(kind, 1);
    int rc = SC_OK;
    size_t i;
    json_t *ch;
    json_t *idv = json_is_string(id) ? id : NULL, *modelv = json_is_string(model) ? model : NULL;
    json_int_t createdv = json_is_integer(created) ? json_integer_value(created) : 0;
    json_array_foreach(choices, i, ch) {
        json_t *fr = json_object_get(ch, "finish_reason");
        const char *frs = json_is_string(fr) ? json_string_value(fr) : "stop";
        json_t *c1, *c2;
        if (kind == SC_OAI_CHAT) {
            json_t *msg = json_object_get(ch, "message");
            json_t *delta = json_pack("{s:s}", "role", "assistant");
            json_t *content = json_object_get(msg, "content");
            json_object_set_new(delta, "content", content ? json_incref(content) : json_null());
            json_t *calls = json_object_get(msg, "tool_calls");
            if (json_is_array(calls)) json_object_set_new(delta, "tool_calls", tool_call_deltas(calls));
            json_t *refusal = json_object_get(msg, "refusal");
            if (json_is_string(refusal)) json_object_set(delta, "refusal", refusal);
            c1 = json_pack("{s:I,s:o,s:n,s:n}", "index", (json_int_t)i, "delta", delta, "logprobs",
                           "finish_reason");
            c2 = json_pack("{s:I,s:{},s:s}", "index", (json_int_t)i, "delta", "finish_reason", frs);
        } else {
            json_t *text = json_object_get(ch, "text");
            c1 = json_pack("{s:I,s:s,s:n,s:n}", "index", (json_int_t)i, "text",
                           json_is_string(text) ? json_string_value(text) : "", "finish_reason",
                           "logprobs");
            c2 = json_pack("{s:I,s:s,s:s}", "index", (json_int_t)i, "text", "", "finish_reason", frs);
        }
        for (int k = 0; k < 2; k++) {
            json_t *chunk = json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", idv ? json_string_value(idv) : "",
                                      "object", obj, "created", createdv, "model",
                                      modelv ? json_string_value(modelv) : "", "choices", k ? c2 : c1);
            if (!rc) rc = emit(out, chunk);
            else json_decref(chunk);
        }
    }
    json_t *usage = json_object_get(o, "usage");
    if (!rc && include_usage && usage)
        rc = emit(out, json_pack("{s:s,s:s,s:I,s:s,s:[],s:O}", "id", idv ? json_string_value(idv) : "",
                                 "object", obj, "created", createdv, "model",
                                 modelv ? json_string_value(modelv) : "", "choices", "usage", usage));
    if (!rc) rc = sc_buf_puts(out, "data: [DONE]\n\n");
    json_decref(o);
    return rc;
}

/* ---------------------------------------------------------------------
 * Stream reader
 * ------------------------------------------------------------------- */

void sc_oai_stream_init(sc_oai_stream *s, int kind, int drop_usage_chunk, size_t max)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->drop_usage_chunk = drop_usage_chunk;
    sc_buf_init(&s->line, max);
    sc_buf_init(&s->content, max);
}

void sc_oai_stream_free(sc_oai_stream *s)
{
    sc_buf_free(&s->line);
    sc_buf_free(&s->content);
    free(s->id);
    free(s->model);
    free(s->role);
    free(s->finish_reason);
}

static void set_str(char **dst, json_t *v)
{
    if (!json_is_string(v)) return;
    free(*dst);
    *dst = sc_strdup(json_string_value(v));
}

/* Reads one event's data; returns 1 when the event is relayed. */
static int take_event(sc_oai_stream *s, const char *data, size_t len)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = 1;
        return 1;
    }
    json_t *o = json_loadb(data, len, 0, NULL);
    if (!json_is_object(o)) {
        s->unstorable = 1;
        json_decref(o);
        return 1;
    }
    if (json_object_get(o, "error")) s->unstorable = 1;
    set_str(&s->id, json_object_get(o, "id"));
    set_str(&s->model, json_object_get(o, "model"));
    json_t *created = json_object_get(o, "created");
    if (json_is_integer(created)) s->created = json_integer_value(created);
    json_t *usage = json_object_get(o, "usage");
    if (json_is_object(usage)) {
        s->have_usage = 1;
        s->prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        s->completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_t *choices = json_object_get(o, "choices");
    int relay = 1;
    if (json_is_array(choices) && json_array_size(choices) == 0 && json_is_object(usage) &&
        s->drop_usage_chunk)
        relay = 0;
    size_t i;
    json_t *ch;
    json_array_foreach(choices, i, ch) {
        json_t *idx = json_object_get(ch, "index");
        if (json_is_integer(idx) && json_integer_value(idx) != 0) s->unstorable = 1;
        set_str(&s->finish_reason, json_object_get(ch, "finish_reason"));
        json_t *text;
        if (s->kind == SC_OAI_CHAT) {
            json_t *delta = json_object_get(ch, "delta");
            set_str(&s->role, json_object_get(delta, "role"));
            if (json_object_get(delta, "tool_calls") || json_object_get(delta, "function_call"))
                s->unstorable = 1;
            text = json_object_get(delta, "content");
        } else {
            text = json_object_get(ch, "text");
        }
        if (json_is_string(text) &&
            sc_buf_append(&s->content, json_string_value(text), json_string_length(text)))
            s->unstorable = 1;
    }
    json_decref(o);
    return relay;
}

/* Handles one complete event (lines up to a blank line). */
static int take_block(sc_oai_stream *s, const char *p, size_t n, sc_buf *relay)
{
    /* Join the data: lines of the event. */
    sc_buf data;
    sc_buf_init(&data, s->line.max);
    const char *q = p, *end = p + n;
    int has_data = 0;
    while (q < end) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        const char *le = nl ? nl : end;
        size_t ll = (size_t)(le - q);
        if (ll && q[ll - 1] == '\r') ll--;
        if (ll >= 5 && memcmp(q, "data:", 5) == 0) {
            const char *v = q + 5;
            size_t vl = ll - 5;
            if (vl && *v == ' ') v++, vl--;
            if (has_data) sc_buf_append(&data, "\n", 1);
            sc_buf_append(&data, v, vl);
            has_data = 1;
        }
        q = le + 1;
    }
    int keep = has_data ? take_event(s, data.data ? data.data : "", data.len) : 1;
    sc_buf_free(&data);
    if (keep) {
        /* The event with its end, or nothing of it. */
        size_t before = relay->len;
        int rc = sc_buf_append(relay, p, n);
        if (!rc) rc = sc_buf_append(relay, "\n\n", 2);
        if (rc) {
            relay->len = before;
            if (relay->data) relay->data[before] = '\0';
        }
        return rc;
    }
    return SC_OK;
}

/* Events are cut at blank lines. s->scan remembers how far the partial
 * event in s->line is known to hold no event end, so a long event that
 * arrives in small pieces is scanned once, not once per piece (which was
 * quadratic): each byte is examined a few times at most, and the buffer is
 * shifted once per feed, only when events were taken. */
int sc_oai_stream_feed(sc_oai_stream *s, const char *p, size_t n, sc_buf *relay)
{
    if (s->failed) return s->failed;
    if (sc_buf_append(&s->line, p, n)) {
        s->failed = SC_ETOOBIG;
        s->unstorable = 1;
        return SC_ETOOBIG;
    }
    const char *buf = s->line.data;
    size_t len = s->line.len, start = 0, i = s->scan;
    int rc = SC_OK;
    while (i + 1 < len) {
        /* An event ends at a blank line: "\n\n" or "\n\r\n" (so also
         * "\r\n\r\n"; take_block drops the line's own "\r"). */
        size_t skip = 0;
        if (buf[i] == '\n') {
            if (buf[i + 1] == '\n') {
                skip = 2;
            } else if (buf[i + 1] == '\r') {
                if (i + 2 == len) break;   /* decided by the next piece */
                if (buf[i + 2] == '\n') skip = 3;
            }
        }
        if (!skip) {
            i++;
            continue;
        }
        rc = take_block(s, buf + start, i - start, relay);
        start = i = i + skip;
        if (rc) break;
    }
    if (start) sc_buf_consume(&s->line, start);
    s->scan = i - start;
    if (rc) {
        s->failed = rc;
        s->unstorable = 1;
    }
    return rc;
}

char *sc_oai_stream_body(const sc_oai_stream *s, size_t *len)
{
    if (!s->done || s->unstorable) return NULL;
    const char *text = s->content.data ? s->content.data : "";
    json_t *choice = s->kind == SC_OAI_CHAT
        ? json_pack("{s:i,s:{s:s,s:s%},s:s}", "index", 0, "message", "role",
                    s->role ? s->role : "assistant", "content", text, s->content.len, "finish_reason",
                    s->finish_reason ? s->finish_reason : "stop")
        : json_pack("{s:i,s:s%,s:s}", "index", 0, "text", text, s->content.len, "finish_reason",
                    s->finish_reason ? s->finish_reason : "stop");
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", s->id ? s->id : "", "object",
                          object_name(s->kind, 0), "created", (json_int_t)s->created, "model",
                          s->model ? s->model : "", "choices", choice);
    if (s->have_usage)
        json_object_set_new(o, "usage",
                            json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)s->prompt_tokens,
                                      "completion_tokens", (json_int_t)s->completion_tokens,
                                      "total_tokens", (json_int_t)(s->prompt_tokens + s->completion_tokens)));
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = strlen(out);
    return out;
}
