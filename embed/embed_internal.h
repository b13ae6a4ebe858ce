/* Internals shared by the embedder backends (not part of the public API).
 *
 * embed.c owns struct sc_embedder: it validates arguments, bounds input
 * sizes, keeps the statistics and dispatches to a backend through the small
 * vtable below. Each backend (hash.c, use_*.c, remote.c) fills in its
 * dimension and id at open time and keeps its own state behind `impl`.
 * Backends must be safe to call from many threads at once: their state is
 * read-only after open, and per-call scratch memory is allocated per call. */
#ifndef SC_EMBED_INTERNAL_H
#define SC_EMBED_INTERNAL_H

#include "embed/embed.h"

#include <stdatomic.h>

typedef struct sc_embed_backend {
    const char *name;
    int (*open)(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen);
    void (*close)(sc_embedder *e);
    /* Embeds one text into out[dim] (L2-normalised). *tokens receives the
     * number of tokens used and *truncated 1 when the text was cut. */
    int (*embed1)(sc_embedder *e, const char *text, size_t len, float *out,
                  uint32_t *tokens, int *truncated);
    /* Optional: embeds n texts at once (remote batches one request). When
     * set it is used instead of embed1 and must update the stats itself. */
    int (*embedn)(sc_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                  float *out);
} sc_embed_backend;

struct sc_embedder {
    const sc_embed_backend *be;
    void *impl;
    uint32_t dim;
    char id[96];
    _Atomic uint64_t texts, tokens, truncated;
};

extern const sc_embed_backend sc_embed_hash_backend;
extern const sc_embed_backend sc_embed_use_backend;
extern const sc_embed_backend sc_embed_remote_backend;
extern const sc_embed_backend sc_embed_bin_backend;

struct sc_use_model;
/* Tokenizes, clips and embeds n texts with a USE-architecture model
 * (use-lite and semcache-embed share it); updates e's counters. */
int sc_use_embedn_model(sc_embedder *e, const struct sc_use_model *m, const char *const *texts,
                        const size_t *lens, size_t n, float *out);

/* Scales v[n] to unit L2 norm; a zero vector is left as it is. */
void sc_embed_l2_normalize(float *v, size_t n);

/* Copies text into valid UTF-8 (NUL-terminated, *outlen bytes without the
 * NUL; free() it), replacing each invalid byte by U+FFFD. */
uint8_t *sc_embed_sanitize_utf8(const char *text, size_t len, size_t *outlen);

/* Decodes UTF-8 text (invalid bytes become U+FFFD, like a browser's
 * TextDecoder) and normalises it to NFKC plus the utf8proc `extra` flags
 * (e.g. UTF8PROC_CASEFOLD). *out is an allocated code point array of *n
 * elements (free() it; non-NULL even when *n is 0). */
int sc_embed_normalize(const char *text, size_t len, int extra, int32_t **out, size_t *n);

/* Reads a whole file of at most max bytes into a NUL-terminated buffer
 * (*out, free() it; *len bytes without the NUL). On failure err reads
 * "embedder WHO: cannot open PATH: ..." / "PATH is larger than N bytes" /
 * "error reading PATH", then hint (e.g. " (run make deps)"), and the result
 * is SC_ENOTFOUND, SC_ETOOBIG or SC_EIO. Model loaders use it. */
int sc_embed_read_file(const char *path, size_t max, char **out, size_t *len, const char *who,
                       const char *hint, char *err, size_t errlen);

/* The hash backend's vector for one text (256 floats); used by tests. */
int sc_embed_hash_text(const char *text, size_t len, float *v, uint32_t *nwords);

#endif
