/* Internals of the USE-lite backend, shared by use_model.c (loading and
 * validating the TF.js files), use_tokenizer.c (SentencePiece unigram
 * encoding exactly as the TF.js tokenizer does it) and use_forward.c (the
 * transformer forward pass). Everything here is read-only after load, so
 * any number of threads may tokenize and run the forward pass at once. */
#ifndef SC_EMBED_USE_H
#define SC_EMBED_USE_H

#include "common/pair.h"

#include <stddef.h>
#include <stdint.h>

/* ---- tokenizer ----------------------------------------------------------- */

typedef struct sc_use_vocab sc_use_vocab;

/* Builds the tokenizer from vocab.json's text ([[piece, score], ...]).
 * Pieces 0..5 are reserved (unknown, control and user symbols) and never
 * matched, like the TF.js tokenizer. */
int sc_use_vocab_load(sc_use_vocab **out, const char *json, size_t len, char *err, size_t errlen);
void sc_use_vocab_free(sc_use_vocab *v);
uint32_t sc_use_vocab_size(const sc_use_vocab *v);
/* 1 when long texts can be encoded by prefixes (see use_tokenizer.c). */
int sc_use_vocab_cut_safe(const sc_use_vocab *v);

/* Folding (off by default; set by the model file, use_bin.h): before the
 * pieces are matched, text is case-folded (Unicode full case folding) and
 * the end punctuation and white space ("?", ".", "!", space, tab, CR, LF,
 * after NFKC) are dropped, so
 * "What is X?" and "what is x" get the same ids. A model trained on folded
 * text (tools/train/train.py --fold) must be served folded, and only it.
 * Set before the vocab is shared between threads. */
void sc_use_vocab_set_fold(sc_use_vocab *v, int on);
int sc_use_vocab_folds(const sc_use_vocab *v);

/* Encodes UTF-8 text to token ids as the TF.js tokenizer would: NFKC, a
 * U+2581 word-boundary marker in front and in place of every U+0020,
 * Viterbi over the piece lattice (unknown code points become id 0, runs of
 * them one id 0). With max_ids > 0 only the first ids are guaranteed: a
 * long text may stop early, with more than max_ids ids (so the caller can
 * still tell it was cut); 0 encodes everything. *ids is allocated (free()
 * it; may be NULL when *n is 0). */
int sc_use_encode(const sc_use_vocab *v, const char *text, size_t len, size_t max_ids,
                  int32_t **ids, size_t *n);

/* ---- matrix products (use_gemm.c) ---------------------------------------- */

/* A constant weight matrix W [k, n] (row-major, not owned) and, when n is
 * a multiple of 16, a copy packed into 16-column panels for small products. */
typedef struct sc_use_mat {
    uint32_t k, n;
    const float *w;
    float *panels;
    /* without AVX-512, on AVX2 + FMA (n a multiple of 8): 8-column panels
     * [n/8][k][8] for the AVX2 kernel */
    float *panels8;
    /* int8 copy for AVX-512 VNNI (k a multiple of 4): per 16-column panel
     * and group of 4 k, 64 bytes (column j's 4 weights at bytes 4j..4j+3),
     * each column scaled by qscale[j] = max|W[:, j]| / 127; qsum[j] = the
     * column's sum of int8 weights (undoes the activations' +128). */
    int8_t *q8;
    float *qscale;
    int32_t *qsum;
    /* the same int8 weights for CPUs with AVX2 but no VNNI, widened to
     * int16 for vpmaddwd: per 8-column panel and pair of k, 32 bytes
     * (column j's 2 weights at int16 2j, 2j+1); scales in qscale */
    int16_t *q16;
} sc_use_mat;

/* Packs W for the kernels; int8: also the int8 copy, where the CPU has
 * AVX-512 VNNI and the shape allows. */
void sc_use_mat_pack(sc_use_mat *m, const float *w, uint32_t k, uint32_t n, int int8);
void sc_use_mat_free(sc_use_mat *m);
/* C[rows, n] += X[rows, k] W. force: 0 picks (the int8 kernel when W has
 * an int8 copy and sc_use_gemm_int8 is on, any row count; else the packed
 * fp32 kernel up to sc_use_gemm_small_rows rows; else cblas_sgemm), 1 the
 * packed fp32 kernel when available, 2 the int8 kernel when available
 * (VNNI, else the AVX2 one), 3 the AVX2 kernel when its panels exist
 * (sc_use_mat_pack8), 4 the AVX2 int8 kernel when q16 exists, -1
 * cblas_sgemm (tests and benchmarks). Both int8 kernels compute the same
 * integer dot products of the same quantised values, so they agree to
 * float rounding. The int8 kernel quantises each row
 * of X to int8 by its own max |x| (round to nearest) and multiplies by the
 * int8 weights exactly (vpdpbusd), so C differs from fp32 by the two
 * roundings only (tests/unit/test_embed_use.c bounds what that does to
 * the sentence vectors). */
void sc_use_matmul(const sc_use_mat *m, const float *x, size_t rows, float *c, int force);
/* sc_use_matmul(force 0), with the column panels of an AVX-512 kernel
 * split between this thread and pair's helper while this forward is the
 * only one in flight (common/pair.h); pair NULL: sc_use_matmul. The same
 * result either way, bit for bit. */
void sc_use_matmul_pair(const sc_use_mat *m, const float *x, size_t rows, float *c, sc_pair *pair);
extern int sc_use_gemm_small_rows;
/* Tests: builds the AVX2 kernel's 8-column panels where the CPU has AVX2
 * and FMA even if it has AVX-512 too (0: built or already there), so
 * force 1 runs that kernel on every CPU that can. */
int sc_use_mat_pack8(sc_use_mat *m);
/* Tests: builds q16 where the CPU has AVX2 (0: built or already there), so
 * force 4 runs the AVX2 int8 kernel on every CPU that can. */
int sc_use_mat_pack_q16(sc_use_mat *m);
/* 1 when this CPU runs AVX-512F (the packed kernels, and use_forward.c's
 * attention and layer norm). */
int sc_use_have_avx512(void);
/* 1 (default): the int8 kernel where the CPU has AVX-512 VNNI; 0: fp32
 * only (the environment variable SC_EMBED_INT8=0 sets 0 when a model is
 * loaded). Read when an embedding runs; set it before any run. */
extern _Atomic int sc_use_gemm_int8;

/* ---- model --------------------------------------------------------------- */

typedef struct sc_use_layer {
    uint32_t in, width, heads, head_dim;
    float scale;                  /* query scale, 1/sqrt(head_dim) */
    const float *ln1_g, *ln1_b;   /* [in] */
    const float *qkv_w, *qkv_b;   /* [in, 3*in], [3*in] */
    const float *out_w, *out_b;   /* [in, width], [width] */
    const float *res_w, *res_b;   /* [in, width] or NULL when in == width */
    const float *ln2_g, *ln2_b;   /* [width] */
    const float *ffn1_w, *ffn1_b; /* [width, ffn], [ffn] */
    const float *ffn2_w, *ffn2_b; /* [ffn, width], [width] */
    sc_use_mat qkv, out, res, ffn1, ffn2;
    uint32_t ffn;
} sc_use_layer;

typedef struct sc_use_model {
    float *blob;                  /* all weights, as in the shards */
    size_t blob_floats;
    sc_use_vocab *vocab;
    uint32_t n_vocab_rows, emb_dim, out_dim;
    uint32_t max_len;             /* ClipToMaxLength: positions >= this are dropped */
    float ln_eps, l2_eps;
    const float *emb;             /* [n_vocab_rows, emb_dim] */
    const float *inv_timescales;  /* [emb_dim / 2] */
    float *timing;                /* [max_len, emb_dim]: sin | cos per position */
    sc_use_layer layer[2];
    const float *tanh_w, *tanh_b; /* [out_dim, out_dim], [out_dim] */
    sc_use_mat tanh_m;
    sc_pair *pair;            /* a lone forward's second thread, or NULL */
} sc_use_model;

/* Loads dir/model.json, its weight shards and dir/vocab.json, checking
 * names, shapes, dtypes, shard sizes and the graph constants used. On error
 * err names the file and says to run make deps. */
int sc_use_model_load(sc_use_model **out, const char *dir, char *err, size_t errlen);
void sc_use_model_free(sc_use_model *m);
/* Packs the weight matrices and fills the timing table of a model whose
 * weights are bound (both loaders call it once). */
void sc_use_model_prepare(sc_use_model *m);

/* Fills m->timing from m->inv_timescales (called once at load). */
void sc_use_timing_table(sc_use_model *m);

/* Runs the encoder on n token sequences (ids[i] of ntok[i] ids, each
 * already clipped to max_len) and writes n L2-normalised vectors of out_dim
 * floats. The token rows of all sequences go through each dense layer as
 * one matrix; when it is the only forward in flight, m->pair's helper
 * takes half of each product (the same vectors, bit for bit). Allocates
 * its own scratch; any thread. */
int sc_use_forward(const sc_use_model *m, const int32_t *const *ids, const uint32_t *ntok,
                   size_t n, float *out);

#endif
