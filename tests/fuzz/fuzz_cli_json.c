/* libFuzzer target for semcache-cli's JSON reader (client/cli_json.c): a
 * hand-written parser over untrusted bytes (import files, server answers).
 *
 * Each input is used four ways:
 *   1. as an import line (sc_cli_parse_entry): on success prompt and
 *      response are set and the prompt is not empty; on failure there is a
 *      message and the entry is empty. When jansson parses the same bytes
 *      (duplicate keys rejected, nesting within the reader's bound of 64),
 *      the outcome and every value must agree with what jansson read;
 *   2. as a /cache/embed answer (sc_cli_embeddings): the same comparison,
 *      rows and values;
 *   3. as a string to quote (sc_cli_json_str): read back through the
 *      reader, it must give the same bytes; when the bytes are UTF-8,
 *      jansson must read the quoted text back to them too;
 *   4. nothing may leak or read out of bounds. */
// fuzz-sources: client/cli_json.c common/buf.c common/alloc.c common/err.c common/log.c
// fuzz-libs: -ljansson
#include "client/cli_json.h"
#include "common/err.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_cli_json: %s\n", what);
    abort();
}

/* Nesting depth of a jansson value (a scalar is 0). */
static int depth(json_t *v)
{
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            int e = depth(x);
            if (e > d) d = e;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            int e = depth(x);
            if (e > d) d = e;
        }
        return d + 1;
    }
    return 0;
}

/* jansson's reading of the bytes as a document both readers must agree
 * on, or NULL (not JSON, duplicate keys, too deep, a number jansson cannot
 * hold, a raw NUL byte). */
static json_t *reference(const uint8_t *data, size_t size)
{
    /* jansson reads past a raw NUL byte in the text, which JSON does not
     * allow (the reader refuses it): no reference for those. */
    if (memchr(data, 0, size)) return NULL;
    json_error_t je;
    json_t *v = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (v && depth(v) > 60) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static int same(const char *a, size_t alen, json_t *s)
{
    return json_is_string(s) && json_string_length(s) == alen && memcmp(a, json_string_value(s), alen) == 0;
}

static void check_entry(const uint8_t *data, size_t size, json_t *ref)
{
    sc_cli_entry e;
    char err[256] = "";
    int rc = sc_cli_parse_entry((const char *)data, size, &e, err, sizeof err);
    if (rc == SC_OK) {
        if (!e.prompt || !e.response || e.prompt_len == 0) fail("accepted entry without prompt/response");
        if (e.ttl < 0) fail("negative ttl");
    } else {
        if (rc != SC_EINVAL || !err[0]) fail("rejection without SC_EINVAL and a message");
        if (e.prompt || e.response || e.ns) fail("rejected entry not cleared");
    }
    if (ref && json_is_object(ref)) {
        json_t *p = json_object_get(ref, "prompt"), *r = json_object_get(ref, "response");
        json_t *ns = json_object_get(ref, "namespace"), *ttl = json_object_get(ref, "ttl");
        /* A key with a NUL in it is not one of these (jansson refuses such
         * keys outright, so they never reach here). */
        int want = json_is_string(p) && json_string_length(p) > 0 && json_is_string(r) &&
                   (!ns || (json_is_string(ns) && !memchr(json_string_value(ns), 0, json_string_length(ns))));
        long long want_ttl = 0;
        if (want && ttl && !json_is_null(ttl)) {
            double t = json_is_integer(ttl) ? (double)json_integer_value(ttl)
                       : json_is_real(ttl)  ? json_real_value(ttl)
                                            : -1;
            if (!json_is_number(ttl) || t < 0 || t > 1e10 || t != floor(t)) want = 0;
            else want_ttl = (long long)t;
        }
        if (want != (rc == SC_OK)) {
            fprintf(stderr, "jansson %s, reader %s (%s)\n", want ? "accepts" : "rejects",
                    rc == SC_OK ? "accepts" : "rejects", err);
            fail("import line: outcome differs from jansson");
        }
        if (want) {
            if (!same(e.prompt, e.prompt_len, p)) fail("prompt differs from jansson");
            if (!same(e.response, e.response_len, r)) fail("response differs from jansson");
            if (ns ? !e.ns || !same(e.ns, strlen(e.ns), ns) : e.ns != NULL)
                fail("namespace differs from jansson");
            if (e.ttl != want_ttl) fail("ttl differs from jansson");
        }
    }
    sc_cli_entry_clear(&e);
}

typedef struct rows {
    json_t *ref;   /* the reference "embeddings" array, or NULL */
    size_t seen;
} rows;

static void on_row(void *arg, size_t row, const double *v, size_t n)
{
    rows *r = arg;
    if (row != r->seen++) fail("embedding rows out of order");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) && !isinf(v[i])) fail("NaN from the number reader");
    if (!r->ref) return;
    json_t *x = json_array_get(r->ref, row);
    if (!json_is_array(x) || json_array_size(x) != n) fail("embedding row size differs from jansson");
    for (size_t i = 0; i < n; i++)
        if (json_number_value(json_array_get(x, i)) != v[i]) fail("embedding value differs from jansson");
}

static void check_embeddings(const uint8_t *data, size_t size, json_t *ref)
{
    json_t *emb = ref && json_is_object(ref) ? json_object_get(ref, "embeddings") : NULL;
    /* What the reader must accept: an object whose "embeddings" is an
     * array of arrays of numbers. */
    int want = json_is_array(emb);
    size_t i, j;
    json_t *x, *y;
    if (want) json_array_foreach(emb, i, x) {
            if (!json_is_array(x)) want = 0;
            else json_array_foreach(x, j, y) if (!json_is_number(y)) want = 0;
        }
    rows r = {.ref = want ? emb : NULL};
    int n = sc_cli_embeddings((const char *)data, size, on_row, &r);
    if (n >= 0 && (size_t)n != r.seen) fail("row count differs from the rows reported");
    if (!ref) return;
    if (want != (n >= 0)) {
        fprintf(stderr, "jansson %s, reader %d\n", want ? "accepts" : "rejects", n);
        fail("embeddings: outcome differs from jansson");
    }
    if (want && (size_t)n != json_array_size(emb)) fail("embeddings: row count differs from jansson");
}

static void check_quote(const uint8_t *data, size_t size)
{
    sc_buf q;
    sc_buf_init(&q, (size_t)1 << 24);
    if (sc_buf_append(&q, "{\"response\":\"\",\"prompt\":", 24) ||
        sc_cli_json_str(&q, (const char *)data, size) || sc_buf_append(&q, "}", 1))
        fail("quoting failed");
    sc_cli_entry e;
    char err[256];
    int rc = sc_cli_parse_entry(q.data, q.len, &e, err, sizeof err);
    if (size == 0) {
        if (rc != SC_EINVAL) fail("empty prompt accepted");
    } else {
        if (rc != SC_OK) {
            fprintf(stderr, "%s\n", err);
            fail("the reader rejects what sc_cli_json_str wrote");
        }
        if (e.prompt_len != size || memcmp(e.prompt, data, size) != 0) fail("quote/read round trip changed the bytes");
        sc_cli_entry_clear(&e);
    }
    /* jansson reads it back when the bytes are UTF-8 (it refuses others). */
    json_t *s = json_loadb(q.data + 24, q.len - 25, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (s && !same((const char *)data, size, s)) fail("jansson reads the quoted string differently");
    json_decref(s);
    sc_buf_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    json_t *ref = reference(data, size);
    check_entry(data, size, ref);
    check_embeddings(data, size, ref);
    check_quote(data, size);
    json_decref(ref);
    return 0;
}
