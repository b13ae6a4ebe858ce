/* The cache admin API (contract section 4): /cache/store, /cache/lookup,
 * /cache/flush, /cache/import (JSONL), /cache/embed and
 * /cache/entries/{id}. Each handler validates its JSON on the loop thread
 * (bad input: 400 naming the field), then hands the cache work to the
 * thread pool and answers from the job's done() callback. */
#include "server/api.h"
#include "server/cache.h"
#include "server/learn.h"
#include "server/fingerprint.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMPT_MAX (64u << 10)   /* bytes of a prompt */
#define EMBED_MAX_INPUTS 256
#define IMPORT_MAX_ERRORS 20
#define IMPORT_BATCH 64

/* Parses the body as a JSON object; answers 400 itself on failure. */
static json_t *body_object(sc_http_req *req)
{
    json_error_t e;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!o) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_json",
                      "request body is not valid JSON: %s (line %d, column %d)", e.text, e.line,
                      e.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        sc_http_error(req, 400, "invalid_request_error", "invalid_json",
                      "request body must be a JSON object");
        return NULL;
    }
    return o;
}

static int bad_field(sc_http_req *req, const char *what, const char *field)
{
    sc_http_error(req, 400, "invalid_request_error", "invalid_field", "'%s' %s", field, what);
    return -1;
}

/* Optional string field: 0 ok (*out may stay NULL), -1 answered 400. */
static int opt_string(sc_http_req *req, json_t *o, const char *name, const char **out, size_t max)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return bad_field(req, "must be a string", name);
    if (json_string_length(v) > max) return bad_field(req, "is too long", name);
    *out = json_string_value(v);
    return 0;
}

/* Optional number field from 0 to max: 0 ok (*out stays when absent or
 * null), -1 answered 400. */
static int opt_number(sc_http_req *req, json_t *o, const char *name, double max, double *out)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > max) {
        char what[64];
        snprintf(what, sizeof what, "must be a number from 0 to %g", max);
        return bad_field(req, what, name);
    }
    *out = json_number_value(v);
    return 0;
}

static int req_string(sc_http_req *req, json_t *o, const char *name, const char **out, size_t max)
{
    if (opt_string(req, o, name, out, max)) return -1;
    if (!*out || !**out) return bad_field(req, "is required and must be a non-empty string", name);
    return 0;
}

/* ---------------------------------------------------------------------
 * Store entries (shared by /cache/store and /cache/import)
 * ------------------------------------------------------------------- */

typedef struct store_item {
    char *ns, *prompt, *response, *model;
    size_t prompt_len, response_len;
    long long ttl;
} store_item;

static void item_free(store_item *it)
{
    free(it->ns);
    free(it->prompt);
    free(it->response);
    free(it->model);
}

/* Validates one store object; on error writes the message into err. */
static int item_from_json(json_t *o, const char *default_ns, store_item *it, char *err, size_t errlen)
{
    memset(it, 0, sizeof *it);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object");
        return SC_EINVAL;
    }
    json_t *ns = json_object_get(o, "namespace"), *p = json_object_get(o, "prompt"),
           *r = json_object_get(o, "response"), *m = json_object_get(o, "model"),
           *t = json_object_get(o, "ttl");
    if (ns && !json_is_null(ns) && (!json_is_string(ns) || !sc_server_valid_ns(json_string_value(ns)))) {
        snprintf(err, errlen, "'namespace' must be 1-128 characters of A-Z a-z 0-9 _ - . :");
        return SC_EINVAL;
    }
    if (!json_is_string(p) || json_string_length(p) == 0 || json_string_length(p) > PROMPT_MAX) {
        snprintf(err, errlen, "'prompt' is required: a non-empty string of at most %u bytes", PROMPT_MAX);
        return SC_EINVAL;
    }
    if (!json_is_string(r)) {
        snprintf(err, errlen, "'response' is required and must be a string");
        return SC_EINVAL;
    }
    if (m && !json_is_null(m) && (!json_is_string(m) || json_string_length(m) > 256)) {
        snprintf(err, errlen, "'model' must be a string of at most 256 bytes");
        return SC_EINVAL;
    }
    if (t && !json_is_null(t) &&
        (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 100LL * 365 * 86400)) {
        snprintf(err, errlen, "'ttl' must be a whole number of seconds >= 0");
        return SC_EINVAL;
    }
    it->ns = sc_strdup(json_is_string(ns) ? json_string_value(ns) : default_ns);
    it->prompt_len = json_string_length(p);
    it->prompt = sc_strndup(json_string_value(p), it->prompt_len);
    it->response_len = json_string_length(r);
    it->response = sc_strndup(json_string_value(r), it->response_len);
    it->model = json_is_string(m) ? sc_strdup(json_string_value(m)) : NULL;
    it->ttl = json_is_integer(t) ? json_integer_value(t) : 0;
    return SC_OK;
}

/* The record of an item (pointing into it). */
static void item_record(const store_item *it, sc_record *rec)
{
    sc_record r = {0};
    r.ns = it->ns;
    r.fp = it->model && *it->model ? sc_fp_for_model(it->model) : 0;
    r.prompt = it->prompt;
    r.prompt_len = it->prompt_len;
    r.response = it->response;
    r.response_len = it->response_len;
    r.content_type = "text/plain";
    r.model = it->model ? it->model : "";
    if (it->ttl > 0) r.expires = sc_cache_expires_in(it->ttl);
    *rec = r;
}

static int item_store(sc_cache *c, const store_item *it, uint64_t *id)
{
    sc_record r;
    item_record(it, &r);
    int rc = sc_cache_put(c, &r, NULL);
    *id = r.id;
    return rc;
}

static int status_for(int rc)
{
    switch (rc) {
    case SC_ENOTFOUND: return 404;
    case SC_EINVAL: return 400;
    case SC_ETOOBIG: return 413;
    case SC_EFULL: case SC_ENOSPACE: return 507;
    case SC_EBUSY: return 503;
    case SC_EUPSTREAM: return 502;
    case SC_ETIMEOUT: return 504;
    default: return 500;
    }
}

static void job_error(sc_job *j, const char *what)
{
    sc_http_error(j->req, status_for(j->rc), j->rc == SC_EINVAL ? "invalid_request_error" : "server_error",
                  sc_err_name(j->rc), "%s: %s", what, sc_strerror(j->rc));
}

/* ---------------------------------------------------------------------
 * POST /cache/store
 * ------------------------------------------------------------------- */

typedef struct store_job {
    store_item it;
    uint64_t id;
} store_job;

static void store_work(sc_job *j)
{
    store_job *s = j->data;
    j->rc = item_store(j->srv->cache, &s->it, &s->id);
}

static void store_done(sc_job *j)
{
    store_job *s = j->data;
    if (j->rc) job_error(j, "store failed");
    else sc_server_json(j->req, 200, json_pack("{s:I,s:s}", "id", (json_int_t)s->id, "namespace", s->it.ns), NULL);
    item_free(&s->it);
    free(s);
}

void sc_api_store(sc_server *srv, sc_http_req *req)
{
    json_t *o = body_object(req);
    if (!o) return;
    const char *want = NULL;
    json_t *nsv = json_object_get(o, "namespace");
    if (json_is_string(nsv)) want = json_string_value(nsv);
    const char *ns = sc_server_namespace(srv, req, want, 1);
    if (!ns) goto out;
    store_job *s = SC_NEW(store_job);
    char err[256];
    if (item_from_json(o, ns, &s->it, err, sizeof err)) {
        free(s);
        sc_http_error(req, 400, "invalid_request_error", "invalid_field", "%s", err);
        goto out;
    }
    free(s->it.ns);
    s->it.ns = sc_strdup(ns);
    sc_job_submit(srv, req, store_work, store_done, s);
out:
    json_decref(o);
}

/* ---------------------------------------------------------------------
 * POST /cache/lookup
 * ------------------------------------------------------------------- */

typedef struct lookup_job {
    char *ns, *prompt, *model;
    size_t prompt_len;
    double threshold, max_error;
    int overloaded;              /* skipped the semantic layer and missed */
    sc_cache_result res;
} lookup_job;

static void lookup_work(sc_job *j)
{
    lookup_job *l = j->data;
    uint64_t fp = l->model ? sc_fp_for_model(l->model) : 0;
    if (sc_job_overloaded(j)) {
        /* An exact hit is still answered; a miss says "overloaded". */
        j->rc = sc_cache_lookup(j->srv->cache, l->ns, fp, l->prompt, l->prompt_len, l->threshold,
                                SC_LOOKUP_EXACT_ONLY, &l->res);
        l->overloaded = j->rc == 0 && l->res.outcome == SC_CACHE_MISS;
        return;
    }
    sc_cache_lookup_opts o = {.threshold = l->threshold, .flags = 0, .max_error = l->max_error};
    j->rc = sc_cache_lookup_ex(j->srv->cache, l->ns, fp, l->prompt, l->prompt_len, &o, &l->res);
}

static void lookup_done(sc_job *j)
{
    lookup_job *l = j->data;
    if (l->overloaded) {
        sc_http_error_headers(j->req, 503, "Retry-After: 1\r\n", "server_error", "overloaded",
                              "overloaded: the lookup waited over --max-queue-ms (%lld ms) for a worker; "
                              "exact hits are still served, retry the semantic lookup later",
                              j->srv->cfg->max_queue_ms);
    } else if (j->rc) {
        job_error(j, "lookup failed");
    } else {
        int hit = l->res.outcome != SC_CACHE_MISS;
        json_t *o = json_pack("{s:b,s:s,s:f,s:f}", "hit", hit, "kind",
                              l->res.outcome == SC_CACHE_HIT_EXACT ? "exact"
                              : hit ? "semantic" : "miss",
                              "similarity", (double)l->res.similarity, "confidence", l->res.confidence);
        if (hit) {
            size_t n;
            char *text = sc_cache_answer_text(&l->res.rec, &n);
            json_object_set_new(o, "id", json_integer((json_int_t)l->res.id));
            char rid[SC_LEARN_RID_LEN + 1];
            sc_learn_rid_format(l->res.rid, rid);
            json_object_set_new(o, "request", json_string(rid));
            json_object_set_new(o, "response", json_stringn(text, n));
            json_object_set_new(o, "prompt", json_stringn(l->res.rec.prompt, l->res.rec.prompt_len));
            free(text);
        } else {
            json_object_set_new(o, "id", json_null());
            json_object_set_new(o, "response", json_null());
        }
        sc_server_json(j->req, 200, o, NULL);
    }
    sc_cache_result_clear(&l->res);
    free(l->ns);
    free(l->prompt);
    free(l->model);
    free(l);
}

void sc_api_lookup(sc_server *srv, sc_http_req *req)
{
    json_t *o = body_object(req);
    if (!o) return;
    const char *want = NULL, *prompt = NULL, *model = NULL;
    if (opt_string(req, o, "namespace", &want, 128)) goto out;
    if (req_string(req, o, "prompt", &prompt, PROMPT_MAX)) goto out;
    if (opt_string(req, o, "model", &model, 256)) goto out;
    double threshold = -1, max_error = -1;
    if (opt_number(req, o, "threshold", 1, &threshold) || opt_number(req, o, "max_error_rate", 0.5, &max_error))
        goto out;
    const char *ns = sc_server_namespace(srv, req, want, 1);
    if (!ns) goto out;
    lookup_job *l = SC_NEW(lookup_job);
    l->max_error = max_error;
    l->ns = sc_strdup(ns);
    l->prompt_len = strlen(prompt);
    l->prompt = sc_strndup(prompt, l->prompt_len);
    l->model = model && *model ? sc_strdup(model) : NULL;
    l->threshold = threshold;
    sc_job_submit(srv, req, lookup_work, lookup_done, l);
out:
    json_decref(o);
}

/* ---------------------------------------------------------------------
 * POST /cache/search
 * ------------------------------------------------------------------- */

#define SEARCH_PREVIEW 2000      /* bytes of each answer in the results */

typedef struct search_job {
    char *ns, *prompt;
    size_t prompt_len, k, n, parts;
    sc_cache_search_hit hits[SC_SEARCH_MAX_K];
} search_job;

static void search_work(sc_job *j)
{
    search_job *s = j->data;
    j->rc = sc_cache_search(j->srv->cache, s->ns, s->prompt, s->prompt_len, s->k, s->hits, &s->n, &s->parts);
}

/* n cut back to the start of a UTF-8 sequence, so that the cut text stays
 * valid. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

static void search_done(sc_job *j)
{
    search_job *s = j->data;
    if (j->rc) {
        job_error(j, "search failed");
    } else {
        json_t *res = json_array();
        for (size_t i = 0; i < s->n; i++) {
            const sc_record *r = &s->hits[i].rec;
            size_t alen;
            char *text = sc_cache_answer_text(r, &alen);
            const char *t = text ? text : r->response;
            if (!text) alen = r->response_len;
            size_t cut = utf8_cut(t, alen, SEARCH_PREVIEW);
            json_t *o = json_pack("{s:I,s:f,s:s%,s:s%,s:b,s:s,s:I,s:I,s:I,s:I}", "id", (json_int_t)s->hits[i].id,
                                  "similarity", (double)s->hits[i].similarity, "prompt", r->prompt,
                                  r->prompt_len, "response", t, cut, "response_truncated", cut < alen,
                                  "model", r->model ? r->model : "", "created", (json_int_t)r->created,
                                  "expires", (json_int_t)r->expires, "last_hit", (json_int_t)r->last_hit,
                                  "hits", (json_int_t)r->hits);
            if (!o)   /* a prompt or answer that is not UTF-8 (stored over RESP): say so */
                o = json_pack("{s:I,s:f,s:n,s:n,s:b,s:b,s:I}", "id", (json_int_t)s->hits[i].id, "similarity",
                              (double)s->hits[i].similarity, "prompt", "response", "response_truncated", 0,
                              "binary", 1, "hits", (json_int_t)r->hits);
            if (o) json_array_append_new(res, o);
            free(text);
        }
        sc_server_json(j->req, 200,
                       json_pack("{s:s,s:I,s:o}", "namespace", s->ns, "partitions", (json_int_t)s->parts,
                                 "results", res),
                       NULL);
    }
    for (size_t i = 0; i < s->n; i++) sc_record_clear(&s->hits[i].rec);
    free(s->ns);
    free(s->prompt);
    free(s);
}

void sc_api_search(sc_server *srv, sc_http_req *req)
{
    json_t *o = body_object(req);
    if (!o) return;
    const char *want = NULL, *prompt = NULL;
    if (opt_string(req, o, "namespace", &want, 128)) goto out;
    if (req_string(req, o, "prompt", &prompt, PROMPT_MAX)) goto out;
    size_t k = 10;
    json_t *kv = json_object_get(o, "k");
    if (kv && !json_is_null(kv)) {
        if (!json_is_integer(kv) || json_integer_value(kv) < 1 || json_integer_value(kv) > SC_SEARCH_MAX_K) {
            bad_field(req, "must be an integer from 1 to 50", "k");
            goto out;
        }
        k = (size_t)json_integer_value(kv);
    }
    const char *ns = sc_server_namespace(srv, req, want, 0);
    if (!ns) goto out;
    search_job *s = SC_NEW(search_job);
    s->ns = sc_strdup(ns);
    s->prompt_len = strlen(prompt);
    s->prompt = sc_strndup(prompt, s->prompt_len);
    s->k = k;
    sc_job_submit(srv, req, search_work, search_done, s);
out:
    json_decref(o);
}

/* ---------------------------------------------------------------------
 * POST /cache/flush
 * ------------------------------------------------------------------- */

typedef struct flush_job {
    char *ns;
    uint64_t count;
} flush_job;

static void flush_work(sc_job *j)
{
    flush_job *f = j->data;
    j->rc = sc_cache_flush(j->srv->cache, f->ns, &f->count);
}

static void flush_done(sc_job *j)
{
    flush_job *f = j->data;
    if (j->rc) job_error(j, "flush failed");
    else sc_server_json(j->req, 200, json_pack("{s:s,s:I}", "namespace", f->ns, "flushed", (json_int_t)f->count), NULL);
    free(f->ns);
    free(f);
}

void sc_api_flush(sc_server *srv, sc_http_req *req)
{
    json_t *o = body_object(req);
    if (!o) return;
    const char *want = NULL;
    if (req_string(req, o, "namespace", &want, 128)) goto out;
    const char *ns = sc_server_namespace(srv, req, want, 1);
    if (!ns) goto out;
    flush_job *f = SC_NEW(flush_job);
    f->ns = sc_strdup(ns);
    sc_job_submit(srv, req, flush_work, flush_done, f);
out:
    json_decref(o);
}

json_t *sc_api_learned_json(const sc_learn_entry *le)
{
    return json_pack("{s:i,s:i,s:i,s:i,s:f,s:b,s:i}", "good", (int)le->good, "bad", (int)le->bad, "miss_checks_right",
                     (int)le->miss_good, "miss_checks_wrong", (int)le->miss_bad, "threshold", le->threshold,
                     "semantic", !le->off, "blocked_prompts", (int)le->blocked);
}

/* ---------------------------------------------------------------------
 * /cache/entries/{id}: GET, DELETE
 * ------------------------------------------------------------------- */

typedef struct entry_job {
    uint64_t id;
    int del;
    char *ns;
    sc_record rec;
} entry_job;

static void entry_work(sc_job *j)
{
    entry_job *e = j->data;
    if (e->del) {
        j->rc = sc_cache_del(j->srv->cache, e->ns, e->id);
    } else {
        j->rc = sc_cache_get(j->srv->cache, e->id, &e->rec);
        if (!j->rc && e->ns && strcmp(e->rec.ns, e->ns) != 0) j->rc = SC_ENOTFOUND;
    }
}

static void entry_done(sc_job *j)
{
    entry_job *e = j->data;
    if (j->rc == SC_ENOTFOUND) {
        sc_http_error(j->req, 404, "invalid_request_error", "not_found", "no entry with id %llu",
                      (unsigned long long)e->id);
    } else if (j->rc) {
        job_error(j, e->del ? "delete failed" : "read failed");
    } else if (e->del) {
        sc_server_json(j->req, 200, json_pack("{s:I,s:b}", "id", (json_int_t)e->id, "deleted", 1), NULL);
    } else {
        size_t n;
        char *text = sc_cache_answer_text(&e->rec, &n);
        sc_learn_entry le;
        sc_learn_entry_get(sc_cache_learn(j->srv->cache), e->id, &le);
        sc_server_json(j->req, 200,
                       json_pack("{s:I,s:s,s:s%,s:s%,s:s,s:I,s:I,s:I,s:I,s:i,s:i,s:o}", "id", (json_int_t)e->id,
                                 "namespace", e->rec.ns, "prompt", e->rec.prompt, e->rec.prompt_len,
                                 "response", text, n, "model", e->rec.model,
                                 "created", (json_int_t)e->rec.created, "expires", (json_int_t)e->rec.expires,
                                 "last_hit", (json_int_t)e->rec.last_hit, "hits", (json_int_t)e->rec.hits,
                                 "prompt_tokens", (int)e->rec.prompt_tokens,
                                 "completion_tokens", (int)e->rec.completion_tokens, "learned",
                                 sc_api_learned_json(&le)),
                       NULL);
        free(text);
    }
    sc_record_clear(&e->rec);
    free(e->ns);
    free(e);
}

void sc_api_entry(sc_server *srv, sc_http_req *req, const char *rest)
{
    int del = !strcmp(req->method, "DELETE");
    if (!del && strcmp(req->method, "GET")) {
        sc_http_error(req, 405, "invalid_request_error", "method_not_allowed",
                      "method %s not allowed on %s (use GET or DELETE)", req->method, req->path);
        return;
    }
    char *end;
    errno = 0;
    unsigned long long id = strtoull(rest, &end, 10);
    if (!*rest || *end || errno || id == 0 || rest[0] == '-' || rest[0] == '+') {
        sc_http_error(req, 400, "invalid_request_error", "invalid_id",
                      "invalid entry id '%.40s': want a positive integer", rest);
        return;
    }
    /* Admins may address any entry; without auth the namespace header,
     * when given, must match the entry's. */
    const char *hdr = sc_http_header(req, "x-semcache-namespace");
    const char *ns = sc_server_namespace(srv, req, NULL, 1);
    if (!ns) return;
    entry_job *e = SC_NEW(entry_job);
    e->id = id;
    e->del = del;
    e->ns = hdr ? sc_strdup(ns) : NULL;
    sc_job_submit(srv, req, entry_work, entry_done, e);
}

/* ---------------------------------------------------------------------
 * POST /cache/import: JSONL, one store object per line
 * ------------------------------------------------------------------- */

typedef struct import_job {
    char *ns;
    uint64_t stored, rejected, lines;
    json_t *errors;
} import_job;

static void import_reject(import_job *im, uint64_t line, const char *msg)
{
    im->rejected++;
    if (json_array_size(im->errors) < IMPORT_MAX_ERRORS)
        json_array_append_new(im->errors, json_pack("{s:I,s:s}", "line", (json_int_t)line, "message", msg));
}

/* Stores the pending batch of an import (one embedding call and one
 * store transaction per batch). */
static void import_flush(sc_cache *c, import_job *im, store_item *items, uint64_t *lines, size_t n)
{
    sc_record recs[IMPORT_BATCH];
    sc_record *ptrs[IMPORT_BATCH] = {0};
    for (size_t k = 0; k < n; k++) {
        item_record(&items[k], &recs[k]);
        ptrs[k] = &recs[k];
    }
    sc_cache_put_many(c, ptrs, n);
    for (size_t k = 0; k < n; k++) {
        if (recs[k].id) im->stored++;
        else import_reject(im, lines[k], "store failed");
        item_free(&items[k]);
    }
}

static void import_work(sc_job *j)
{
    import_job *im = j->data;
    const char *p = j->req->body, *end = p + j->req->body_len;
    store_item items[IMPORT_BATCH];
    uint64_t lines[IMPORT_BATCH];
    size_t n = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        im->lines++;
        size_t len = (size_t)(le - p);
        while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len > 0) {
            json_error_t e;
            json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, &e);
            char err[256];
            if (!o) {
                snprintf(err, sizeof err, "invalid JSON: %s", e.text);
                import_reject(im, im->lines, err);
            } else if (item_from_json(o, im->ns, &items[n], err, sizeof err)) {
                import_reject(im, im->lines, err);
            } else {
                lines[n++] = im->lines;
                if (n == IMPORT_BATCH) {
                    import_flush(j->srv->cache, im, items, lines, n);
                    n = 0;
                }
            }
            json_decref(o);
        }
        p = le + 1;
    }
    if (n) import_flush(j->srv->cache, im, items, lines, n);
}

static void import_done(sc_job *j)
{
    import_job *im = j->data;
    sc_server_json(j->req, im->rejected && !im->stored ? 400 : 200,
                   json_pack("{s:I,s:I,s:I,s:O}", "stored", (json_int_t)im->stored, "rejected",
                             (json_int_t)im->rejected, "lines", (json_int_t)im->lines, "errors", im->errors),
                   NULL);
    json_decref(im->errors);
    free(im->ns);
    free(im);
}

void sc_api_import(sc_server *srv, sc_http_req *req)
{
    const char *ns = sc_server_namespace(srv, req, NULL, 1);
    if (!ns) return;
    import_job *im = SC_NEW(import_job);
    im->ns = sc_strdup(ns);
    im->errors = json_array();
    sc_job_submit(srv, req, import_work, import_done, im);
}

/* ---------------------------------------------------------------------
 * POST /cache/embed
 * ------------------------------------------------------------------- */

typedef struct embed_job {
    size_t n;
    const char **texts;
    size_t *lens;
    float *out;
    json_t *body;
} embed_job;

static void embed_work(sc_job *j)
{
    embed_job *e = j->data;
    j->rc = sc_cache_embed(j->srv->cache, e->texts, e->lens, e->n, e->out);
}

static void embed_done(sc_job *j)
{
    embed_job *e = j->data;
    if (j->rc) {
        job_error(j, "embedding failed");
    } else {
        uint32_t dim = sc_cache_dim(j->srv->cache);
        json_t *vecs = json_array();
        for (size_t i = 0; i < e->n; i++) {
            json_t *v = json_array();
            for (uint32_t k = 0; k < dim; k++) json_array_append_new(v, json_real(e->out[i * dim + k]));
            json_array_append_new(vecs, v);
        }
        sc_server_json(j->req, 200,
                       json_pack("{s:s,s:i,s:o,s:f}", "model", sc_cache_embedder_id(j->srv->cache), "dim",
                                 (int)dim, "embeddings", vecs, "similarity_gamma",
                                 sc_cache_similarity_gamma(j->srv->cache)),
                       NULL);
    }
    json_decref(e->body);
    free(e->texts);
    free(e->lens);
    free(e->out);
    free(e);
}

void sc_api_embed(sc_server *srv, sc_http_req *req)
{
    json_t *o = body_object(req);
    if (!o) return;
    if (!sc_server_namespace(srv, req, NULL, 0)) goto out;
    json_t *in = json_object_get(o, "input");
    if (json_is_string(in)) {
        json_t *arr = json_array();
        json_array_append(arr, in);
        json_object_set_new(o, "input", arr);
        in = arr;
    }
    if (!json_is_array(in) || json_array_size(in) == 0 || json_array_size(in) > EMBED_MAX_INPUTS) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_field",
                      "'input' must be a string or an array of 1 to %d strings", EMBED_MAX_INPUTS);
        goto out;
    }
    embed_job *e = SC_NEW(embed_job);
    e->n = json_array_size(in);
    e->texts = sc_calloc(e->n, sizeof *e->texts);
    e->lens = sc_calloc(e->n, sizeof *e->lens);
    for (size_t i = 0; i < e->n; i++) {
        json_t *s = json_array_get(in, i);
        if (!json_is_string(s) || json_string_length(s) > PROMPT_MAX) {
            free(e->texts);
            free(e->lens);
            free(e);
            sc_http_error(req, 400, "invalid_request_error", "invalid_field",
                          "'input[%zu]' must be a string of at most %u bytes", i, PROMPT_MAX);
            goto out;
        }
        e->texts[i] = json_string_value(s);
        e->lens[i] = json_string_length(s);
    }
    e->out = sc_malloc(sizeof(float) * e->n * sc_cache_dim(srv->cache));
    e->body = o;   /* keeps the strings alive until done */
    sc_job_submit(srv, req, embed_work, embed_done, e);
    return;
out:
    json_decref(o);
}
