/* Internal declarations shared by the files of the index module (not part
 * of its public interface): the thin wrapper around the FAISS C API that
 * the faiss backend uses. */
#ifndef SC_INDEX_INT_H
#define SC_INDEX_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* kernels.c: writes the indices j < m with s[j] > thr into idx (in
 * increasing order) and returns their count (AVX-512: 16 at a time). */
size_t sc_index__above(const float *s, size_t m, float thr, uint32_t *idx);
/* kernels.c: sum of v[i]^2 in double (AVX-512: 16 at a time). */
double sc_index__sumsq(const float *v, size_t n);

/* ---- ivf.c: the ANN path's coarse quantiser (see index.c) ---- */
#define SC_INDEX_IVF_MAX_LISTS 1024
/* Spherical k-means: k normalised centroids (k*dim floats into cent) of
 * the n unit rows x (n >= k), seeded and deterministic: threads (1 or 2)
 * changes the time, not the result. SC_EINVAL for k = 0, n < k, k above
 * SC_INDEX_IVF_MAX_LISTS or dim outside 1..SC_INDEX_MAX_DIM;
 * SC_ECLOSED when *stop (may be NULL) was set between two iterations
 * (cent is then unfinished). */
int sc_index__kmeans(const float *x, size_t n, size_t dim, size_t k, uint64_t seed, atomic_int *stop,
                     int threads, float *cent);

/* Rows from which an IVF build assigns rows and fills its lists on two
 * threads (index.c; 65,536). A variable so that tests can take the
 * two-thread path with few rows; the lists are the same either way. */
extern size_t sc_index__par_min;
/* Test hook (index.c): set, an ANN search never splits its lists with
 * the shared helper thread (common/pair.h). */
extern int sc_index__split_off;
/* The list (0..nlist-1) whose int8 centroid (c8, nlist rows of dim) has
 * the largest dot product with q8. nlist <= SC_INDEX_IVF_MAX_LISTS. */
uint32_t sc_index__nearest(const int8_t *c8, uint32_t nlist, size_t dim, const int8_t *q8);
/* The centroids of one build, ready for sc_index__nearest_rows: with the
 * AVX-512 VNNI kernel active, also packed 16 to a register (packed, init;
 * NULL otherwise, and then every row goes through sc_index__nearest). c8
 * is borrowed and must outlive it. */
typedef struct sc_index__cents {
    const int8_t *c8;
    uint32_t nlist, dim, npad;  /* npad: nlist rounded up to 64 (packed) */
    int8_t *packed;
    int32_t *init;
} sc_index__cents;
/* 0, or SC_EINVAL for nlist outside 1..SC_INDEX_IVF_MAX_LISTS or dim
 * outside 1..SC_INDEX_MAX_DIM. */
int sc_index__cents_init(sc_index__cents *c, const int8_t *c8, uint32_t nlist, size_t dim);
void sc_index__cents_free(sc_index__cents *c);
/* out[i] = sc_index__nearest(c8, nlist, dim, q + i*dim) for i < n (the same
 * lists, ties included), four rows per pass over the centroids. */
void sc_index__nearest_rows(const sc_index__cents *c, const int8_t *q, size_t n, uint32_t *out);

/* ---- faiss_backend.c: FAISS indexes as opaque pointers ----
 * All return 0 or a negative SC_E* code; on failure the FAISS message is
 * logged. Every call runs FAISS single-threaded (OpenMP 1 thread). */
int sc_index__faiss_new(void **out, uint32_t dim, const char *desc);
void sc_index__faiss_free(void *fx);
int sc_index__faiss_is_trained(const void *fx);
int sc_index__faiss_train(void *fx, size_t n, const float *x);
int sc_index__faiss_add(void *fx, size_t n, const float *x);
/* Labels are the insertion order (0..ntotal-1); missing results are -1. */
int sc_index__faiss_search(const void *fx, const float *q, size_t k, float *dist,
                           int64_t *labels);

/* Test hook, NULL in production: called by a compaction, in the calling
 * thread, between its unlocked copy and the carrying over of what changed
 * meanwhile (so tests can change the partition right then). */
extern void (*sc_index__compact_hook)(void);

/* faiss_c.cpp: limits OpenMP to one thread for the calling thread. */
void sc_index__faiss_single_thread(void);

#endif
