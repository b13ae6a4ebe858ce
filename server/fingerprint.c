/* Request validation, prompt extraction and context fingerprints. */
#include "server/fingerprint.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP_SEED 0x5e3ca11edULL

/* Fields that never change the answer. */
static const char *const ignored[] = {"stream", "stream_options", "user", "metadata", "store",
                                      "service_tier"};

/* Top-level parameters dropped when they hold their default value, so that
 * stating the default and leaving the parameter out share a partition.
 * These defaults are the OpenAI API reference's (Chat Completions and the
 * legacy Completions: n 1, temperature 1, top_p 1, presence_penalty 0,
 * frequency_penalty 0). Only these: a parameter whose default is not
 * documented, or differs between models, is never dropped. A null value is
 * kept (not taken for the default). */
static const struct {
    const char *name;
    double value;
} defaults[] = {{"n", 1}, {"temperature", 1}, {"top_p", 1}, {"presence_penalty", 0},
                {"frequency_penalty", 0}};

/* Canonical numbers for the top-level parameters: a real with an integral
 * value that fits an int64 becomes that integer (1.0 -> 1, -0.0 -> 0);
 * other reals are left as they are (json_dumps prints them with 17
 * significant digits, which round-trips, so two reals hash alike exactly
 * when they are the same double). Numbers nested deeper (tool schemas,
 * response_format, messages) are not touched: they may reach the model as
 * text, where 1.0 and 1 differ. Then the parameters at their default are
 * dropped. */
static void canonicalise_params(json_t *ctx)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(ctx, tmp, key, v) {
        if (!json_is_real(v)) continue;
        double d = json_real_value(v);
        /* [-2^63, 2^63): every integral double in it converts exactly. */
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(json_int_t)d)
            json_object_set_new(ctx, key, json_integer((json_int_t)d));
    }
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        json_t *p = json_object_get(ctx, defaults[i].name);
        if (json_is_number(p) && json_number_value(p) == defaults[i].value)
            json_object_del(ctx, defaults[i].name);
    }
}

/* Text of a message's content: a string, or the text parts of an array.
 * Non-text parts (images, audio) make *other = 1 (they go into the
 * fingerprint through the caller). */
static int content_text(json_t *content, sc_buf *out, int *other)
{
    if (json_is_string(content))
        return sc_buf_append(out, json_string_value(content), json_string_length(content));
    if (!json_is_array(content)) return SC_EINVAL;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (json_is_string(type) && !strcmp(json_string_value(type), "text") && json_is_string(text)) {
            if (out->len && sc_buf_append(out, "\n", 1)) return SC_ETOOBIG;
            if (sc_buf_append(out, json_string_value(text), json_string_length(text))) return SC_ETOOBIG;
        } else if (json_is_object(part)) {
            *other = 1;
        } else {
            return SC_EINVAL;
        }
    }
    return SC_OK;
}

static uint64_t hash_canonical(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    uint64_t h = sc_hash64(s, strlen(s), FP_SEED);
    free(s);
    return h ? h : 1;   /* 0 is the plain partition */
}

static int validate_params(json_t *body, char *err, size_t errlen)
{
    json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        snprintf(err, errlen, "'model' is required and must be a non-empty string");
        return SC_EINVAL;
    }
    static const char *const nums[] = {"temperature", "top_p", "presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        json_t *v = json_object_get(body, nums[i]);
        if (v && !json_is_number(v) && !json_is_null(v)) {
            snprintf(err, errlen, "'%s' must be a number", nums[i]);
            return SC_EINVAL;
        }
    }
    static const char *const ints[] = {"max_tokens", "max_completion_tokens", "n", "seed"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        json_t *v = json_object_get(body, ints[i]);
        if (v && !json_is_integer(v) && !json_is_null(v)) {
            snprintf(err, errlen, "'%s' must be an integer", ints[i]);
            return SC_EINVAL;
        }
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        snprintf(err, errlen, "'stream' must be a boolean");
        return SC_EINVAL;
    }
    return SC_OK;
}

int sc_fp_request(int kind, json_t *body, uint64_t *fp, char **prompt, size_t *prompt_len,
                  char *err, size_t errlen)
{
    if (!json_is_object(body)) {
        snprintf(err, errlen, "the request body must be a JSON object");
        return SC_EINVAL;
    }
    int rc = validate_params(body, err, errlen);
    if (rc) return rc;
    json_t *n = json_object_get(body, "n");
    int uncachable = json_is_integer(n) && json_integer_value(n) != 1;
    json_t *ctx = json_deep_copy(body);
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) json_object_del(ctx, ignored[i]);
    canonicalise_params(ctx);
    json_object_set_new(ctx, "_endpoint", json_integer(kind));
    sc_buf text;
    sc_buf_init(&text, 1 << 20);
    int other = 0;

    if (kind == SC_FP_CHAT) {
        json_t *msgs = json_object_get(ctx, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            snprintf(err, errlen, "'messages' is required and must be a non-empty array");
            rc = SC_EINVAL;
            goto out;
        }
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m) {
            json_t *role = json_object_get(m, "role");
            if (!json_is_object(m) || !json_is_string(role)) {
                snprintf(err, errlen, "'messages[%zu]' must be an object with a string 'role'", i);
                rc = SC_EINVAL;
                goto out;
            }
            json_t *content = json_object_get(m, "content");
            if (content && !json_is_string(content) && !json_is_array(content) && !json_is_null(content)) {
                snprintf(err, errlen, "'messages[%zu].content' must be a string or an array of parts", i);
                rc = SC_EINVAL;
                goto out;
            }
        }
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        if (strcmp(json_string_value(json_object_get(last, "role")), "user") != 0) {
            uncachable = 1;   /* e.g. a tool result: the answer depends on it */
        } else {
            rc = content_text(json_object_get(last, "content"), &text, &other);
            if (rc == SC_ETOOBIG) {
                uncachable = 1;   /* a prompt past the text bound: not cached */
            } else if (rc) {
                snprintf(err, errlen, "the last user message has no usable text content");
                rc = SC_EINVAL;
                goto out;
            }
            /* The last message's text is the prompt; anything else in it
             * (name, non-text parts) stays in the fingerprint. */
            json_t *rest = json_deep_copy(last);
            if (!other) json_object_del(rest, "content");
            json_array_set_new(msgs, json_array_size(msgs) - 1, rest);
        }
    } else {
        json_t *p = json_object_get(ctx, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (json_is_string(p)) {
            /* Past the text bound: not cached (never the empty prompt's key). */
            if (sc_buf_append(&text, json_string_value(p), json_string_length(p))) uncachable = 1;
        } else if (json_is_array(p)) {
            uncachable = 1;
        } else {
            snprintf(err, errlen, "'prompt' is required and must be a string");
            rc = SC_EINVAL;
            goto out;
        }
        json_object_del(ctx, "prompt");
    }
    if (uncachable) {
        rc = SC_EUNSUPPORTED;
        goto out;
    }
    *fp = hash_canonical(ctx);
    *prompt = sc_buf_steal(&text, prompt_len);
    rc = SC_OK;
out:
    sc_buf_free(&text);
    json_decref(ctx);
    return rc;
}

uint64_t sc_fp_for_model(const char *model)
{
    json_t *o = json_pack("{s:s,s:[{s:s,s:s}]}", "model", model, "messages", "role", "user",
                          "content", "x");
    uint64_t fp = 0;
    char *prompt = NULL;
    size_t len;
    char err[128];
    if (sc_fp_request(SC_FP_CHAT, o, &fp, &prompt, &len, err, sizeof err) != SC_OK) fp = 0;
    free(prompt);
    json_decref(o);
    return fp;
}
