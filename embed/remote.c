/* The "remote" embedder: an OpenAI-compatible POST {url}/v1/embeddings
 * with {"model": ..., "input": [texts]} (Authorization: Bearer api_key
 * when one is set), one request per sc_embed() call. The answer must hold
 * one embedding of the configured dimension per input (matched by
 * "index" when present); vectors are L2-normalised here. Bounded: the
 * response body (SC_EMBED_REMOTE_MAX_BODY plus room for the vectors), a
 * 5 s connect and 30 s total timeout. Uses a libcurl easy handle per call:
 * blocking, which is fine on the worker threads sc_embed() runs on; any
 * number of threads at once. Errors: SC_EUPSTREAM (HTTP error, bad JSON,
 * wrong shape), SC_ETIMEOUT, SC_EMISMATCH (wrong dimension). */
#include "embed/embed_internal.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_EMBED_REMOTE_MAX_BODY (1u << 20)

typedef struct remote {
    char *endpoint;   /* {url}/v1/embeddings */
    char *model;
    char *auth;       /* "Authorization: Bearer ..." or NULL */
} remote;

static int remote_open(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen)
{
    if (!o->url || !o->url[0] || !o->model || !o->model[0]) {
        snprintf(err, errlen, "embedder remote: needs a base URL and a model name");
        return SC_EINVAL;
    }
    if (o->dim == 0 || o->dim > SC_EMBED_MAX_DIM) {
        snprintf(err, errlen, "embedder remote: dimension must be 1..%u (got %u)",
                 SC_EMBED_MAX_DIM, o->dim);
        return SC_EINVAL;
    }
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
        snprintf(err, errlen, "embedder remote: URL must start with http:// or https:// (%s)",
                 o->url);
        return SC_EINVAL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    remote *r = SC_NEW(remote);
    size_t ul = strlen(o->url);
    while (ul > 0 && o->url[ul - 1] == '/') ul--;
    r->endpoint = sc_malloc(ul + 32);
    snprintf(r->endpoint, ul + 32, "%.*s/v1/embeddings", (int)ul, o->url);
    r->model = sc_strdup(o->model);
    if (o->api_key && o->api_key[0]) {
        size_t n = strlen(o->api_key) + 32;
        r->auth = sc_malloc(n);
        snprintf(r->auth, n, "Authorization: Bearer %s", o->api_key);
    }
    e->impl = r;
    e->dim = o->dim;
    snprintf(e->id, sizeof e->id, "remote/%.60s/%u", o->model, o->dim);
    return 0;
}

static void remote_close(sc_embedder *e)
{
    remote *r = e->impl;
    if (!r) return;
    free(r->endpoint);
    free(r->model);
    free(r->auth);
    free(r);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    sc_buf *b = ud;
    return sc_buf_append(b, p, size * nmemb) == 0 ? size * nmemb : 0; /* 0 aborts */
}

/* Builds the request body; texts are made valid UTF-8 first. */
static char *request_body(const remote *r, const char *const *texts, const size_t *lens, size_t n)
{
    json_t *in = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t sl;
        uint8_t *s = sc_embed_sanitize_utf8(lens[i] ? texts[i] : "", lens[i], &sl);
        json_array_append_new(in, json_stringn((const char *)s, sl));
        free(s);
    }
    json_t *req = json_pack("{s:s, s:o}", "model", r->model, "input", in);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    return body;
}

/* Parses {"data":[{"embedding":[...],"index":i}, ...], "usage": ...}. */
static int parse_answer(const char *body, size_t len, size_t n, uint32_t dim, float *out,
                        uint64_t *tokens)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *data = json_object_get(root, "data");
    int rc = 0;
    if (!json_is_array(data) || json_array_size(data) != n) {
        sc_warn("embedder remote: answer is not a data array of %zu embeddings", n);
        rc = SC_EUPSTREAM;
        goto done;
    }
    unsigned char *seen = sc_calloc(n, 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *d = json_array_get(data, i), *emb = json_object_get(d, "embedding");
        json_t *ix = json_object_get(d, "index");
        size_t at = json_is_integer(ix) ? (size_t)json_integer_value(ix) : i;
        if (at >= n || seen[at] || !json_is_array(emb)) {
            rc = SC_EUPSTREAM;
            break;
        }
        if (json_array_size(emb) != dim) {
            sc_warn("embedder remote: got dimension %zu, configured %u", json_array_size(emb), dim);
            rc = SC_EMISMATCH;
            break;
        }
        seen[at] = 1;
        float *v = out + at * dim;
        for (uint32_t k = 0; k < dim; k++) {
            json_t *x = json_array_get(emb, k);
            double f = json_number_value(x);
            if (!json_is_number(x) || !isfinite(f)) {
                rc = SC_EUPSTREAM;
                break;
            }
            v[k] = (float)f;
        }
        if (rc == 0) sc_embed_l2_normalize(v, dim);
    }
    free(seen);
    json_t *pt = json_object_get(json_object_get(root, "usage"), "prompt_tokens");
    *tokens = json_is_integer(pt) && json_integer_value(pt) > 0 ? (uint64_t)json_integer_value(pt) : 0;
done:
    json_decref(root);
    return rc;
}

static int remote_embedn(sc_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                         float *out)
{
    remote *r = e->impl;
    char *body = request_body(r, texts, lens, n);
    if (!body) return SC_ENOMEM;
    CURL *c = curl_easy_init();
    if (!c) {
        free(body);
        return SC_ENOMEM;
    }
    sc_buf resp;
    sc_buf_init(&resp, SC_EMBED_REMOTE_MAX_BODY + (size_t)n * e->dim * 32);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (r->auth) h = curl_slist_append(h, r->auth);
    curl_easy_setopt(c, CURLOPT_URL, r->endpoint);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int rc = 0;
    uint64_t tokens = 0;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = SC_ETIMEOUT;
    } else if (cc == CURLE_WRITE_ERROR) {
        sc_warn("embedder remote: answer larger than %zu bytes", resp.max);
        rc = SC_ETOOBIG;
    } else if (cc != CURLE_OK) {
        sc_warn("embedder remote: %s: %s", r->endpoint, curl_easy_strerror(cc));
        rc = SC_EUPSTREAM;
    } else if (status < 200 || status > 299) {
        sc_warn("embedder remote: %s answered HTTP %ld", r->endpoint, status);
        rc = SC_EUPSTREAM;
    } else {
        rc = parse_answer(resp.data ? resp.data : "", resp.len, n, e->dim, out, &tokens);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    sc_buf_free(&resp);
    free(body);
    if (rc == 0) {
        atomic_fetch_add_explicit(&e->texts, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->tokens, tokens, memory_order_relaxed);
    }
    return rc;
}

const sc_embed_backend sc_embed_remote_backend = {
    .name = "remote",
    .open = remote_open,
    .close = remote_close,
    .embedn = remote_embedn,
};
