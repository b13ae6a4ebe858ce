/* POST /cache/feedback: a verdict on a served hit.
 *
 *   {"request": "<16 hex digits from X-Semcache-Request or /cache/lookup>",
 *    "correct": true|false}
 *   -> 200 {"request","entry","correct","learned":{good,bad,threshold,semantic,blocked_prompts}}
 *
 * Errors: 400 bad JSON or fields (naming the field), 413 a body over
 * FEEDBACK_BODY_MAX, 404 an unknown (or forgotten) request id, 403 a user
 * key judging another namespace's hit, 409 a hit judged already. Nothing
 * changes on an error. The verdict is written to the store (learn.h), so it
 * runs on a worker. */
#include "server/api.h"
#include "server/cache.h"
#include "server/learn.h"
#include "server/auth.h"
#include "common/alloc.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

#define FEEDBACK_BODY_MAX 4096

typedef struct feedback_job {
    uint64_t rid, entry;
    int correct;
    char *only_ns;               /* a user key's namespace; NULL for an admin */
    sc_learn_entry state;
} feedback_job;

static void feedback_work(sc_job *j)
{
    feedback_job *f = j->data;
    j->rc = sc_learn_verdict(sc_cache_learn(j->srv->cache), f->rid, f->correct, f->only_ns, &f->entry, &f->state);
}

static void feedback_done(sc_job *j)
{
    feedback_job *f = j->data;
    char rid[SC_LEARN_RID_LEN + 1];
    sc_learn_rid_format(f->rid, rid);
    if (j->rc == SC_ENOTFOUND)
        sc_http_error(j->req, 404, "invalid_request_error", "unknown_request",
                      "no served hit with request id '%s' (ids are kept for the last %d hits, not across restarts)",
                      rid, SC_LEARN_DECISIONS);
    else if (j->rc == SC_EFORBIDDEN)
        sc_http_error(j->req, 403, "permission_error", "forbidden",
                      "request '%s' was served in another namespace than this key's", rid);
    else if (j->rc == SC_EEXISTS)
        sc_http_error(j->req, 409, "invalid_request_error", "already_judged", "request '%s' was judged already", rid);
    else if (j->rc)
        sc_http_error(j->req, 500, "server_error", "internal", "the verdict could not be recorded: %s",
                      sc_strerror(j->rc));
    else
        sc_server_json(j->req, 200,
                       json_pack("{s:s,s:I,s:b,s:o}", "request", rid, "entry", (json_int_t)f->entry, "correct",
                                 f->correct, "learned", sc_api_learned_json(&f->state)),
                       NULL);
    free(f->only_ns);
    free(f);
}

void sc_api_feedback(sc_server *srv, sc_http_req *req)
{
    int role = SC_ROLE_NONE;
    const char *ns = sc_server_namespace_role(srv, req, NULL, 0, &role);
    if (!ns) return;
    if (req->body_len > FEEDBACK_BODY_MAX) {
        sc_http_error(req, 413, "invalid_request_error", "too_large", "feedback body too large (limit %d bytes)",
                      FEEDBACK_BODY_MAX);
        return;
    }
    json_error_t e;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!o || !json_is_object(o)) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_json",
                      "request body must be a JSON object {\"request\", \"correct\"}%s%s", o ? "" : ": ",
                      o ? "" : e.text);
        json_decref(o);
        return;
    }
    json_t *r = json_object_get(o, "request"), *c = json_object_get(o, "correct");
    uint64_t rid = 0;
    if (!json_is_string(r) || sc_learn_rid_parse(json_string_value(r), json_string_length(r), &rid)) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_field",
                      "'request' must be the 16 hex digits of a hit's X-Semcache-Request");
    } else if (!json_is_boolean(c)) {
        sc_http_error(req, 400, "invalid_request_error", "invalid_field", "'correct' must be true or false");
    } else {
        feedback_job *f = SC_NEW(feedback_job);
        f->rid = rid;
        f->correct = json_is_true(c);
        f->only_ns = role == SC_ROLE_ADMIN ? NULL : sc_strdup(ns);
        sc_job_submit(srv, req, feedback_work, feedback_done, f);
    }
    json_decref(o);
}
