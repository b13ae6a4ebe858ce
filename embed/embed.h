/* Sentence embedders behind one interface.
 *
 * Backends:
 *   semcache-embed  semcached's own model (the default): USE-lite's
 *             architecture fine-tuned for caching (tools/train/), loaded
 *             from model_dir/model.bin (use_bin.h); 512-d.
 *   use-lite  Universal Sentence Encoder Lite re-implemented in C (OpenBLAS),
 *             loaded from the npm package's TF.js files in model_dir; 512-d.
 *   hash      model-free hashed character and word n-grams (tests,
 *             air-gapped use); deterministic; 256-d.
 *   remote    an OpenAI-compatible POST {url}/v1/embeddings (model, dim
 *             from config).
 *
 * Every output vector is L2-normalised fp32 of sc_embedder_dim() floats.
 * Threads: sc_embed() may be called from any number of threads at once
 * (not from the libuv loop thread: it takes milliseconds). */
#ifndef SC_EMBED_H
#define SC_EMBED_H

#include <stddef.h>
#include <stdint.h>

typedef struct sc_embedder sc_embedder;

/* Where the shipped semcache-embed model lives (relative to the cwd). */
#define SC_EMBED_DEFAULT_MODEL_DIR "models/semcache-embed-v1"

/* Bounds on what a caller may pass (past them sc_embed returns SC_ETOOBIG). */
#define SC_EMBED_MAX_TEXTS 1024u          /* texts per sc_embed() call */
#define SC_EMBED_MAX_BYTES (1u << 20)     /* bytes per text */
#define SC_EMBED_MAX_DIM 8192u            /* remote: largest accepted dimension */
/* use-lite reads at most this many tokens of a text (the graph's
 * ClipToMaxLength drops positions >= 128, so this matches the original);
 * the rest is dropped and counted in sc_embed_stats.truncated. */
#define SC_EMBED_USE_MAX_TOKENS 128u

typedef struct sc_embedder_opts {
    const char *name;           /* "semcache-embed", "use-lite", "hash", "remote" */
    const char *model_dir;      /* semcache-embed, use-lite ("" = default) */
    const char *url;            /* remote: base URL */
    const char *model;          /* remote: model name */
    const char *api_key;        /* remote: may be NULL */
    uint32_t dim;               /* remote: expected dimension */
} sc_embedder_opts;

typedef struct sc_embed_stats {
    uint64_t texts;
    uint64_t tokens;
    uint64_t truncated;         /* inputs cut at the maximum token count */
} sc_embed_stats;

/* Opens an embedder. On failure err says what is wrong and how to fix it
 * (for a missing model: which file, and "run make deps"). */
int sc_embedder_open(sc_embedder **out, const sc_embedder_opts *opts, char *err, size_t errlen);
void sc_embedder_close(sc_embedder *e);

uint32_t sc_embedder_dim(const sc_embedder *e);
/* Identifies model and version, stored in the data dir ("use-lite/1"). */
const char *sc_embedder_id(const sc_embedder *e);

/* Embeds n texts (UTF-8, lens[i] bytes each) into out[n * dim]. */
int sc_embed(sc_embedder *e, const char *const *texts, const size_t *lens, size_t n, float *out);

void sc_embed_stats_get(sc_embedder *e, sc_embed_stats *st);

#endif
