/* The embedder front end: opens a backend by name, checks every call's
 * arguments against the bounds in embed.h (number of texts, bytes per
 * text), keeps the counters behind sc_embed_stats_get() and dispatches one
 * text at a time to the backend (or a whole batch when the backend
 * batches, like remote). Thread-safe: the struct is read-only after open
 * except for the atomic counters. */
#include "embed/embed_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const sc_embed_backend *const backends[] = {
    &sc_embed_bin_backend,
    &sc_embed_use_backend,
    &sc_embed_hash_backend,
    &sc_embed_remote_backend,
};

void sc_embed_l2_normalize(float *v, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)v[i] * v[i];
    if (ss <= 0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (size_t i = 0; i < n; i++) v[i] *= inv;
}

uint8_t *sc_embed_sanitize_utf8(const char *text, size_t len, size_t *outlen)
{
    const uint8_t *s = (const uint8_t *)text;
    uint8_t *o = sc_malloc(len * 3 + 4), *p = o;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            c = 0xFFFD;
            k = 1;
        }
        p += utf8proc_encode_char(c, p);
        i += (size_t)k;
    }
    *p = 0;
    *outlen = (size_t)(p - o);
    return o;
}

int sc_embed_read_file(const char *path, size_t max, char **out, size_t *len, const char *who,
                       const char *hint, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "embedder %s: cannot open %s: %s%s", who, path, strerror(errno), hint);
        return SC_ENOTFOUND;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                snprintf(err, errlen, "embedder %s: %s is larger than %zu bytes%s", who, path, max, hint);
                rc = SC_ETOOBIG;
                break;
            }
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > max) cap = max;
            buf = sc_realloc(buf, cap + 1);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "embedder %s: error reading %s%s", who, path, hint);
                rc = SC_EIO;
            }
            break;
        }
    }
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    if (!buf) buf = sc_malloc(1);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int sc_embed_normalize(const char *text, size_t len, int extra, int32_t **out, size_t *n)
{
    size_t slen;
    uint8_t *s = sc_embed_sanitize_utf8(text, len, &slen);
    utf8proc_option_t opt = (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | extra);
    utf8proc_ssize_t cap = utf8proc_decompose(s, (utf8proc_ssize_t)slen, NULL, 0, opt);
    if (cap < 0) {
        free(s);
        return SC_EINVAL;
    }
    int32_t *buf = sc_malloc(((size_t)cap + 1) * sizeof *buf);
    utf8proc_ssize_t got = utf8proc_decompose(s, (utf8proc_ssize_t)slen, buf, cap, opt);
    free(s);
    if (got < 0 || got > cap) {
        free(buf);
        return SC_EINVAL;
    }
    got = utf8proc_normalize_utf32(buf, got, opt);
    if (got < 0) {
        free(buf);
        return SC_EINVAL;
    }
    *out = buf;
    *n = (size_t)got;
    return 0;
}

int sc_embedder_open(sc_embedder **out, const sc_embedder_opts *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!out || !opts || !opts->name) {
        snprintf(err, errlen, "embedder: no backend name given");
        return SC_EINVAL;
    }
    *out = NULL;
    const sc_embed_backend *be = NULL;
    for (size_t i = 0; i < SC_COUNTOF(backends); i++)
        if (strcmp(backends[i]->name, opts->name) == 0) be = backends[i];
    if (!be) {
        snprintf(err, errlen, "embedder: unknown backend \"%s\" (use semcache-embed, use-lite, hash or remote)",
                 opts->name);
        return SC_EINVAL;
    }
    sc_embedder *e = SC_NEW(sc_embedder);
    e->be = be;
    int rc = be->open(e, opts, err, errlen);
    if (rc != 0) {
        free(e);
        return rc;
    }
    if (e->dim == 0 || e->dim > SC_EMBED_MAX_DIM) {
        snprintf(err, errlen, "embedder %s: bad dimension %u", be->name, e->dim);
        be->close(e);
        free(e);
        return SC_EINVAL;
    }
    *out = e;
    return 0;
}

void sc_embedder_close(sc_embedder *e)
{
    if (!e) return;
    e->be->close(e);
    free(e);
}

uint32_t sc_embedder_dim(const sc_embedder *e) { return e->dim; }

const char *sc_embedder_id(const sc_embedder *e) { return e->id; }

int sc_embed(sc_embedder *e, const char *const *texts, const size_t *lens, size_t n, float *out)
{
    if (!e || (n > 0 && (!texts || !lens || !out))) return SC_EINVAL;
    if (n > SC_EMBED_MAX_TEXTS) return SC_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        if (!texts[i] && lens[i] > 0) return SC_EINVAL;
        if (lens[i] > SC_EMBED_MAX_BYTES) return SC_ETOOBIG;
    }
    if (n == 0) return 0;
    if (e->be->embedn) return e->be->embedn(e, texts, lens, n, out);
    uint64_t ntok = 0, ntrunc = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t tok = 0;
        int cut = 0;
        int rc = e->be->embed1(e, lens[i] ? texts[i] : "", lens[i], out + i * e->dim, &tok, &cut);
        if (rc != 0) return rc;
        ntok += tok;
        ntrunc += cut != 0;
    }
    atomic_fetch_add_explicit(&e->texts, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->tokens, ntok, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->truncated, ntrunc, memory_order_relaxed);
    return 0;
}

void sc_embed_stats_get(sc_embedder *e, sc_embed_stats *st)
{
    st->texts = atomic_load_explicit(&e->texts, memory_order_relaxed);
    st->tokens = atomic_load_explicit(&e->tokens, memory_order_relaxed);
    st->truncated = atomic_load_explicit(&e->truncated, memory_order_relaxed);
}
