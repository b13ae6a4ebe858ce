/* The in-memory cosine index.
 *
 * Vectors are grouped in partitions keyed by (namespace, fingerprint); a
 * search only ever looks inside one partition, so one namespace never sees
 * another's entries. Vectors are L2-normalised fp32 of a fixed dimension.
 *
 * Backends:
 *   flat  (default) a scan over quantised copies with a SIMD kernel
 *         picked at run time (AVX-512 VNNI, AVX2, scalar), then exact
 *         re-scoring of the candidates it keeps against their fp16 rows. scan_bits = 4
 *         (default): 4-bit codes (dim/2 bytes and a per-row scale), the
 *         top max(8k, 64) candidates; scan_bits = 8: int8 codes (dim
 *         bytes, twice the memory traffic), the top max(4k, 32). On real
 *         USE-lite embeddings both hand the re-score the exact top-k
 *         (BENCHMARKS.md, `bench_index --real`).
 *   faiss a FAISS index per partition built with faiss_index_factory(desc),
 *         inner product, through the FAISS C API (index/faiss_c.cpp
 *         implements the functions used, Debian ships only the headers).
 *         Removed rows are filtered from its results (asking for more when
 *         needed) and dropped at compaction, which rebuilds the index; an
 *         index that needs training (IVF...) is trained on the partition's
 *         rows once it has 1024 of them (until then: an exact scan of
 *         the fp16 rows).
 *         Results are re-scored against the fp16 rows as well.
 *
 * The ANN path (flat, 4-bit scan): a partition of ann_min_rows live rows
 * or more (65,536 by default) is searched through an inverted file:
 * k-means centroids (16 to 256 lists, about sqrt(rows) / 2) trained on a
 * sample of its rows, each row's codes kept in the list of its nearest
 * centroid (contiguous, so a probed list is one scan; the chunks a list
 * covers give their own codes back, so memory stays the same). A search
 * scans the 3/16 of the lists whose centroids are nearest the query (18.75%
 * of the rows) plus the rows added since the last assignment, then
 * re-scores as above. recall@1 0.996 and recall@10 0.994 against exact
 * fp32 on real embeddings at 100k rows, ~4x faster (BENCHMARKS.md,
 * `bench_index --real`). Rows added later are put into lists in batches;
 * the centroids are trained again when the live rows have doubled; a
 * partition that shrinks below half of ann_min_rows goes back to the exact
 * scan at its next compaction.
 *
 * Two cores for one search: a flat 4-bit search that is the only
 * embedding or search in flight in the process (common/pair.h) has the
 * shared helper thread scan half of the work: every other probed list of
 * an IVF (when it probes two or more; the caller scans the rows not yet
 * assigned alone), or the second half of the rows of an exact scan whose
 * codes take 4 MiB or more (16,384 rows at 512-d). The hits are one
 * thread's, up to which of equal scores is kept at the candidates' cut.
 *
 * Threads: any thread may call any function. Searches run concurrently
 * with each other and with adds; an add or remove holds a partition's
 * write lock only for a short, bounded time (no large copies under it).
 * Removal is a tombstone; a partition compacts itself when tombstones pass
 * a quarter of its rows, and is dropped when it has no live row left.
 * Memory: every vector is kept in fp16 (re-scoring, rebuilds: 2*dim
 * bytes) plus its scan copy (int8: dim bytes, 4-bit: dim/2 + 4 bytes) and
 * its id (8 bytes, and 24 in the id map). A partition's rows live in
 * chunks of 1, 2, 4, ... rows up to 16,384, so a partition of n rows
 * reserves fewer than 2n rows' worth, and one of a single row (a
 * conversation's later turn) reserves one. Scores are the fp32 query's dot
 * product with the fp16 row, clamped to [-1, 1]: within ~1e-4 of the fp32
 * cosine (a vector scored against itself gives 0.999 or more, not always
 * exactly 1). */
#ifndef SC_INDEX_H
#define SC_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct sc_index sc_index;

/* Largest accepted dimension; the largest k a search accepts. */
#define SC_INDEX_MAX_DIM 4096
#define SC_INDEX_MAX_K 1024
/* Live rows from which a flat 4-bit partition is searched through an IVF
 * (BENCHMARKS.md: below it the exact scan takes under ~1 ms). */
#define SC_INDEX_ANN_MIN_DEFAULT 65536

typedef struct sc_index_opts {
    uint32_t dim;
    const char *backend;        /* "flat" or "faiss" */
    const char *faiss_desc;     /* e.g. "HNSW32", "IVF1024,SQ8" */
    uint32_t scan_bits;         /* flat: 4 (default; 0 means 4) = 4-bit
                                 * scan, half the bytes of int8, more
                                 * candidates re-scored; 8 = int8 */
    uint32_t ann_min_rows;      /* flat 4-bit: partitions of this many live
                                 * rows and more search an IVF (the ANN
                                 * path); 0 = SC_INDEX_ANN_MIN_DEFAULT,
                                 * UINT32_MAX = never (always exact) */
    uint32_t ann_nprobe;        /* lists an ANN search probes; 0 = 3/16
                                 * of them, at least 8 */
} sc_index_opts;

typedef struct sc_index_hit {
    uint64_t id;
    float score;                /* cosine against the stored fp16 row */
} sc_index_hit;

typedef struct sc_index_stats {
    uint64_t partitions;
    uint64_t vectors;
    uint64_t bytes;             /* memory held by vectors (and IVF lists) */
    uint64_t ann_partitions;    /* partitions searched through an IVF */
} sc_index_stats;

/* Creates an empty index. SC_EINVAL for a dim of 0 or above
 * SC_INDEX_MAX_DIM, an unknown backend, or a FAISS description that
 * faiss_index_factory rejects (backend NULL means "flat"). */
int sc_index_create(sc_index **out, const sc_index_opts *opts);
/* Frees everything; no other call on ix may be running or follow. */
void sc_index_destroy(sc_index *ix);

/* Adds vector vec (dim floats, normalised) under id in partition (ns, fp).
 * The vector is copied (and re-normalised). Adding an id twice replaces it,
 * also across partitions. SC_EINVAL for id UINT64_MAX (reserved as the
 * tombstone), a NULL ns, or a zero or non-finite vector. */
int sc_index_add(sc_index *ix, const char *ns, uint64_t fp, uint64_t id, const float *vec);

/* Removes id wherever it is (no-op, SC_ENOTFOUND, when absent). May compact
 * the partition (the calling thread copies its live rows, and rebuilds a
 * FAISS index, holding no lock that searches or other adds/removes need,
 * then swaps them in briefly) or drop it when it became empty. An add may
 * compact too (re-added ids, or a FAISS index that can now be trained). */
int sc_index_remove(sc_index *ix, uint64_t id);

/* Drops every partition of namespace ns. */
int sc_index_flush_ns(sc_index *ix, const char *ns);

/* The fingerprints of namespace ns's partitions: writes up to max into
 * fps (in no particular order) and returns how many ns has in all. */
size_t sc_index_partitions(sc_index *ix, const char *ns, uint64_t *fps, size_t max);

/* Live rows of partition (ns, fp): 0 when it does not exist (a partition
 * is dropped with its last live row), so a search there finds nothing.
 * A snapshot: an add or remove on another thread may change it next. */
size_t sc_index_rows(sc_index *ix, const char *ns, uint64_t fp);

/* Top-k by cosine in partition (ns, fp), best first (ties: smaller id
 * first). Writes up to k hits into out and their count into *n (0 when the
 * partition is empty or does not exist). SC_EINVAL when k is above
 * SC_INDEX_MAX_K or the query is zero or non-finite. */
int sc_index_search(sc_index *ix, const char *ns, uint64_t fp, const float *query,
                    size_t k, sc_index_hit *out, size_t *n);

void sc_index_stats_get(sc_index *ix, sc_index_stats *st);

/* While on, adds do no IVF upkeep (start-up: the index is filled from the
 * store); turning it off builds what is due at once, so a partition
 * loaded with 1M rows is trained and assigned once, not at every doubling
 * on the way. */
void sc_index_bulk_load(sc_index *ix, int on);

/* Before sc_index_destroy, from any thread: IVF builds under way give up
 * at their next block or k-means iteration (the partition keeps what it
 * had, the exact scan or its older lists) and no new one starts, so a
 * shutdown does not wait for a start-up build. Searches and adds go on. */
void sc_index_stop(sc_index *ix);

/* ---- kernels, exposed for tests and benchmarks ---- */

/* Quantises a normalised vector to int8 (scale 127). _scalar is the
 * reference the SIMD version (same bytes) is tested against. */
void sc_index_quantize(const float *v, int8_t *q, size_t dim);
void sc_index_quantize_scalar(const float *v, int8_t *q, size_t dim);
/* Dot products of q against n int8 rows (row-major, stride dim) into out.
 * sc_index_dot_i8 uses the best kernel for this CPU; _scalar is the
 * reference the SIMD kernels are tested against. */
void sc_index_dot_i8(const int8_t *q, const int8_t *rows, size_t n, size_t dim, int32_t *out);
void sc_index_dot_i8_scalar(const int8_t *q, const int8_t *rows, size_t n, size_t dim, int32_t *out);
/* Name of the kernel in use: "avx512vnni", "avx2" or "scalar". */
const char *sc_index_kernel_name(void);
/* Forces a kernel by name ("auto" or NULL = best for this CPU), for tests
 * and benchmarks; SC_EUNSUPPORTED when this CPU lacks it, SC_EINVAL for an
 * unknown name. Not to be called while other threads search. */
int sc_index_kernel_force(const char *name);
/* 4-bit scan codes (scan_bits = 4, the default): SC_INDEX_I4_BYTES(dim) bytes a row,
 * 128-dim blocks of 64 bytes (byte j: dim j in the low nibble, dim 64+j in
 * the high one, as v+8, v in [-7, 7]). sc_index_quantize_i4 writes the
 * codes of v scaled by 7/max|v| and that max into *scale (the row's dot
 * products are multiplied by it); it returns the byte count.
 * sc_index_dot_i4 computes sum(v_i * q_i) for n rows against an int8
 * query zero-padded to SC_INDEX_I4_QLEN(dim) entries; _scalar is the
 * reference. */
#define SC_INDEX_I4_BYTES(dim) ((((size_t)(dim) + 127) / 128) * 64)
#define SC_INDEX_I4_QLEN(dim) ((((size_t)(dim) + 127) / 128) * 128)
size_t sc_index_quantize_i4(const float *v, uint8_t *codes, size_t dim, float *scale);
size_t sc_index_quantize_i4_scalar(const float *v, uint8_t *codes, size_t dim, float *scale);
void sc_index_dot_i4(const int8_t *q, const uint8_t *codes, size_t n, size_t dim, int32_t *out);
void sc_index_dot_i4_scalar(const int8_t *q, const uint8_t *codes, size_t n, size_t dim,
                            int32_t *out);
/* Exact fp32 dot product of two dim-vectors (dispatched like the above). */
float sc_index_dot_f32(const float *a, const float *b, size_t dim);
/* Dot product of an fp32 vector with an fp16 one (common/half.h), summed
 * in fp32 (AVX-512: vcvtph2ps; AVX2: F16C; else scalar). */
float sc_index_dot_f16(const float *a, const uint16_t *b, size_t dim);

#endif
