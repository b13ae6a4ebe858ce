/* The change feed over Redis Streams (the contract is in feed.h). */
#include "cluster/feed.h"
#include "common/alloc.h"
#include "common/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sc_feed {
    sc_rc *rc;
    int shards;
    size_t maxlen;
    char maxlen_s[24];
    char key[SC_FEED_MAX_SHARDS][96];
    int checked[SC_FEED_MAX_SHARDS];    /* trim checked since open */
};

int sc_feed_open(sc_feed **out, sc_rc *rc, const char *prefix, int shards, size_t maxlen)
{
    *out = NULL;
    if (!rc || !prefix || !*prefix || strlen(prefix) > 64 || shards < 1 || shards > SC_FEED_MAX_SHARDS || !maxlen)
        return SC_EINVAL;
    sc_feed *f = SC_NEW(sc_feed);
    f->rc = rc;
    f->shards = shards;
    f->maxlen = maxlen;
    snprintf(f->maxlen_s, sizeof f->maxlen_s, "%zu", maxlen);
    for (int k = 0; k < shards; k++) snprintf(f->key[k], sizeof f->key[k], "%s:{%d}", prefix, k);
    *out = f;
    return 0;
}

void sc_feed_close(sc_feed *f) { free(f); }

int sc_feed_shard(const sc_feed *f, const char *key, size_t len)
{
    return (int)(sc_rc_slot(key, len) % (unsigned)f->shards);
}

void sc_feed_pos_init(sc_feed_pos *pos)
{
    for (int k = 0; k < SC_FEED_MAX_SHARDS; k++) strcpy(pos->id[k], "0-0");
}

int sc_feed_publish(sc_feed *f, const char *key, size_t klen, size_t nf, const char *const *fields,
                    const char *const *values, char id[SC_FEED_ID_MAX])
{
    enum { MAXF = 16 };
    if (!f || !key || nf == 0 || nf > MAXF) return SC_EINVAL;
    int s = sc_feed_shard(f, key, klen);
    const char *argv[6 + 2 * MAXF];
    int argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = f->key[s];
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = f->maxlen_s;
    argv[argc++] = "*";
    for (size_t i = 0; i < nf; i++) {
        argv[argc++] = fields[i];
        argv[argc++] = values[i];
    }
    int err = 0;
    redisReply *r = sc_rc_command(f->rc, f->key[s], strlen(f->key[s]), argc, argv, NULL, &err);
    if (!r) return err ? err : SC_EUPSTREAM;
    int rc = r->type == REDIS_REPLY_STRING && r->len < SC_FEED_ID_MAX ? 0 : SC_EUPSTREAM;
    if (!rc && id) memcpy(id, r->str, r->len + 1);
    freeReplyObject(r);
    return rc;
}

/* XINFO STREAM of shard k (NULL when the cluster did not answer; an
 * error reply when the stream does not exist). */
static redisReply *xinfo(sc_feed *f, int k)
{
    const char *argv[] = {"XINFO", "STREAM", f->key[k]};
    int err = 0;
    return sc_rc_command(f->rc, f->key[k], strlen(f->key[k]), 3, argv, NULL, &err);
}

/* Field name of an XINFO STREAM reply (pairs of name and value), or NULL. */
static const redisReply *xinfo_field(const redisReply *r, const char *name)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* 1 when shard k may have lost events after pos to trimming. Trimming
 * takes the oldest entries first, so while the entry at pos is still
 * there nothing after it went; once it is gone (or the stream is), what
 * followed it may have gone too, and the reader is told (a rebuild, at
 * worst one too many). A reader at 0-0 lost events when the stream ever
 * held more than it holds now (XINFO entries-added > length). */
static int shard_trimmed(sc_feed *f, int k, const char *pos)
{
    int err = 0, trimmed = 0;
    redisReply *r;
    if (strcmp(pos, "0-0") == 0) {
        r = xinfo(f, k);
        const redisReply *added = xinfo_field(r, "entries-added"), *length = xinfo_field(r, "length");
        trimmed = added && length && added->type == REDIS_REPLY_INTEGER && length->type == REDIS_REPLY_INTEGER &&
                  added->integer > length->integer;
    } else {
        const char *argv[] = {"XRANGE", f->key[k], pos, pos, "COUNT", "1"};
        r = sc_rc_command(f->rc, f->key[k], strlen(f->key[k]), 6, argv, NULL, &err);
        trimmed = r && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
    }
    if (r) freeReplyObject(r);
    return trimmed;
}

int sc_feed_pos_now(sc_feed *f, sc_feed_pos *pos)
{
    sc_feed_pos_init(pos);
    for (int k = 0; k < f->shards; k++) {
        redisReply *r = xinfo(f, k);
        if (!r) return SC_EUPSTREAM;
        const redisReply *last = xinfo_field(r, "last-generated-id"); /* none: no stream, "0-0" */
        if (last && last->type == REDIS_REPLY_STRING && last->len < SC_FEED_ID_MAX)
            memcpy(pos->id[k], last->str, last->len + 1);
        freeReplyObject(r);
        f->checked[k] = 1; /* nothing before it is wanted */
    }
    return 0;
}

long sc_feed_poll(sc_feed *f, sc_feed_pos *pos, size_t max, sc_feed_fn fn, void *ctx, int *trimmed)
{
    enum { MAXF = 16 };
    if (trimmed) *trimmed = 0;
    if (!f || !pos || !fn || max == 0) return SC_EINVAL;
    char count[24];
    snprintf(count, sizeof count, "%zu", max);
    long total = 0;
    for (int k = 0; k < f->shards; k++) {
        char before[SC_FEED_ID_MAX];
        memcpy(before, pos->id[k], SC_FEED_ID_MAX);
        const char *argv[] = {"XREAD", "COUNT", count, "STREAMS", f->key[k], before};
        int err = 0;
        redisReply *r = sc_rc_command(f->rc, f->key[k], strlen(f->key[k]), 6, argv, NULL, &err);
        if (!r) return err ? err : SC_EUPSTREAM;
        if (r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            return SC_EUPSTREAM;
        }
        size_t got = 0;
        int stop = 0;
        /* [[key, [[id, [f, v, ...]], ...]]] or nil. */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements == 2 && r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
            redisReply *entries = r->element[0]->element[1];
            for (size_t e = 0; e < entries->elements && !stop; e++) {
                redisReply *en = entries->element[e];
                if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 || en->element[0]->type != REDIS_REPLY_STRING ||
                    en->element[0]->len >= SC_FEED_ID_MAX)
                    continue;
                redisReply *fv = en->element[1];
                const char *fs[MAXF], *vs[MAXF];
                size_t fl[MAXF], vl[MAXF], nf = 0;
                for (size_t i = 0; fv->type == REDIS_REPLY_ARRAY && i + 1 < fv->elements && nf < MAXF; i += 2) {
                    fs[nf] = fv->element[i]->str ? fv->element[i]->str : "";
                    fl[nf] = fv->element[i]->str ? fv->element[i]->len : 0;
                    vs[nf] = fv->element[i + 1]->str ? fv->element[i + 1]->str : "";
                    vl[nf] = fv->element[i + 1]->str ? fv->element[i + 1]->len : 0;
                    nf++;
                }
                memcpy(pos->id[k], en->element[0]->str, en->element[0]->len + 1);
                got++;
                stop = fn(ctx, k, pos->id[k], nf, fs, fl, vs, vl);
            }
        }
        freeReplyObject(r);
        total += (long)got;
        /* Behind (a full batch) or not checked since open: did trimming
         * take events after the position this read started from? (The
         * deleted ids only grow, so a trim before the read shows.) */
        if (trimmed && (!f->checked[k] || got == max)) {
            f->checked[k] = 1;
            if (shard_trimmed(f, k, before)) *trimmed = 1;
        }
        if (stop) break;
    }
    return total;
}
